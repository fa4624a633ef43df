"""Item content (pixels and text) in the form the item tower consumes."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ItemContent:
    """Content of the whole catalogue, in catalogue order.

    Attributes:
        images: (N, 3, H, W) uint8, zeros where an item has no image; None when no item has one.
        has_image: (N,) bool.
        texts: N strings ("title. category. description").
        has_text: (N,) bool, False where the text is empty.
    """

    images: Tensor | None
    has_image: Tensor
    texts: list[str]
    has_text: Tensor

    def __len__(self) -> int:
        return len(self.texts)
