"""User encoders: history item vectors (B, T, D) + mask -> per-position user states (B, T, D)."""

from vrs.user.bidirectional import BidirectionalUserEncoder
from vrs.user.gru import GRUUserEncoder
from vrs.user.mf import UserEmbedding
from vrs.user.pooling import MeanUserEncoder
from vrs.user.sasrec import SASRecUserEncoder

__all__ = [
    "BidirectionalUserEncoder",
    "GRUUserEncoder",
    "MeanUserEncoder",
    "SASRecUserEncoder",
    "UserEmbedding",
]
