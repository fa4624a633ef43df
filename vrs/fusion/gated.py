"""Gated fusion: a softmax over the present modalities weighs their projections."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, modality_order, present_matrix, zero_absent


class GatedFusion(nn.Module):
    """Per-item convex combination of per-modality projections.

    Gate logits come from the concatenation of all (absent ones zeroed) modality inputs; the softmax
    runs over present modalities only, so an absent modality gets weight exactly 0. Items with no
    modality at all get a learned "missing" vector.

    Args:
        in_dims: input width of each modality, keyed by modality name ("image", "text", "category", "id", ...).
        out_dim: item vector width D.
        dropout: dropout on the gate network's input.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.modalities = modality_order(in_dims)
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in self.modalities})
        self.gate = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(sum(in_dims[m] for m in self.modalities), len(self.modalities))
        )
        self.missing = missing_vector(out_dim)

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        pres = present_matrix(present, self.modalities)  # (n, M)
        inputs = [zero_absent(feats[m], present[m]) for m in self.modalities]
        logits = self.gate(torch.cat(inputs, dim=-1))  # (n, M)
        # A finite floor instead of -inf keeps all-absent rows NaN-free (they are replaced below).
        logits = logits.masked_fill(~pres, torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=-1) * pres  # (n, M)
        projected = torch.stack([self.proj[m](x) for m, x in zip(self.modalities, inputs, strict=True)], 1)
        fused = (weights[..., None] * projected).sum(dim=1)  # (n, M, D) -> (n, D)
        return torch.where(pres.any(dim=1, keepdim=True), fused, self.missing.to(fused.dtype))
