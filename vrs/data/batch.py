"""The batch every model, loss and metric consumes."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class RecBatch:
    """A batch of left-padded user histories.

    Attributes:
        items: (B, T) history item indices in [0, N); 0 at padding.
        events: (B, T) event-type ids in [1, E]; 0 at padding.
        mask: (B, T) True at real events.
        targets: training: (B, T) next item after each position, -1 where none;
            evaluation: (B,) held-out item.
        seen: evaluation only: (B, S) every item the user had before the target (not truncated
            to T), -1 padded; used to exclude already-seen candidates.
        index: evaluation only: (B,) row id of each sample, so DDP padding can be de-duplicated.
        users: (B,) user indices.
        times: (B, T) int64 timestamps of the history events (the table's units), 0 at padding;
            None when the history came without them (a new user's, in serving).
    """

    items: Tensor
    events: Tensor
    mask: Tensor
    targets: Tensor
    seen: Tensor | None = None
    index: Tensor | None = None
    users: Tensor | None = None
    times: Tensor | None = None

    def to(self, device: torch.device | str) -> RecBatch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return RecBatch(**{k: v.to(device) if v is not None else None for k, v in values.items()})

    def __len__(self) -> int:
        return self.items.shape[0]
