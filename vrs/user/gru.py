"""GRU4Rec: a recurrent network over the history's item vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class GRUUserEncoder(nn.Module):
    """GRU4Rec (Hidasi et al., 2016; as RecBole runs it): dropout on the item vectors, a GRU, and a
    projection back to D. The state after event t is the user at t, so it is causal.

    The GRU runs over the real events only, oldest first, whatever the padding: a left-padded row is
    read as if it had no padding (packed sequences), so padding never enters the state.

    Args:
        dim: item / user vector width D.
        max_len: longest history T (unused: a GRU has no positions).
        n_events: number of event types E.
        hidden: GRU width (None: D).
        n_layers: stacked GRU layers.
        dropout: on the input vectors (and between layers).
        event_embedding: add a learned event-type embedding to each input vector.
        bias: the GRU's gates have biases (RecBole's GRU4Rec has none).
    """

    causal: bool = True

    def __init__(
        self,
        dim: int,
        max_len: int,
        n_events: int,
        hidden: int | None = None,
        n_layers: int = 1,
        dropout: float = 0.3,
        event_embedding: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden = hidden or dim
        self.dim = dim
        self.event_emb = nn.Embedding(n_events + 1, dim, padding_idx=0) if event_embedding else None
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(
            dim,
            hidden,
            num_layers=n_layers,
            bias=bias,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.out = nn.Linear(hidden, dim) if hidden != dim else nn.Identity()

    def forward(self, h: Tensor, mask: Tensor, events: Tensor) -> Tensor:
        """h (B, T, D), mask (B, T) bool, events (B, T) long -> (B, T, D); zeros at padding."""
        mask = mask.bool()
        T = h.shape[1]
        x = h if self.event_emb is None else h + self.event_emb(events * mask)
        x = self.dropout(torch.where(mask[..., None], x, 0.0))
        # Real events first, in their order (a stable sort of the padding flags), then back.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T)
        back = torch.argsort(order, dim=1)
        lengths = mask.sum(dim=1)
        packed = pack_padded_sequence(
            x.gather(1, order[..., None].expand_as(x)),
            lengths.clamp(min=1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        states, _ = self.gru(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=T)  # (B, T, H)
        states = states.gather(1, back[..., None].expand(-1, -1, states.shape[-1]))
        return torch.where(mask[..., None], self.out(states), 0.0)
