"""The ID embedding as the item vector, content features beside it for an auxiliary loss only."""

from __future__ import annotations

from torch import Tensor, nn

from vrs.fusion.base import content_beside_id, modality_order, zero_absent


class SideFusion(nn.Module):
    """The learned ID embedding is the item vector; each content modality has a linear projection to
    D that only an auxiliary loss reads (FREEDOM's paper model: content shapes the item-item graph
    and an auxiliary BPR term, never the item vector itself).

    The module consumes every modality, so the item tower keeps (and freezes) the content towers
    whose features a graph encoder needs; `forward` returns the ID embedding unchanged.
    `RecModule` adds `weight` x sum over modalities m of BPR(user state, side_m(target),
    side_m(negative)) to the training loss, each modality with its own uniform negatives.

    Args:
        in_dims: input width of each modality; "id" (width `out_dim`) and at least one other.
        out_dim: item vector width D.
        weight: the auxiliary loss's weight (FREEDOM's `reg_weight`).
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int, weight: float = 0.001) -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = modality_order(in_dims)
        content = content_beside_id(in_dims, "side")
        if in_dims["id"] != out_dim:
            raise ValueError(
                f"fusion=side needs the ID embedding {out_dim} wide (model.dim), got {in_dims['id']}"
            )
        if weight < 0:
            raise ValueError(f"fusion.weight must be >= 0, got {weight}")
        self.out_dim = out_dim
        self.side_weight = float(weight)
        self.side = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in content})

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """feats[m] (n, in_dims[m]) -> the ID embedding (n, D)."""
        return feats["id"]

    def side_vector(self, modality: str, x: Tensor, present: Tensor) -> Tensor:
        """x (n, in_dims[modality]) features, present (n,) -> (n, D) projections of that content
        modality (zero for items lacking it: they add log 2 to the loss and no gradient)."""
        return self.side[modality](zero_absent(x, present)) * present.bool()[:, None].to(x.dtype)

    def extra_repr(self) -> str:
        return f"modalities={list(self.modalities)}, weight={self.side_weight}"
