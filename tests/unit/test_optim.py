"""LazyAdamW (model.sparse_id): AdamW where every row is touched, and no change where none is."""

from __future__ import annotations

import copy

import pytest
import torch

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.lit.module import RecModule
from vrs.lit.optim import LazyAdamW

N, D = 20, 6


def _pair(weight_decay: float) -> tuple[torch.nn.Module, torch.nn.Module, LazyAdamW, torch.optim.AdamW]:
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Embedding(N, D), torch.nn.Linear(D, 1))
    sparse = copy.deepcopy(dense)
    sparse[0].sparse = True
    settings = {"lr": 0.05, "weight_decay": weight_decay, "betas": (0.8, 0.9)}
    return (
        sparse,
        dense,
        LazyAdamW(sparse.parameters(), **settings),
        torch.optim.AdamW(dense.parameters(), **settings),
    )


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, rows: torch.Tensor, seed: int) -> None:
    target = torch.randn(len(rows), 1, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    ((model[1](model[0](rows)) - target) ** 2).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_equals_adamw_when_every_row_is_touched_every_step(weight_decay: float) -> None:
    sparse, dense, lazy, adamw = _pair(weight_decay)
    rows = torch.cat([torch.arange(N), torch.tensor([3, 3, 7])])  # repeated rows are summed
    for seed in range(5):
        _step(sparse, lazy, rows, seed)
        _step(dense, adamw, rows, seed)
        assert sparse[0].weight.grad.is_sparse
    for a, b in zip(sparse.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_untouched_rows_keep_their_values_and_moments() -> None:
    sparse, dense, lazy, adamw = _pair(0.1)
    before = sparse[0].weight.detach().clone()
    _step(sparse, lazy, torch.tensor([1, 2]), 0)
    _step(sparse, lazy, torch.tensor([2, 5]), 1)
    changed = (sparse[0].weight != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [1, 2, 5]
    moments = lazy.state[sparse[0].weight]["exp_avg_sq"]
    assert (moments.abs().sum(dim=1) > 0).nonzero().flatten().tolist() == [1, 2, 5]
    _step(dense, adamw, torch.tensor([1, 2]), 0)  # dense AdamW's decay moves every row
    assert (dense[0].weight != before).all()


def test_state_round_trips_through_state_dict() -> None:
    sparse, _, lazy, _ = _pair(0.1)
    _step(sparse, lazy, torch.tensor([1, 4]), 0)
    twin = copy.deepcopy(sparse)
    twin_opt = LazyAdamW(twin.parameters(), lr=0.05, weight_decay=0.1, betas=(0.8, 0.9))
    twin_opt.load_state_dict(copy.deepcopy(lazy.state_dict()))  # as through a file
    _step(sparse, lazy, torch.tensor([4, 9]), 1)
    _step(twin, twin_opt, torch.tensor([4, 9]), 1)
    for a, b in zip(sparse.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def _module(**kw) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(
        n_items=N,
        n_events=1,
        max_len=5,
        dim=D,
        loss={"_target_": "vrs.losses.SampledSoftmaxLoss", "n_negatives": 3, "logq_correction": False},
        sparse_id=True,
        **kw,
    )
    no_content = ItemContent(
        images=torch.zeros(N, 3, 8, 8, dtype=torch.uint8),
        has_image=torch.zeros(N, dtype=torch.bool),
        texts=[""] * N,
        has_text=torch.zeros(N, dtype=torch.bool),
    )
    module.attach_data(no_content, torch.ones(N))
    return module


def test_sparse_id_model_steps_only_the_rows_a_step_touches() -> None:
    module = _module(
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01, "weight_decay": 0.1}
    )
    items = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 5, 6, 7]])
    mask = items > 0
    batch = RecBatch(
        items=items, events=mask.long(), mask=mask, targets=torch.where(mask, items.roll(-1, 1), -1)
    )
    optimizer = module.configure_optimizers()
    assert type(optimizer) is LazyAdamW
    table = module.net.item_tower.id_emb.weight
    before = table.detach().clone()
    optimizer.zero_grad()
    module.training_step(batch, 0).backward()
    assert table.grad.is_sparse
    optimizer.step()
    changed = set((table != before).any(dim=1).nonzero().flatten().tolist())
    assert {1, 2, 3, 4, 5, 6, 7} <= changed  # the history and target items
    assert len(changed) <= 7 + 1 + 3  # ... the first target, and the 3 sampled negatives at most
    assert changed < set(range(N))


def test_sparse_id_refuses_optimisers_it_cannot_make_lazy() -> None:
    module = _module(optimizer={"_target_": "torch.optim.Adagrad", "_partial_": True})
    with pytest.raises(ValueError, match="needs model.optimizer._target_=torch.optim.AdamW, not Adagrad"):
        module.configure_optimizers()


@pytest.mark.parametrize(
    ("loss", "sparse_id", "warned"),
    [("SampledSoftmaxLoss", False, True), ("InBatchLoss", False, True), ("SampledSoftmaxLoss", True, False),
     ("FullSoftmaxLoss", False, False)],
)  # fmt: skip
def test_a_large_id_table_with_a_dense_step_under_sampled_negatives_warns(
    monkeypatch: pytest.MonkeyPatch, loss: str, sparse_id: bool, warned: bool
) -> None:
    import warnings

    from vrs.lit import module as module_file

    monkeypatch.setattr(module_file, "LARGE_CATALOGUE", N)  # this test's table counts as large
    module = RecModule(n_items=N, n_events=1, max_len=5, dim=D, loss={"_target_": f"vrs.losses.{loss}"},
                       sparse_id=sparse_id)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.configure_optimizers()
    messages = [str(w.message) for w in caught if "dense optimiser step" in str(w.message)]
    assert bool(messages) == warned
    if warned:
        assert f"{N:,} item IDs with {loss}" in messages[0] and "model.sparse_id=true" in messages[0]
