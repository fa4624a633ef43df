"""Item content (pixels, text and the catalogue's other columns) in the form the item tower consumes.

Each modality encoder reads what it needs (`vrs.encoders.base.ModalityEncoder.read`): images, the
item texts, or a column of the items table by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from vrs.data.images import ImageFiles


class ItemContent:
    """Content of the whole catalogue, in catalogue order.

    Built from image files (`from_files`), the images are decoded on first use of `images` or
    `has_image`: a run whose image features come from the feature cache reads `image_files`
    instead and never decodes them.

    Attributes:
        images: (N, 3, H, W) uint8, zeros where an item has no image; None when no item has one.
        has_image: (N,) bool.
        texts: N strings ("title. category. description").
        has_text: (N,) bool, False where the text is empty.
        image_files: the image files the images are decoded from (None: images given in memory).
        columns: the items table's other columns by name (title, description, category, extras),
            N values each in catalogue order; read with `column`.
    """

    def __init__(
        self,
        images: Tensor | None,
        has_image: Tensor,
        texts: list[str],
        has_text: Tensor,
        image_files: ImageFiles | None = None,
        columns: Mapping[str, Sequence[object]] | None = None,
    ) -> None:
        self._images = images
        self._has_image = has_image
        self.texts = texts
        self.has_text = has_text
        self.image_files = image_files
        self.columns = dict(columns or {})

    @classmethod
    def from_files(
        cls,
        files: ImageFiles,
        texts: list[str],
        has_text: Tensor,
        columns: Mapping[str, Sequence[object]] | None = None,
    ) -> ItemContent:
        """Content whose images are decoded from `files` when first read."""
        return cls(None, None, texts, has_text, image_files=files, columns=columns)  # type: ignore[arg-type]

    def column(self, name: str) -> Sequence[object]:
        """The N values of the items table's column `name`, in catalogue order.

        Raises:
            KeyError: the catalogue has no such column.
        """
        if name not in self.columns:
            raise KeyError(f"the items table has no column {name!r}; it has {sorted(self.columns)}")
        return self.columns[name]

    @property
    def decoded(self) -> bool:
        """Whether the pixels are in memory (always, for content built from tensors)."""
        return self._has_image is not None

    @property
    def images(self) -> Tensor | None:
        self._decode()
        return self._images

    @property
    def has_image(self) -> Tensor:
        self._decode()
        return self._has_image

    def pixels(self, idx: list[int]) -> Tensor | None:
        """(n, 3, H, W) uint8 images of items `idx`: from memory once decoded, otherwise only their
        files are decoded. None when there are no images."""
        if self.image_files is not None and not self.decoded:
            return self.image_files.load(idx)[0]
        return None if self.images is None else self.images[idx]

    def _decode(self) -> None:
        if self._has_image is None:
            assert self.image_files is not None
            self._images, self._has_image = self.image_files.load_all()

    def __len__(self) -> int:
        return len(self.texts)
