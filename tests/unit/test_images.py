"""Image decoding and ItemContent assembly, including the three on_bad_image modes."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from vrs.data.images import load_image, load_item_content
from vrs.data.schema import DatasetError, load_dataset, write_dataset

SIZE = 16


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (20, 10), 128),  # grayscale, wide
        lambda: Image.new("RGBA", (10, 30), (255, 0, 0, 0)),  # fully transparent, tall
        lambda: Image.new("P", (12, 12), 3),  # palette
        lambda: Image.new("RGB", (5, 7), (1, 2, 3)),  # smaller than SIZE: upsampled
    ],
)
def test_load_image_shapes(tmp_path: Path, make) -> None:
    path = tmp_path / "x.png"
    make().save(path)
    img = load_image(path, SIZE)
    assert img.shape == (3, SIZE, SIZE) and img.dtype == torch.uint8


def test_load_image_values(tmp_path: Path) -> None:
    Image.new("L", (20, 10), 128).save(tmp_path / "gray.png")
    assert (load_image(tmp_path / "gray.png", SIZE) == 128).all()
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png", SIZE) == 255).all()  # transparent -> white
    Image.new("RGB", (6, 9), (10, 20, 30)).save(tmp_path / "rgb.png")
    rgb = load_image(tmp_path / "rgb.png", SIZE)  # channels first, in R, G, B order
    assert rgb.is_contiguous() and [int(rgb[c].unique()) for c in range(3)] == [10, 20, 30]
    # centre crop: a wide image whose outer thirds are black keeps only the white middle
    wide = Image.new("RGB", (30, 10), (0, 0, 0))
    wide.paste((255, 255, 255), (10, 0, 20, 10))
    wide.save(tmp_path / "wide.png")
    assert (load_image(tmp_path / "wide.png", SIZE)[:, :, 4:12] == 255).all()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(root / "images" / "a.png")
    Image.new("LA", (8, 8), (40, 255)).save(root / "images" / "b.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(root / "images" / "c.png")
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["Alpha", "Beta", "Gamma", ""],
            "description": ["first", "", "", ""],
            "category": ["x", "y", "", ""],
            "image": ["images/a.png", "images/b.png", "images/c.png", None],
        }
    )
    interactions = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [0, 1]})
    return write_dataset(root, items, interactions, name="t", source="test", licence="CC0")


def test_item_content(root: Path) -> None:
    content = load_item_content(load_dataset(root), image_size=SIZE)
    assert content.texts == ["Alpha. x. first", "Beta. y", "Gamma", ""]
    assert content.has_text.tolist() == [True, True, True, False]
    assert content.has_image.tolist() == [True, True, True, False]
    assert content.images is not None and content.images.shape == (4, 3, SIZE, SIZE)
    assert content.images[0, 0].eq(255).all() and content.images[0, 1:].eq(0).all()
    assert (content.images[1] == 40).all()
    assert (content.images[3] == 0).all()


def _break(root: Path) -> None:
    (root / "images" / "b.png").write_bytes(b"\x89PNG garbage")  # corrupt
    (root / "images" / "c.png").unlink()  # missing


def test_bad_images_error(root: Path) -> None:
    _break(root)
    ds = load_dataset(root, check_images=False)
    with pytest.raises(DatasetError, match=r"2 missing or unreadable .*'images/b.png', 'images/c.png'"):
        load_item_content(ds, image_size=SIZE)


@pytest.mark.parametrize("mode", ["skip", "blank"])
def test_bad_images_skip_or_blank(root: Path, mode: str) -> None:
    _break(root)
    ds = load_dataset(root, check_images=False)
    with pytest.warns(UserWarning, match="2 of 3 images"):
        content = load_item_content(ds, image_size=SIZE, on_bad_image=mode)
    assert content.has_image.tolist() == [True, False, False, False]
    assert content.images is not None and (content.images[1:] == 0).all()


def test_no_images_gives_none(root: Path) -> None:
    ds = load_dataset(root)
    ds.items["image"] = pd.Series([None] * 4, dtype="str")
    content = load_item_content(ds, image_size=SIZE)
    assert content.images is None and not content.has_image.any()


def test_all_bad_images_skip_gives_none(root: Path) -> None:
    for name in ("a", "b", "c"):
        (root / "images" / f"{name}.png").unlink()
    with pytest.warns(UserWarning):
        content = load_item_content(load_dataset(root, check_images=False), on_bad_image="skip")
    assert content.images is None


def test_unknown_mode(root: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_image"):
        load_item_content(load_dataset(root), on_bad_image="ignore")


def bomb_png(path: Path, side: int = 20_000) -> None:
    """A PNG whose header declares side x side pixels (past PIL's decompression-bomb limit) in a few
    bytes: PIL refuses it on open, before reading any pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.fixture(params=["bomb_error", "bomb_warning_as_error"])
def bomb(request: pytest.FixtureRequest, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """images/b.png made a decompression bomb: past twice PIL's pixel limit (an error), or past the
    limit only (a DecompressionBombWarning, here raised as an error as under `python -W error`)."""
    if request.param == "bomb_error":
        bomb_png(root / "images" / "b.png")
    else:
        Image.new("RGB", (12, 12)).save(root / "images" / "b.png")  # 144 px; the others have 64
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    return root


@contextlib.contextmanager
def _bomb_warnings_raise() -> Iterator[list[warnings.WarningMessage]]:
    """Records warnings, except DecompressionBombWarning, which is raised as an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield caught


def test_decompression_bomb_skip_warns_naming_the_file(bomb: Path) -> None:
    ds = load_dataset(bomb)
    with _bomb_warnings_raise() as caught:
        content = load_item_content(ds, image_size=SIZE, on_bad_image="skip")
    [warning] = [str(w.message) for w in caught if w.category is UserWarning]
    assert re.search(r"1 of 3 images .*'images/b.png'.*MAX_IMAGE_PIXELS", warning), warning
    assert content.has_image.tolist() == [True, False, True, False]


def test_decompression_bomb_error_names_the_file(bomb: Path) -> None:
    with _bomb_warnings_raise(), pytest.raises(DatasetError, match=r"'images/b.png'.*MAX_IMAGE_PIXELS"):
        load_item_content(load_dataset(bomb), image_size=SIZE)


def test_thumbnail_of_a_decompression_bomb_is_a_placeholder(bomb: Path) -> None:
    from vrs.report.html import Thumbnails

    thumbs = Thumbnails(bomb, ["images/a.png", "images/b.png"], size=8)
    with _bomb_warnings_raise():
        assert thumbs.uri(0) is not None and thumbs.uri(1) is None
