"""Preprocessing shared by every ``vrs-prepare`` source, and the report of what each step dropped.

Steps run in a fixed order on the interactions of one source:

1. ``event_types``: keep only these event types;
2. ``dedup``: for a repeated (user, item) pair keep every event ("all"), the earliest ("first") or the
   latest ("last"); "same_time" collapses only rows identical in (user, item, timestamp), keeping the
   first (a basket that lists one article twice on one day), so repeat purchases on other days stay;
3. ``k_core``: iteratively drop users and items with fewer than k events until none is left;
4. ``min_user_events``: drop users with fewer events (one pass, after the k-core);
5. ``max_history``: keep each user's last N events. It runs last, so it can leave an item below the
   k-core threshold: a window of recent history is what it is for.

Time order is ``timestamp`` with ties broken by row order, as in :mod:`vrs.data.splits`; surviving
rows keep their original order. Finally items left without interactions leave the catalogue unless
``drop_unused_items`` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DEDUP_POLICIES = ("all", "first", "last", "same_time")


@dataclass
class Preprocess:
    """Options shared by all sources (defaults change nothing except dropping unused items).

    Attributes:
        event_types: event types to keep; None keeps all.
        dedup: repeated (user, item) pairs: "all" keeps every event, "first"/"last" keep one,
            "same_time" keeps one of the rows sharing (user, item, timestamp).
        k_core: iterative k-core on users and items; 0 or 1 disables it.
        min_user_events: drop users with fewer events (after the k-core); 0 disables it.
        max_history: keep only each user's last N events; None keeps all.
        drop_unused_items: remove items without interactions from the catalogue.
    """

    event_types: list[str] | None = None
    dedup: str = "all"
    k_core: int = 0
    min_user_events: int = 0
    max_history: int | None = None
    drop_unused_items: bool = True

    def __post_init__(self) -> None:
        if self.dedup not in DEDUP_POLICIES:
            raise ValueError(f"preprocess.dedup must be one of {DEDUP_POLICIES}, got {self.dedup!r}")
        for key in ("k_core", "min_user_events"):
            if int(getattr(self, key)) < 0:
                raise ValueError(f"preprocess.{key} must be >= 0, got {getattr(self, key)}")
        if self.max_history is not None and int(self.max_history) < 1:
            raise ValueError(f"preprocess.max_history must be >= 1 or null, got {self.max_history}")
        if self.event_types is not None:
            self.event_types = [str(e) for e in self.event_types]


@dataclass
class Drop:
    """What one step removed: interactions, and users/items left with no interaction (or removed)."""

    step: str
    reason: str
    interactions: int = 0
    users: int = 0
    items: int = 0


@dataclass
class PrepareReport:
    """What a source read, what each step dropped and why, and notes (e.g. missing images)."""

    source: str
    read: dict[str, int] = field(default_factory=dict)
    drops: list[Drop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drop(self, step: str, reason: str, interactions: int = 0, users: int = 0, items: int = 0) -> None:
        """Records a step; steps that removed nothing are left out."""
        if interactions or users or items:
            self.drops.append(Drop(step, reason, int(interactions), int(users), int(items)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def counts(interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> dict[str, int]:
    out = {"users": int(interactions["user_id"].nunique()), "interactions": len(interactions)}
    if items is not None:
        out["items"] = len(items)
    return out


def time_order(interactions: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (user, timestamp, row), the order of :mod:`vrs.data.splits`."""
    users, _ = pd.factorize(interactions["user_id"])
    ts = interactions["timestamp"].to_numpy(dtype=np.int64)
    return np.lexsort((np.arange(len(interactions)), ts, users))


def _keep(
    report: PrepareReport, inter: pd.DataFrame, keep: np.ndarray, step: str, reason: str
) -> pd.DataFrame:
    if keep.all():
        return inter
    kept = inter[keep]
    report.drop(
        step,
        reason,
        interactions=len(inter) - len(kept),
        users=inter["user_id"].nunique() - kept["user_id"].nunique(),
        items=inter["item_id"].nunique() - kept["item_id"].nunique(),
    )
    return kept


def _dedup_mask(inter: pd.DataFrame, policy: str) -> np.ndarray:
    order = time_order(inter)
    if policy == "same_time":
        rows = inter[["user_id", "item_id", "timestamp"]].iloc[order]
        keep = np.empty(len(inter), dtype=bool)
        keep[order] = ~rows.duplicated(keep="first").to_numpy()
        return keep
    pairs = inter[["user_id", "item_id"]].iloc[order]
    keep = np.empty(len(inter), dtype=bool)
    keep[order] = ~pairs.duplicated(keep=policy).to_numpy()
    return keep


