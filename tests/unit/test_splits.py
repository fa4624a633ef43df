"""Splits: ordering, no leakage, cold items, and that no val/test event reaches training data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vrs.data.sequences import SequenceData, TrainSequenceDataset
from vrs.data.splits import describe, leave_one_out, make_split, order_interactions, temporal_split


def random_interactions(n_users: int = 40, n_items: int = 30, n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, n_users, n)],
            "item_id": [f"i{i}" for i in rng.integers(0, n_items, n)],
            # Few distinct timestamps, so ties are common.
            "timestamp": rng.integers(0, 50, n).astype(np.int64),
            "event": rng.choice(["view", "click", "buy"], n),
        }
    )


def keys(frame: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(frame["user_id"], frame["seq_pos"], strict=True))


def assert_per_user_order(split) -> None:
    """Every train event of a user is strictly earlier (seq_pos) than each of its targets."""
    last_train = split.train.groupby("user_id")["seq_pos"].max()
    for frame in (split.val, split.test):
        first_target = frame.groupby("user_id")["seq_pos"].min()
        common = first_target.index.intersection(last_train.index)
        assert (last_train[common] < first_target[common]).all()
    val_last = split.val.groupby("user_id")["seq_pos"].max()
    test_first = split.test.groupby("user_id")["seq_pos"].min()
    common = val_last.index.intersection(test_first.index)
    assert (val_last[common] < test_first[common]).all()


def assert_disjoint(split) -> None:
    tr, va, te = keys(split.train), keys(split.val), keys(split.test)
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_order_breaks_timestamp_ties_by_row_order():
    df = pd.DataFrame(
        {
            "user_id": ["b", "a", "a", "a", "b", "a"],
            "item_id": ["x", "p", "q", "r", "y", "s"],
            "timestamp": np.array([5, 2, 1, 2, 5, 1], dtype=np.int64),
            "event": ["view"] * 6,
        }
    )
    out = order_interactions(df)
    assert out["item_id"].tolist() == ["q", "s", "p", "r", "x", "y"]
    assert out["seq_pos"].tolist() == [0, 1, 2, 3, 0, 1]
    pd.testing.assert_frame_equal(out, order_interactions(df))  # deterministic
    split = leave_one_out(df, min_history=3)
    assert split.test["item_id"].tolist() == ["r"]  # last of the tied pair (p, r) by row order
    assert split.val["item_id"].tolist() == ["p"]


def test_order_requires_columns():
    with pytest.raises(ValueError, match="timestamp"):
        order_interactions(pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "event": ["v"]}))


def test_leave_one_out_no_leakage_and_coverage():
    df = random_interactions()
    split = leave_one_out(df)
    assert split.kind == "leave_one_out"
    assert_per_user_order(split)
    assert_disjoint(split)
    everything = keys(order_interactions(df))
    assert keys(split.train) | keys(split.val) | keys(split.test) == everything
    assert len(split.train) + len(split.val) + len(split.test) == len(df)
    # Exactly one val and one test target per evaluated user: their last two events.
    sizes = order_interactions(df).groupby("user_id").size()
    assert split.val["user_id"].is_unique and split.test["user_id"].is_unique
    assert (split.test.set_index("user_id")["seq_pos"] == sizes[split.test["user_id"]] - 1).all()
    assert (split.val.set_index("user_id")["seq_pos"] == sizes[split.val["user_id"]] - 2).all()
    for frame in (split.train, split.val, split.test, split.test_cold):
        assert frame["seq_pos"].dtype == np.int64


def test_leave_one_out_min_history():
    df = pd.DataFrame(
        {
            "user_id": ["a"] * 5 + ["b"] * 2 + ["c"] * 3,
            "item_id": [f"i{k}" for k in range(10)],
            "timestamp": np.arange(10, dtype=np.int64),
            "event": ["view"] * 10,
        }
    )
    split = leave_one_out(df)
    assert sorted(split.test["user_id"]) == ["a", "c"]
    assert (split.train["user_id"] == "b").sum() == 2  # too short: all in train, not evaluated
    assert split.users_dropped == 1
    split = leave_one_out(df, min_history=4)
    assert split.test["user_id"].tolist() == ["a"]
    assert split.users_dropped == 2
    assert len(split.train) == 3 + 2 + 3
    with pytest.raises(ValueError, match="min_history"):
        leave_one_out(df, min_history=2)


def test_temporal_no_leakage():
    df = random_interactions(seed=1)
    split = temporal_split(df, val_fraction=0.2, test_fraction=0.2)
    assert split.kind == "temporal"
    assert split.train["timestamp"].max() < split.t_val <= split.val["timestamp"].min()
    assert split.val["timestamp"].max() < split.t_test <= split.test["timestamp"].min()
    assert_per_user_order(split)
    assert_disjoint(split)
    # Everything is accounted for: train + targets + dropped (targets without history).
    assert len(split.train) + len(split.val) + len(split.test) + split.targets_dropped == len(df)
    assert (split.val["seq_pos"] > 0).all() and (split.test["seq_pos"] > 0).all()
    # Roughly the requested shares (ties at the cut make it inexact).
    assert 0.45 < len(split.train) / len(df) < 0.75


def test_temporal_drops_targets_without_history():
    df = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b", "c"],
            "item_id": ["x", "y", "z", "w", "x", "y", "z"],
            "timestamp": np.array([0, 1, 2, 3, 8, 9, 9], dtype=np.int64),
            "event": ["view"] * 7,
        }
    )
    split = temporal_split(df, val_fraction=0.3, test_fraction=0.3)
    # b's first event (t=8) and c's only event have no history: dropped, b's second kept.
    assert split.targets_dropped == 2
    assert split.users_dropped == 2
    assert ("b", 1) in keys(split.val) | keys(split.test)
    assert ("c", 0) not in keys(split.val) | keys(split.test)


def test_cold_items():
    df = pd.DataFrame(
        {
            "user_id": ["a"] * 4 + ["b"] * 4,
            "item_id": ["x", "y", "x", "new1", "y", "x", "new2", "y"],
            "timestamp": np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.int64),
            "event": ["view"] * 8,
        }
    )
    split = leave_one_out(df)
    assert split.test_cold["item_id"].tolist() == ["new1"]  # b's test item y is warm
    random_split = make_split(random_interactions(n_items=400, n=500, seed=2), "temporal")
    train_items = set(random_split.train["item_id"])
    cold = random_split.test_cold
    assert len(cold) > 0
    assert not set(cold["item_id"]) & train_items
    expected = random_split.test[~random_split.test["item_id"].isin(train_items)]
    assert keys(expected) == keys(cold)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (-0.1, 0.1), (0.1, 0.0), (0.2, 1.0), (0.7, 0.4)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fraction"):
        temporal_split(random_interactions(), *fractions)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown split kind 'random'"):
        make_split(random_interactions(), "random")


def test_make_split_and_describe():
    df = random_interactions()
    split = make_split(df, "leave_one_out", min_history=4)
    stats = describe(split)
    assert stats["kind"] == "leave_one_out"
    assert stats["train_events"] == len(split.train)
    assert stats["val_targets"] == stats["test_targets"] == len(split.test)
    assert stats["cold_targets"] == len(split.test_cold)
    assert stats["users_dropped"] == split.users_dropped
    assert describe(make_split(df, "temporal", test_fraction=0.2))["kind"] == "temporal"


@pytest.mark.parametrize("kind", ["leave_one_out", "temporal"])
@pytest.mark.parametrize("max_len", [3, 100])
def test_no_val_or_test_event_reaches_training_data(kind, max_len):
    # Every event gets its own item, so an item index identifies exactly one (user, seq_pos).
    df = random_interactions(seed=3)
    df["item_id"] = [f"e{k}" for k in range(len(df))]
    items = pd.DataFrame({"item_id": df["item_id"].sample(frac=1.0, random_state=0).to_numpy()})
    split = make_split(df, kind)
    data = SequenceData(items, df, split)
    held_out = {(data.user_index[u], p) for u, p in keys(split.val) | keys(split.test)}
    held_out_items = {data.item_index[i] for i in pd.concat([split.val, split.test])["item_id"]}
    assert held_out and held_out_items

    dataset = TrainSequenceDataset(data, max_len=max_len)
    assert len(dataset) > 0
    seen_positions: set[tuple[int, int]] = set()
    for i in range(len(dataset)):
        s = dataset[i]
        n = len(s["items"])
        positions = range(s["start"], s["start"] + n + 1)  # inputs, then one more for the last target
        seen_positions |= {(s["user"], p) for p in positions}
        assert np.array_equal(s["items"], data.user_seqs[s["user"]][s["start"] : s["start"] + n])
        assert np.array_equal(s["targets"], data.user_seqs[s["user"]][s["start"] + 1 : s["start"] + n + 1])
        assert not (set(s["items"].tolist()) | set(s["targets"].tolist())) & held_out_items
    assert not seen_positions & held_out
    assert data.train_counts[sorted(held_out_items)].sum() == 0
    assert data.train_counts.sum() == len(split.train)
