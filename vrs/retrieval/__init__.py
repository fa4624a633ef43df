"""Item retrieval: exact chunked top-K and FAISS ANN backends behind one `ItemIndex` interface."""

from vrs.retrieval.ann import (
    BACKENDS,
    ExactItemIndex,
    FaissItemIndex,
    ItemIndex,
    build_index,
)
from vrs.retrieval.index import ExactIndex, rank_and_topk

__all__ = [
    "BACKENDS",
    "ExactIndex",
    "ExactItemIndex",
    "FaissItemIndex",
    "ItemIndex",
    "build_index",
    "rank_and_topk",
]
