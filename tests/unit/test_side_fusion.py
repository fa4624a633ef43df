"""fusion=side: the ID embedding is the item vector; content projections feed an auxiliary BPR term
(FREEDOM's paper model, experiment=freedom_paper)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import compose_config
from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.fusion import SideFusion
from vrs.losses import BPRLoss
from vrs.user.lightgcn import knn_graph

N, D = 10, 8


def test_the_item_vector_is_the_id_embedding_and_content_only_feeds_the_projections() -> None:
    fusion = SideFusion({"image": 5, "text": 3, "id": D}, D, weight=0.5)
    g = torch.Generator().manual_seed(0)
    feats = {m: torch.randn(N, w, generator=g) for m, w in {"image": 5, "text": 3, "id": D}.items()}
    present = {m: torch.ones(N, dtype=torch.bool) for m in feats}
    present["text"][:3] = False
    assert fusion.modalities == ("image", "text", "id")  # the tower keeps the content towers
    assert torch.equal(fusion(feats, present), feats["id"])
    side = {m: fusion.side_vector(m, feats[m], present[m]) for m in ("image", "text")}
    assert set(fusion.side) == {"image", "text"}
    assert torch.allclose(side["image"], fusion.side["image"](feats["image"]))
    assert torch.equal(side["text"][:3], torch.zeros(3, D))  # no text: no vector, no gradient
    assert torch.allclose(side["text"][3:], fusion.side["text"](feats["text"][3:]))
    assert fusion.side_weight == 0.5


@pytest.mark.parametrize(
    ("in_dims", "weight", "message"),
    [
        ({"image": 5}, 0.1, "at least one content modality"),
        ({"id": D}, 0.1, "at least one content modality"),
        ({"image": 5, "id": D + 1}, 0.1, f"ID embedding {D} wide"),
        ({"image": 5, "id": D}, -1.0, "fusion.weight must be >= 0"),
    ],
)
def test_bad_side_settings_are_named(in_dims: dict[str, int], weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SideFusion(in_dims, D, weight=weight)


def test_binary_knn_weights_every_neighbour_alike() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 4, generator=g)
    present = torch.ones(N, dtype=torch.bool)
    src, dst, w = knn_graph(x, present, k=3, binary=True)
    cosine = knn_graph(x, present, k=3)
    assert torch.equal(src, cosine[0]) and torch.equal(dst, cosine[1])  # the same neighbours
    # Every row has k neighbours of weight 1: normalised, each edge weighs 1 / k (FREEDOM's code).
    assert torch.allclose(w, torch.full_like(w, 1 / 3))
    assert not torch.allclose(cosine[2], w)


def _content() -> ItemContent:
    g = torch.Generator().manual_seed(0)
    return ItemContent(
        images=torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=g),
        has_image=torch.ones(N, dtype=torch.bool),
        texts=[f"item {i} red striped" for i in range(N)],
        has_text=torch.tensor([i % 4 != 0 for i in range(N)]),
    )


def _module(tmp_path: Path, weight: float):
    cfg = compose_config(
        "train", ["experiment=freedom_paper", "encoder=toy", f"fusion.weight={weight}"], tmp_path
    )
    torch.manual_seed(0)
    module = instantiate(cfg.model, n_items=N, n_events=2, max_len=6, n_users=2)
    module.attach_data(_content(), torch.arange(1, N + 1).float())
    module.fit_catalogue(
        SimpleNamespace(train_pairs=(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 2, 5, 6])))
    )
    return module


def test_the_training_loss_adds_each_modalitys_bpr_on_its_projections(tmp_path: Path) -> None:
    module = _module(tmp_path, weight=0.25)
    tower = module.net.item_tower
    assert torch.equal(tower(), tower.id_emb.weight)  # layer 0: the ID embedding alone
    states = torch.randn(5, module.net.dim)
    targets = torch.tensor([1, 2, 5, 6, 2])
    torch.manual_seed(3)
    got = module._with_side(torch.tensor(1.0), states, targets)
    torch.manual_seed(3)
    features = tower.catalogue.inputs
    present = tower.catalogue.present
    bpr = BPRLoss(N)
    expected = sum(
        bpr(
            states,
            targets,
            lambda idx, m=m: tower.fusion.side[m](features[m][idx]) * present[m][idx, None],
            module.item_log_q,
        )
        for m in ("image", "text")
    )
    assert got.item() == pytest.approx(1.0 + 0.25 * expected.item(), rel=1e-5)
    got.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.fusion.side.parameters())


def test_weight_zero_leaves_the_loss_alone(tmp_path: Path) -> None:
    module = _module(tmp_path, weight=0.0)
    loss = torch.tensor(0.7)
    assert module._with_side(loss, torch.randn(2, module.net.dim), torch.tensor([1, 2])) is loss
    batch = RecBatch(
        items=torch.tensor([[1, 2, 3], [5, 6, 7]]),
        events=torch.ones(2, 3, dtype=torch.long),
        mask=torch.ones(2, 3, dtype=torch.bool),
        targets=torch.tensor([[2, 3, -1], [6, 7, -1]]),
        users=torch.tensor([0, 1]),
    )
    module.training_step(batch, 0).backward()
    assert all(p.grad is None for p in module.net.item_tower.fusion.side.parameters())


def test_vbpr_item_vector_gives_vbprs_score_with_an_item_bias_user() -> None:
    from vrs.fusion import VBPRFusion

    g = torch.Generator().manual_seed(2)
    fusion = VBPRFusion({"image": 5, "id": 9}, 9, id_dim=4)
    feats = {"image": torch.randn(N, 5, generator=g), "id": torch.randn(N, 9, generator=g)}
    present = {"image": torch.ones(N, dtype=torch.bool), "id": torch.ones(N, dtype=torch.bool)}
    present["image"][0] = False
    items = fusion(feats, present)  # (N, 9)
    gamma_u, theta_u = torch.randn(4, generator=g), torch.randn(4, generator=g)
    user = torch.cat([gamma_u, theta_u, torch.ones(1)])  # user=mf with item_bias: last coordinate 1
    f = torch.where(present["image"][:, None], feats["image"], 0.0)
    expected = (
        feats["id"][:, 4]  # beta_i
        + f @ fusion.visual_bias.weight[0]  # beta' f_i
        + feats["id"][:, :4] @ gamma_u  # gamma_u . gamma_i
        + (f @ fusion.visual.weight.T) @ theta_u  # theta_u . (E f_i)
    )
    assert torch.allclose(items @ user, expected, atol=1e-5)
    assert torch.allclose(items[0, 4:8], torch.zeros(4))  # no image: no content factors


@pytest.mark.parametrize(
    ("in_dims", "id_dim", "message"),
    [({"id": D}, None, "at least one content modality"), ({"image": 5, "id": D}, D - 1, "id_dim must be in")],
)
def test_bad_vbpr_settings_are_named(in_dims: dict[str, int], id_dim: int | None, message: str) -> None:
    from vrs.fusion import VBPRFusion

    with pytest.raises(ValueError, match=message):
        VBPRFusion(in_dims, D, id_dim=id_dim)
