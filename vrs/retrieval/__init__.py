"""Item retrieval: exact chunked top-K and FAISS ANN backends behind one `ItemIndex` interface."""

from typing import Any

from vrs.retrieval.index import ExactIndex, rank_and_topk

_ANN = ("BACKENDS", "ExactItemIndex", "FaissItemIndex", "ItemIndex", "build_index")

__all__ = ["ExactIndex", "rank_and_topk", *_ANN]


def __getattr__(name: str) -> Any:
    # FAISS loads (and logs) only for code that uses an ANN index, not for every evaluation.
    if name in _ANN:
        from vrs.retrieval import ann

        return getattr(ann, name)
    raise AttributeError(f"module 'vrs.retrieval' has no attribute {name!r}")
