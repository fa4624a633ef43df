"""Train / validation / test splits of a canonical interactions table, with no leakage.

Every split first puts each user's events in time order: a stable sort by ``timestamp`` that
breaks ties by the original row order, so the same table always yields the same sequences. The
position of an event in its user's full time-ordered sequence is ``seq_pos`` (0-based), added as a
column to every returned frame. A validation or test row is a *target*; its history is every event
of the same user with a smaller ``seq_pos``.

Protocol notes:

* At test time the history of a test target includes the user's validation event(s) (they
  happened earlier). This is the standard protocol for leave-one-out and temporal evaluation; the
  validation events are never *trained on*.
* Training data only ever contains ``split.train``, which for every user is a prefix of the
  user's sequence that ends strictly before the user's first validation or test target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp", "event")
SPLIT_KINDS = ("leave_one_out", "temporal")


@dataclass
class Split:
    """One split of an interactions table.

    All frames carry the canonical columns plus ``seq_pos`` and are sorted by (user_id, seq_pos).

    Attributes:
        train: interactions usable for training (and as history).
        val: validation targets, one row per target.
        test: test targets, one row per target.
        test_cold: the rows of ``test`` whose item never occurs in ``train``.
        kind: "leave_one_out" or "temporal".
        users_dropped: users that get no evaluation target: leave-one-out, users with fewer than
            ``min_history`` events (kept in train); temporal, users whose first event falls at or
            after the validation cut (their first event has no history).
        targets_dropped: val/test rows dropped because they had no history (temporal only).
        t_val: temporal only: first timestamp of the validation window.
        t_test: temporal only: first timestamp of the test window.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    test_cold: pd.DataFrame
    kind: str
    users_dropped: int = 0
    targets_dropped: int = 0
    t_val: int | None = None
    t_test: int | None = None


def order_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort interactions into per-user time order and add ``seq_pos``.

    Args:
        interactions: canonical table with user_id, item_id, timestamp, event (extra columns kept).

    Returns:
        A copy sorted by (user_id, timestamp, original row order) with a fresh RangeIndex and an
        int64 ``seq_pos`` column: the event's 0-based position in its user's sequence.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions table lacks required column(s) {missing}")
    user_codes, _ = pd.factorize(interactions["user_id"], sort=True)
    ts = interactions["timestamp"].to_numpy(dtype=np.int64)
    # lexsort is stable and sorts by the LAST key first; the row number makes tie-breaking explicit.
    order = np.lexsort((np.arange(len(interactions)), ts, user_codes))
    out = interactions.iloc[order].reset_index(drop=True)
    users = user_codes[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], int)
    first = np.repeat(starts, np.diff(np.r_[starts, len(users)]))  # index of the user's first row
    out["seq_pos"] = (np.arange(len(users)) - first).astype(np.int64)
    return out


def _cold(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    is_cold = ~test["item_id"].isin(pd.unique(train["item_id"]))
    return test[is_cold.to_numpy()].reset_index(drop=True)


def leave_one_out(interactions: pd.DataFrame, min_history: int = 3) -> Split:
    """Per user: last event -> test, second-to-last -> val, the rest -> train.

    Users with fewer than ``min_history`` events are not evaluated: all their events go to train
    (they still help learn item representations) and they are counted in ``users_dropped``.

    Args:
        interactions: canonical interactions table.
        min_history: smallest number of events a user needs to be evaluated; at least 3, so that
            the validation target has at least one event of history.

    Returns:
        The split; train ∪ val ∪ test is exactly the input.
    """
    if min_history < 3:
        raise ValueError(f"min_history must be >= 3 (one history event + val + test), got {min_history}")
    df = order_interactions(interactions)
    n = df.groupby("user_id", sort=False)["seq_pos"].transform("size").to_numpy()
    pos = df["seq_pos"].to_numpy()
    evaluated = n >= min_history
    is_test = evaluated & (pos == n - 1)
    is_val = evaluated & (pos == n - 2)
    train = df[~(is_test | is_val)].reset_index(drop=True)
    val = df[is_val].reset_index(drop=True)
    test = df[is_test].reset_index(drop=True)
    users_dropped = int(df.loc[~evaluated, "user_id"].nunique())
    return Split(train, val, test, _cold(train, test), "leave_one_out", users_dropped=users_dropped)


def temporal_split(
    interactions: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> Split:
    """Global time cut: train = ts < t_val, val = t_val <= ts < t_test, test = ts >= t_test.

    The cut points are the timestamps below which lie the first ``1 - val_fraction -
    test_fraction`` and ``1 - test_fraction`` shares of all events. Every val/test event is a
    target, except a user's very first event (no history), which is dropped and counted. Because
    the cut is global and ties fall on the same side, each user's train events form a prefix of
    the user's sequence that ends before any of the user's targets.

    Args:
        interactions: canonical interactions table.
        val_fraction: share of events (by time) in the validation window, in [0, 1).
        test_fraction: share of events (by time) in the test window, in (0, 1).

    Returns:
        The split, with ``t_val`` and ``t_test`` set.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 < test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(
            "need 0 <= val_fraction, 0 < test_fraction and val_fraction + test_fraction < 1; "
            f"got val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    df = order_interactions(interactions)
    if len(df) == 0:
        raise ValueError("cannot split an empty interactions table")
    ts = df["timestamp"].to_numpy(dtype=np.int64)
    sorted_ts = np.sort(ts)

    def cut(share: float) -> int:
        # The timestamp of the event at rank floor(share * n): roughly `share` of events lie before it.
        k = min(int(np.floor(share * len(sorted_ts) + 1e-9)), len(sorted_ts) - 1)
        return int(sorted_ts[k])

    t_val = cut(1.0 - val_fraction - test_fraction)
    t_test = cut(1.0 - test_fraction)
    has_history = df["seq_pos"].to_numpy() > 0
    in_val = (ts >= t_val) & (ts < t_test)
    in_test = ts >= t_test
    dropped = (in_val | in_test) & ~has_history
    train = df[ts < t_val].reset_index(drop=True)
    val = df[in_val & has_history].reset_index(drop=True)
    test = df[in_test & has_history].reset_index(drop=True)
    return Split(
        train,
        val,
        test,
        _cold(train, test),
        "temporal",
        users_dropped=int(df.loc[dropped, "user_id"].nunique()),
        targets_dropped=int(dropped.sum()),
        t_val=t_val,
        t_test=t_test,
    )


def make_split(interactions: pd.DataFrame, kind: str = "leave_one_out", **kw) -> Split:
    """Split by name: ``kind`` is "leave_one_out" or "temporal"; ``kw`` go to that function."""
    if kind == "leave_one_out":
        return leave_one_out(interactions, **kw)
    if kind == "temporal":
        return temporal_split(interactions, **kw)
    raise ValueError(f"unknown split kind {kind!r}; expected one of {SPLIT_KINDS}")


def describe(split: Split) -> dict[str, int | str]:
    """Counts for logging: train events, val/test/cold targets, dropped users and targets."""
    return {
        "kind": split.kind,
        "train_events": len(split.train),
        "train_users": int(split.train["user_id"].nunique()),
        "val_targets": len(split.val),
        "test_targets": len(split.test),
        "cold_targets": len(split.test_cold),
        "users_dropped": split.users_dropped,
        "targets_dropped": split.targets_dropped,
    }
