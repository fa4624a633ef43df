"""Simulated users of the procedural catalogue: drifting preferences, timestamps and step-by-step
histories (see `vrs.data.synthetic` for the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vrs.data.synthetic_catalogue import ATTRIBUTES, EVENTS, PERIOD_SECONDS, START_TIME, attribute_onehot, ids

_SIMILARITY_STRENGTH = 2.0  # log-weight per attribute shared with the previous item


def user_weights(
    rng: np.random.Generator, n_users: int, n_periods: int, strength: float, drift: float
) -> np.ndarray:
    """Preference weights (U, P, V): sparse favourites at period 0, then a random walk per period."""
    blocks = []
    for attr, values in ATTRIBUTES.items():
        k = len(values)
        w = rng.normal(0.0, 0.3 if attr != "size" else 0.5, (n_users, k))
        if attr != "size":  # size is a weak taste: no favourites
            order = np.argsort(rng.random((n_users, k)), axis=1)  # a random permutation per user
            rows = np.arange(n_users)
            w[rows, order[:, 0]] += strength
            second = rng.random(n_users) < 0.5  # about half the users have two favourites
            w[rows[second], order[second, 1]] += strength * rng.uniform(0.6, 1.0, second.sum())
        blocks.append(w)
    w0 = np.concatenate(blocks, axis=1)  # (U, V)
    steps = rng.normal(0.0, drift, (n_users, n_periods - 1, w0.shape[1]))
    walk = np.concatenate([np.zeros_like(w0)[:, None], np.cumsum(steps, axis=1)], axis=1)  # (U, P, V)
    return w0[:, None] + walk


def users_table(weights: np.ndarray) -> pd.DataFrame:
    """Truth preference weights: one list column per attribute, at the first and the last period."""
    df = pd.DataFrame({"user_id": ids("u", weights.shape[0])})
    lo = 0
    for attr, values in ATTRIBUTES.items():
        hi = lo + len(values)
        df[f"{attr}_start"] = list(weights[:, 0, lo:hi])
        df[f"{attr}_end"] = list(weights[:, -1, lo:hi])
        lo = hi
    return df


def timestamps(
    rng: np.random.Generator, lengths: np.ndarray, n_periods: int, final_share: float
) -> np.ndarray:
    """(U, T) int64 seconds since START_TIME, strictly increasing in each row's first L entries.

    A share ``final_share`` of the users (those with at least 3 events) has exactly its last two
    events in the final period; every other event lies at least a day before it.
    """
    n_users, t_max = len(lengths), int(lengths.max())
    final_start, span = (n_periods - 1) * PERIOD_SECONDS, n_periods * PERIOD_SECONDS
    ends_final = (rng.random(n_users) < final_share) & (lengths >= 3)
    early_end = np.where(ends_final, final_start - 86_400, rng.uniform(0.3, 1.0, n_users) * final_start)
    start = early_end * rng.uniform(0.0, 0.9, n_users)
    n_early = lengths - 2 * ends_final
    pos = np.arange(t_max)[None]  # (1, T)
    u = rng.random((n_users, t_max))
    # Sort keys: early events in [0, 1), final-period events in [1, 2), padding last.
    key = np.where(pos < n_early[:, None], u, np.where(pos < lengths[:, None], 1.0 + u, 3.0))
    key = np.sort(key, axis=1)
    early = start[:, None] + key * (early_end - start)[:, None]
    final = final_start + (key - 1.0) * (span - final_start)
    ts = np.floor(np.where(key < 1.0, early, final)).astype(np.int64)  # (U, T)
    return np.maximum.accumulate(ts - pos, axis=1) + pos  # bump rare ties: strictly increasing


def simulate(
    rng: np.random.Generator,
    truth: pd.DataFrame,
    weights: np.ndarray,
    a: dict[str, Any],
    progress: bool = False,
) -> pd.DataFrame:
    """Step-by-step histories of all users; returns the interactions table.

    `a` holds `generate`'s parameters (history lengths, periods, mixture and its settings);
    `progress` shows a bar of the users simulated.
    """
    n_users = weights.shape[0]
    lengths = rng.integers(a["min_history"], a["max_history"] + 1, size=n_users)
    ts = timestamps(rng, lengths, a["n_periods"], a["final_period_share"])  # (U, T)
    # All randomness is drawn up front, so the result does not depend on the user chunk size.
    choice_u = 1.0 - rng.random(ts.shape)  # in (0, 1]: never picks a zero-probability item
    event_u = rng.random(ts.shape)
    items, quality = _choose_items(_Choice.of(truth, a), weights, lengths, ts, choice_u, progress)
    event = _event_types(quality, event_u)
    valid = np.arange(ts.shape[1])[None] < lengths[:, None]
    uid = np.broadcast_to(np.arange(n_users)[:, None], ts.shape)[valid]
    return pd.DataFrame(
        {
            "user_id": np.asarray(ids("u", n_users))[uid],
            "item_id": truth["item_id"].to_numpy()[items[valid]],
            "timestamp": START_TIME + ts[valid],
            "event": np.asarray(EVENTS)[event[valid]],
        }
    )


@dataclass
class _Choice:
    """What the next-item mixture reads of the catalogue, and its settings."""

    onehot: np.ndarray  # (N, V) attributes
    cold: np.ndarray  # (N,) bool: released only in the final period
    popularity: np.ndarray  # (N,)
    mixture: tuple[float, float, float]  # weights of (preference, popularity, similar-to-last)
    n_periods: int
    temperature: float
    cold_boost: float
    repeat_penalty: float

    @classmethod
    def of(cls, truth: pd.DataFrame, a: dict[str, Any]) -> _Choice:
        return cls(
            onehot=attribute_onehot(truth),
            cold=truth["is_cold"].to_numpy(),
            popularity=truth["popularity"].to_numpy(),
            mixture=tuple(a["mixture"]),
            n_periods=a["n_periods"],
            temperature=a["temperature"],
            cold_boost=a["cold_boost"],
            repeat_penalty=a["repeat_penalty"],
        )


def _choose_items(
    choice: _Choice,
    weights: np.ndarray,
    lengths: np.ndarray,
    ts: np.ndarray,
    choice_u: np.ndarray,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(U, T) picked items (-1 pads) and the affinity percentile of each pick among what was available.

    Users go in chunks (the (B, N) probabilities of a whole population would not fit); within a
    chunk, step t picks the next item of every user whose history is longer than t.
    """
    n_users, n_items = weights.shape[0], len(choice.cold)
    items = np.full(ts.shape, -1, dtype=np.int64)
    quality = np.zeros(ts.shape)
    chunk = max(8, min(512, 4_000_000 // n_items))
    bar = tqdm(total=n_users, desc="simulate", unit="user", disable=not progress)
    for lo in range(0, n_users, chunk):
        rows = np.arange(lo, min(lo + chunk, n_users))
        seen = np.zeros((len(rows), n_items), dtype=bool)
        last = np.full(len(rows), -1)
        for t in range(int(lengths[rows].max())):
            active = np.flatnonzero(t < lengths[rows])  # local rows still active
            users = rows[active]
            previous = last[active] if t > 0 else None
            p, affinity, available = _next_item_probabilities(
                choice, weights, users, ts[users, t], seen[active], previous
            )
            cdf = np.cumsum(p, axis=1)
            target = choice_u[users, t] * cdf[:, -1]
            pick = np.minimum((cdf < target[:, None]).sum(axis=1), n_items - 1)
            picked = affinity[np.arange(len(active)), pick]
            below = np.where(available, affinity, np.inf) < picked[:, None]
            quality[users, t] = below.sum(1) / available.sum(1)
            items[users, t] = pick
            seen[active, pick] = True
            last[active] = pick
        bar.update(len(rows))
    bar.close()
    return items, quality


def _next_item_probabilities(
    choice: _Choice,
    weights: np.ndarray,
    users: np.ndarray,
    times: np.ndarray,
    seen: np.ndarray,
    previous: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised next-item probabilities (B, N), with the users' affinities (B, N) and which items
    are released (B, N) at `times`. `previous` is each user's last item (None at the first step)."""
    w_pref, w_pop, w_sim = choice.mixture
    n_active = len(users)
    period = np.minimum(times // PERIOD_SECONDS, choice.n_periods - 1)
    final = times >= (choice.n_periods - 1) * PERIOD_SECONDS
    available = ~choice.cold[None] | final[:, None]  # (B, N)
    affinity = weights[users, period] @ choice.onehot.T  # (B, N)
    logits = np.where(available, affinity / choice.temperature, -np.inf)
    p_pref = np.exp(logits - logits.max(axis=1, keepdims=True))
    p_pref /= p_pref.sum(axis=1, keepdims=True)
    p_pop = available * choice.popularity[None]
    p_pop /= p_pop.sum(axis=1, keepdims=True)
    p = w_pref * p_pref + w_pop * p_pop
    if previous is not None:
        shared = choice.onehot[previous] @ choice.onehot.T  # (B, N) attributes shared with the last item
        p_sim = available * np.exp(_SIMILARITY_STRENGTH * shared)
        p_sim[np.arange(n_active), previous] = 0.0
        p = p + w_sim * p_sim / p_sim.sum(axis=1, keepdims=True)
    p = p * np.where(choice.cold[None] & final[:, None], choice.cold_boost, 1.0)  # novelty boost
    p = p * np.where(seen, choice.repeat_penalty, 1.0)
    allowed = available.copy()
    if previous is not None:
        allowed[np.arange(n_active), previous] = False  # never an immediate repeat
    p = np.where(allowed, p + 1e-12, 0.0)  # the epsilon keeps a row valid if all else is 0
    return p, affinity, available


def _event_types(quality: np.ndarray, event_u: np.ndarray) -> np.ndarray:
    """(U, T) event codes (3=purchase ... 0=view): cart and purchase grow with the affinity
    percentile q of the chosen item."""
    q = quality
    thresholds = np.stack([0.01 + 0.08 * q**2, 0.04 + 0.15 * q**2, 0.26 + 0.15 * q**2], axis=-1)
    return 3 - (event_u[..., None] >= thresholds).sum(-1)
