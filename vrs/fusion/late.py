"""Late fusion: one block per modality, so a dot product is a sum of per-modality scores."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, modality_order, zero_absent


class LateFusion(nn.Module):
    """Item vector = concatenation of per-modality projections, about `out_dim / M` wide each.

    Because blocks do not mix, `user @ item` equals the sum over modalities of the block dot products
    (`slices[m]` gives each block), which is score-level late fusion while keeping one item vector.
    An absent modality's block is a learned per-modality "missing" block, so an item with nothing
    present gets a learned vector.

    Args:
        in_dims: input width of each modality, keyed by modality name ("image", "text", "category", "id", ...).
        out_dim: item vector width D (≥ the number of modalities); when it does not divide evenly,
            the first blocks are one wider.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int):
        super().__init__()
        self.modalities = modality_order(in_dims)
        n = len(self.modalities)
        if out_dim < n:
            raise ValueError(f"LateFusion needs out_dim ({out_dim}) >= the number of modalities ({n})")
        widths = [out_dim // n + (i < out_dim % n) for i in range(n)]
        starts = [sum(widths[:i]) for i in range(n)]
        self.out_dim = out_dim
        self.slices: dict[str, slice] = {
            m: slice(starts[i], starts[i] + widths[i]) for i, m in enumerate(self.modalities)
        }
        self.proj = nn.ModuleDict(
            {m: nn.Linear(in_dims[m], w) for m, w in zip(self.modalities, widths, strict=True)}
        )
        self.missing = nn.ParameterDict(
            {m: missing_vector(w) for m, w in zip(self.modalities, widths, strict=True)}
        )

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        blocks = []
        for m in self.modalities:
            x = self.proj[m](zero_absent(feats[m], present[m]))  # (n, D / M)
            blocks.append(torch.where(present[m].bool()[:, None], x, self.missing[m].to(x.dtype)))
        return torch.cat(blocks, dim=-1)  # (n, D)
