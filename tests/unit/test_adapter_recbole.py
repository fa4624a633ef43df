"""RecBole atomic files: import on hand-made files, export, and the canonical -> RecBole -> canonical round trip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_module
from vrs.data.adapters.preprocess import Preprocess
from vrs.data.adapters.recbole import convert_recbole, export_recbole, read_recbole
from vrs.data.schema import DatasetError, load_dataset, write_dataset

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t4.0\t881250949.0\n"
    "1\t20\t3.5\t881250950.7\n"
    "2\t10\t5\t881250000\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tbudget:float\n"
    "10\tToy Story\t1995\tAnimation Comedy\t30.5\n"
    "20\tHeat\t1995\tCrime\t\n"
    "30\tNever Rated\t\t\t\n"
)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "ml.inter").write_text(INTER)
    (root / "ml.item").write_text(ITEM)
    return root


def test_imports_inter_and_item_fields(raw: Path) -> None:
    t = read_recbole(raw, "ml", event="rating")
    inter = t.interactions
    assert list(inter["user_id"]) == ["1", "1", "2"] and list(inter["item_id"]) == ["10", "20", "10"]
    assert list(inter["timestamp"]) == [881250949, 881250950, 881250000]  # floats floored to seconds
    assert list(inter["rating"]) == [4.0, 3.5, 5.0] and set(inter["event"]) == {"rating"}
    items = t.items.set_index("item_id")
    assert items.loc["10", "title"] == "Toy Story" and items.loc["10", "category"] == "Animation Comedy"
    assert items.loc["10", "description"] == "release_year: 1995" and items.loc["30", "description"] == ""
    assert items.loc["10", "budget"] == 30.5 and pd.isna(items.loc["20", "budget"])
    assert items["image"].isna().all()


def test_without_item_file_or_time_field(raw: Path, tmp_path: Path) -> None:
    (raw / "ml.item").unlink()
    (raw / "ml.inter").write_text("uid:token\tiid:token\n1\ta\n1\tb\n2\ta\n")
    (raw / "img").mkdir()
    Image.new("RGB", (4, 4)).save(raw / "img" / "b.png")
    t = read_recbole(raw, "ml", user_field="uid", item_field="iid", image_dir="img")
    assert list(t.interactions["timestamp"]) == [0, 1, 2] and set(t.interactions["event"]) == {"interaction"}
    assert list(t.items["item_id"]) == ["a", "b"] and (t.items["title"] == "").all()
    assert t.items["image"].tolist()[1] == "b.png" and pd.isna(t.items["image"].iloc[0])
    assert any("file order is the timestamp" in n for n in t.report.notes)
    ds = load_dataset(
        convert_recbole(raw, tmp_path / "out", "ml", "uid", "iid", image_dir="img"), check_images=True
    )
    assert ds.items["image"].tolist()[1] == "images/b.png"


@pytest.mark.parametrize(
    ("file", "text", "match"),
    [
        (
            "ml.inter",
            "user_id\titem_id:token\n1\t10\n",
            r"ml.inter: line 1: header field 'user_id' is not a new 'name:type'",
        ),
        (
            "ml.inter",
            "user_id:token\titem_id:blob\n1\t10\n",
            r"ml.inter: line 1: header field 'item_id:blob'",
        ),
        (
            "ml.inter",
            "user_id:token\tuser_id:token\n1\t10\n",
            r"ml.inter: line 1: header field 'user_id:token' is not a new",
        ),
        (
            "ml.inter",
            "user_id:token\tiid:token\n1\t10\n",
            r"ml.inter: line 1: field 'item_id' of type token not in the header",
        ),
        (
            "ml.inter",
            INTER + "3\t10\t4\tlater\n",
            r"ml.inter: line 5: column 'timestamp' value 'later' is not a number",
        ),
        (
            "ml.inter",
            INTER + "3\t10\tgood\t1\n",
            r"ml.inter: line 5: column 'rating' value 'good' is not a number",
        ),
        ("ml.inter", INTER + "\t10\t4\t1\n", r"ml.inter: line 5: column 'user_id' is empty"),
        (
            "ml.inter",
            INTER + "3\t99\t4\t1\n",
            r"ml.inter: line 5: column 'item_id' value '99' is not in ml.item",
        ),
        ("ml.inter", INTER + "3\t10\t4\t1\t7\n", r"ml.inter: line 5: 5 fields, expected 4"),
        (
            "ml.item",
            ITEM + "10\tAgain\t\t\t\n",
            r"ml.item: line 5: column 'item_id' value '10' repeats line 2",
        ),
        (
            "ml.item",
            "movie_title:token_seq\nToy\n",
            r"ml.item: line 1: field 'item_id' of type token not in the header",
        ),
    ],
)
def test_bad_files_name_file_and_line(raw: Path, file: str, text: str, match: str) -> None:
    (raw / file).write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_recbole(raw, "ml")


def test_missing_files(raw: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope.inter: file not found"):
        read_recbole(raw, "nope")
    with pytest.raises(DatasetError, match=r"img: image folder not found"):
        read_recbole(raw, "ml", image_dir="img")
    (raw / "ml.item").write_text("item_id:token\timage:token\n10\tx.jpg\n20\t\n")
    (raw / "img").mkdir()
    with pytest.raises(DatasetError, match=r"ml.item: line 2: image 'x.jpg' not found under"):
        read_recbole(raw, "ml", image_dir="img")


@pytest.fixture
def canonical(tmp_path: Path) -> Path:
    root = tmp_path / "canonical"
    (root / "images" / "sub").mkdir(parents=True)
    Image.new("RGB", (4, 4), (9, 9, 9)).save(root / "images" / "sub" / "a.png")
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c d"],
            "title": ['Red "shoe"', "Blue hat, large", "Mug"],
            "description": ["leather, size 42", "", "Plain white mug. Dishwasher safe."],
            "category": ["Shoes", "Hats", ""],
            "image": ["images/sub/a.png", None, None],
        }
    )
    inter = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "item_id": ["a", "b", "c d", "a"],
            "timestamp": [5, 3, 9, 9],
            "event": ["view", "purchase", "view", "view"],
            "rating": [1.5, 2.0, 3.0, 4.0],
        }
    )
    return write_dataset(root, items, inter, name="tiny", source="test", licence="CC0")


def test_export_writes_atomic_files_with_typed_headers(canonical: Path, tmp_path: Path) -> None:
    files = export_recbole(canonical, tmp_path / "rb", "tiny")
    assert [f.name for f in files] == ["tiny.inter", "tiny.item"]
    lines = files[0].read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float\tevent:token\trating:float"
    assert lines[1] == "u1\ta\t5\tview\t1.5"
    header = files[1].read_text().splitlines()[0]
    assert header == "item_id:token\ttitle:token_seq\tdescription:token_seq\tcategory:token_seq\timage:token"
    assert (
        export_recbole(canonical, tmp_path / "rb2")[0].name == "canonical.inter"
    )  # name defaults to the folder


def test_export_never_replaces_files_unasked(canonical: Path, tmp_path: Path) -> None:
    out = tmp_path / "rb"
    out.mkdir()
    (out / "tiny.inter").write_text("someone else's file")
    with pytest.raises(FileExistsError, match=r"tiny\.inter already exist.*overwrite=true"):
        export_recbole(canonical, out, "tiny")
    assert (out / "tiny.inter").read_text() == "someone else's file"
    assert not (out / "tiny.item").exists()
    export_recbole(canonical, out, "tiny", overwrite=True)
    assert (out / "tiny.inter").read_text().startswith("user_id:token")


def test_round_trip_canonical_recbole_canonical(canonical: Path, tmp_path: Path) -> None:
    export_recbole(canonical, tmp_path / "rb", "tiny")
    back = convert_recbole(tmp_path / "rb", tmp_path / "back", "tiny", image_dir=canonical)
    before, after = load_dataset(canonical), load_dataset(back, check_images=True)
    pd.testing.assert_frame_equal(after.interactions, before.interactions)
    columns = ["item_id", "title", "description", "category"]
    pd.testing.assert_frame_equal(after.items[columns], before.items[columns])
    assert after.items["image"].tolist()[0] == "images/images/sub/a.png"  # paths stay relative to image_dir
    assert (back / after.items["image"].iloc[0]).read_bytes() == (canonical / "images/sub/a.png").read_bytes()
    # and the preprocessing options apply to RecBole input like to every source
    ds = load_dataset(
        convert_recbole(tmp_path / "rb", tmp_path / "p", "tiny", preprocess=Preprocess(event_types=["view"]))
    )
    assert set(ds.interactions["event"]) == {"view"} and len(ds.items) == 2


def test_export_flattens_whitespace_the_format_cannot_hold(canonical: Path, tmp_path: Path) -> None:
    ds = load_dataset(canonical)
    items = ds.items.copy()
    items.loc[0, "description"] = "two\tlines\nand  spaces"
    write_dataset(canonical, items, ds.interactions, name="tiny", source="test", licence="CC0")
    export_recbole(canonical, tmp_path / "rb", "tiny")
    back = read_recbole(tmp_path / "rb", "tiny")
    assert back.items["description"].iloc[0] == "two lines and spaces"
    assert back.items["title"].iloc[0] == 'Red "shoe"'


def test_export_command_lists_the_files(canonical: Path, tmp_path: Path) -> None:
    args = ["source=recbole_export", f"in_dir={canonical}", f"out_dir={tmp_path / 'rb'}", "name=tiny"]
    run = run_module("vrs.cli.prepare", args, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (
        f"wrote {tmp_path / 'rb' / 'tiny.inter'}" in run.stdout and (tmp_path / "rb" / "tiny.item").is_file()
    )


def test_time_outside_int64_names_line(raw: Path) -> None:
    (raw / "ml.inter").write_text(INTER.replace("881250000", "1e30"))
    with pytest.raises(DatasetError, match=r"ml.inter: line 4: column 'timestamp' value '1e30'.*int64"):
        read_recbole(raw, "ml")


def test_extra_field_on_a_line_names_line(raw: Path) -> None:
    # pandas dropped the surplus field without a word, shifting nothing but losing data.
    (raw / "ml.inter").write_text(INTER.replace("881250950.7\n", "881250950.7\tsurplus\n"))
    with pytest.raises(DatasetError, match=r"ml.inter: line 3: 5 fields, expected 4"):
        read_recbole(raw, "ml")
    (raw / "ml.inter").write_text(INTER.replace("881250950.7\n", "881250950.7\tsurplus\tmore\n"))
    with pytest.raises(DatasetError, match=r"ml.inter: line 3: 6 fields, expected 4"):
        read_recbole(raw, "ml")
