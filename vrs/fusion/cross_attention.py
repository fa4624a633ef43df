"""Cross-modal attention: modality tokens attend to each other, then mean-pool."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, modality_order, present_matrix, zero_absent


class CrossAttentionFusion(nn.Module):
    """A small transformer over one token per modality.

    Each modality is projected to `out_dim` and tagged with a learned modality-type embedding;
    absent modalities are excluded through the key-padding mask and from the final mean-pool.

    Args:
        in_dims: input width of each modality, keyed by modality name ("image", "text", "category", "id", ...).
        out_dim: item vector width D (must be divisible by `n_heads`).
        n_heads: attention heads.
        n_layers: transformer layers.
        dropout: dropout inside the transformer layers.
    """

    def __init__(
        self, in_dims: dict[str, int], out_dim: int, n_heads: int = 2, n_layers: int = 1, dropout: float = 0.1
    ):
        super().__init__()
        if out_dim % n_heads:
            raise ValueError(f"out_dim={out_dim} must be divisible by n_heads={n_heads}")
        self.modalities = modality_order(in_dims)
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in self.modalities})
        self.type_emb = nn.Parameter(torch.randn(len(self.modalities), out_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            out_dim, n_heads, dim_feedforward=2 * out_dim, dropout=dropout, batch_first=True, norm_first=True
        )
        # No nested tensors: their fast path zeroes padded tokens differently in eval and train.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(out_dim)
        self.missing = missing_vector(out_dim)

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        pres = present_matrix(present, self.modalities)  # (n, M)
        any_present = pres.any(dim=1, keepdim=True)  # (n, 1)
        tokens = torch.stack(
            [self.proj[m](zero_absent(feats[m], present[m])) for m in self.modalities], dim=1
        )  # (n, M, D)
        tokens = torch.where(pres[..., None], tokens, 0.0) + self.type_emb
        # Rows with nothing present would have every key masked (NaN softmax): let them attend to
        # everything and overwrite their output with the missing vector below.
        key_padding = ~(pres | ~any_present)  # (n, M) True = ignore
        out = self.norm(self.encoder(tokens, src_key_padding_mask=key_padding))  # (n, M, D)
        weights = pres.to(out.dtype)[..., None]  # (n, M, 1)
        pooled = (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (n, D)
        return torch.where(any_present, pooled, self.missing.to(pooled.dtype))
