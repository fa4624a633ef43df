"""Index-encoded user sequences for a dataset + split, and the datasets that turn them into RecBatches.

Training samples are built from each user's *train prefix* only (``SequenceData.train_len``), so
no validation or test event ever reaches a training input or target. Evaluation samples take the
user's events before the target as history (the last ``max_len`` of them) and *all* earlier items
as ``seen`` (for excluding already-consumed candidates, independent of truncation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from vrs.data.batch import RecBatch
from vrs.data.splits import Split, order_interactions


class SequenceData:
    """Index-encoded per-user sequences for one dataset + split.

    Events are stored flat in (user, seq_pos) order; user ``u``'s events are
    ``items_flat[offsets[u]:offsets[u + 1]]`` and ``user_seqs[u]`` is a view of that slice.

    Attributes:
        n_items: catalogue size N (items indexed in catalogue order).
        n_users: number of users U (indexed in sorted user_id order).
        n_events: number of event types E (ids 1..E in sorted order of the strings; 0 = padding).
        item_index: item_id -> item index.
        user_index: user_id -> user index.
        event_index: event string -> event id in 1..E.
        user_ids: (U,) user_id of each user index.
        items_flat: all events' item indices, (user, seq_pos) order.
        events_flat: all events' event ids, same order.
        times_flat: all events' timestamps (int64, the table's units), same order.
        offsets: (U + 1,) start of each user's events in the flat arrays.
        user_seqs: per user, item indices in full time order.
        user_events: per user, event ids in full time order.
        train_len: (U,) number of leading train events of each user (its train prefix).
        val_targets: (M, 2) int64 (user index, seq_pos) of each validation target.
        test_targets: (M, 2) likewise for test.
        test_cold_targets: (M, 2) likewise for the cold-item test subset.
        train_counts: (N,) int64 count of each item among train events (popularity, logQ).
    """

    def __init__(self, items: pd.DataFrame, interactions: pd.DataFrame, split: Split) -> None:
        item_ids = pd.Index(items["item_id"])
        if not item_ids.is_unique:
            raise ValueError("items table has duplicate item_id values")
        df = order_interactions(interactions)
        item_idx = item_ids.get_indexer(df["item_id"])
        if (item_idx < 0).any():
            unknown = df["item_id"][item_idx < 0].unique()[:5].tolist()
            raise ValueError(f"interactions reference items missing from the items table, e.g. {unknown}")
        user_codes, user_ids = pd.factorize(df["user_id"], sort=True)
        event_codes, event_names = pd.factorize(df["event"], sort=True)

        self.n_items = len(item_ids)
        self.n_users = len(user_ids)
        self.n_events = len(event_names)
        self.item_index: dict[str, int] = {k: i for i, k in enumerate(item_ids)}
        self.user_index: dict[str, int] = {k: i for i, k in enumerate(user_ids)}
        self.event_index: dict[str, int] = {k: i + 1 for i, k in enumerate(event_names)}
        self.user_ids = np.asarray(user_ids)
        self._user_lookup = pd.Index(user_ids)
        self._item_lookup = item_ids

        self.items_flat = item_idx.astype(np.int64)
        self.events_flat = (event_codes + 1).astype(np.int64)
        self.times_flat = df["timestamp"].to_numpy(dtype=np.int64)
        lengths = np.bincount(user_codes, minlength=self.n_users)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.lengths = lengths.astype(np.int64)
        self.user_seqs: list[np.ndarray] = np.split(self.items_flat, self.offsets[1:-1])
        self.user_events: list[np.ndarray] = np.split(self.events_flat, self.offsets[1:-1])

        train = self._pairs(split.train, "train")
        self.val_targets = self._pairs(split.val, "val")
        self.test_targets = self._pairs(split.test, "test")
        self.test_cold_targets = self._pairs(split.test_cold, "test_cold")
        self.train_len = self._train_prefix(train)
        for name, targets in (("val", self.val_targets), ("test", self.test_targets)):
            if (targets[:, 1] < self.train_len[targets[:, 0]]).any():
                raise ValueError(f"split leaks: some {name} target lies inside its user's train prefix")
        train_items = self.items_flat[self.offsets[train[:, 0]] + train[:, 1]]
        self.train_counts = np.bincount(train_items, minlength=self.n_items).astype(np.int64)

    def _pairs(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        """(user index, seq_pos) pairs of a split frame, checked against the encoded sequences."""
        users = self._user_lookup.get_indexer(frame["user_id"]).astype(np.int64)
        pos = frame["seq_pos"].to_numpy(dtype=np.int64)
        if (users < 0).any() or (pos < 0).any() or (pos >= self.lengths[np.maximum(users, 0)]).any():
            raise ValueError(f"split.{name} does not match the interactions table (unknown user or seq_pos)")
        expected = self._item_lookup.get_indexer(frame["item_id"]).astype(np.int64)
        if (self.items_flat[self.offsets[users] + pos] != expected).any():
            raise ValueError(f"split.{name} does not match the interactions table (item at seq_pos differs)")
        return np.stack([users, pos], axis=1) if len(users) else np.zeros((0, 2), dtype=np.int64)

    def _train_prefix(self, train: np.ndarray) -> np.ndarray:
        counts = np.bincount(train[:, 0], minlength=self.n_users).astype(np.int64)
        last = np.full(self.n_users, -1, dtype=np.int64)
        np.maximum.at(last, train[:, 0], train[:, 1])
        if (last + 1 != counts).any():
            # Training on a non-prefix would need holes in sequences; every split here yields prefixes.
            raise ValueError("split.train is not a prefix of every user's sequence")
        return counts


TRAIN_WINDOWS = ("last", "all")


def check_train_windows(windows: str) -> str:
    """`windows` if it is one of TRAIN_WINDOWS; otherwise a ValueError naming data.train_windows."""
    if windows not in TRAIN_WINDOWS:
        raise ValueError(f"data.train_windows must be 'last' or 'all', got {windows!r}")
    return windows


def check_train_stride(stride: int | None, windows: str, max_len: int) -> int:
    """The windows' step (``max_len`` for None); a ValueError naming data.train_stride otherwise."""
    if stride is None:
        return max_len
    if windows != "all":
        raise ValueError(
            f"data.train_stride={stride} steps the windows of data.train_windows=all; with "
            f"data.train_windows={windows!r} set data.train_stride=null"
        )
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= max_len:
        raise ValueError(
            f"data.train_stride must be an integer from 1 to data.max_len ({max_len}) or null, got {stride!r}"
        )
    return stride


