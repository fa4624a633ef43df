"""User encoders: history item vectors (B, T, D) + mask -> per-position user states (B, T, D)."""

from vrs.sequence.bidirectional import BidirectionalUserEncoder
from vrs.sequence.pooling import MeanUserEncoder
from vrs.sequence.sasrec import SASRecUserEncoder

__all__ = ["BidirectionalUserEncoder", "MeanUserEncoder", "SASRecUserEncoder"]
