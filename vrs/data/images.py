"""Decoding item images and assembling the catalogue's :class:`ItemContent`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from vrs.data.content import ItemContent
from vrs.data.schema import Dataset, DatasetError, check_image_links, preview

BAD_IMAGE_MODES = ("error", "skip", "blank")
_PROGRESS_MIN = 2000  # below this many images a progress bar is noise
# What PIL raises for a file it will not decode: corrupt files give OSError (incl.
# UnidentifiedImageError) and, for some formats, ValueError/SyntaxError; an image declaring more
# than Image.MAX_IMAGE_PIXELS pixels gives DecompressionBombError past twice the limit and, past the
# limit, a DecompressionBombWarning, which is raised when warnings are errors (python -W error).
BAD_IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def load_image(path: Path, size: int) -> torch.Tensor:
    """Decode an image to a square RGB tensor.

    The image is centre-cropped to a square and then resized to ``size`` (bicubic), so the aspect ratio
    is kept and no padding appears; edges of non-square images are cut. Transparent pixels are composited
    onto white (product shots on a transparent background would otherwise turn black); grayscale,
    palette and CMYK images are converted to RGB, and EXIF rotation is applied.

    Args:
        path: the image file.
        size: output side length in pixels.

    Returns:
        (3, size, size) uint8 tensor.

    Raises:
        OSError: when the file is missing, truncated or not an image PIL can decode; one of
            ``BAD_IMAGE_ERRORS`` in general (a decompression bomb, some corrupt formats).
    """
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        img = img.convert("RGB")
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)
        pixels = np.asarray(img, dtype=np.uint8)  # (size, size, 3)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()  # (3, size, size)


def _item_text(title: object, category: object, description: object) -> str:
    parts = [str(p).strip() for p in (title, category, description) if isinstance(p, str)]
    return ". ".join(p for p in parts if p)


def load_item_content(
    ds: Dataset, image_size: int = 64, on_bad_image: str = "error", load_images: bool = True
) -> ItemContent:
    """Texts and decoded images of the whole catalogue, in catalogue order.

    Args:
        ds: a loaded dataset.
        image_size: side length of the square images.
        on_bad_image: what to do with an image that is missing or cannot be decoded:
            "error" raises :class:`DatasetError` listing the bad files; "skip" treats the item as having
            no image (zeros, ``has_image`` False) and warns with the count; "blank" does the same — the
            item gets a blank (all-zero) image flagged absent, so fusion uses its other modalities.
        load_images: False skips decoding pixels (models that use no image): images is None.

    Returns:
        ItemContent with images (N, 3, image_size, image_size) uint8 (None when no item has a usable
        image), has_image (N,), texts "title. category. description" (empty parts skipped), has_text (N,).

    Raises:
        ValueError: for an unknown ``on_bad_image``.
        DatasetError: for bad images when ``on_bad_image="error"``.
    """
    if on_bad_image not in BAD_IMAGE_MODES:
        raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_MODES}, got {on_bad_image!r}")
    items = ds.items
    n = len(items)
    texts = [
        _item_text(t, c, d)
        for t, c, d in zip(items["title"], items["category"], items["description"], strict=True)
    ]
    has_text = torch.tensor([bool(t) for t in texts], dtype=torch.bool)  # (N,)
    has_image = torch.zeros(n, dtype=torch.bool)  # (N,)

    paths = items["image"]
    rows = np.flatnonzero(paths.notna().to_numpy()) if load_images else np.empty(0, dtype=np.int64)
    if len(rows):
        check_image_links(ds)  # also when load_dataset skipped it: no reads outside the dataset
    images = None
    bad: list[str] = []
    bombs = 0
    if len(rows):
        images = torch.zeros(n, 3, image_size, image_size, dtype=torch.uint8)  # (N, 3, H, W)
        progress = tqdm(rows, desc="images", unit="img", disable=len(rows) <= _PROGRESS_MIN)
        for row in progress:
            rel = str(paths.iloc[row])
            try:
                images[row] = load_image(ds.root / rel, image_size)
            except BAD_IMAGE_ERRORS as err:
                bad.append(rel)
                bombs += isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning))
                continue
            has_image[row] = True
    if bad:
        why = (
            f" ({bombs} larger than PIL's decompression-bomb limit, Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS} pixels)"
            if bombs
            else ""
        )
        if on_bad_image == "error":
            raise DatasetError(
                f"items.parquet: column 'image' names {len(bad)} missing or unreadable image file(s) "
                f"under {ds.root}: {preview(bad)}{why}; expected decodable images "
                "(or pass on_bad_image='skip' / 'blank')"
            )
        warnings.warn(
            f"{len(bad)} of {len(rows)} images missing or unreadable under {ds.root} "
            f"({preview(bad)}){why}; those items are treated as having no image",
            stacklevel=2,
        )
    if not bool(has_image.any()):
        images = None
    return ItemContent(images=images, has_image=has_image, texts=texts, has_text=has_text)
