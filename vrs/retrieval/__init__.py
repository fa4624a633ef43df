"""Exact chunked retrieval over the item catalogue."""

from vrs.retrieval.index import ExactIndex, rank_and_topk

__all__ = ["ExactIndex", "rank_and_topk"]
