"""Helpers shared by the fusion modules."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def modality_order(in_dims: dict[str, int]) -> tuple[str, ...]:
    """The modalities of `in_dims` in the order given: the order the config declares them in.

    The item tower hands its encoders' modalities in declaration order, with "id" last; concatenation
    layouts follow that order, and parameters are keyed by modality name.
    """
    if not in_dims:
        raise ValueError("a fusion needs at least one input modality, got in_dims={}")
    return tuple(in_dims)


def content_beside_id(in_dims: dict[str, int], fusion: str) -> tuple[str, ...]:
    """The content modalities of `in_dims`, in order, for a fusion that needs the ID embedding and
    at least one of them (an error naming `fusion` otherwise)."""
    content = tuple(m for m in modality_order(in_dims) if m != "id")
    if "id" not in in_dims or not content:
        raise ValueError(
            f"fusion={fusion} needs the ID embedding and at least one content modality, got {list(in_dims)} "
            "(model.use_id=true and an image or text encoder)"
        )
    return content


def missing_vector(dim: int) -> nn.Parameter:
    """A learned stand-in for an absent modality (or an item with no modality at all)."""
    return nn.Parameter(torch.randn(dim) * 0.02)


def present_matrix(present: dict[str, Tensor], modalities: tuple[str, ...]) -> Tensor:
    """Stack per-modality presence flags into (n, M) bool, in `modalities` order."""
    return torch.stack([present[m].bool() for m in modalities], dim=1)  # (n, M)


def zero_absent(x: Tensor, present: Tensor) -> Tensor:
    """(n, F) features with rows of absent items zeroed.

    Applied before any projection: masking only the projected output would still let NaN/inf in an
    absent row poison the weight gradient (0 * NaN = NaN in the matmul backward).
    """
    return torch.where(present.bool()[:, None], x, 0.0)
