"""Top-K recommendations with "because you liked" explanations, for dataset users and new histories."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from vrs.data.sequences import SequenceData, collate_eval
from vrs.encoders.base import device_of
from vrs.models.recommender import Recommender
from vrs.retrieval.index import build_index
from vrs.retrieval.scoring import score_batch
from vrs.serving.base import describe_ids, inference, lookup, require_known

_PROGRESS_MIN_USERS = 20_000  # below this many users the lists take seconds: no bar

COLD_USER_POLICIES = ("error", "popular", "skip")
COLUMNS = ["user_id", "rank", "item_id", "score", "because_item_ids", "because_weights"]


def recommend(
    net: Recommender,
    data: SequenceData,
    max_len: int,
    users: Sequence[object] | None = None,
    k: int = 10,
    exclude_seen: bool = True,
    cold_users: str = "error",
    histories: Mapping[str, Sequence[object]] | None = None,
    n_explain: int = 3,
    popularity: Tensor | np.ndarray | None = None,
    index: str = "exact",
    index_dir: str | Path | None = None,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Top-K items for users of the dataset and for new users given by their history.

    A dataset user's history is everything the dataset holds for them (train, validation and test
    events) in time order; the model sees its most recent `max_len` events. A new history (no
    retraining needed: the user encoder only reads item vectors) gets the dataset's most common
    event type on every event.

    Args:
        net: the recommender, with its catalogue content attached.
        data: the dataset's sequences (user histories, id look-ups, training popularity).
        max_len: the longest history T the model was trained with.
        users: user ids to serve; None: every dataset user.
        k: list length K.
        exclude_seen: never recommend an item already in the user's (whole) history.
        cold_users: what to do with ids the dataset does not know: "error" raises a ValueError
            naming them; "popular" gives them the K most popular training items (score NaN, no
            explanation); "skip" leaves them out and lists them in `attrs["skipped_users"]`.
        histories: new user name -> item ids in time order (oldest first).
        n_explain: history items listed per recommendation (none for a model whose `explains` is
            False: its item vectors do not measure likeness).
        popularity: (N,) training counts for cold_users="popular"; None: `data.train_counts`.
        index: the search backend, one of `vrs.retrieval.INDEX_BACKENDS` ("exact" or FAISS's
            approximate "flat", "ivf", "hnsw").
        index_dir: saved indexes of `vrs-index build` (see `vrs.retrieval.build_index`).
        batch_size: users encoded and scored at once.

    Returns:
        One row per (user, rank), users in request order (dataset users, then histories):
        user_id, rank (1 = best), item_id, score (user · item, the model's score), because_item_ids
        (up to `n_explain` history items, most similar to the recommended item first) and
        because_weights (their cosine similarity to it in item-vector space, in [-1, 1]).
    """
    _check_settings(k, n_explain, batch_size, cold_users)
    requested = list(dict.fromkeys(str(u) for u in (data.user_ids if users is None else users)))
    histories = {str(name): list(items) for name, items in (histories or {}).items()}
    known, unknown = _split_known(data, requested, histories, cold_users)
    samples = [user_sample(data, u, max_len) for u in known]
    names = [str(data.user_ids[u]) for u in known]
    for name, items in histories.items():
        samples.append(history_sample(data, name, items, max_len))
        names.append(name)

    item_ids = np.asarray(list(data.item_index), dtype=object)  # (N,) catalogue order
    frames = [
        _model_rows(net, samples, names, item_ids, k, exclude_seen, n_explain, index, batch_size, index_dir)
    ]
    if unknown and cold_users == "popular":
        counts = data.train_counts if popularity is None else popularity
        frames.append(_popular_rows(unknown, torch.as_tensor(counts), item_ids, k))
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    table = _in_request_order(table, requested + list(histories))
    table.attrs["skipped_users"] = unknown if cold_users == "skip" else []
    return table


def _check_settings(k: int, n_explain: int, batch_size: int, cold_users: str) -> None:
    if k < 1 or n_explain < 0 or batch_size < 1:
        raise ValueError(
            f"k and batch_size must be >= 1 and n_explain >= 0; got {k}, {batch_size}, {n_explain}"
        )
    if cold_users not in COLD_USER_POLICIES:
        raise ValueError(f"cold_users={cold_users!r}: expected one of {COLD_USER_POLICIES}")


def _split_known(
    data: SequenceData, requested: list[str], histories: dict[str, list[object]], cold_users: str
) -> tuple[list[int], list[str]]:
    """The dataset indices of the requested users the dataset knows, and the ids it does not."""
    clash = [name for name in histories if name in set(requested)]
    if clash:
        raise ValueError(
            f"history name(s) {describe_ids(clash)} are also requested dataset users: rename them"
        )
    known, unknown = lookup(data.user_index, requested)
    if unknown and cold_users == "error":
        raise ValueError(
            f"{len(unknown)} unknown user id(s): {describe_ids(unknown)}; cold_users=popular gives them "
            "the most popular training items, cold_users=skip leaves them out"
        )
    return known, unknown


