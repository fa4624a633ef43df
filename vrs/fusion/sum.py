"""Project every modality to the item width and add them up."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, modality_order, present_matrix, zero_absent


class SumFusion(nn.Module):
    """Sum of per-modality linear projections over the present modalities.

    Args:
        in_dims: input width of each modality, keyed by modality name ("image", "text", "category", "id", ...).
        out_dim: item vector width D.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int):
        super().__init__()
        self.modalities = modality_order(in_dims)
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in self.modalities})
        self.missing = missing_vector(out_dim)

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        pres = present_matrix(present, self.modalities)  # (n, M)
        projected = torch.stack(
            [self.proj[m](zero_absent(feats[m], present[m])) for m in self.modalities], dim=1
        )  # (n, M, D)
        summed = torch.where(pres[..., None], projected, 0.0).sum(dim=1)  # (n, D)
        return torch.where(pres.any(dim=1, keepdim=True), summed, self.missing.to(summed.dtype))
