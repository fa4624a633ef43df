"""Helpers shared by the fusion modules."""

from __future__ import annotations

import torch
from torch import Tensor, nn

MODALITY_ORDER: tuple[str, ...] = ("image", "text", "id")


def canonical_modalities(in_dims: dict[str, int]) -> tuple[str, ...]:
    """The modalities of `in_dims` in the fixed order image, text, id.

    A fixed order keeps parameter names and concatenation layouts identical however the caller
    ordered its dict, so checkpoints reload regardless.
    """
    unknown = set(in_dims) - set(MODALITY_ORDER)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; expected a subset of {MODALITY_ORDER}")
    if not in_dims:
        raise ValueError("a fusion needs at least one input modality, got in_dims={}")
    return tuple(m for m in MODALITY_ORDER if m in in_dims)


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
