"""Item retrieval: the exact scoring kernel and one `ItemIndex` interface over exact and FAISS search."""

from typing import Any

from vrs.retrieval.index import INDEX_BACKENDS, ExactItemIndex, ItemIndex, build_index, saved_index_path
from vrs.retrieval.scoring import Ranking, UserScorer, rank_and_topk, score_batch

__all__ = [
    "INDEX_BACKENDS",
    "ExactItemIndex",
    "FaissItemIndex",
    "ItemIndex",
    "Ranking",
    "UserScorer",
    "build_index",
    "rank_and_topk",
    "saved_index_path",
    "score_batch",
]


def __getattr__(name: str) -> Any:
    # FAISS loads (and logs) only for code that uses an ANN index, not for every evaluation.
    if name == "FaissItemIndex":
        from vrs.retrieval.ann import FaissItemIndex

        return FaissItemIndex
    raise AttributeError(f"module 'vrs.retrieval' has no attribute {name!r}")