class TrainSequenceDataset(Dataset):
    """Next-item prediction samples over the users' train prefixes (users with at least 2 train events).

    A sample covers at most ``max_len + 1`` consecutive train events: inputs are events[:-1] and
    targets events[1:]. ``windows="last"``: one sample per user, its last ``max_len + 1`` train
    events (SASRec's), so events older than that never train. ``windows="all"``: the prefix cut into
    windows ending at its end, ``max_len`` events earlier, and so on, so that every train event after
    the first is a target exactly once per epoch (long histories train on all their events, as
    RecBole's augmentation does, at one sample per ``max_len`` targets rather than one per target).
    ``stride`` (``windows="all"`` only; None: ``max_len``) steps the windows' ends back by ``stride``
    events instead, so windows overlap: each window's last ``stride`` targets train and its earlier
    positions are context only (targets -1), so every target is still trained once per epoch but
    sees at least ``max_len - stride`` events before it where the history has them (``stride=1``:
    RecBole's augmentation, one sample per target with its full ``max_len`` context).
    Each sample is a dict with ``user``, ``items``, ``events``, ``times``, ``targets`` and ``start``
    (seq_pos of the first input, so positions can be audited).

    ``first_target=True`` (for user encoders that never read the history: matrix factorisation and
    the graph models) also makes each user's first train event a target: the inputs are shifted by
    one with the first event standing in as its own input, so users with a single train event train
    too and every train event is a target (windows of at most ``max_len`` targets).
    """

    def __init__(
        self,
        data: SequenceData,
        max_len: int,
        windows: str = "last",
        first_target: bool = False,
        stride: int | None = None,
    ) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        check_train_windows(windows)
        stride = check_train_stride(stride, windows, max_len)
        self.data = data
        self.max_len = max_len
        self.stride = stride
        self.lead = 0 if first_target else 1  # train events that are inputs only
        users = np.flatnonzero(data.train_len >= 1 + self.lead)
        if windows == "last":
            self.users, self.ends = users, data.train_len[users]
        else:
            counts = -(-(data.train_len[users] - self.lead) // stride)  # ceil((L - lead) / stride) each
            self.users = np.repeat(users, counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            self.ends = data.train_len[self.users] - (np.arange(len(self.users)) - first) * stride

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        """(n,) input length T of each sample."""
        return np.minimum(self.ends - self.lead, self.max_len)

    def __getitem__(self, i: int) -> dict[str, Any]:
        u, end = int(self.users[i]), int(self.ends[i])
        off = int(self.data.offsets[u])
        first = max(self.lead, end - self.max_len)  # seq_pos of the first target
        # Inputs are the targets shifted by one; with first_target the first event is its own input.
        inputs = slice(off + first - 1, off + end - 1) if first else np.arange(-1, end - 1).clip(0) + off
        targets = self.data.items_flat[off + first : off + end]
        # Targets before end - stride are context here: the window ending there trains them.
        context = max(self.lead, end - self.stride) - first
        if context > 0:
            targets = targets.copy()
            targets[:context] = -1
        return {
            "user": u,
            "items": self.data.items_flat[inputs],
            "events": self.data.events_flat[inputs],
            "times": self.data.times_flat[inputs],
            "targets": targets,
            "start": max(0, first - 1),
        }


class EvalDataset(Dataset):
    """One sample per target (user index, seq_pos).

    A sample holds the history (the user's last ``max_len`` events before the target, their
    ``items``, ``events`` and ``times``), the
    target item, ``seen`` = every distinct item the user had before the target (not truncated),
    ``index`` = the row of ``targets`` and ``user``.
    """

    def __init__(self, data: SequenceData, targets: np.ndarray, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.data = data
        self.targets = np.asarray(targets, dtype=np.int64).reshape(-1, 2)
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def lengths(self) -> np.ndarray:
        """(n,) history length of each sample (events before its target, at most ``max_len``)."""
        return np.minimum(self.targets[:, 1], self.max_len)

    def __getitem__(self, i: int) -> dict[str, Any]:
        u, p = (int(x) for x in self.targets[i])
        off = int(self.data.offsets[u])
        start = max(0, p - self.max_len)
        return {
            "user": u,
            "items": self.data.items_flat[off + start : off + p],
            "events": self.data.events_flat[off + start : off + p],
            "times": self.data.times_flat[off + start : off + p],
            "target": int(self.data.items_flat[off + p]),
            "seen": np.unique(self.data.items_flat[off : off + p]),
            "index": i,
        }


def _left_pad(arrays: list[np.ndarray], width: int, fill: int) -> np.ndarray:
    """Stack 1-D int arrays right-aligned into (len(arrays), width), ``fill`` on the left."""
    lens = np.array([len(a) for a in arrays], dtype=np.int64)
    out = np.full((len(arrays), width), fill, dtype=np.int64)
    if lens.sum():
        rows = np.repeat(np.arange(len(arrays)), lens)
        within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        out[rows, width - lens[rows] + within] = np.concatenate(arrays)
    return out


def _history(
    samples: list[dict[str, Any]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    # T >= 1 even if every history is empty, so downstream code never sees a zero-width tensor.
    width = max(1, max(len(s["items"]) for s in samples))
    items = torch.from_numpy(_left_pad([s["items"] for s in samples], width, 0))  # (B, T)
    events = torch.from_numpy(_left_pad([s["events"] for s in samples], width, 0))  # (B, T)
    times = None  # a history given without times (a new user's) makes the batch's None
    if all(s.get("times") is not None for s in samples):
        times = torch.from_numpy(_left_pad([s["times"] for s in samples], width, 0))  # (B, T)
    lens = torch.tensor([len(s["items"]) for s in samples])
    mask = torch.arange(width) >= width - lens[:, None]  # (B, T)
    return items, events, mask, times, width


def collate_train(samples: list[dict[str, Any]]) -> RecBatch:
    """Left-pad training samples: items/events/times/mask (B, T), targets (B, T) with -1 at padding."""
    items, events, mask, times, width = _history(samples)
    targets = torch.from_numpy(_left_pad([s["targets"] for s in samples], width, -1))  # (B, T)
    users = torch.tensor([s["user"] for s in samples], dtype=torch.long)
    return RecBatch(items=items, events=events, mask=mask, targets=targets, users=users, times=times)


def collate_eval(samples: list[dict[str, Any]]) -> RecBatch:
    """Left-pad evaluation samples: items/events/times/mask (B, T), targets (B,), seen (B, S) -1 padded."""
    items, events, mask, times, _ = _history(samples)
    seen_width = max(1, max(len(s["seen"]) for s in samples))
    seen = torch.from_numpy(_left_pad([s["seen"] for s in samples], seen_width, -1))  # (B, S)
    return RecBatch(
        items=items,
        events=events,
        mask=mask,
        targets=torch.tensor([s["target"] for s in samples], dtype=torch.long),
        seen=seen,
        index=torch.tensor([s["index"] for s in samples], dtype=torch.long),
        users=torch.tensor([s["user"] for s in samples], dtype=torch.long),
        times=times,
    )


class UnpaddedDistributedSampler(Sampler[int]):
    """Shards indices rank::world_size WITHOUT padding, so evaluation under DDP counts every sample exactly once.

    torch's DistributedSampler repeats samples to give every rank the same length, which
    double-counts them in metrics. Here ranks may get one sample (hence one batch) fewer, so
    evaluation must not run per-step collectives (e.g. ``self.log(..., sync_dist=True)``); metric
    states that sync once in ``compute()`` are fine. Under Lightning, pass this sampler
    explicitly and set ``use_distributed_sampler=False`` so it is not replaced.

    Args:
        n: dataset length.
        num_replicas: world size; taken from torch.distributed (or 1) when None.
        rank: this process's rank; taken from torch.distributed (or 0) when None.
        order: the indices in the order to visit them (a permutation of range(n)); default 0..n-1.
    """

    def __init__(
        self,
        n: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        order: np.ndarray | None = None,
    ) -> None:
        initialized = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialized else 1
        if rank is None:
            rank = dist.get_rank() if initialized else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank} for num_replicas {num_replicas}")
        if order is not None and (len(order) != n or not np.array_equal(np.sort(order), np.arange(n))):
            raise ValueError(f"order must be a permutation of range({n})")
        self.n = n
        self.num_replicas = num_replicas
        self.rank = rank
        self.order = order

    def __iter__(self):
        shard = range(self.rank, self.n, self.num_replicas)
        return iter(shard if self.order is None else self.order[shard].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """No-op (the order is fixed); present because trainers call it on distributed samplers."""