def _in_request_order(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    order = {name: i for i, name in enumerate(names)}
    return (
        table.assign(_order=table["user_id"].map(order))
        .sort_values(["_order", "rank"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def user_sample(data: SequenceData, user: int, max_len: int) -> dict[str, Any]:
    """The `collate_eval` sample of dataset user `user`: its last `max_len` events (items, event
    types, times), all items seen."""
    seq, events = data.user_seqs[user], data.user_events[user]
    times = data.times_flat[data.offsets[user] : data.offsets[user + 1]]
    return _sample(seq[-max_len:], events[-max_len:], np.unique(seq), user, times[-max_len:])


def history_sample(data: SequenceData, name: str, items: Sequence[object], max_len: int) -> dict[str, Any]:
    """The `collate_eval` sample of a new history (item ids, oldest first) named `name`; it has no
    times (a model with `session_gap` refuses it)."""
    if not items:
        raise ValueError(f"history {name!r} is empty: give at least one item id")
    seq = np.asarray(require_known(data.item_index, items, f"item id(s) in history {name!r}"), dtype=np.int64)
    event = int(np.bincount(data.events_flat).argmax())  # the most common event type
    return _sample(seq[-max_len:], np.full(min(len(seq), max_len), event), np.unique(seq), -1)


def _sample(
    items: np.ndarray, events: np.ndarray, seen: np.ndarray, user: int, times: np.ndarray | None = None
) -> dict[str, Any]:
    # target and index are unused here; collate_eval wants them.
    return {
        "user": user,
        "items": items,
        "events": events,
        "times": times,
        "target": 0,
        "seen": seen,
        "index": 0,
    }


def explain(
    items: Tensor, history: Tensor, mask: Tensor, recommended: Tensor, n: int
) -> tuple[Tensor, Tensor]:
    """For each recommended item, the `n` history items closest to it (cosine of item vectors).

    Cosine rather than the raw dot product so that an item with a long vector (often a popular
    one) does not explain everything; a history item that occurs several times counts once.

    Args:
        items: (N, D) item vectors.
        history: (B, T) history item indices (left padded).
        mask: (B, T) True at real events.
        recommended: (B, K) recommended item indices, -1 where there is none.
        n: history items per recommendation.

    Returns:
        idx (B, K, n') history item indices, -1 where there is none, and weights (B, K, n') their
        cosine similarity, n' = min(n, T); most similar first.
    """
    unit = F.normalize(items.float(), dim=-1)  # (N, D)
    sims = torch.bmm(unit[recommended.clamp(min=0)], unit[history].transpose(1, 2))  # (B, K, T)
    t = history.shape[1]
    later = torch.ones(t, t, dtype=torch.bool, device=history.device).triu(diagonal=1)  # (T, T) j > i
    repeated = ((history[:, :, None] == history[:, None, :]) & later & mask[:, None, :]).any(2)  # (B, T)
    keep = mask & ~repeated  # the most recent occurrence of each history item
    sims = sims.masked_fill(~keep[:, None, :], -math.inf)
    weights, pos = sims.topk(min(n, t), dim=-1)  # (B, K, n')
    idx = history.gather(1, pos.flatten(1)).view_as(pos)  # (B, K, n')
    none = (weights == -math.inf) | (recommended < 0)[..., None]
    return idx.masked_fill(none, -1), weights.masked_fill(none, 0.0)


def _model_rows(
    net: Recommender,
    samples: list[dict[str, Any]],
    names: list[str],
    item_ids: np.ndarray,
    k: int,
    exclude_seen: bool,
    n_explain: int,
    index: str,
    batch_size: int,
    index_dir: str | Path | None = None,
) -> pd.DataFrame:
    if not samples:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in COLUMNS})
    device = device_of(net)
    if not getattr(net, "explains", True):  # item vectors that say nothing about likeness (popularity)
        n_explain = 0
    parts = []
    with inference(net):
        items = net.encode_items()  # (N, D)
        searcher = build_index(items, index, index_dir)
        quiet = len(samples) < _PROGRESS_MIN_USERS
        for start in tqdm(range(0, len(samples), batch_size), desc="recommend", unit="batch", disable=quiet):
            batch = collate_eval(samples[start : start + batch_size]).to(device)
            _, (_, _, scores, top) = score_batch(net, items, batch, k, exclude_seen, searcher)  # (B, K)
            because, weights = explain(items, batch.items, batch.mask, top.to(device), n_explain)
            chunk = names[start : start + batch_size]
            parts.append(_rows(chunk, scores.cpu(), top.cpu(), because.cpu(), weights.cpu(), item_ids))
    return pd.concat(parts, ignore_index=True)


def _rows(
    names: list[str], scores: Tensor, top: Tensor, because: Tensor, weights: Tensor, item_ids: np.ndarray
) -> pd.DataFrame:
    valid = top >= 0  # (B, K) False in the tail when fewer than K items were left
    row, col = valid.nonzero(as_tuple=True)  # (M,), (M,)
    because, weights = because[valid].numpy(), weights[valid].numpy()  # (M, n')
    has = because >= 0
    return pd.DataFrame(
        {
            "user_id": np.asarray(names, dtype=object)[row.numpy()],
            "rank": col.numpy().astype(np.int64) + 1,
            "item_id": item_ids[top[valid].numpy()],
            "score": scores[valid].numpy().astype(np.float64),
            "because_item_ids": [item_ids[b[h]].tolist() for b, h in zip(because, has, strict=True)],
            "because_weights": [w[h].tolist() for w, h in zip(weights, has, strict=True)],
        }
    )


def _popular_rows(users: list[str], counts: Tensor, item_ids: np.ndarray, k: int) -> pd.DataFrame:
    """The K most popular training items for each of `users`; ties go to the earlier catalogue item."""
    top = np.argsort(-counts.double().cpu().numpy(), kind="stable")[:k]  # (K,)
    n = len(users)
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), len(top)),
            "rank": np.tile(np.arange(1, len(top) + 1, dtype=np.int64), n),
            "item_id": np.tile(item_ids[top], n),
            "score": np.full(n * len(top), np.nan),
            "because_item_ids": [[] for _ in range(n * len(top))],
            "because_weights": [[] for _ in range(n * len(top))],
        }
    )


def _dtype(column: str) -> str:
    return {"rank": "int64", "score": "float64"}.get(column, "object")
