"""Bidirectional (BERT4Rec-style) transformer over the whole history."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.user.sasrec import SASRecUserEncoder


class BidirectionalUserEncoder(SASRecUserEncoder):
    """The SASRec encoder without the causal mask: every position sees the whole (real) history.

    Because position t also sees events after t, per-position next-item targets would leak. Two ways
    to train it:

    - `mask_prob=0` (default): on the state at the last position only, whose target is the next item.
    - `mask_prob>0`: BERT4Rec's cloze task. The model (`RecModule`) replaces a random `mask_prob` share
      of each history's items with a learned mask vector (at least one, the most recent when the draw
      takes none) and trains the states at those positions to recover the hidden items; every
      position of every history teaches. To predict, a mask vector is appended after the history
      (dropping its oldest item when the history is full) and the state there is the user vector.

    Args: as for `SASRecUserEncoder`, plus
        mask_prob: the share of items hidden per history in cloze training (0: last-position training).
    """

    causal: bool = False

    def __init__(self, *args, mask_prob: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
        self.mask_prob = float(mask_prob)
        self.mask_vector = nn.Parameter(torch.randn(self.dim) * 0.02) if mask_prob > 0 else None

    @property
    def cloze(self) -> bool:
        """Trained by the cloze task (see the class docstring)."""
        return self.mask_vector is not None

    def forward(self, h: Tensor, mask: Tensor, events: Tensor, cloze: Tensor | None = None) -> Tensor:
        """h (B, T, D), mask (B, T) bool, events (B, T) -> (B, T, D).

        cloze (B, T) bool: the positions whose item is hidden (training). Without it, a cloze model
        appends the mask vector after each history: the state at position T-1 is then the prediction
        of the next item.
        """
        if self.mask_vector is None:
            if cloze is not None:
                raise ValueError("cloze positions given to an encoder built with mask_prob=0")
            return super().forward(h, mask, events)
        mask = mask.bool()
        vector = self.mask_vector.to(h.dtype)
        if cloze is not None:
            h = torch.where(cloze[..., None], vector, h)
        else:  # shift left by one (the oldest event of a full history drops out) and append the mask
            b = h.shape[0]
            h = torch.cat([h[:, 1:], vector.expand(b, 1, -1)], dim=1)
            mask = torch.cat([mask[:, 1:], mask.new_ones(b, 1)], dim=1)
            events = torch.cat([events[:, 1:], events[:, -1:]], dim=1)
        return super().forward(h, mask, events)
