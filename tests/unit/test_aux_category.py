"""model.aux_category_weight: the training loss gains w x the category cross-entropy of the batch's
distinct targets, computed from their fused item vectors through a linear head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.lit.module import RecModule

N, D = 12, 8
TOY = {"_target_": "vrs.encoders.toy.build_toy_towers", "image_dim": 6, "text_dim": 5, "image_size": 16}
CATEGORIES = ["Tops", "Shoes", "", "Bags"]  # item i: CATEGORIES[i % 4]; "" is no category


def _content(with_category: bool = True) -> ItemContent:
    g = torch.Generator().manual_seed(0)
    columns = {"category": [CATEGORIES[i % 4] for i in range(N)]} if with_category else {}
    return ItemContent(
        images=torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8, generator=g),
        has_image=torch.ones(N, dtype=torch.bool),
        texts=[f"item {i} striped" for i in range(N)],
        has_text=torch.ones(N, dtype=torch.bool),
        columns=columns,
    )


def _batch() -> RecBatch:
    items = torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])  # (B, T), left padded
    mask = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    return RecBatch(
        items=items, events=mask.long(), mask=mask, targets=torch.where(mask, items.roll(-1, 1), -1)
    )


def _module(weight: float, n_categories: int = 3) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(
        n_items=N,
        n_events=1,
        max_len=6,
        dim=D,
        encoder=TOY,
        finetune={"freeze": False},
        aux_category_weight=weight,
        n_categories=n_categories,
    )
    module.attach_data(_content(), torch.arange(1, N + 1).float())
    return module.eval()  # no dropout: the loss is a function of the weights


def test_loss_adds_the_weighted_category_cross_entropy_of_the_distinct_targets() -> None:
    module, batch = _module(0.5), _batch()
    with torch.no_grad():
        total = module.training_step(batch, 0)
        states, encode = module._states(batch)
        keep = batch.targets >= 0
        main = module.loss_fn(states[keep], batch.targets[keep], encode, module.item_log_q)
        targets = torch.unique(batch.targets[keep])
        codes = {"Tops": 0, "Shoes": 1, "Bags": 2}  # first appearance order; "" has none
        labelled = [int(t) for t in targets if CATEGORIES[int(t) % 4]]
        labels = torch.tensor([codes[CATEGORIES[t % 4]] for t in labelled])
        vectors = module.net.item_tower(torch.tensor(labelled))
        expected = main + 0.5 * F.cross_entropy(module.aux_head(vectors), labels)
    assert len(labelled) < len(targets)  # items without a category are left out
    assert total == pytest.approx(float(expected), rel=1e-5)
    assert float(total - main) > 0


def test_the_category_loss_trains_the_content_towers() -> None:
    module = _module(1.0)
    module.train()
    module.aux_head.zero_grad()
    labels_only = module._with_aux(torch.zeros(()), torch.arange(N), module.net.encode_items)
    labels_only.backward()
    image_tower = module.net.item_tower.towers["image"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in image_tower.parameters())
    assert module.aux_head.weight.grad.abs().sum() > 0


def test_off_by_default_and_bad_settings_are_named() -> None:
    module = _module(0.0, n_categories=0)
    assert module.aux_head is None
    with pytest.raises(ValueError, match="needs items with at least 2 categories"):
        _module(0.5, n_categories=0)
    with pytest.raises(ValueError, match="aux_category_weight must be >= 0"):
        _module(-1.0)
    module = _module(0.5)
    with pytest.raises(ValueError, match="no `category` column"):
        module.attach_data(_content(with_category=False))
    with pytest.raises(ValueError, match="the items have 3 categories but the model was built for 2"):
        _module(0.5, n_categories=2)
