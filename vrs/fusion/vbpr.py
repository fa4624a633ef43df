"""VBPR's item vector: ID factors, projected content factors and a bias, side by side."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import content_beside_id, modality_order, zero_absent


class VBPRFusion(nn.Module):
    """VBPR's item (He and McAuley, 2016) as one vector, so a dot product with `user=mf`'s user
    (with `user.item_bias=true`: its last coordinate is 1) is VBPR's score
    ``beta_i + beta' f_i + gamma_u . gamma_i + theta_u . (E f_i)``.

    The item vector is ``[gamma_i | E f_i | beta_i + beta' f_i]``: gamma_i the first `id_dim`
    columns of the ID embedding, beta_i its next column, f_i the content features (every content
    modality side by side, zero where absent), E (F, D - id_dim - 1) and beta' (F,) linear maps
    without bias (a bias would add the same amount to every item's score).

    Args:
        in_dims: input width of each modality; "id" (at least `id_dim` + 1 wide) and at least one
            content modality.
        out_dim: item vector width D.
        id_dim: width of the ID factors gamma (VBPR's K; the content factors get D - K - 1).
            None: half of D.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int, id_dim: int | None = None) -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = modality_order(in_dims)
        self.content = content_beside_id(in_dims, "vbpr")
        k = out_dim // 2 if id_dim is None else id_dim
        if not 1 <= k <= out_dim - 2:
            raise ValueError(f"fusion.id_dim must be in [1, {out_dim - 2}] for model.dim={out_dim}, got {k}")
        if in_dims["id"] < k + 1:
            raise ValueError(
                f"fusion=vbpr reads {k + 1} columns of the ID embedding, which is {in_dims['id']} wide"
            )
        self.out_dim, self.id_dim = out_dim, k
        width = sum(in_dims[m] for m in self.content)
        self.visual = nn.Linear(width, out_dim - k - 1, bias=False)  # E
        self.visual_bias = nn.Linear(width, 1, bias=False)  # beta'

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, D)."""
        f = torch.cat([zero_absent(feats[m], present[m]) for m in self.content], dim=-1)  # (n, F)
        ids = feats["id"]
        bias = ids[:, self.id_dim : self.id_dim + 1] + self.visual_bias(f)  # (n, 1)
        return torch.cat([ids[:, : self.id_dim], self.visual(f), bias], dim=-1)

    def extra_repr(self) -> str:
        return f"content={list(self.content)}, id_dim={self.id_dim}, out_dim={self.out_dim}"
