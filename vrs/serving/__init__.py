"""Serving a trained recommender: top-K lists with explanations, similar items, text search."""

from vrs.serving.base import item_vectors
from vrs.serving.items import encode_text_queries, search, similar, text_search_problem
from vrs.serving.recommend import COLD_USER_POLICIES, explain, recommend

__all__ = [
    "COLD_USER_POLICIES",
    "encode_text_queries",
    "explain",
    "item_vectors",
    "recommend",
    "search",
    "similar",
    "text_search_problem",
]
