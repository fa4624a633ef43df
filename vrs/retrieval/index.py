"""One search interface, `ItemIndex`, over the exact kernel and FAISS approximate (ANN) indexes.

`build_index(items, backend)` returns an `ItemIndex`; every backend answers `search(queries, k,
exclude)` with one contract (maximum inner product, excluded items never returned, best first, a
-inf / -1 tail) and persists itself with `save(path)` / `ItemIndex.load(path)`.

Backends (`INDEX_BACKENDS`, all inner product; item ids are catalogue positions 0..N-1):
    exact  `ExactItemIndex`: `rank_and_topk`, the evaluation kernel; masks excluded items in the scan.
    flat   FAISS `IndexFlatIP`: brute force, exact up to float rounding.
    ivf    FAISS `IndexIVFFlat`: k-means lists (spherical centroids), `nprobe` lists scanned per query.
    hnsw   FAISS `IndexHNSWFlat`: a navigable graph, beam width `ef_search`.

The FAISS backends live in `vrs.retrieval.ann`, imported only when one is built or loaded: FAISS
loads (and logs) only for code that uses it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from torch import Tensor

from vrs.io import atomic_write
from vrs.retrieval.scoring import rank_and_topk

INDEX_BACKENDS = ("exact", "flat", "ivf", "hnsw")
_FORMAT = "vrs.ItemIndex/1"  # safetensors metadata of exact indexes; FAISS backends use FAISS's format


class ItemIndex(ABC):
    """Top-K maximum-inner-product search over a fixed catalogue of N item vectors of size D."""

    backend: str  # one of INDEX_BACKENDS

    @property
    @abstractmethod
    def dim(self) -> int:
        """D, the size of item and query vectors."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def search(self, queries: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Top-K items by inner product.

        Args:
            queries: (B, D) query (user) vectors.
            k: number of results per query.
            exclude: (B, S) item ids never to return (e.g. seen items), -1 padded, or None.

        Returns:
            scores (B, K) float32 and idx (B, K) long, best first. When fewer than K items remain
            after exclusion (or K > N) the tail holds score -inf and index -1.
        """

    @property
    def params(self) -> dict[str, int]:
        """Build and search parameters (empty for brute-force backends)."""
        return {}

    @abstractmethod
    def _write(self, path: str) -> None: ...

    def save(self, path: str | Path) -> Path:
        """Writes the index to `path` atomically (a temp file renamed over it)."""
        return atomic_write(path, self._write)

    @classmethod
    def load(cls, path: str | Path) -> ItemIndex:
        """Reads an index written by `save`; `SomeIndex.load` also checks the file holds that class."""
        path = Path(path)
        if _is_exact_file(path):
            from safetensors.torch import load_file  # only for saved indexes: the kernel needs torch alone

            index: ItemIndex = ExactItemIndex(load_file(path)["items"])
        else:
            from vrs.retrieval.ann import read_faiss_index

            index = read_faiss_index(path)
        if not isinstance(index, cls):
            raise TypeError(f"{path} holds a {type(index).__name__}, not a {cls.__name__}")
        return index

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params.items())
        return f"{type(self).__name__}(backend={self.backend!r}, n={len(self)}, dim={self.dim}{extra})"


class ExactItemIndex(ItemIndex):
    """Exact search: `rank_and_topk` over the item matrix; results come back on the items' device.

    Args:
        items: (N, D) item vectors (kept as float32).
        chunk_size: upper bound on items scored per matmul (see `rank_and_topk`).
    """

    backend = "exact"

    def __init__(self, items: Tensor, chunk_size: int = 65536) -> None:
        if items.ndim != 2:
            raise ValueError(f"items must be (N, D), got {tuple(items.shape)}")
        self.items = items.detach().float()
        self.chunk_size = chunk_size

    @property
    def dim(self) -> int:
        return self.items.shape[1]

    def __len__(self) -> int:
        return self.items.shape[0]

    def search(self, queries: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        ranking = rank_and_topk(queries.to(self.items.device), self.items, None, exclude, k, self.chunk_size)
        return ranking.top_scores, ranking.top_items

    def _write(self, path: str) -> None:
        items = self.items.cpu().contiguous()
        from safetensors.torch import save_file

        save_file({"items": items}, path, metadata={"format": _FORMAT, "backend": self.backend})


def build_index(
    items: Tensor, backend: str = "exact", index_dir: str | Path | None = None, **params: Any
) -> ItemIndex:
    """An `ItemIndex` of `backend` over (N, D) items.

    Args:
        items: (N, D) item vectors (normalise them first for cosine search).
        backend: one of `INDEX_BACKENDS`.
        index_dir: where `vrs-index build` saved indexes; an approximate index saved there over
            exactly these vectors is loaded (as saved, `params` unused) instead of being built.
        params: go to `ExactItemIndex` or to `vrs.retrieval.ann`'s `build_flat`, `build_ivf` or
            `build_hnsw` (see those for defaults).
    """
    if backend not in INDEX_BACKENDS:
        raise ValueError(f"index={backend!r}: expected one of {INDEX_BACKENDS}")
    if backend == "exact":
        return ExactItemIndex(items, **params)
    from vrs.retrieval import ann  # FAISS only when an ANN index is asked for

    if index_dir is not None:
        path = saved_index_path(index_dir, items, backend)
        if path.is_file():
            return ItemIndex.load(path)
    builders = {"flat": ann.build_flat, "ivf": ann.build_ivf, "hnsw": ann.build_hnsw}
    return builders[backend](items, **params)


def saved_index_path(index_dir: str | Path, items: Tensor, backend: str) -> Path:
    """The file an index of `backend` over exactly `items` is saved to: the name holds a hash of the
    vectors, so an index built for other vectors (another checkpoint, other data) is never used."""
    digest = hashlib.blake2b(items.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=8)
    return Path(index_dir) / f"{backend}-{digest.hexdigest()}.index"


def _is_exact_file(path: Path) -> bool:
    """Whether `path` is a safetensors file written by `ExactItemIndex` (else it should be FAISS's)."""
    # safetensors: a little-endian u64 header length, then that many bytes of JSON.
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size > 1 << 20:
            return False
        try:
            header = json.loads(f.read(size))
        except ValueError:
            return False
    return isinstance(header, dict) and header.get("__metadata__", {}).get("format") == _FORMAT
