"""Decoding item images and assembling the catalogue's :class:`ItemContent`.

The catalogue's image files are an :class:`ImageFiles`: decoded in parallel (worker threads; Pillow
releases the GIL while it decodes and resizes), only when pixels are asked for, and keyed for the
feature cache by their bytes, so frozen-encoder runs whose features are cached decode nothing.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import PIL
import torch
from PIL import Image, ImageOps, features
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
# What `load_image` does, in the cache key of decoded images: change it whenever its output changes.
DECODER = "load_image v1: EXIF rotation, transparency over white, RGB, centre square crop, bicubic"
_CHUNK = 64  # files per task of the decoding and hashing threads


def load_image(path: Path | BinaryIO, size: int) -> torch.Tensor:
    """Decode an image (a file, or its bytes as a file object) to a square RGB tensor.

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
    return torch.from_numpy(_decode_array(path, size))  # (3, size, size)


def _decode_array(path: Path | BinaryIO, size: int) -> np.ndarray:
    """`load_image` as a (3, size, size) uint8 array. The channel transpose is numpy's: torch's
    uint8 permute-copy costs ~0.3 ms an image on one thread and far more when decoder threads share
    torch's thread pool."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        img = img.convert("RGB")
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)
        pixels = np.asarray(img, dtype=np.uint8)  # (size, size, 3)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (3, size, size)


def _workers() -> int:
    return max(1, torch.get_num_threads())


@dataclass
class ImageFiles:
    """The catalogue's image files, decoded on demand into what `load_image` gives.

    Also an `InputSource` of the feature cache (`vrs.encoders.cache`): `identity` keys the decoded
    images by every file's bytes and the decoding settings without decoding anything.

    Attributes:
        root: the dataset folder the paths start from.
        paths: per item (catalogue order), its image path relative to `root`, or None.
        size: side of the square decoded images.
        on_bad_image: "error" | "skip" | "blank" (see `load_item_content`).
        decoded: files decoded so far by this object (tests count them).
    """

    root: Path
    paths: list[str | None]
    size: int
    on_bad_image: str = "error"
    decoded: int = 0
    _digest: str | None = field(default=None, repr=False)
    _hashes: dict[int, bytes] = field(default_factory=dict, repr=False)  # row -> file digest
    _bombs: set[int] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.on_bad_image not in BAD_IMAGE_MODES:
            raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_MODES}, got {self.on_bad_image!r}")

    def __len__(self) -> int:
        return len(self.paths)

    def has_file(self) -> torch.Tensor:
        """(N,) bool: items that name an image file (whether or not it decodes)."""
        return torch.tensor([p is not None for p in self.paths], dtype=torch.bool)

    def identity(self) -> dict[str, Any]:
        """What decides the decoded images, without decoding them: the size, the decoder and the
        Pillow / libjpeg versions (they can change decoded pixels), and a hash of every item's file
        bytes in catalogue order (read once per object, by worker threads)."""
        if self._digest is None:
            rows = [i for i, p in enumerate(self.paths) if p is not None]
            chunks = [rows[j : j + _CHUNK] for j in range(0, len(rows), _CHUNK)]
            quiet = len(rows) < 20_000
            with tqdm(total=len(rows), desc="hashing image files", unit="file", disable=quiet) as bar:
                with ThreadPoolExecutor(_workers()) as pool:
                    for chunk, digests in zip(chunks, pool.map(self._digests, chunks), strict=True):
                        self._hashes.update(zip(chunk, digests, strict=True))
                        bar.update(len(chunk))
            sha = hashlib.blake2b(digest_size=16)
            for i in range(len(self.paths)):
                sha.update(self._hashes.get(i, b"no image"))
            self._digest = sha.hexdigest()
        return {
            "source": "image_files",
            "size": self.size,
            "decoder": DECODER,
            "pillow": PIL.__version__,
            "libjpeg": features.version("jpg"),
            "files": self._digest,
        }

    def _read(self, row: int) -> tuple[bytes | None, bytes]:
        """The bytes of item `row`'s file (None when it cannot be read) and their digest."""
        try:
            data = (self.root / str(self.paths[row])).read_bytes()
        except OSError as err:  # decodes as a bad image too; the key still tells it apart
            return None, f"unreadable: {type(err).__name__}".encode()
        return data, hashlib.blake2b(data, digest_size=16).digest() + len(data).to_bytes(8, "little")

    def _digests(self, rows: list[int]) -> list[bytes]:
        return [self._read(i)[1] for i in rows]

    def load(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decodes items `rows` in this thread.

        Returns:
            (n, 3, size, size) uint8 pixels, zeros for an item without a usable image, and (n,) bool:
            which items have one.

        Raises:
            DatasetError: with on_bad_image="error", naming the files among `rows` that are missing
                or cannot be decoded.
        """
        pixels, usable, bad = self._decode(rows)
        if bad and self.on_bad_image == "error":
            self._report(bad, n_checked=len(rows))
        return pixels, usable

    def _decode(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        # Filled in numpy, wrapped once: a torch copy per image runs on torch's thread pool.
        pixels = np.zeros((len(rows), 3, self.size, self.size), dtype=np.uint8)  # (n, 3, S, S)
        usable = torch.zeros(len(rows), dtype=torch.bool)  # (n,)
        bad = []
        for k, row in enumerate(rows):
            rel = self.paths[row]
            if rel is None:
                continue
            data, digest = self._read(row)
            if self._hashes and self._hashes.get(row) != digest:
                # The key (identity) was computed from other bytes: features of these must not be
                # stored under it.
                raise DatasetError(
                    f"{self.root / rel} changed after the feature-cache key was computed from it "
                    "(its bytes differ); run the command again"
                )
            try:
                if data is None:
                    raise FileNotFoundError(self.root / rel)
                pixels[k] = _decode_array(io.BytesIO(data), self.size)
            except BAD_IMAGE_ERRORS as err:
                bad.append(row)
                if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
                    with self._lock:
                        self._bombs.add(row)
                continue
            usable[k] = True
        with self._lock:
            self.decoded += sum(self.paths[r] is not None for r in rows)
        return torch.from_numpy(pixels), usable, bad

    def load_all(self, progress: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Every item decoded by worker threads, bad files reported once (see `check`).

        Returns:
            (N, 3, size, size) uint8 pixels, None when no item has a usable image, and (N,) bool.
        """
        n = len(self.paths)
        rows = [i for i, p in enumerate(self.paths) if p is not None]
        images = torch.zeros(n, 3, self.size, self.size, dtype=torch.uint8)  # (N, 3, S, S)
        usable = torch.zeros(n, dtype=torch.bool)  # (N,)
        chunks = [rows[j : j + _CHUNK] for j in range(0, len(rows), _CHUNK)]
        quiet = not progress or len(rows) <= _PROGRESS_MIN
        with tqdm(total=len(rows), desc="images", unit="img", disable=quiet) as bar:
            with ThreadPoolExecutor(_workers()) as pool:
                for chunk, (pixels, ok, _) in zip(chunks, pool.map(self._decode, chunks), strict=True):
                    index = torch.as_tensor(chunk, dtype=torch.long)
                    images[index], usable[index] = pixels, ok
                    bar.update(len(chunk))
        self.check(usable)  # every bad file in one error or warning
        return (images if bool(usable.any()) else None), usable

    def check(self, usable: torch.Tensor) -> None:
        """Reports the items that name a file but have no usable image ((N,) bool `usable`):
        on_bad_image="error" raises, "skip" and "blank" warn with the count.

        Raises:
            DatasetError: with on_bad_image="error" when any file is missing or unreadable.
        """
        bad = torch.nonzero(self.has_file() & ~usable.cpu()).flatten().tolist()
        if bad:
            self._report(bad, n_checked=int(self.has_file().sum()))

    def _report(self, bad: list[int], n_checked: int) -> None:
        names = [str(self.paths[i]) for i in bad]
        bombs = len(self._bombs.intersection(bad))
        why = (
            f" ({bombs} larger than PIL's decompression-bomb limit, Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS} pixels)"
            if bombs
            else ""
        )
        if self.on_bad_image == "error":
            raise DatasetError(
                f"items.parquet: column 'image' names {len(bad)} missing or unreadable image file(s) "
                f"under {self.root}: {preview(names)}{why}; expected decodable images "
                "(or pass on_bad_image='skip' / 'blank')"
            )
        warnings.warn(
            f"{len(bad)} of {n_checked} images missing or unreadable under {self.root} "
            f"({preview(names)}){why}; those items are treated as having no image",
            stacklevel=3,
        )


def _item_text(title: object, category: object, description: object) -> str:
    parts = [str(p).strip() for p in (title, category, description) if isinstance(p, str)]
    return ". ".join(p for p in parts if p)


def load_item_content(
    ds: Dataset,
    image_size: int = 64,
    on_bad_image: str = "error",
    load_images: bool = True,
    decode: bool = True,
) -> ItemContent:
    """Texts and images of the whole catalogue, in catalogue order.

    Args:
        ds: a loaded dataset.
        image_size: side length of the square images.
        on_bad_image: what to do with an image that is missing or cannot be decoded:
            "error" raises :class:`DatasetError` listing the bad files; "skip" treats the item as having
            no image (zeros, ``has_image`` False) and warns with the count; "blank" does the same — the
            item gets a blank (all-zero) image flagged absent, so fusion uses its other modalities.
        load_images: False skips decoding pixels (models that use no image): images is None.
        decode: False leaves the images undecoded until ``images`` or ``has_image`` is first read
            (``image_files`` then keys the feature cache without decoding); bad files are reported then.

    Returns:
        ItemContent with images (N, 3, image_size, image_size) uint8 (None when no item has a usable
        image), has_image (N,), texts "title. category. description" (empty parts skipped), has_text (N,)
        and the items table's other columns (`columns`).

    Raises:
        ValueError: for an unknown ``on_bad_image``.
        DatasetError: for bad images when ``on_bad_image="error"`` (with ``decode``).
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
    columns = {c: items[c].tolist() for c in items.columns if c not in ("item_id", "image")}
    present = items["image"].notna().to_numpy()
    if not load_images or not present.any():
        return ItemContent(
            images=None,
            has_image=torch.zeros(n, dtype=torch.bool),
            texts=texts,
            has_text=has_text,
            columns=columns,
        )
    check_image_links(ds)  # also when load_dataset skipped it: no reads outside the dataset
    paths = [str(p) if ok else None for p, ok in zip(items["image"], present, strict=True)]
    files = ImageFiles(ds.root, paths, image_size, on_bad_image)
    content = ItemContent.from_files(files, texts, has_text, columns)
    if decode:
        content.images  # noqa: B018 (decodes now, reporting bad files here)
    return content
