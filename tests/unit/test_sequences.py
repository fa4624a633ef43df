"""SequenceData, training/evaluation datasets, collation and the unpadded distributed sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from vrs.data.sequences import (
    EvalDataset,
    SequenceData,
    TrainSequenceDataset,
    UnpaddedDistributedSampler,
    collate_eval,
    collate_train,
)
from vrs.data.splits import leave_one_out, temporal_split

# Catalogue order is deliberately not name order: i4 -> 0, i3 -> 1, i2 -> 2, i1 -> 3, i0 -> 4, i5 -> 5.
ITEMS = pd.DataFrame({"item_id": ["i4", "i3", "i2", "i1", "i0", "i5"]})
IDX = {f"i{k}": 4 - k for k in range(5)} | {"i5": 5}


@pytest.fixture
def interactions() -> pd.DataFrame:
    a = ["i0", "i1", "i0", "i2", "i3", "i1", "i4"]
    rows = [("a", item, t, "view" if t % 2 else "buy") for t, item in enumerate(a)]
    rows += [("b", item, 10 + t, "view") for t, item in enumerate(["i2", "i3", "i4"])]
    rows += [("c", item, 20 + t, "buy") for t, item in enumerate(["i0", "i1"])]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])
    df["timestamp"] = df["timestamp"].astype(np.int64)
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # row order must not matter


@pytest.fixture
def data(interactions) -> SequenceData:
    return SequenceData(ITEMS, interactions, leave_one_out(interactions))


def idx(*names: str) -> list[int]:
    return [IDX[n] for n in names]


def test_sequence_data_encoding(data):
    assert (data.n_items, data.n_users, data.n_events) == (6, 3, 2)
    assert data.item_index == {"i4": 0, "i3": 1, "i2": 2, "i1": 3, "i0": 4, "i5": 5}
    assert data.user_index == {"a": 0, "b": 1, "c": 2}
    assert data.event_index == {"buy": 1, "view": 2}
    assert data.user_seqs[0].tolist() == idx("i0", "i1", "i0", "i2", "i3", "i1", "i4")
    assert data.user_events[0].tolist() == [1, 2, 1, 2, 1, 2, 1]
    assert data.user_seqs[2].tolist() == idx("i0", "i1")
    assert data.train_len.tolist() == [5, 1, 2]  # c is too short to evaluate: all train
    assert data.val_targets.tolist() == [[0, 5], [1, 1]]
    assert data.test_targets.tolist() == [[0, 6], [1, 2]]
    assert data.test_cold_targets.tolist() == [[0, 6], [1, 2]]  # i4 never occurs in train
    # Train: a = i0 i1 i0 i2 i3, b = i2, c = i0 i1; catalogue order i4 i3 i2 i1 i0 i5.
    assert data.train_counts.tolist() == [0, 1, 2, 2, 3, 0]
    assert data.train_counts.dtype == np.int64


def test_train_dataset_shapes_padding_and_shift(data):
    ds = TrainSequenceDataset(data, max_len=10)
    assert len(ds) == 2  # b has a single train event
    batch = collate_train([ds[0], ds[1]])
    assert batch.items.shape == batch.events.shape == batch.mask.shape == batch.targets.shape == (2, 4)
    assert batch.items.dtype == batch.targets.dtype == torch.long and batch.mask.dtype == torch.bool
    assert batch.items[0].tolist() == idx("i0", "i1", "i0", "i2")
    assert batch.targets[0].tolist() == idx("i1", "i0", "i2", "i3")
    assert batch.items[1].tolist() == [0, 0, 0, IDX["i0"]]  # left padded
    assert batch.targets[1].tolist() == [-1, -1, -1, IDX["i1"]]
    assert batch.mask[1].tolist() == [False, False, False, True]
    assert batch.events.tolist() == [[1, 2, 1, 2], [0, 0, 0, 1]]
    assert batch.users.tolist() == [0, 2]
    assert batch.times.tolist() == [[0, 1, 2, 3], [0, 0, 0, 20]]  # each input's own timestamp
    # Targets are the inputs shifted by one wherever both are real.
    assert torch.equal(batch.items[0, 1:], batch.targets[0, :-1])


def test_train_max_len_keeps_most_recent(data):
    s = TrainSequenceDataset(data, max_len=2)[0]
    assert s["start"] == 2
    assert s["items"].tolist() == idx("i0", "i2")
    assert s["targets"].tolist() == idx("i2", "i3")
    with pytest.raises(ValueError, match="max_len"):
        TrainSequenceDataset(data, max_len=0)


def test_eval_dataset_history_seen_and_collate(data):
    ds = EvalDataset(data, data.test_targets, max_len=2)
    s = ds[0]
    assert s["items"].tolist() == idx("i3", "i1")  # most recent 2 events before the target
    assert s["target"] == IDX["i4"]
    # seen covers ALL earlier items, beyond max_len, each once.
    assert s["seen"].tolist() == sorted(idx("i0", "i1", "i2", "i3"))
    batch = collate_eval([ds[0], ds[1]])
    assert batch.items.shape == batch.mask.shape == batch.events.shape == (2, 2)
    assert batch.targets.shape == (2,) and batch.targets.tolist() == idx("i4", "i4")
    assert batch.seen.shape == (2, 4)
    assert batch.seen[1].tolist() == [-1, -1] + sorted(idx("i2", "i3"))
    assert batch.index.tolist() == [0, 1] and batch.users.tolist() == [0, 1]
    assert batch.items[1].tolist() == idx("i2", "i3") and batch.mask.all()
    assert batch.times.tolist() == [[4, 5], [10, 11]]
    # A history given without times (a new user's, in serving) makes a batch without them.
    assert collate_eval([{**ds[0], "times": None}, ds[1]]).times is None
    # Validation: a's history stops before its val event; the test history includes it.
    val = EvalDataset(data, data.val_targets, max_len=10)[0]
    assert val["items"].tolist() == data.user_seqs[0][:5].tolist()
    assert EvalDataset(data, data.test_targets, max_len=10)[0]["items"].tolist()[-1] == IDX["i1"]


def test_eval_collate_pads_short_histories(data):
    ds = EvalDataset(data, data.test_targets, max_len=10)
    batch = collate_eval([ds[1], ds[0]])
    assert batch.items.shape == (2, 6)
    assert batch.mask.sum(1).tolist() == [2, 6]
    assert (batch.items[~batch.mask] == 0).all() and (batch.events[~batch.mask] == 0).all()
    assert (batch.events[batch.mask] > 0).all()


def test_dataloader_roundtrip(data):
    loader = DataLoader(TrainSequenceDataset(data, max_len=3), batch_size=2, collate_fn=collate_train)
    (batch,) = list(loader)
    assert batch.items.shape == (2, 3)
    assert (batch.targets[batch.mask] >= 0).all() and (batch.targets[~batch.mask] == -1).all()


def test_temporal_train_prefix(interactions):
    split = temporal_split(interactions, val_fraction=0.25, test_fraction=0.25)
    data = SequenceData(ITEMS, interactions, split)
    ts = split.train.groupby("user_id").size()
    assert data.train_len.tolist() == [int(ts.get(u, 0)) for u in ["a", "b", "c"]]
    assert data.train_counts.sum() == len(split.train)
    for targets in (data.val_targets, data.test_targets):
        assert (targets[:, 1] >= data.train_len[targets[:, 0]]).all()


def test_rejects_unknown_items_and_mismatched_split(interactions):
    with pytest.raises(ValueError, match="missing from the items table"):
        SequenceData(ITEMS.iloc[1:], interactions, leave_one_out(interactions))
    other = interactions.copy()
    other.loc[other["user_id"] == "a", "item_id"] = "i5"
    with pytest.raises(ValueError, match="does not match"):
        SequenceData(ITEMS, interactions, leave_one_out(other))


@pytest.mark.parametrize("n", [0, 1, 7, 10, 11])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("ordered", [False, True])
def test_unpadded_sampler_covers_each_index_once(n, world, ordered):
    order = np.random.default_rng(n).permutation(n) if ordered else None
    shards = [
        list(UnpaddedDistributedSampler(n, num_replicas=world, rank=r, order=order)) for r in range(world)
    ]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(n))  # every index exactly once, no padding duplicates
    assert [len(UnpaddedDistributedSampler(n, world, r)) for r in range(world)] == [len(s) for s in shards]


def test_unpadded_sampler_defaults_and_errors():
    sampler = UnpaddedDistributedSampler(5)  # no process group: a single rank
    assert (sampler.num_replicas, sampler.rank) == (1, 0) and list(sampler) == [0, 1, 2, 3, 4]
    sampler.set_epoch(3)
    with pytest.raises(ValueError, match="rank"):
        UnpaddedDistributedSampler(5, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="permutation"):
        UnpaddedDistributedSampler(3, order=np.array([0, 0, 2]))
    assert list(UnpaddedDistributedSampler(3, order=np.array([2, 0, 1]))) == [2, 0, 1]


@pytest.mark.parametrize("max_len", [1, 2, 3, 10])
def test_all_windows_make_every_train_event_after_the_first_a_target_once(data, max_len):
    ds = TrainSequenceDataset(data, max_len=max_len, windows="all")
    targets: dict[int, list[int]] = {}
    for i in range(len(ds)):
        s = ds[i]
        assert 1 <= len(s["items"]) <= max_len and len(s["items"]) == ds.lengths[i]
        seq = data.user_seqs[s["user"]]
        n = len(s["items"])
        assert s["items"].tolist() == seq[s["start"] : s["start"] + n].tolist()  # consecutive events
        assert s["targets"].tolist() == seq[s["start"] + 1 : s["start"] + n + 1].tolist()
        targets.setdefault(s["user"], []).extend(range(s["start"] + 1, s["start"] + n + 1))
    # a has 5 train events and c 2 (b's single one trains nothing): positions 1.. once each.
    assert {u: sorted(p) for u, p in targets.items()} == {0: [1, 2, 3, 4], 2: [1]}
    last = TrainSequenceDataset(data, max_len=max_len)  # "last": one sample per user, its most recent
    assert len(last) == 2 and [last[i]["targets"][-1] for i in range(2)] == [IDX["i3"], IDX["i1"]]
    if max_len >= 4:
        assert len(ds) == 2  # windows as long as the prefixes: the same samples as "last"
    with pytest.raises(ValueError, match="train_windows must be 'last' or 'all'"):
        TrainSequenceDataset(data, max_len=2, windows="every")


@pytest.mark.parametrize("first_target", [False, True])
@pytest.mark.parametrize(("max_len", "stride"), [(1, 1), (2, 1), (3, 1), (3, 2), (4, 3), (10, 1), (10, 4)])
def test_overlapping_windows_train_each_target_once_with_its_context(data, max_len, stride, first_target):
    ds = TrainSequenceDataset(data, max_len=max_len, windows="all", first_target=first_target, stride=stride)
    lead = 0 if first_target else 1
    trained: dict[int, list[int]] = {}
    for i in range(len(ds)):
        s = ds[i]
        seq, n = data.user_seqs[s["user"]], len(s["targets"])
        first = int(ds.ends[i]) - n  # seq_pos of the window's first target
        assert n == len(s["items"]) == ds.lengths[i] <= max_len
        real = np.flatnonzero(s["targets"] >= 0)
        assert len(real) and real.tolist() == list(range(real[0], n))  # context first, then targets
        assert s["targets"][real].tolist() == seq[first + real].tolist()
        for j in real:  # the target at seq_pos p reads the window's j + 1 first inputs
            p = first + j
            assert j + 1 >= min(p + 1 - lead, max_len - stride + 1)
            if stride == 1 and not first_target:
                assert j + 1 == min(p, max_len)  # RecBole's prefixes: the full max_len context
        trained.setdefault(s["user"], []).extend((first + real).tolist())
    want = {u: list(range(lead, n)) for u, n in enumerate(data.train_len.tolist()) if n > lead}
    assert {u: sorted(p) for u, p in trained.items()} == want  # every target exactly once
    batch = collate_train([ds[i] for i in range(len(ds))])
    assert int((batch.targets >= 0).sum()) == sum(len(p) for p in want.values())


def test_train_stride_is_checked(data):
    for stride in (0, 4, 2.5, True):
        with pytest.raises(
            ValueError, match=r"data.train_stride must be an integer from 1 to data.max_len \(3\)"
        ):
            TrainSequenceDataset(data, max_len=3, windows="all", stride=stride)
    with pytest.raises(ValueError, match="data.train_stride=2 steps the windows of data.train_windows=all"):
        TrainSequenceDataset(data, max_len=3, windows="last", stride=2)
    same = TrainSequenceDataset(data, max_len=3, windows="all", stride=3)  # the non-overlapping windows
    plain = TrainSequenceDataset(data, max_len=3, windows="all")
    assert same.ends.tolist() == plain.ends.tolist()
    for i in range(len(plain)):
        assert same[i]["targets"].tolist() == plain[i]["targets"].tolist()


@pytest.mark.parametrize("windows", ["last", "all"])
@pytest.mark.parametrize("max_len", [1, 2, 3, 10])
def test_first_target_makes_every_train_event_a_target_once(data, max_len, windows):
    ds = TrainSequenceDataset(data, max_len=max_len, windows=windows, first_target=True)
    targets: dict[int, list[int]] = {}
    for i in range(len(ds)):
        s = ds[i]
        seq, n = data.user_seqs[s["user"]], len(s["targets"])
        assert (
            1 <= n <= max_len and n == len(s["items"]) == len(s["events"]) == len(s["times"]) == ds.lengths[i]
        )
        first = int(ds.ends[i]) - n  # seq_pos of the first target
        assert s["targets"].tolist() == seq[first : first + n].tolist()
        # Inputs are the targets shifted by one; the first event stands in as its own input.
        assert s["items"].tolist() == seq[[max(p - 1, 0) for p in range(first, first + n)]].tolist()
        assert (
            s["events"].tolist()
            == data.user_events[s["user"]][[max(p - 1, 0) for p in range(first, first + n)]].tolist()
        )
        targets.setdefault(s["user"], []).extend(range(first, first + n))
    # a has 5 train events, b 1 (a target now), c 2.
    if windows == "all":
        assert {u: sorted(p) for u, p in targets.items()} == {0: [0, 1, 2, 3, 4], 1: [0], 2: [0, 1]}
    else:  # the last max_len train events of each user
        want = {u: list(range(max(0, n - max_len), n)) for u, n in enumerate(data.train_len.tolist())}
        assert {u: sorted(p) for u, p in targets.items()} == want
    batch = collate_train([ds[i] for i in range(len(ds))])
    assert int((batch.targets >= 0).sum()) == sum(len(p) for p in targets.values())