def _k_core_mask(inter: pd.DataFrame, k: int) -> np.ndarray:
    users, _ = pd.factorize(inter["user_id"])
    items, _ = pd.factorize(inter["item_id"])
    alive = np.ones(len(inter), dtype=bool)
    while True:  # each pass can push others below k; stops when a pass removes nothing
        u_count = np.bincount(users[alive], minlength=users.max(initial=-1) + 1)
        i_count = np.bincount(items[alive], minlength=items.max(initial=-1) + 1)
        now = alive & (u_count[users] >= k) & (i_count[items] >= k)
        if (now == alive).all():
            return alive
        alive = now


def _last_n_mask(inter: pd.DataFrame, n: int) -> np.ndarray:
    order = time_order(inter)
    users = inter["user_id"].iloc[order].reset_index(drop=True)
    from_end = users.groupby(users, sort=False).cumcount(ascending=False).to_numpy()  # 0 = latest
    keep = np.empty(len(inter), dtype=bool)
    keep[order] = from_end < n
    return keep


def apply_preprocess(
    items: pd.DataFrame, interactions: pd.DataFrame, options: Preprocess, report: PrepareReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs the steps of ``options`` (see the module docstring), recording drops in ``report``.

    Returns:
        (items, interactions) with fresh indexes.

    Raises:
        ValueError: when ``event_types`` names no event type present, or nothing survives.
    """
    inter = interactions.reset_index(drop=True)
    if options.event_types is not None:
        present = sorted(inter["event"].astype("str").unique())
        unknown = [e for e in options.event_types if e not in present]
        if unknown:
            raise ValueError(
                f"preprocess.event_types {unknown} not in the data; event types present: {present}"
            )
        keep = inter["event"].isin(options.event_types).to_numpy()
        inter = _keep(report, inter, keep, "event_types", f"event type not in {options.event_types}")
    if options.dedup != "all":
        inter = _keep(
            report, inter, _dedup_mask(inter, options.dedup), f"dedup={options.dedup}",
            "row repeating (user, item, timestamp); kept the first" if options.dedup == "same_time"
            else f"repeated (user, item) pair; kept the {options.dedup} event",
        )  # fmt: skip
    if options.k_core > 1:
        k = options.k_core
        inter = _keep(report, inter, _k_core_mask(inter, k), f"k_core={k}", f"user or item with < {k} events")
    if options.min_user_events > 1:
        n = options.min_user_events
        sizes = inter.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
        inter = _keep(report, inter, sizes >= n, f"min_user_events={n}", f"user with < {n} events")
    if options.max_history is not None:
        n = options.max_history
        inter = _keep(
            report, inter, _last_n_mask(inter, n), f"max_history={n}", f"older than the user's last {n}"
        )
    if len(inter) == 0:
        raise ValueError(f"preprocessing left no interactions ({options}); relax the options")
    if options.drop_unused_items:
        used = items["item_id"].isin(inter["item_id"].unique()).to_numpy()
        if not used.all():
            report.drop("unused_items", "item without interactions", items=int((~used).sum()))
            items = items[used]
    return items.reset_index(drop=True), inter.reset_index(drop=True)


def format_report(report: dict[str, Any]) -> str:
    """Renders a :class:`PrepareReport` (as a dict, e.g. from ``dataset.json``) as text lines."""
    read = report.get("read", {})
    lines = [
        f"source  : {report.get('source', '?')}",
        "read    : " + ", ".join(f"{read[k]:,} {k}" for k in ("interactions", "users", "items") if k in read),
    ]
    drops = report.get("drops", [])
    if not drops:
        lines.append("dropped : nothing")
    for i, d in enumerate(drops):
        if d["interactions"]:
            what = f"{d['interactions']:,} interactions"
            if d["users"] or d["items"]:
                what += f"; {d['users']:,} users and {d['items']:,} items lost all their events"
        else:
            what = f"{d['items']:,} catalogue items"
        lines.append(f"{'dropped : ' if i == 0 else ' ' * 10}{d['step']}: {what} ({d['reason']})")
    lines += [f"note    : {note}" for note in report.get("notes", [])]
    return "\n".join(lines)
