import numpy as np
import pytest

from vrs.data.samplers import LengthGroupedBatchSampler


def _lengths(n: int = 1000) -> np.ndarray:
    return np.random.default_rng(0).geometric(0.15, size=n).clip(max=50)


def test_every_sample_once_per_epoch_and_len_matches() -> None:
    lengths = _lengths()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=1, group_batches=5)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(1 <= len(b) <= 32 for b in batches)


def test_grouping_cuts_padding() -> None:
    lengths = _lengths()

    def padded(group_batches: int) -> int:
        sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=1, group_batches=group_batches)
        return sum(len(b) * int(lengths[b].max()) for b in sampler)

    assert padded(50) < 0.5 * padded(1)  # group_batches=1 is plain random batching


def test_epochs_reshuffle_deterministically() -> None:
    lengths = _lengths()
    a = LengthGroupedBatchSampler(lengths, 32, seed=3)
    b = LengthGroupedBatchSampler(lengths, 32, seed=3)
    first = list(a)
    assert first == list(b)
    second = list(a)  # each pass is the next epoch: a new order
    assert second != first
    c = LengthGroupedBatchSampler(lengths, 32, seed=3)
    c.set_epoch(1)  # a resumed run restores the epoch
    assert list(c) == second and c.epoch == 2


@pytest.mark.parametrize("n", [0, 1, 7, 101])
def test_ddp_shards_have_equal_batches_and_cover_everything(n: int) -> None:
    lengths = _lengths(n)
    shards = [
        LengthGroupedBatchSampler(lengths, 8, seed=0, group_batches=2, num_replicas=3, rank=r)
        for r in range(3)
    ]
    per_rank = [list(s) for s in shards]
    assert len({len(p) for p in per_rank}) == 1  # same number of steps on every rank
    assert all(len(p) == len(s) for p, s in zip(per_rank, shards, strict=True))
    seen = {i for p in per_rank for b in p for i in b}
    assert seen == set(range(n))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rank"):
        LengthGroupedBatchSampler(_lengths(), 8, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedBatchSampler(_lengths(), 0)
