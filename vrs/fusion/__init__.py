"""Fusion modules: per-modality item vectors (+ ID embedding) -> one item vector."""

from vrs.fusion.base import modality_order
from vrs.fusion.concat import ConcatFusion
from vrs.fusion.cross_attention import CrossAttentionFusion
from vrs.fusion.gated import GatedFusion
from vrs.fusion.late import LateFusion
from vrs.fusion.side import SideFusion
from vrs.fusion.single_modality import SingleModalityFusion
from vrs.fusion.sum import SumFusion
from vrs.fusion.vbpr import VBPRFusion

__all__ = [
    "ConcatFusion",
    "CrossAttentionFusion",
    "GatedFusion",
    "LateFusion",
    "SideFusion",
    "SingleModalityFusion",
    "SumFusion",
    "VBPRFusion",
    "modality_order",
]
