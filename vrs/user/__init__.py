"""User encoders: history item vectors (B, T, D) + mask -> per-position user states (B, T, D)."""

from vrs.user.bidirectional import BidirectionalUserEncoder
from vrs.user.pooling import MeanUserEncoder
from vrs.user.sasrec import SASRecUserEncoder

__all__ = ["BidirectionalUserEncoder", "MeanUserEncoder", "SASRecUserEncoder"]
