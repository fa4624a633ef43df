"""model.embedding_dropout: one mask per item and step, shared by every lookup of the item."""

from __future__ import annotations

import functools

import pytest
import torch

from vrs.fusion import SingleModalityFusion
from vrs.models.item_tower import ItemTower, hashed_dropout_mask
from vrs.models.recommender import Recommender
from vrs.user import SASRecUserEncoder

from .test_models import N, _content

D = 16


def test_the_mask_is_a_function_of_seed_item_and_column() -> None:
    idx = torch.arange(5000)
    mask = hashed_dropout_mask(idx, 64, 0.2, seed=7, chunk=1000)
    assert set(mask.unique().tolist()) == {0.0, 1.25}  # kept entries scaled by 1 / (1 - p)
    assert abs(float((mask == 0).float().mean()) - 0.2) < 0.005  # 320,000 draws
    # Any subset, in any order, sees the rows of the whole draw; another seed, another mask.
    subset = torch.tensor([4999, 3, 3, 1200])
    torch.testing.assert_close(hashed_dropout_mask(subset, 64, 0.2, seed=7), mask[subset])
    assert not torch.equal(hashed_dropout_mask(idx, 64, 0.2, seed=8), mask)
    # Neighbouring items and columns are not correlated (a weak hash would stripe the mask).
    dropped = (mask == 0).float()
    assert abs(float((dropped[1:] * dropped[:-1]).mean()) - 0.04) < 0.004
    assert abs(float((dropped[:, 1:] * dropped[:, :-1]).mean()) - 0.04) < 0.004


def _tower(p: float) -> ItemTower:
    torch.manual_seed(0)
    fusion = functools.partial(SingleModalityFusion, modality="id", project=False)
    tower = ItemTower(N, D, {}, fusion, embedding_dropout=p)
    tower.set_content(_content())
    return tower


@pytest.mark.parametrize("whole", [True, False])  # small catalogues: one table per draw; large: hashed
def test_items_keep_one_mask_within_a_step_and_draw_anew_each_step(whole: bool) -> None:
    tower = _tower(0.5).train()
    if not whole:
        tower._WHOLE_MASK_ENTRIES = 0
    torch.manual_seed(1)
    tower.new_dropout_draw()
    every = tower()  # (N, D)
    some = tower(torch.tensor([7, 2, 7]))
    torch.testing.assert_close(some, every[[7, 2, 7]])  # history input and candidate agree
    weights = tower.id_emb.weight.detach()
    dropped = every == 0
    assert 0.35 < float(dropped.float().mean()) < 0.65
    torch.testing.assert_close(every[~dropped], 2 * weights[~dropped])
    tower.new_dropout_draw()
    assert not torch.equal(tower() == 0, dropped)
    torch.manual_seed(1)  # a seeded run repeats its draws
    tower.new_dropout_draw()
    torch.testing.assert_close(tower(), every)
    torch.testing.assert_close(tower.eval()(), weights)  # evaluation: no dropout


def test_off_it_draws_nothing_and_changes_nothing() -> None:
    tower = _tower(0.0).train()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    tower.new_dropout_draw()  # must not consume the global generator: other draws stay as they were
    assert torch.equal(torch.rand(3), expected)
    torch.testing.assert_close(tower(), tower.id_emb.weight)
    with pytest.raises(ValueError, match=r"model.embedding_dropout must be in \[0, 1\), got 1.0"):
        _tower(1.0)


def test_gradients_reach_only_the_kept_entries() -> None:
    tower = _tower(0.3).train()
    net = Recommender(tower, SASRecUserEncoder(dim=D, max_len=4, n_events=1))
    tower.new_dropout_draw()
    idx = torch.tensor([1, 4])
    net.encode_items(idx).sum().backward()
    grad = tower.id_emb.weight.grad[idx]
    torch.testing.assert_close(grad, tower._embedding_mask("id", idx, D))
    assert 0 < int((grad == 0).sum()) < grad.numel()
