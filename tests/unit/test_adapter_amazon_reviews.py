"""Amazon Reviews 2018 and 2023 adapter on hand-made JSON lines (plain and gzipped)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from vrs.data.adapters.amazon_reviews import convert_amazon_reviews, read_amazon_reviews
from vrs.data.adapters.preprocess import Preprocess
from vrs.data.schema import DatasetError, load_dataset

URL = "https://m.media-amazon.com/images/I/71abcXYZ.jpg"
REVIEWS_2018 = [
    {"reviewerID": "U1", "asin": "A1", "unixReviewTime": 100, "overall": 5.0, "reviewText": "great"},
    {"reviewerID": "U1", "asin": "A2", "unixReviewTime": 200, "overall": 3.0},
    {"reviewerID": "U2", "asin": "A1", "unixReviewTime": 150, "overall": 4.0},
    {"reviewerID": "U2", "asin": "A3", "unixReviewTime": 160, "overall": 1.0},
    {"reviewerID": "U3", "asin": "A1", "unixReviewTime": 170, "overall": 2.0},
]
META_2018 = [
    {"asin": "A1", "title": "Lipstick", "description": ["Red.", "Matte."], "category": ["Beauty", "Makeup"],
     "imageURLHighRes": [URL]},
    {"asin": "A2", "title": "Shampoo", "description": "Mild.", "category": [], "imageURL": ["https://x/y/zz.jpg"]},
    {"asin": "A3", "title": "Brush", "category": ["Beauty", "Tools"]},
    {"asin": "A1", "title": "Lipstick (repeated row)"},
    {"asin": "B9", "title": "never reviewed"},
]  # fmt: skip
REVIEWS_2023 = [
    {"user_id": "U1", "parent_asin": "P1", "asin": "V1", "timestamp": 1588687728923, "rating": 5.0},
    {"user_id": "U1", "parent_asin": "P2", "asin": "V2", "timestamp": 1588687729000, "rating": 2.0},
    {"user_id": "U2", "parent_asin": "P1", "asin": "V3", "timestamp": 1600000000000, "rating": 4.0},
]
META_2023 = [
    {"parent_asin": "P1", "title": "Serum", "description": ["Light.", "Daily."], "categories": [],
     "main_category": "All Beauty", "images": [{"thumb": "t", "large": "https://x/l1.jpg", "hi_res": None}]},
    {"parent_asin": "P2", "title": "Mask", "description": [], "categories": ["Beauty", "Skin"], "images": []},
]  # fmt: skip


def _write(path: Path, records: list[dict], gz: bool = False) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    (root / "img").mkdir(parents=True)
    _write(root / "Beauty.json", REVIEWS_2018)
    _write(root / "meta_Beauty.json", META_2018)
    _write(root / "Skin.jsonl.gz", REVIEWS_2023, gz=True)
    _write(root / "meta_Skin.jsonl.gz", META_2023, gz=True)
    Image.new("RGB", (5, 5)).save(root / "img" / "71abcXYZ.jpg")  # named like A1's URL
    Image.new("RGB", (5, 5)).save(root / "img" / "A3.png")  # named by item id
    Image.new("RGB", (5, 5)).save(root / "img" / "P2.jpg")
    return root


def test_reads_2018_reviews_metadata_and_local_images(raw: Path) -> None:
    t = read_amazon_reviews(raw, "Beauty", image_dir="img")
    items = t.items.set_index("item_id")
    assert sorted(items.index) == ["A1", "A2", "A3"]  # B9 never reviewed
    assert items.loc["A1", "title"] == "Lipstick"  # first metadata row wins
    assert (
        items.loc["A1", "description"] == "Red. Matte." and items.loc["A1", "category"] == "Beauty > Makeup"
    )
    assert items.loc["A2", "description"] == "Mild." and items.loc["A2", "category"] == ""
    assert items.loc["A1", "image"] == "71abcXYZ.jpg" and items.loc["A3", "image"] == "A3.png"
    assert items["image"].isna().sum() == 1 and items.loc["A2", "image_url"] == "https://x/y/zz.jpg"
    inter = t.interactions
    assert list(inter["user_id"]) == ["U1", "U1", "U2", "U2", "U3"]
    assert list(inter["timestamp"]) == [100, 200, 150, 160, 170] and list(inter["rating"]) == [5, 3, 4, 1, 2]
    assert t.report.source == "amazon_reviews/2018/Beauty"
    assert any("1 repeated metadata line" in n for n in t.report.notes)
    assert any("2 items with a local image, 1 with image URLs only" in n for n in t.report.notes)


def test_reads_2023_gzipped_with_millisecond_times(raw: Path) -> None:
    t = read_amazon_reviews(raw, "Skin", image_dir="img")
    items = t.items.set_index("item_id")
    assert items.loc["P1", "category"] == "All Beauty" and items.loc["P2", "category"] == "Beauty > Skin"
    assert (
        items.loc["P1", "description"] == "Light. Daily."
        and items.loc["P1", "image_url"] == "https://x/l1.jpg"
    )
    assert items.loc["P2", "image"] == "P2.jpg" and items["image"].isna().sum() == 1
    assert list(t.interactions["item_id"]) == ["P1", "P2", "P1"]  # parent_asin, not the variant asin
    assert list(t.interactions["timestamp"]) == [1588687728, 1588687729, 1600000000]


def test_convert_with_k_core_copies_images_and_reports(raw: Path, tmp_path: Path) -> None:
    _write(
        raw / "Beauty.json",
        [*REVIEWS_2018, {"reviewerID": "U3", "asin": "A2", "unixReviewTime": 9, "overall": 1}],
    )
    out = convert_amazon_reviews(
        raw, tmp_path / "out", "Beauty", image_dir="img", preprocess=Preprocess(k_core=2)
    )
    ds = load_dataset(out, check_images=True)
    assert list(ds.interactions["user_id"]) == ["U1", "U1", "U3", "U3"]  # U2 falls out in the second pass
    assert ds.items["item_id"].tolist() == ["A1", "A2"]
    assert ds.items["image"].tolist()[0] == "images/71abcXYZ.jpg" and ds.items["image"].isna().tolist()[1]
    steps = [d["step"] for d in ds.meta["preparation"]["drops"]]
    assert steps == ["k_core=2", "unused_items"]
    without = load_dataset(convert_amazon_reviews(raw, tmp_path / "urls", "Beauty"))
    assert without.items["image"].isna().all() and without.items["image_url"].notna().sum() == 2


def test_unknown_items_raise_or_are_dropped(raw: Path) -> None:
    _write(raw / "meta_Beauty.json", META_2018[:2])
    with pytest.raises(
        DatasetError,
        match=r"Beauty.json: line 4: column 'item_id' value 'A3' is not in meta_Beauty.json.*unknown_items=drop",
    ):
        read_amazon_reviews(raw, "Beauty")
    t = read_amazon_reviews(raw, "Beauty", unknown_items="drop")
    assert len(t.interactions) == 4
    assert (t.report.drops[0].step, t.report.drops[0].interactions, t.report.drops[0].items) == (
        "unknown_items",
        1,
        1,
    )


@pytest.mark.parametrize(
    ("file", "lines", "match"),
    [
        (
            "Beauty.json",
            ['{"reviewerID": "U1", "asin": "A1", "unixReviewTime": 1, "overall": 5}', "{not json"],
            r"Beauty.json: line 2: not valid JSON",
        ),
        (
            "Beauty.json",
            ['{"reviewerID": "U1", "asin": "A1", "unixReviewTime": 1, "overall": 5}', "[1, 2]"],
            r"Beauty.json: line 2: expected a JSON object, got list",
        ),
        (
            "Beauty.json",
            ['{"reviewerID": "U1", "asin": "A1", "overall": 5}'],
            r"Beauty.json: line 1: column 'unixReviewTime' is empty; expected the 2018 review fields",
        ),
        (
            "Beauty.json",
            ['{"reviewerID": "U1", "asin": "A1", "unixReviewTime": "soon", "overall": 5}'],
            r"Beauty.json: line 1: column 'unixReviewTime' value 'soon' is not an integer",
        ),
        (
            "Beauty.json",
            ['{"reviewerID": "U1", "asin": "A1", "unixReviewTime": 1, "overall": "five"}'],
            r"Beauty.json: line 1: column 'overall' value 'five' is not a number",
        ),
        ("Beauty.json", ['{"user": "U1"}'], r"Beauty.json: line 1: unknown review format"),
        ("meta_Beauty.json", ['{"title": "no id"}'], r"meta_Beauty.json: line 1: missing 'asin'"),
    ],
)
def test_bad_files_name_file_and_line(raw: Path, file: str, lines: list[str], match: str) -> None:
    (raw / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=match):
        read_amazon_reviews(raw, "Beauty")


def test_missing_files_and_folders(raw: Path) -> None:
    with pytest.raises(DatasetError, match=r"Toys: file not found; expected Toys with a suffix in"):
        read_amazon_reviews(raw, "Toys")
    with pytest.raises(DatasetError, match=r"nope: image folder not found"):
        read_amazon_reviews(raw, "Beauty", image_dir="nope")
    (raw / "Beauty.json").write_bytes(gzip.compress(b"x"))
    (raw / "Beauty.json").rename(raw / "Beauty.json.gz")
    (raw / "Beauty.json.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"Beauty.json.gz: line 1: cannot read"):
        read_amazon_reviews(raw, "Beauty")


@pytest.mark.parametrize("time", [1e30, "1e30", -1e30, 9.3e18])
def test_time_outside_int64_names_line(raw: Path, time: object) -> None:
    # Whole-valued floats beyond int64 used to wrap to INT64_MIN, reordering the user's history.
    reviews = [dict(r) for r in REVIEWS_2018]
    reviews[3]["unixReviewTime"] = time
    _write(raw / "Beauty.json", reviews)
    with pytest.raises(DatasetError, match=r"Beauty.json: line 4: column 'unixReviewTime' value .*int64"):
        read_amazon_reviews(raw, "Beauty")


@pytest.mark.parametrize("value", ["https://x/one.jpg", {"url": "x"}, 5])
def test_image_url_field_of_another_type_is_tolerated(raw: Path, value: object) -> None:
    # A str, object or number where a list of URLs belongs raised TypeError (list + str).
    meta = [dict(m) for m in META_2018]
    meta[2]["imageURL"] = value
    _write(raw / "meta_Beauty.json", meta)
    items = read_amazon_reviews(raw, "Beauty").items.set_index("item_id")
    url = items.loc["A3", "image_url"]
    assert url == value if isinstance(value, str) else pd.isna(url)
    skin = [dict(m) for m in META_2023]
    skin[1]["images"] = value
    _write(raw / "meta_Skin.jsonl.gz", skin, gz=True)
    assert pd.isna(read_amazon_reviews(raw, "Skin").items.set_index("item_id").loc["P2", "image_url"])
