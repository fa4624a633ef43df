"""The real MovieLens-100K and H&M folders convert with the counts their READMEs state (slow: real data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vrs.data.adapters.hm import convert_hm
from vrs.data.adapters.movielens100k import convert_movielens100k
from vrs.data.adapters.preprocess import Preprocess, format_report
from vrs.data.adapters.recbole import convert_recbole, export_recbole
from vrs.data.schema import load_dataset

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.slow


def _folder(name: str) -> Path:
    if not (DATA / name).is_dir():
        pytest.skip(f"{DATA / name} not present")
    return DATA / name


def test_movielens100k_with_posters(tmp_path: Path) -> None:
    ds = load_dataset(
        convert_movielens100k(_folder("movielens-100k-posters"), tmp_path / "ml"), check_images=True
    )
    print(format_report(ds.meta["preparation"]), ds.meta["counts"], sep="\n")
    # 1,422 items have a poster; the 3 placeholder title cards are left out by default.
    assert ds.meta["counts"] == {"users": 943, "items": 1682, "interactions": 100_000, "images": 1419}
    assert ds.interactions["rating"].between(1, 5).all() and set(ds.interactions["event"]) == {"rating"}
    assert ds.items.set_index("item_id").loc["1", "title"] == "Toy Story (1995)"

    # RecBole export and import give back the same interactions.
    export_recbole(tmp_path / "ml", tmp_path / "rb", "ml100k")
    back = load_dataset(convert_recbole(tmp_path / "rb", tmp_path / "back", "ml100k", event="rating"))
    pd.testing.assert_frame_equal(
        back.interactions.drop(columns="rating"), ds.interactions.drop(columns="rating")
    )


def test_hm_sample(tmp_path: Path) -> None:
    ds = load_dataset(convert_hm(_folder("hm-fashion-sample"), tmp_path / "hm"), check_images=True)
    print(format_report(ds.meta["preparation"]), ds.meta["counts"], sep="\n")
    assert ds.meta["counts"] == {"users": 1364, "items": 17033, "interactions": 31662, "images": 17033}
    assert ds.meta["preparation"]["drops"] == []  # repeated purchases are kept
    five = load_dataset(
        convert_hm(DATA / "hm-fashion-sample", tmp_path / "hm5", Preprocess(min_user_events=5))
    )
    print(format_report(five.meta["preparation"]), five.meta["counts"], sep="\n")
    assert five.meta["counts"]["users"] == 923  # "923 customers have >= 5" purchases
