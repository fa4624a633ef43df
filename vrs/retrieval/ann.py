"""FAISS approximate (ANN) backends of `ItemIndex`: flat, IVF-flat and HNSW-flat, inner product.

Build them with `vrs.retrieval.build_index`; see `vrs.retrieval.index` for the search contract.

FAISS can only filter with one id selector per call, not one per query, so FAISS backends over-fetch:
they ask for k + S candidates (S = the most distinct excluded ids in any row), drop excluded ids, and
keep the first k. An approximate index may return fewer candidates than asked (an IVF probe that holds
few items, an HNSW beam that dries up); rows still short of min(k, N - excluded) are searched again
with k', nprobe and ef_search doubled, until they are full or the search covers everything.

ANN pays only where vectors have structure. On 1M random Gaussian 64-d items and queries (2 threads,
K=100) no setting reaches recall 0.95 faster than `exact`: hnsw ef_search=2048 gives 0.97 at 0.3x its
queries/s, ivf nprobe=nlist/2 0.97 at 0.1x (benchmarks/bench_index.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from torch import Tensor

from vrs.retrieval.index import ItemIndex


class FaissItemIndex(ItemIndex):
    """A FAISS inner-product index (flat, IVF-flat or HNSW-flat) behind the `ItemIndex` interface.

    Build one with `vrs.retrieval.build_index`. Searches run on the CPU; results come back on the
    queries' device. FAISS's own OpenMP threads do the work (`faiss.omp_set_num_threads` caps them).

    Args:
        index: a populated `faiss.IndexFlatIP`, `IndexIVFFlat` or `IndexHNSWFlat` with inner-product
            metric, whose ids are the items' positions (items added in catalogue order).
    """

    def __init__(self, index: faiss.Index) -> None:
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"FAISS index must use the inner-product metric, got metric {index.metric_type}")
        if isinstance(index, faiss.IndexHNSW):
            self.backend = "hnsw"
        elif isinstance(index, faiss.IndexIVF):
            self.backend = "ivf"
        elif isinstance(index, faiss.IndexFlat):
            self.backend = "flat"
        else:
            raise ValueError(f"unsupported FAISS index type {type(index).__name__}")
        self.index = index

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def params(self) -> dict[str, int]:
        if self.backend == "ivf":
            return {"nlist": self.index.nlist, "nprobe": self.index.nprobe}
        if self.backend == "hnsw":
            return {
                "m": self.index.hnsw.nb_neighbors(1),  # layer 0 has 2*M links, upper layers M
                "ef_construction": self.index.hnsw.efConstruction,
                "ef_search": self.index.hnsw.efSearch,
            }
        return {}

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Sets the search-time speed/recall knob (saved with the index)."""
        if nprobe is not None:
            if self.backend != "ivf" or nprobe < 1:
                raise ValueError(f"nprobe needs a positive value and an ivf index, not {self.backend}")
            self.index.nprobe = min(nprobe, self.index.nlist)
        if ef_search is not None:
            if self.backend != "hnsw" or ef_search < 1:
                raise ValueError(f"ef_search needs a positive value and an hnsw index, not {self.backend}")
            self.index.hnsw.efSearch = ef_search

    def _search_params(self, widen: int) -> tuple[Any, bool]:
        """FAISS search parameters scaled by `widen`, and whether scaling further can change results."""
        if self.backend == "ivf":
            nprobe = min(self.index.nprobe * widen, self.index.nlist)
            return faiss.SearchParametersIVF(nprobe=nprobe), nprobe < self.index.nlist
        if self.backend == "hnsw":
            ef = self.index.hnsw.efSearch * widen
            return faiss.SearchParametersHNSW(efSearch=ef), ef < len(self)
        return None, False

    def search(self, queries: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, d = len(self), self.dim
        if queries.ndim != 2 or queries.shape[1] != d:
            raise ValueError(f"queries must be (B, D={d}), got {tuple(queries.shape)}")
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        b = queries.shape[0]
        x = queries.detach().to("cpu", torch.float32).contiguous().numpy()  # (B, D)
        excl, n_excl = _sorted_exclude(exclude, b, n)
        out_s = torch.full((b, k), -math.inf)
        out_i = torch.full((b, k), -1, dtype=torch.long)
        if not (b and k and n):
            return out_s.to(queries.device), out_i.to(queries.device)

        want = (n - n_excl).clamp(max=k)  # (B,) results each row can have
        kk = min(n, k + int(n_excl.max()))  # over-fetch: every excluded id may be among the best
        rows, widen = torch.arange(b), 1
        while True:
            params, can_widen = self._search_params(widen)
            s, i = self.index.search(x[rows.numpy()], kk, params=params)  # (R, K') each
            s, i = _drop_excluded(torch.from_numpy(s), torch.from_numpy(i), excl, rows, k)
            out_s[rows], out_i[rows] = s, i
            short = (i >= 0).sum(1) < want[rows]
            if not short.any() or (kk == n and not can_widen):
                break
            rows, kk, widen = rows[short], min(n, 2 * kk), 2 * widen
        return out_s.to(queries.device), out_i.to(queries.device)

    def _write(self, path: str) -> None:
        faiss.write_index(self.index, path)


def read_faiss_index(path: Path) -> FaissItemIndex:
    """A FAISS index written by `FaissItemIndex.save` (read it through `ItemIndex.load`)."""
    return FaissItemIndex(faiss.read_index(str(path)))


def _sorted_exclude(exclude: Tensor | None, b: int, n: int) -> tuple[Tensor | None, Tensor]:
    """Excluded ids sorted per row (-1 pads first) and each row's count of distinct valid ids."""
    if exclude is None or not exclude.numel():
        return None, torch.zeros(b, dtype=torch.long)
    if exclude.ndim != 2 or exclude.shape[0] != b:
        raise ValueError(f"exclude must have shape ({b}, S), got {tuple(exclude.shape)}")
    excl = exclude.detach().to("cpu", torch.long).clamp(min=-1).sort(1).values  # (B, S)
    if int(excl.max()) >= n:
        raise ValueError(f"excluded items must be < N={n} (-1 pads); got {int(excl.max())}")
    first = torch.ones_like(excl, dtype=torch.bool)
    first[:, 1:] = excl[:, 1:] != excl[:, :-1]
    return excl, ((excl >= 0) & first).sum(1)


def _drop_excluded(
    scores: Tensor, idx: Tensor, excl: Tensor | None, rows: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """(R, K') best-first FAISS results -> (R, K): excluded and missing (-1) ids removed, order kept."""
    bad = idx < 0  # (R, K')
    if excl is not None:
        ex = excl[rows]  # (R, S) sorted
        pos = torch.searchsorted(ex, idx).clamp_(max=ex.shape[1] - 1)
        bad |= ex.gather(1, pos) == idx
    keep = torch.sort(bad.to(torch.uint8), dim=1, stable=True).indices[:, :k]  # kept ones first
    scores, idx, bad = scores.gather(1, keep), idx.gather(1, keep), bad.gather(1, keep)
    scores.masked_fill_(bad, -math.inf)
    idx.masked_fill_(bad, -1)
    if idx.shape[1] < k:  # K' < k when N < k
        pad = k - idx.shape[1]
        scores = torch.cat([scores, scores.new_full((len(rows), pad), -math.inf)], 1)
        idx = torch.cat([idx, idx.new_full((len(rows), pad), -1)], 1)
    return scores, idx


def _as_numpy(items: Tensor) -> np.ndarray:
    if items.ndim != 2:
        raise ValueError(f"items must be (N, D), got {tuple(items.shape)}")
    return np.ascontiguousarray(items.detach().to("cpu", torch.float32).numpy())


def build_flat(items: Tensor) -> FaissItemIndex:
    """FAISS brute-force inner-product index over (N, D) items."""
    x = _as_numpy(items)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return FaissItemIndex(index)


def build_ivf(
    items: Tensor,
    nlist: int | None = None,
    nprobe: int | None = None,
    train_points_per_list: int = 64,
    seed: int = 1234,
) -> FaissItemIndex:
    """FAISS IVF-flat inner-product index over (N, D) items.

    Args:
        items: (N, D) item vectors.
        nlist: number of k-means lists; default 4 * sqrt(N), at most N / 39 (FAISS's minimum of
            training points per list).
        nprobe: lists scanned per query; default nlist / 8, ample for clustered embeddings. Vectors
            without cluster structure need far more: 1M random Gaussian 64-d ones need nlist / 2
            for recall@100 0.97 (nlist / 8: 0.70).
        train_points_per_list: k-means trains on at most this many sampled items per list.
        seed: k-means seed (initial centroids and the training sample).
    """
    x = _as_numpy(items)
    n, d = x.shape
    # FAISS wants >= 39 training points per list; small catalogues get fewer, larger lists.
    nlist = max(1, min(n, nlist or min(round(4 * math.sqrt(n)), n // 39)))
    index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = train_points_per_list
    index.cp.seed = seed
    index.cp.verbose = False
    index.train(x)
    index.add(x)
    out = FaissItemIndex(index)
    out.set_search_params(nprobe=nprobe or max(1, nlist // 8))
    return out


def build_hnsw(items: Tensor, m: int = 32, ef_construction: int = 80, ef_search: int = 256) -> FaissItemIndex:
    """FAISS HNSW-flat inner-product index over (N, D) items.

    Args:
        items: (N, D) item vectors.
        m: graph links per node (2*m on the bottom layer).
        ef_construction: beam width while inserting; more builds slower and a better graph.
        ef_search: beam width while searching (raised to k' when a query asks for more). On 1M
            random Gaussian 64-d items (no structure, the worst case) recall@100 is 0.62 at 256
            and 0.97 at 2048.
    """
    x = _as_numpy(items)
    index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(x)
    out = FaissItemIndex(index)
    out.set_search_params(ef_search=ef_search)
    return out
