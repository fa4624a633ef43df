"""What the serving functions share: inference mode, item vectors, the search index, id look-ups."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from vrs.models.recommender import Recommender
from vrs.retrieval.index import ExactIndex

INDEX_BACKENDS = ("exact", "flat", "ivf", "hnsw")
_SHOW = 5  # ids an error message lists before "..."


class Searcher(Protocol):
    """Top-K maximum inner product search (`ExactIndex` and every `vrs.retrieval.ann.ItemIndex`)."""

    def search(self, queries: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


def build_search_index(
    items: Tensor, backend: str = "exact", index_dir: str | Path | None = None
) -> Searcher:
    """An inner-product index over (N, D) items.

    Args:
        items: (N, D) item vectors (normalise them first for cosine search).
        backend: "exact" (chunked brute force) or a FAISS backend of `vrs.retrieval.ann`:
            "flat", "ivf" or "hnsw".
        index_dir: where `vrs-index build` saved indexes; one built over exactly these vectors is
            loaded instead of being built again.
    """
    if backend not in INDEX_BACKENDS:
        raise ValueError(f"index={backend!r}: expected one of {INDEX_BACKENDS}")
    if backend == "exact":
        return ExactIndex(items)
    from vrs.retrieval.ann import ItemIndex, build_index  # FAISS only when an ANN index is asked for

    if index_dir is not None:
        path = saved_index_path(index_dir, items, backend)
        if path.is_file():
            return ItemIndex.load(path)
    return build_index(items, backend=backend)


def saved_index_path(index_dir: str | Path, items: Tensor, backend: str) -> Path:
    """The file an index of `backend` over exactly `items` is saved to: the name holds a hash of the
    vectors, so an index built for other vectors (another checkpoint, other data) is never used."""
    digest = hashlib.blake2b(items.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=8)
    return Path(index_dir) / f"{backend}-{digest.hexdigest()}.index"


@contextlib.contextmanager
def inference(module: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the module's previous mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def item_vectors(net: Recommender) -> Tensor:
    """The whole catalogue's item vectors (N, D), computed in eval mode."""
    with inference(net):
        return net.encode_items()  # (N, D)


def describe_ids(ids: Sequence[str]) -> str:
    """ "'a', 'b', ... (12 in all)": the first few ids of a list, for error messages."""
    shown = ", ".join(repr(i) for i in ids[:_SHOW])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _SHOW else "")


def lookup(index: Mapping[str, int], ids: Sequence[object]) -> tuple[list[int], list[str]]:
    """Positions of `ids` in `index` (ids compare as strings: the canonical format stores them so).

    Returns:
        (positions of the known ids, in order; the unknown ids, in order).
    """
    known, unknown = [], []
    for raw in ids:
        key = str(raw)
        if key in index:
            known.append(index[key])
        else:
            unknown.append(key)
    return known, unknown


def require_known(index: Mapping[str, int], ids: Sequence[object], what: str) -> list[int]:
    """Positions of `ids` in `index`; a ValueError naming the unknown ones ("3 unknown {what}: ...")."""
    known, unknown = lookup(index, ids)
    if unknown:
        raise ValueError(f"{len(unknown)} unknown {what}: {describe_ids(unknown)}")
    return known
