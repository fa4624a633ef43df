"""One modality only: the image_only / text_only / id_only ablations."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.fusion.base import missing_vector, zero_absent


class SingleModalityFusion(nn.Module):
    """A linear projection of one modality; items lacking it get a learned "missing" vector.

    Args:
        in_dims: input width of each available modality; only `modality` is used.
        out_dim: item vector width D.
        modality: the modality's name ("image", "text", "category", "id", ...).
        project: False passes the modality through unchanged (its width must be D): an ID-only
            model is then a plain embedding table, as in SASRec.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int, modality: str, project: bool = True):
        super().__init__()
        if modality not in in_dims:
            raise ValueError(
                f"{modality}_only fusion needs a {modality!r} input, but the item tower only provides "
                f"{list(in_dims)} (no {modality} tower configured, or use_id=False for 'id')"
            )
        self.modality = modality
        self.modalities: tuple[str, ...] = (modality,)
        self.out_dim = out_dim
        if not project and in_dims[modality] != out_dim:
            raise ValueError(
                f"project=false needs the {modality} input to be {out_dim} wide (model.dim), got "
                f"{in_dims[modality]}"
            )
        self.proj = nn.Linear(in_dims[modality], out_dim) if project else nn.Identity()
        self.missing = missing_vector(out_dim)

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]), present[m] (n,) bool -> (n, out_dim)."""
        present_m = present[self.modality].bool()
        x = self.proj(zero_absent(feats[self.modality], present_m))  # (n, D)
        return torch.where(present_m[:, None], x, self.missing.to(x.dtype))
