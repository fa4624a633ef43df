"""Parameter-free pooling baseline for user encoding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MeanUserEncoder(nn.Module):
    """Running mean of the real history item vectors: output at t = mean of real h[<= t].

    Parameter-free; padded positions (and fully padded rows) output zeros.

    Args:
        dim: item / user vector width D (unused; kept so all user encoders build alike).
        max_len: longest history T (unused).
        n_events: number of event types E (unused).
    """

    causal: bool = True

    def __init__(self, dim: int, max_len: int, n_events: int):
        super().__init__()
        self.dim = dim

    def forward(self, h: Tensor, mask: Tensor, events: Tensor) -> Tensor:
        """h (B, T, D), mask (B, T) bool, events (B, T) long -> (B, T, D)."""
        mask = mask.bool()
        x = torch.where(mask[..., None], h, 0.0)
        total = x.cumsum(dim=1)  # (B, T, D)
        count = mask.to(h.dtype).cumsum(dim=1)[..., None]  # (B, T, 1)
        return torch.where(mask[..., None], total / count.clamp(min=1.0), 0.0)
