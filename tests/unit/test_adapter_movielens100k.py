"""MovieLens-100K + posters adapter on hand-made files: good folders, bad files, the command."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_module
from vrs.data.adapters.movielens100k import convert_movielens100k, read_movielens100k
from vrs.data.adapters.preprocess import Preprocess
from vrs.data.schema import DatasetError, load_dataset

MAP_HEADER = "ml100k_item_id,ml100k_title,ml1m_movie_id,ml1m_title,match_method,has_poster,poster_file,poster_is_placeholder\n"


def _flags(*on: int) -> str:
    return "|".join("1" if g in on else "0" for g in range(19))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    ml = root / "ml-100k"
    ml.mkdir(parents=True)
    (ml / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t90\n2\t10\t4\t50\n2\t30\t1\t60\n3\t40\t2\t70\n")
    (ml / "u.item").write_text(
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{_flags(3, 4, 5)}\n"
        f"20|GoldenEye (1995)|01-Jan-1995||http://x|{_flags(1)}\n"
        f"30|unknown||||{_flags(0)}\n"
        f"40|Grateful Dead (1995)|01-Jan-1995||http://x|{_flags(7)}\n"
        f"50|Never Rated (1990)|01-Jan-1990||http://x|{_flags(8)}\n"
    )
    (root / "posters").mkdir()
    for name in ("p10", "p20", "p40"):
        Image.new("RGB", (6, 9), (200, 10, 10)).save(root / "posters" / f"{name}.jpg")
    (root / "map.csv").write_text(
        MAP_HEADER
        + "10,Toy Story (1995),1,Toy Story (1995),exact,True,posters/p10.jpg,False\n"
        + '20,"GoldenEye (1995)",2,GoldenEye (1995),exact,True,posters/p20.jpg,False\n'
        + "30,unknown,,,none,False,,False\n"
        + "40,Grateful Dead (1995),3,Grateful Dead (1995),exact,True,posters/p40.jpg,True\n"
    )
    return root


def test_reads_ratings_text_and_posters(raw: Path) -> None:
    t = read_movielens100k(raw, poster_map="map.csv")
    items = t.items.set_index("item_id")
    assert list(t.items["item_id"]) == ["10", "20", "30", "40", "50"]
    assert items.loc["10", "title"] == "Toy Story (1995)"
    assert items.loc["10", "category"] == "Animation, Children's, Comedy"
    assert items.loc["10", "description"] == "Released 01-Jan-1995."
    assert items.loc["30", "category"] == "" and items.loc["30", "description"] == ""  # "unknown" genre
    assert items.loc["10", "image"] == "posters/p10.jpg"
    assert items["image"].isna().tolist() == [False, False, True, True, True]  # 40 is a placeholder
    inter = t.interactions
    assert list(inter["user_id"]) == ["1", "1", "2", "2", "3"] and list(inter["timestamp"])[:2] == [100, 90]
    assert set(inter["event"]) == {"rating"} and list(inter["rating"]) == [5, 3, 4, 1, 2]
    assert any("1 placeholder poster" in n for n in t.report.notes)
    kept = read_movielens100k(raw, poster_map="map.csv", keep_placeholder_posters=True)
    assert kept.items.set_index("item_id").loc["40", "image"] == "posters/p40.jpg"
    assert read_movielens100k(raw / "ml-100k", poster_map=None).items["image"].isna().all()


def test_convert_copies_posters_reports_and_is_idempotent(raw: Path, tmp_path: Path) -> None:
    out = convert_movielens100k(raw, tmp_path / "out", poster_map="map.csv")
    ds = load_dataset(out, check_images=True)
    assert ds.items.set_index("item_id").loc["10", "image"] == "images/posters/p10.jpg"
    assert len(ds.items) == 4  # item 50 was never rated
    report = ds.meta["preparation"]
    assert report["read"] == {"users": 3, "interactions": 5, "items": 5}
    assert report["drops"][-1]["step"] == "unused_items" and report["drops"][-1]["items"] == 1
    assert ds.interactions["rating"].tolist() == [5, 3, 4, 1, 2]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    convert_movielens100k(raw, out, poster_map="map.csv")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    # Other options: images of dropped items leave out_dir/images; symlinks instead of copies.
    convert_movielens100k(
        raw, out, poster_map="map.csv", preprocess=Preprocess(min_user_events=2), image_mode="symlink"
    )
    ds = load_dataset(out, check_images=True)
    assert sorted(ds.items["item_id"]) == ["10", "20", "30"]
    assert sorted(p.name for p in (out / "images").rglob("*.jpg")) == ["p10.jpg", "p20.jpg"]
    assert (out / "images" / "posters" / "p10.jpg").is_symlink()


@pytest.mark.parametrize(
    ("file", "text", "match"),
    [
        (
            "ml-100k/u.data",
            "1\t10\t5\t100\n1\t20\tfive\t90\n",
            r"u.data: line 2: column 'rating' value 'five' is not an integer",
        ),
        (
            "ml-100k/u.data",
            "1\t10\t5\t100\n1\t20\t3\n",
            r"u.data: line 2: column 'timestamp' is empty; expected 4 tab-separated",
        ),
        ("ml-100k/u.data", "1\t10\t5\t100\n\n1\t20\t3\t9\t9\n", r"u.data: line 3: 5 fields, expected 4"),
        (
            "ml-100k/u.data",
            "1\t10\t5\t100\n2\t99\t3\t9\n",
            r"u.data: line 2: column 'item_id' value '99' is not in u.item",
        ),
        (
            "ml-100k/u.item",
            f"10|A (1995)|||x|{_flags(1)}\n10|B|||x|{_flags(1)}\n",
            r"u.item: line 2: column 'item_id' value '10' repeats line 1",
        ),
        (
            "ml-100k/u.item",
            "10|A (1995)|||x|0|1\n",
            r"u.item: line 1: column 'Adventure' is empty; expected 24 '\|'-separated",
        ),
        (
            "ml-100k/u.item",
            f"10|A|||x|{_flags(1).replace('1', '2')}\n",
            r"u.item: line 1: genre flag 'Action' is 2; expected 0 or 1",
        ),
        (
            "map.csv",
            "ml100k_item_id,has_poster\n10,True\n",
            r"map.csv: missing column\(s\) \['poster_file'\]",
        ),
        (
            "map.csv",
            MAP_HEADER + "10,,,,,True,posters/p10.jpg,\n77,,,,,False,,\n",
            r"map.csv: line 3: column 'ml100k_item_id' value '77' is not in u.item",
        ),
        (
            "map.csv",
            MAP_HEADER + "10,,,,,True,posters/nope.jpg,\n",
            r"map.csv: line 2: poster_file 'posters/nope.jpg' not found",
        ),
        (
            "map.csv",
            MAP_HEADER + "10,,,,,yes,posters/p10.jpg,\n",
            r"map.csv: line 2: has_poster is 'yes'; expected True or False",
        ),
    ],
)
def test_bad_files_name_file_and_line(raw: Path, file: str, text: str, match: str) -> None:
    (raw / file).write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_movielens100k(raw, poster_map="map.csv")


def test_missing_files(raw: Path) -> None:
    (raw / "ml-100k" / "u.data").unlink()
    with pytest.raises(DatasetError, match=r"u.data: file not found"):
        read_movielens100k(raw, poster_map="map.csv")
    with pytest.raises(DatasetError, match=r"u.item: file not found"):
        read_movielens100k(raw / "nowhere")


def test_command_prints_report_and_summary(raw: Path, tmp_path: Path) -> None:
    args = [
        "source=movielens100k",
        f"in_dir={raw}",
        f"out_dir={tmp_path / 'out'}",
        "source.poster_map=map.csv",
    ]
    run = run_module("vrs.cli.prepare", [*args, "preprocess.min_user_events=2"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "min_user_events=2: 1 interactions; 1 users and 1 items lost all their events" in run.stdout
    assert "images_present" in run.stdout and "dataset written to" in run.stdout
    (raw / "ml-100k" / "u.data").write_text("1\tx\t5\t100\n")
    run = run_module("vrs.cli.prepare", args, tmp_path)
    assert run.returncode == 1 and "u.data: line 1" in run.stderr and "Traceback" not in run.stderr
