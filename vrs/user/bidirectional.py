"""Bidirectional (BERT4Rec-style) transformer over the whole history."""

from __future__ import annotations

from vrs.user.sasrec import SASRecUserEncoder


class BidirectionalUserEncoder(SASRecUserEncoder):
    """The SASRec encoder without the causal mask: every position sees the whole (real) history.

    Because position t also sees events after t, only the last position is a valid user state for
    next-item prediction; training must not use per-position next-item targets (see `causal`).

    Args: as for `SASRecUserEncoder`.
    """

    causal: bool = False
