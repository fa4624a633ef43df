"""Item-to-item similarity and text-to-item search in the learned item space (cosine)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from vrs.encoders.base import device_of
from vrs.fusion.late import LateFusion
from vrs.models.item_tower import ItemTower
from vrs.models.recommender import Recommender
from vrs.retrieval.index import build_index
from vrs.serving.base import describe_ids, inference, require_known


def similar(
    net: Recommender,
    catalogue: Sequence[str],
    item_ids: Sequence[object],
    k: int = 10,
    index: str = "exact",
    index_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The K items nearest to each query item by cosine of item vectors, the item itself excluded.

    Items absent from training are fine as long as the tower can embed them from their content: an
    untrained ID embedding counts as absent (see `ItemTower.set_content`).

    Args:
        net: the recommender, with its catalogue content attached.
        catalogue: the N item ids in catalogue order.
        item_ids: query item ids.
        k: neighbours per query.
        index: the search backend, one of `vrs.retrieval.INDEX_BACKENDS` ("exact" or FAISS's
            approximate "flat", "ivf", "hnsw").
        index_dir: saved indexes of `vrs-index build` (see `vrs.retrieval.build_index`).

    Returns:
        query_item_id, rank (1 = nearest), item_id, score (cosine similarity).

    Raises:
        ValueError: unknown item ids, or query items the tower has nothing to embed from (no content
            it uses and no trained ID, e.g. a cold item of an ID-only model).
    """
    _check_k(k)
    positions = require_known({str(i): n for n, i in enumerate(catalogue)}, item_ids, "item id(s)")
    query = torch.as_tensor(positions, dtype=torch.long)  # (Q,)
    empty = ~_embeddable(net.item_tower)[query]
    if empty.any():
        names = [str(item_ids[i]) for i in empty.nonzero().flatten().tolist()]
        raise ValueError(
            f"item(s) {describe_ids(names)} have none of the inputs this model uses "
            f"({', '.join(net.item_tower.modalities)}; IDs count only when trained), so their "
            "vector is the shared 'missing' vector and their neighbours would mean nothing"
        )
    with inference(net):
        items = F.normalize(net.encode_items().float(), dim=-1)  # (N, D)
        query = query.to(items.device)
        scores, idx = build_index(items, index, index_dir).search(items[query], k, query[:, None])  # (Q, K)
    return _table("query_item_id", [str(i) for i in item_ids], scores, idx, catalogue)


def search(
    net: Recommender,
    catalogue: Sequence[str],
    queries: Sequence[str],
    k: int = 10,
    index: str = "exact",
    index_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Text-to-item search: each query goes through the text tower and the fusion as an item that
    has text only, and items are ranked by cosine with it.

    Under late fusion only the text blocks are compared: the other blocks of a text-only query are
    learned "missing" stand-ins that would add a query-independent bias per item.

    Args:
        net, catalogue, index, index_dir: as for `similar`.
        queries: query texts.
        k: items per query.

    Returns:
        query, rank (1 = best), item_id, score (cosine similarity).

    Raises:
        ValueError: empty queries, or a model whose item tower cannot embed text alone
            (see `text_search_problem`).
    """
    _check_k(k)
    queries = [str(q) for q in queries]
    if not queries or not all(q.strip() for q in queries):
        raise ValueError("search needs at least one non-empty query text")
    tower = net.item_tower
    problem = text_search_problem(tower)
    if problem:
        raise ValueError(problem)
    with inference(net):
        q = encode_text_queries(tower, queries)  # (Q, D)
        items = tower()  # (N, D): the fused vectors, without a content-match block
        if isinstance(tower.fusion, LateFusion):
            block = tower.fusion.slices["text"]
            q, items = q[:, block], items[:, block]  # (Q, D_text), (N, D_text)
        q, items = F.normalize(q.float(), dim=-1), F.normalize(items.float(), dim=-1)
        scores, idx = build_index(items, index, index_dir).search(q, k)  # (Q, K)
    return _table("query", queries, scores, idx, catalogue)


def text_search_problem(tower: ItemTower) -> str | None:
    """Why `tower` cannot embed a text on its own, or None when it can.

    It can when text is its only input, under late fusion (the text block is computed from the text
    alone), or when it was trained with modality dropout (so text-only items were part of training).
    """
    mods = ", ".join(tower.modalities)
    if "text" not in tower.towers:
        return (
            f"this model has no text input (its item tower uses: {mods}), so it cannot embed a "
            "query text; text search needs a model trained with a text tower (e.g. encoder=toy or "
            "encoder=minilm) and fusion=text_only, fusion=late or model.modality_dropout > 0"
        )
    if tower.modalities == ("text",) or isinstance(tower.fusion, LateFusion):
        return None
    if tower.modality_dropout > 0:
        return None
    return (
        f"this model fuses {mods} and was trained without modality dropout, so it never learned a "
        "vector for an item that has text only; retrain with model.modality_dropout > 0 or "
        "fusion=late (or fusion=text_only) to search by text"
    )


def encode_text_queries(tower: ItemTower, texts: list[str]) -> Tensor:
    """Item vectors (Q, D) of one-"item" inputs holding only `texts`: every other modality absent."""
    if "text" not in tower.towers:
        raise ValueError("the item tower has no text encoder")
    device = device_of(tower)
    encoder = tower.towers["text"]
    tokens = encoder.tokenize(texts).to(device)  # (Q, L)
    n = len(texts)
    feats: dict[str, Tensor] = {}
    present: dict[str, Tensor] = {}
    for m, width in tower.in_dims.items():
        if m == "text":
            x = encoder(tokens)  # (Q, F_text)
            feats[m] = tower.norms[m](x) if m in tower.norms else x
        else:
            feats[m] = torch.zeros(n, width, device=device)  # (Q, F_m), never read: absent
        present[m] = torch.full((n,), m == "text", dtype=torch.bool, device=device)
    return tower.fusion(feats, present)  # (Q, D)


def _embeddable(tower: ItemTower) -> Tensor:
    """(N,) bool: items with at least one input the tower uses (trained IDs count)."""
    try:
        present = tower.present
    except RuntimeError:
        raise RuntimeError("attach the catalogue content (RecModule.attach_data) before serving") from None
    return torch.stack(list(present.values())).any(0).cpu()


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _table(
    key: str, queries: list[str], scores: Tensor, idx: Tensor, catalogue: Sequence[str]
) -> pd.DataFrame:
    """Long table from (Q, K) search results; -1 (fewer than K results) rows are dropped."""
    scores, idx = scores.cpu(), idx.cpu()
    valid = idx >= 0  # (Q, K)
    row, col = valid.nonzero(as_tuple=True)
    ids = np.asarray(list(catalogue), dtype=object)
    return pd.DataFrame(
        {
            key: np.asarray(queries, dtype=object)[row.numpy()],
            "rank": col.numpy().astype(np.int64) + 1,
            "item_id": ids[idx[valid].numpy()],
            "score": scores[valid].numpy().astype(np.float64),
        }
    )
