"""Modalities keyed by name: the category encoder, and a model with an extra modality (trained even
while the encoder is frozen, kept out of the encoder's fine-tuning, named in checkpoints)."""

from __future__ import annotations

import pytest
import torch

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.encoders.category import CategoryEncoder
from vrs.lit.module import RecModule

N = 12
TOY = {"_target_": "vrs.encoders.toy.build_toy_towers", "image_dim": 8, "text_dim": 8, "image_size": 16}
CATEGORY = {"category": {"_target_": "vrs.encoders.category.CategoryEncoder", "out_dim": 4}}
CATEGORIES = ["Tops", "tops", "", None, "Tops Knitwear", "Shoes"] * 2


def _content() -> ItemContent:
    torch.manual_seed(0)
    return ItemContent(
        images=torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8),
        has_image=torch.ones(N, dtype=torch.bool),
        texts=[f"item {i} shirt" for i in range(N)],
        has_text=torch.ones(N, dtype=torch.bool),
        columns={"category": CATEGORIES, "description": [f"attr{i % 3} attr7" for i in range(N)]},
    )


def test_category_tokens_are_hashed_lower_cased_and_padded() -> None:
    enc = CategoryEncoder(out_dim=4, vocab_size=64, max_tokens=3)
    tokens = enc.tokenize(["Tops", "tops", "", None, "a b c d"])  # (5, 3)
    assert tokens.shape == (5, 3) and torch.equal(tokens[0], tokens[1])
    assert (tokens[0, 1:] == 0).all() and (tokens[2:4] == 0).all() and (tokens[4] != 0).all()
    assert 0 < int(tokens.max()) < 64
    split = CategoryEncoder(separator="|").tokenize(["Tops|Knit wear"])
    assert int((split != 0).sum()) == 2


def test_category_reads_its_column_and_flags_empty_values() -> None:
    enc = CategoryEncoder(out_dim=4)
    tokens, present = enc.read(_content())
    assert tokens.shape[0] == N and present.tolist() == [True, True, False, False, True, True] * 2
    out = enc(tokens)  # (N, 4): the mean of the token embeddings
    assert out.shape == (N, 4) and (out[~present] == 0).all()
    torch.testing.assert_close(out[4], enc.embedding.weight[tokens[4, :2]].mean(0))
    attrs, _ = CategoryEncoder(column="description").read(_content())
    assert int((attrs[0] != 0).sum()) == 2
    with pytest.raises(KeyError, match="no column 'brand'"):
        CategoryEncoder(column="brand").read(_content())


def _module(**kwargs) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(N, 1, 4, dim=8, encoder=TOY, modalities=CATEGORY, **kwargs)
    module.attach_data(_content(), torch.ones(N))
    return module


def _batch() -> RecBatch:
    items = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])  # (B, T)
    mask = torch.ones_like(items, dtype=torch.bool)
    targets = torch.where(torch.arange(4) < 3, items.roll(-1, 1), -1)  # (B, T)
    return RecBatch(items=items, events=mask.long(), mask=mask, targets=targets)


def test_extra_modality_is_fused_after_the_towers_and_before_the_id() -> None:
    tower = _module().net.item_tower
    assert tower.modalities == ("image", "text", "category", "id")
    assert tower.in_dims == {"image": 8, "text": 8, "category": 4, "id": 8}
    assert tower.present["category"].tolist() == [True, True, False, False, True, True] * 2
    keys = _module().state_dict()
    assert "net.item_tower.towers.category.embedding.weight" in keys
    assert "net.item_tower.norms.category.weight" in keys


def test_extra_modality_trains_while_the_encoder_is_frozen() -> None:
    module = _module(finetune={"freeze": True})
    tower = module.net.item_tower
    assert tower.frozen == ("image", "text") and not module.encoders_train
    category = tower.towers["category"]
    assert all(p.requires_grad for p in category.parameters())
    before = category.embedding.weight.detach().clone()
    optimizer = module.configure_optimizers()
    assert len(optimizer.param_groups) == 1  # no encoder group: only the category trains, at the model's rate
    module.train()
    module.training_step(_batch(), 0).backward()
    optimizer.step()
    assert not torch.equal(before, category.embedding.weight)


def test_extra_modality_is_not_an_encoder_the_finetune_settings_touch() -> None:
    module = _module(finetune={"lr": 0.05, "negatives": "catalogue"})
    groups = module.configure_optimizers().param_groups
    category = {id(p) for p in module.net.item_tower.towers["category"].parameters()}
    assert category <= {id(p) for p in groups[0]["params"]} and groups[1]["lr"] == 0.05


def test_modality_names_are_checked() -> None:
    with pytest.raises(ValueError, match="already has a 'text' tower"):
        RecModule(N, 1, 4, dim=8, encoder=TOY, modalities={"text": CATEGORY["category"]})
    with pytest.raises(ValueError, match="not a vrs.encoders.base.ModalityEncoder"):
        RecModule(
            N,
            1,
            4,
            dim=8,
            modalities={"brand": {"_target_": "vrs.fusion.sum.SumFusion", "in_dims": {"a": 1}, "out_dim": 2}},
        )
