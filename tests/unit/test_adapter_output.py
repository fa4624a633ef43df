"""What vrs-prepare may do to its out_dir: refuse folders it did not write, replace only its own files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from vrs.cli.common import CONFIG_DIR
from vrs.data.adapters.preprocess import Preprocess
from vrs.data.adapters.recbole import convert_recbole
from vrs.data.schema import load_dataset, write_dataset

INTER = "user_id:token\titem_id:token\ttimestamp:float\n1\ta\t1\n1\tb\t2\n2\ta\t3\n2\tc\t4\n"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    (root / "img").mkdir(parents=True)
    (root / "ml.inter").write_text(INTER)
    for i, item in enumerate("abc"):
        Image.new("RGB", (4, 4), (40 * i, 0, 0)).save(root / "img" / f"{item}.png")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A canonical dataset written by some other tool, with its own images."""
    root = tmp_path / "foreign"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "images" / "x1.png")
    (root / "images" / "notes.txt").write_text("mine")
    items = pd.DataFrame({"item_id": ["x1"], "title": ["X"], "image": ["images/x1.png"]})
    inter = pd.DataFrame({"user_id": ["u"], "item_id": ["x1"], "timestamp": [1]})
    return write_dataset(root, items, inter, name="other", source="elsewhere", licence="CC0")


def test_refuses_a_dataset_it_did_not_write(raw: Path, foreign: Path) -> None:
    before = _files(foreign)
    with pytest.raises(FileExistsError, match=r"foreign.*not written by vrs-prepare.*overwrite=true"):
        convert_recbole(raw, foreign, "ml", image_dir="img")
    assert _files(foreign) == before


def test_refuses_a_folder_with_other_files(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos"
    (out / "images").mkdir(parents=True)
    (out / "images" / "holiday.jpg").write_bytes(b"not mine")
    with pytest.raises(FileExistsError, match=r"photos.*not empty"):
        convert_recbole(raw, out, "ml", image_dir="img")
    assert _files(out) == {"images/holiday.jpg": b"not mine"}


def test_refuses_its_output_from_other_inputs(raw: Path, tmp_path: Path) -> None:
    out = convert_recbole(raw, tmp_path / "out", "ml", image_dir="img")
    other = tmp_path / "raw2"
    other.mkdir()
    (other / "ml.inter").write_text(INTER)
    before = _files(out)
    with pytest.raises(FileExistsError, match=r"prepared from other inputs.*overwrite=true"):
        convert_recbole(other, out, "ml")
    assert _files(out) == before


def test_overwrite_replaces_tables_but_keeps_files_it_did_not_write(raw: Path, foreign: Path) -> None:
    convert_recbole(raw, foreign, "ml", image_dir="img", overwrite=True)
    ds = load_dataset(foreign)
    assert sorted(ds.items["item_id"]) == ["a", "b", "c"]
    assert (foreign / "images" / "x1.png").is_file() and (
        foreign / "images" / "notes.txt"
    ).read_text() == "mine"


def test_rerun_prunes_only_its_own_images(raw: Path, tmp_path: Path) -> None:
    out = convert_recbole(raw, tmp_path / "out", "ml", image_dir="img")
    assert (out / "images" / "a.png").is_file()
    (out / "images" / "mine").mkdir()
    (out / "images" / "mine" / "keep.jpg").write_bytes(b"user file")
    (out / "images" / "empty_of_mine").mkdir()
    # Same inputs, other options: item a (each user's earlier event) is dropped, so is its image.
    convert_recbole(raw, out, "ml", image_dir="img", preprocess=Preprocess(max_history=1))
    assert not (out / "images" / "a.png").exists() and (out / "images" / "c.png").is_file()
    assert (out / "images" / "mine" / "keep.jpg").read_bytes() == b"user file"
    assert (out / "images" / "empty_of_mine").is_dir()  # a folder it did not create stays


def test_prepare_config_passes_overwrite() -> None:
    GlobalHydra.instance().clear()
    overrides = ["source=recbole", "in_dir=/in", "out_dir=/out", "name=x", "overwrite=true"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="prepare", overrides=overrides)
    GlobalHydra.instance().clear()
    assert cfg.source.overwrite is True
