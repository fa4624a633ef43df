"""What every encoder provides: pixels or tokens in, one vector per item out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn


class EncoderWeightsError(RuntimeError):
    """Pretrained weights were asked for but are not available offline."""


class ImageEncoder(nn.Module):
    """(n, 3, H, W) uint8 in 0..255 or float in [0, 1] -> (n, out_dim).

    Subclasses resize to their own input size and normalise themselves. `fixed_weights` is True when
    the weights were loaded from a fixed source (a package or a checkpoint file), so building the
    encoder again from its config reproduces them and a checkpoint need not store them while frozen.
    """

    out_dim: int
    fixed_weights: bool = False

    def forward(self, images: Tensor) -> Tensor:
        raise NotImplementedError


class TextEncoder(nn.Module):
    """Strings -> (n, L) token ids -> (n, out_dim). `fixed_weights`: as for ImageEncoder."""

    out_dim: int
    fixed_weights: bool = False

    def tokenize(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def forward(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass
class Towers:
    """The image and text towers an encoder config builds; either may be absent."""

    image: ImageEncoder | None
    text: TextEncoder | None


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """Set HF_HUB_OFFLINE=1 for the duration, then restore whatever was there before."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
