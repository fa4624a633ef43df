"""Item tower, recommender and baselines, with tiny stand-in encoders defined here."""

from __future__ import annotations

import functools
import zlib

import pytest
import torch
from torch import Tensor, nn

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.encoders.base import ImageEncoder, TextEncoder, Towers
from vrs.encoders.catalogue import CatalogueFeatures
from vrs.fusion import ConcatFusion, GatedFusion, LateFusion, SingleModalityFusion, SumFusion
from vrs.models import (
    ItemTower,
    PopularityRecommender,
    Recommender,
    VisualProfileRecommender,
    drop_modalities,
)
from vrs.user import MeanUserEncoder, SASRecUserEncoder

N, D = 10, 8


class CountingImageEncoder(ImageEncoder):
    def __init__(self, out_dim: int = 6):
        super().__init__()
        self.out_dim = out_dim
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, out_dim)
        self.calls = 0

    def forward(self, images: Tensor) -> Tensor:
        self.calls += 1
        x = images.float() / 255 if images.dtype == torch.uint8 else images
        x = self.conv(x).mean(dim=(2, 3))  # (n, 4)
        return self.head(self.drop(x))


class CountingTextEncoder(TextEncoder):
    def __init__(self, out_dim: int = 5, vocab: int = 64, length: int = 6):
        super().__init__()
        self.out_dim = out_dim
        self.vocab, self.length = vocab, length
        self.emb = nn.Embedding(vocab, out_dim, padding_idx=0)
        self.calls = 0

    def tokenize(self, texts: list[str]) -> Tensor:
        out = torch.zeros(len(texts), self.length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [1 + zlib.crc32(w.encode()) % (self.vocab - 1) for w in text.lower().split()][: self.length]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def forward(self, tokens: Tensor) -> Tensor:
        self.calls += 1
        mask = (tokens > 0).float()[..., None]  # (n, L, 1)
        return (self.emb(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)


def _content(n: int = N) -> ItemContent:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    has_image = torch.arange(n) % 3 != 0
    images[~has_image] = 0
    texts = [f"item {i} red shoe" if i % 4 else "" for i in range(n)]
    has_text = torch.tensor([bool(t) for t in texts])
    return ItemContent(images=images, has_image=has_image, texts=texts, has_text=has_text)


def _towers() -> Towers:
    return Towers(image=CountingImageEncoder(), text=CountingTextEncoder())


def _tower(fusion=ConcatFusion, **kw) -> ItemTower:
    torch.manual_seed(0)
    tower = ItemTower(N, D, _towers(), fusion, **kw)
    tower.set_content(_content())
    return tower


def _batch() -> RecBatch:
    items = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 9], [0, 0, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    events = torch.where(mask, 1, 0)
    targets = torch.tensor([6, 7, 8])
    return RecBatch(items=items, events=events, mask=mask, targets=targets)


@pytest.mark.parametrize("fusion", [ConcatFusion, SumFusion, GatedFusion, LateFusion])
def test_tower_shapes(fusion):
    if fusion is LateFusion:
        fusion = functools.partial(LateFusion)
        tower = ItemTower(N, 9, _towers(), fusion)
        tower.set_content(_content())
        assert tower(None).shape == (N, 9)
        return
    tower = _tower(fusion)
    assert tower.n_items == N and tower.dim == D
    assert tower.modalities == ("image", "text", "id")
    assert tower().shape == (N, D)
    out = tower(torch.tensor([3, 3, 7]))
    assert out.shape == (3, D) and torch.isfinite(out).all()


def test_forward_before_set_content_raises():
    tower = ItemTower(N, D, _towers(), ConcatFusion)
    with pytest.raises(RuntimeError, match="set_content"):
        tower()


def test_content_is_not_in_state_dict():
    for frozen in (False, True):
        tower = _tower(freeze_encoders=frozen)
        assert tower.catalogue.encoded == ({"image", "text"} if frozen else set())
        held = {t.data_ptr() for t in (*tower.catalogue.inputs.values(), *tower.catalogue.present.values())}
        state = tower.state_dict()
        assert not held & {t.data_ptr() for t in state.values()}
        assert all(k.startswith(("towers.", "norms.", "fusion.", "id_emb.")) for k in state)


def test_catalogue_follows_the_module_device_and_must_fit_the_tower():
    tower = _tower(freeze_encoders=True)
    first = tower.catalogue
    assert tower.catalogue is first  # same device: no copy
    tower.to("meta")  # a device move of the parameters: the catalogue follows on next use, once
    moved = tower.catalogue
    assert moved.device.type == "meta" and tower.catalogue is moved
    assert first.device.type == "cpu" and set(moved.inputs) == set(first.inputs)
    tower = _tower(freeze_encoders=True)
    other = _tower()  # trained encoders: raw inputs, nothing encoded
    with pytest.raises(ValueError, match="frozen"):
        tower.attach(other.catalogue)
    with pytest.raises(ValueError, match="disagree on the number of items"):
        CatalogueFeatures(
            inputs={"image": torch.zeros(3, 2)}, present={"image": torch.ones(4, dtype=torch.bool)}
        )


def test_frozen_encoders_cache_features_once():
    tower = _tower(freeze_encoders=True, chunk_size=4)
    img, txt = tower.towers["image"], tower.towers["text"]
    assert img.calls == 3 and txt.calls == 3  # ceil(10 / 4) chunks each, at set_content time
    assert not any(p.requires_grad for p in img.parameters())
    tower.train()
    assert tower.training and not img.training and not txt.training
    tower()
    tower(torch.tensor([1, 2]))
    assert img.calls == 3 and txt.calls == 3
    # cached features equal a fresh eval-mode encode
    with torch.no_grad():
        torch.testing.assert_close(tower.catalogue.inputs["image"], img(_content().images))
    tower().sum().backward()
    assert tower.id_emb.weight.grad is not None
    assert all(p.grad is None for p in img.parameters())


def test_trainable_encoders_get_gradients_and_encode_in_chunks():
    tower = _tower(chunk_size=4)
    img, txt = tower.towers["image"], tower.towers["text"]
    assert img.calls == 0 and txt.calls == 0
    tower().square().sum().backward()
    assert img.calls == 3 and txt.calls == 3
    assert img.conv.weight.grad is not None and img.conv.weight.grad.abs().sum() > 0
    assert txt.emb.weight.grad is not None and txt.emb.weight.grad.abs().sum() > 0


def test_presence_flags():
    tower = _tower()
    feats, present = tower.modality_features(torch.tensor([0, 1, 4]))
    assert present["image"].tolist() == [False, True, True]
    assert present["text"].tolist() == [False, True, False]
    assert present["id"].tolist() == [True, True, True]
    assert feats["image"].shape == (3, 6) and feats["text"].shape == (3, 5) and feats["id"].shape == (3, D)


def test_modality_features_of_some_modalities_encode_only_those():
    tower = _tower()
    idx = torch.tensor([0, 1, 4])
    every, _ = tower.modality_features(idx)
    img, txt = tower.towers["image"], tower.towers["text"]
    before = (img.calls, txt.calls)
    feats, present = tower.modality_features(idx, only=("text",))
    assert set(feats) == set(present) == {"text"}
    assert (img.calls, txt.calls) == (before[0], before[1] + 1)  # the image tower did not run
    assert torch.equal(feats["text"], every["text"]) and present["text"].tolist() == [False, True, False]


def test_only_consumed_modalities_are_built():
    tower = _tower(functools.partial(SingleModalityFusion, modality="text"))
    assert tower.modalities == ("text",)
    assert "image" not in tower.towers and tower.id_emb is None
    feats, present = tower.modality_features(None)
    assert set(feats) == {"text"}
    tower_no_id = _tower(SumFusion, use_id=False)
    assert tower_no_id.modalities == ("image", "text") and tower_no_id.id_emb is None


def test_image_only_without_image_tower_raises():
    towers = Towers(image=None, text=CountingTextEncoder())
    with pytest.raises(ValueError, match="image"):
        ItemTower(N, D, towers, functools.partial(SingleModalityFusion, modality="image"))


def test_no_images_at_all():
    content = _content()
    content = ItemContent(
        images=None, has_image=content.has_image, texts=content.texts, has_text=content.has_text
    )
    tower = ItemTower(N, D, _towers(), ConcatFusion)
    tower.set_content(content)
    assert not tower.present["image"].any()
    assert torch.isfinite(tower()).all()


def test_drop_modalities_never_drops_everything():
    g = torch.Generator().manual_seed(0)
    n = 2000
    present = {m: torch.rand(n, generator=g) < 0.7 for m in ("image", "text", "id")}
    kept = drop_modalities(present, p=0.9, generator=g)
    pres = torch.stack(list(present.values()), 1)
    keep = torch.stack(list(kept.values()), 1)
    assert not (keep & ~pres).any()  # only drops
    assert (keep.any(1) == pres.any(1)).all()  # an item with content keeps at least one modality
    assert keep.sum() < 0.5 * pres.sum()  # and dropping does happen
    assert drop_modalities(present, p=0.0) == present


def test_modality_dropout_only_in_training():
    tower = _tower(GatedFusion, modality_dropout=0.5)
    tower.eval()
    torch.testing.assert_close(tower(), tower())
    tower.train()
    torch.manual_seed(1)
    a = tower()
    b = tower()
    assert not torch.allclose(a, b)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("user_cls", [SASRecUserEncoder, MeanUserEncoder])
def test_recommender_end_to_end(user_cls):
    tower = _tower(GatedFusion)
    user = (
        user_cls(D, 8, 2, n_layers=1, n_heads=2, dropout=0.0)
        if user_cls is SASRecUserEncoder
        else user_cls(D, 8, 2)
    )
    model = Recommender(tower, user).eval()
    assert model.causal is True
    batch = _batch()
    items = model.encode_items()
    assert items.shape == (N, D)
    states = model.sequence_states(batch)
    assert states.shape == (3, 5, D) and torch.isfinite(states).all()
    torch.testing.assert_close(model.sequence_states(batch, items), states)
    users = model.encode_users(batch, items)
    torch.testing.assert_close(users, states[:, -1])
    assert (users[2] == 0).all()  # empty history
    scores = model.score(users, items)
    assert scores.shape == (3, N)
    torch.testing.assert_close(scores, users @ items.T)
    model.train()
    model.sequence_states(batch).square().sum().backward()
    assert tower.towers["image"].conv.weight.grad is not None


def test_popularity_baseline():
    model = PopularityRecommender(torch.tensor([3, 0, 7, 1]))
    batch = _batch()
    users = model.encode_users(batch)
    items = model.encode_items()
    assert users.shape == (3, 1) and items.shape == (4, 1)
    scores = model.score(users, items)
    assert scores.tolist() == [[3.0, 0.0, 7.0, 1.0]] * 3
    assert model.encode_items(torch.tensor([2])).tolist() == [[7.0]]


def test_visual_profile_baseline():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    model = VisualProfileRecommender(feats)
    batch = RecBatch(
        items=torch.tensor([[0, 0, 1], [0, 0, 0]]),
        events=torch.tensor([[0, 1, 1], [0, 0, 0]]),
        mask=torch.tensor([[False, True, True], [False, False, False]]),
        targets=torch.tensor([2, 3]),
    )
    users = model.encode_users(batch)
    s = 2**-0.5
    torch.testing.assert_close(users, torch.tensor([[s, s], [0.0, 0.0]]))  # mean of (1,0),(0,1), normalised
    scores = model.score(users, model.encode_items())
    torch.testing.assert_close(scores, torch.tensor([[s, s, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(model.sequence_states(batch)[:, -1], users)


def test_xavier_normal_init_redraws_the_network() -> None:
    import math

    torch.manual_seed(0)
    from vrs.lit.module import RecModule

    module = RecModule(n_items=2000, n_events=1, max_len=5, dim=64, init="xavier_normal")
    emb = module.net.item_tower.id_emb.weight
    assert abs(emb.std().item() - math.sqrt(2 / (2000 + 64))) < 0.003  # not the default 0.02
    with pytest.raises(ValueError, match="init must be one of"):
        RecModule(n_items=20, n_events=1, max_len=5, dim=8, init="orthogonal")


def test_catalogue_encoding_shows_progress_outside_training_only(monkeypatch, capsys):
    import vrs.encoders.catalogue as catalogue

    monkeypatch.setattr(catalogue, "_PROGRESS_MIN_CHUNKS", 2)
    tower = _tower(chunk_size=4)  # N=10 items: 3 chunks
    tower()  # gradients on: a training step's catalogue encoding stays quiet
    assert "encoding image" not in capsys.readouterr().err
    with torch.no_grad():
        tower()
    err = capsys.readouterr().err
    assert "encoding image" in err and "encoding text" in err
    monkeypatch.setattr(catalogue, "_PROGRESS_MIN_CHUNKS", 100)  # few chunks: a bar only once slow
    with torch.no_grad():
        tower()
    assert "encoding image" not in capsys.readouterr().err
    monkeypatch.setattr(catalogue, "_PROGRESS_DELAY_S", 0.0)
    with torch.no_grad():
        tower()
    assert "encoding image" in capsys.readouterr().err
