"""Concatenate modality vectors and mix them with an MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, modality_order


class ConcatFusion(nn.Module):
    """Concatenation -> linear projection -> residual MLP block (GELU-Dropout-Linear).

    The residual keeps a linear path from every input feature to the item vector: with frozen
    pretrained features a plain MLP bottleneck trained several times slower on the synthetic
    benchmark (val NDCG@10 0.011 vs 0.05 for a linear projection after 10 epochs).

    An absent modality is replaced by a learned per-modality "missing" vector before concatenation,
    so the MLP can tell "no image" apart from any real image; an item with every modality absent
    therefore maps to a learned vector too.

    Args:
        in_dims: input width of each modality, keyed by modality name ("image", "text", "category", "id", ...).
        out_dim: item vector width D.
        hidden: MLP hidden width; defaults to `out_dim`.
        dropout: dropout after the hidden activation.
    """

    def __init__(
        self, in_dims: dict[str, int], out_dim: int, hidden: int | None = None, dropout: float = 0.1
    ):
        super().__init__()
        self.modalities = modality_order(in_dims)
        self.in_dims = {m: in_dims[m] for m in self.modalities}
        self.out_dim = out_dim
        self.missing = nn.ParameterDict({m: missing_vector(d) for m, d in self.in_dims.items()})
        hidden = hidden or out_dim
        self.proj = nn.Linear(sum(self.in_dims.values()), out_dim)
        self.mlp = nn.Sequential(
            nn.GELU(), nn.Linear(out_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        parts = [
            torch.where(present[m].bool()[:, None], feats[m], self.missing[m].to(feats[m].dtype))
            for m in self.modalities
        ]
        h = self.proj(torch.cat(parts, dim=-1))  # (n, sum in_dims) -> (n, D)
        return h + self.mlp(h)
