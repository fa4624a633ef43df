"""Bidirectional (BERT4Rec-style) transformer over the whole history."""

from __future__ import annotations

from vrs.user.sasrec import SASRecUserEncoder


class BidirectionalUserEncoder(SASRecUserEncoder):
    """The SASRec encoder without the causal mask: every position sees the whole (real) history.

    Because position t also sees events after t, only the last position is a valid user state for
    next-item prediction; training must not use per-position next-item targets (see `causal`).

    Args:
        dim: item / user vector width D.
        max_len: number of learned position embeddings (longest history T).
        n_events: number of event types E (ids 1..E, 0 = padding).
        n_layers: transformer blocks.
        n_heads: attention heads (must divide `dim`).
        dropout: dropout on the input embeddings, attention and residual branches.
    """

    causal: bool = False
