"""Pixel preprocessing shared by the image encoders: dtype, size and normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float_image(images: Tensor) -> Tensor:
    """Map uint8 pixels in 0..255 to float in [0, 1]; float input passes through unchanged.

    Args:
        images: (n, 3, H, W) uint8 or floating tensor.

    Returns:
        (n, 3, H, W) floating tensor in [0, 1].
    """
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    return images


def resize_normalize(
    images: Tensor,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> Tensor:
    """Convert to float, resize to ``size x size`` and normalise per channel.

    The resize squashes (no crop) because catalogue images are already letterboxed upstream and
    cropping would drop product pixels at the borders.

    Args:
        images: (n, 3, H, W) uint8 in 0..255 or float in [0, 1].
        size: Target height and width.
        mean: Per-channel mean subtracted after scaling to [0, 1].
        std: Per-channel standard deviation divided by after subtracting the mean.

    Returns:
        (n, 3, size, size) float tensor.
    """
    x = to_float_image(images)
    if x.shape[-2:] != (size, size):
        # antialias matters when shrinking large product photos; without it thin edges alias.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t
