"""Canonical dataset format: round trip, every DatasetError case, atomic writes, fingerprint, summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vrs.data.schema import (
    DatasetError,
    fingerprint,
    format_summary,
    load_dataset,
    summarize,
    validate_tables,
    write_dataset,
)


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.DataFrame(
        {
            "item_id": ["i0", "i1", "i2", "i3"],
            "title": ["Red shoe", "Blue hat", "Green bag", "Plain mug"],
            "description": ["leather", "", "canvas", ""],
            "category": ["shoes", "hats", "bags", ""],
            "image": ["images/i0.png", "images/i1.png", "images/i2.png", None],
            "price": [10.0, 5.0, 20.0, 3.0],  # extra column, kept
        }
    )
    interactions = pd.DataFrame(
        {
            "user_id": ["u0", "u0", "u0", "u1", "u1", "u2"],
            "item_id": ["i0", "i1", "i2", "i1", "i3", "i0"],
            "timestamp": [1, 2, 3, 5, 4, 7],
            "event": ["view", "click", "purchase", "view", "view", "click"],
        }
    )
    return items, interactions


def _write_images(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, color in enumerate([(255, 0, 0), (0, 0, 255), (0, 255, 0)]):
        Image.new("RGB", (8, 6), color).save(root / "images" / f"i{i}.png")


def _write(root: Path, items: pd.DataFrame, interactions: pd.DataFrame) -> Path:
    return write_dataset(root, items, interactions, name="tiny", source="test", licence="CC0")


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    _write_images(root)
    return _write(root, *_tables())


def _raw(root: Path, items: pd.DataFrame, interactions: pd.DataFrame) -> Path:
    """Write tables without validation, as a foreign tool might."""
    _write_images(root)
    items.to_parquet(root / "items.parquet", index=False)
    interactions.to_parquet(root / "interactions.parquet", index=False)
    return root


def test_round_trip(dataset_root: Path) -> None:
    ds = load_dataset(dataset_root)
    items, interactions = _tables()
    assert ds.items["item_id"].tolist() == items["item_id"].tolist()  # catalogue order kept
    assert ds.interactions["timestamp"].tolist() == interactions["timestamp"].tolist()  # file order
    assert ds.interactions["timestamp"].dtype == np.int64
    for col in ("item_id", "title", "description", "category", "image"):
        assert pd.api.types.is_string_dtype(ds.items[col].dtype), col
    assert ds.items["image"].isna().tolist() == [False, False, False, True]
    assert ds.items["price"].tolist() == [10.0, 5.0, 20.0, 3.0]
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (3, 4, 6)
    assert ds.meta["name"] == "tiny" and ds.meta["licence"] == "CC0"
    assert ds.meta["counts"] == {"users": 3, "items": 4, "interactions": 6, "images": 3}
    assert ds.meta["fingerprint"] == fingerprint(ds.items, ds.interactions)
    assert not list(dataset_root.glob("*.tmp")) and not list(dataset_root.glob(".*.tmp"))


def test_defaults_for_optional_columns(tmp_path: Path) -> None:
    items, interactions = _tables()
    items = items[["item_id", "title"]]
    ds = load_dataset(_raw(tmp_path, items, interactions.drop(columns="event")))
    assert set(ds.interactions["event"]) == {"interaction"}
    assert ds.items["image"].isna().all() and (ds.items["description"] == "").all()


def test_integer_timestamps_and_whole_floats_are_cast(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions["timestamp"] = interactions["timestamp"].astype("int32").astype("float64")
    ds = load_dataset(_raw(tmp_path, items, interactions))
    assert ds.interactions["timestamp"].dtype == np.int64


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope.*not found"):
        load_dataset(tmp_path / "nope")


@pytest.mark.parametrize("name", ["items.parquet", "interactions.parquet"])
def test_missing_table(dataset_root: Path, name: str) -> None:
    (dataset_root / name).unlink()
    with pytest.raises(DatasetError, match=f"{name}: file not found"):
        load_dataset(dataset_root)


def test_corrupt_parquet(dataset_root: Path) -> None:
    (dataset_root / "interactions.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(DatasetError, match="interactions.parquet: cannot read parquet"):
        load_dataset(dataset_root)


@pytest.mark.parametrize(
    ("table", "column", "file"),
    [("items", "title", "items.parquet"), ("interactions", "timestamp", "interactions.parquet")],
)
def test_missing_column(tmp_path: Path, table: str, column: str, file: str) -> None:
    tables = dict(zip(("items", "interactions"), _tables(), strict=True))
    tables[table] = tables[table].drop(columns=column)
    with pytest.raises(DatasetError, match=rf"{file}: missing required column\(s\) \['{column}'\]"):
        load_dataset(_raw(tmp_path, tables["items"], tables["interactions"]))


def test_integer_item_ids_rejected(tmp_path: Path) -> None:
    items, interactions = _tables()
    items["item_id"] = [0, 1, 2, 3]
    with pytest.raises(
        DatasetError,
        match=r"items.parquet: column 'item_id' must be string .*got int64 \(e.g. value 0 at row 0\)",
    ):
        load_dataset(_raw(tmp_path, items, interactions))


def test_mixed_object_ids_rejected(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions["user_id"] = pd.Series(["u0", "u0", "u0", "u1", 5, "u2"], dtype=object)
    with pytest.raises(DatasetError, match="interactions.parquet: column 'user_id' .*int value 5 at row 4"):
        validate_tables(items, interactions, None, check_images=False)


def test_fractional_timestamp(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions["timestamp"] = [1.0, 2.0, 3.0, 1.5, 4.0, 7.0]
    with pytest.raises(
        DatasetError,
        match="interactions.parquet: column 'timestamp' must be int64 .*non-integer value 1.5 at row 3",
    ):
        load_dataset(_raw(tmp_path, items, interactions))


def test_string_timestamp(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions["timestamp"] = interactions["timestamp"].astype(str)
    with pytest.raises(DatasetError, match="interactions.parquet: column 'timestamp' must be int64.*got str"):
        load_dataset(_raw(tmp_path, items, interactions))


@pytest.mark.parametrize(
    ("table", "column", "file", "row"),
    [
        ("items", "item_id", "items.parquet", 2),
        ("items", "title", "items.parquet", 1),
        ("interactions", "user_id", "interactions.parquet", 3),
        ("interactions", "timestamp", "interactions.parquet", 0),
    ],
)
def test_nulls_in_required_columns(tmp_path: Path, table: str, column: str, file: str, row: int) -> None:
    tables = dict(zip(("items", "interactions"), _tables(), strict=True))
    df = tables[table]
    df[column] = df[column].astype(object)
    df.loc[row, column] = None
    with pytest.raises(DatasetError, match=rf"{file}: column '{column}' must not contain nulls.*row {row}"):
        load_dataset(_raw(tmp_path, tables["items"], tables["interactions"]))


def test_duplicate_item_ids(tmp_path: Path) -> None:
    items, interactions = _tables()
    items.loc[3, "item_id"] = "i1"
    with pytest.raises(
        DatasetError, match="items.parquet: column 'item_id' value 'i1' is duplicated at rows 1 and 3"
    ):
        load_dataset(_raw(tmp_path, items, interactions))


def test_unknown_items(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions.loc[[1, 4], "item_id"] = ["ghost", "phantom"]
    with pytest.raises(
        DatasetError,
        match=r"interactions.parquet: column 'item_id' references 2 item id\(s\) not in items.parquet: "
        r"'ghost', 'phantom' \(first at row 1\)",
    ):
        load_dataset(_raw(tmp_path, items, interactions))


@pytest.mark.parametrize("table", ["items", "interactions"])
def test_empty_tables(tmp_path: Path, table: str) -> None:
    tables = dict(zip(("items", "interactions"), _tables(), strict=True))
    tables[table] = tables[table].iloc[:0]
    with pytest.raises(DatasetError, match=f"{table}.parquet: table is empty"):
        load_dataset(_raw(tmp_path, tables["items"], tables["interactions"]))


@pytest.mark.parametrize("path", ["/etc/passwd", "images/../../secret.png", ".."])
def test_image_path_escaping_root(tmp_path: Path, path: str) -> None:
    items, interactions = _tables()
    items.loc[1, "image"] = path
    with pytest.raises(DatasetError, match=r"items.parquet: column 'image' value .* at row 1 escapes"):
        load_dataset(_raw(tmp_path, items, interactions), check_images=False)


def test_missing_image_files(tmp_path: Path) -> None:
    items, interactions = _tables()
    items.loc[[0, 2], "image"] = ["images/gone.png", "images/lost.png"]
    root = _raw(tmp_path, items, interactions)
    with pytest.raises(
        DatasetError, match=r"items.parquet: column 'image' names 2 missing file\(s\).*'images/gone.png'"
    ):
        load_dataset(root)
    assert load_dataset(root, check_images=False).n_items == 4


def test_write_refuses_invalid_and_keeps_existing(dataset_root: Path) -> None:
    before = {p.name: p.read_bytes() for p in dataset_root.iterdir() if p.is_file()}
    items, interactions = _tables()
    interactions.loc[0, "item_id"] = "ghost"
    with pytest.raises(DatasetError, match="ghost"):
        _write(dataset_root, items, interactions)
    after = {p.name: p.read_bytes() for p in dataset_root.iterdir() if p.is_file()}
    assert after == before
    fresh = dataset_root.parent / "fresh"
    with pytest.raises(DatasetError):
        _write(fresh, items, interactions)
    assert not fresh.exists()


def test_fingerprint_stable_and_sensitive(dataset_root: Path, tmp_path: Path) -> None:
    ds = load_dataset(dataset_root)
    items, interactions = _tables()
    assert fingerprint(items, interactions) == ds.meta["fingerprint"]  # object vs str dtype agree
    again = _write(dataset_root, ds.items, ds.interactions)
    assert load_dataset(again).meta["fingerprint"] == ds.meta["fingerprint"]
    changed = interactions.copy()
    changed.loc[0, "timestamp"] = 99
    assert fingerprint(items, changed) != ds.meta["fingerprint"]
    retitled = items.copy()
    retitled.loc[0, "title"] = "Red boot"
    assert fingerprint(retitled, interactions) != ds.meta["fingerprint"]


def test_summarize(dataset_root: Path) -> None:
    (dataset_root / "images" / "i2.png").unlink()
    summary = summarize(load_dataset(dataset_root, check_images=False))
    assert summary["users"] == 3 and summary["items"] == 4 and summary["interactions"] == 6
    assert summary["density"] == pytest.approx(6 / 12)
    assert summary["events"] == {"click": 2, "purchase": 1, "view": 3}
    assert summary["images_present"] == 2 and summary["items_without_image"] == 2
    assert summary["time_range"] == (1, 7)
    assert summary["mean_history"] == pytest.approx(2.0) and summary["median_history"] == 2.0
    text = format_summary(summary)
    lines = text.splitlines()
    assert len(lines) == len(summary)
    assert len({line.index(" : ") for line in lines}) == 1  # aligned
    assert "click=2" in text


@pytest.mark.parametrize("value", [1e30, -1e30, 2.0**63, float("nan"), float("inf"), -float("inf")])
def test_timestamp_outside_int64_refused(tmp_path: Path, value: float) -> None:
    # 2**63 and beyond used to wrap to INT64_MIN on the cast, silently reordering the history.
    items, interactions = _tables()
    interactions["timestamp"] = interactions["timestamp"].astype("float64")
    interactions.loc[2, "timestamp"] = value
    with pytest.raises(DatasetError, match=r"interactions.parquet: column 'timestamp' .* at row 2"):
        load_dataset(_raw(tmp_path, items, interactions))


def test_uint64_timestamp_above_int64_refused(tmp_path: Path) -> None:
    items, interactions = _tables()
    interactions["timestamp"] = interactions["timestamp"].astype("uint64")
    interactions.loc[4, "timestamp"] = np.uint64(2**63 + 5)
    with pytest.raises(DatasetError, match=r"interactions.parquet: column 'timestamp' .* at row 4"):
        load_dataset(_raw(tmp_path, items, interactions))


def _image_linked_outside(tmp_path: Path, name: str) -> Path:
    """A valid dataset whose images/<name> is a link to a picture outside its folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    root = _raw(tmp_path / "ds", *_tables())
    (root / "images" / name).unlink()
    (root / "images" / name).symlink_to(outside / "secret.png")
    return root


def test_image_symlink_outside_root_refused(tmp_path: Path) -> None:
    root = _image_linked_outside(tmp_path, "i1.png")
    with pytest.raises(
        DatasetError, match=r"items.parquet: column 'image' value 'images/i1.png' at row 1 .*outside"
    ):
        load_dataset(root)
    # A link that stays inside the dataset is fine.
    (root / "images" / "i1.png").unlink()
    (root / "images" / "i1.png").symlink_to(root / "images" / "i0.png")
    assert load_dataset(root).n_items == 4


def test_images_folder_linked_outside_root_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    _write_images(elsewhere)
    root = tmp_path / "ds"
    root.mkdir()
    (root / "images").symlink_to(elsewhere / "images", target_is_directory=True)
    items, interactions = _tables()
    items.to_parquet(root / "items.parquet", index=False)
    interactions.to_parquet(root / "interactions.parquet", index=False)
    with pytest.raises(DatasetError, match=r"value 'images/i0.png' at row 0 .*outside"):
        load_dataset(root)


def test_dataset_root_reached_through_a_link_is_fine(dataset_root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(dataset_root, target_is_directory=True)
    assert load_dataset(link).n_items == 4


def test_image_loader_refuses_links_outside_root(tmp_path: Path) -> None:
    from vrs.data.images import load_item_content

    root = _image_linked_outside(tmp_path, "i2.png")
    ds = load_dataset(root, check_images=False)  # not checked here, so the loader must check
    with pytest.raises(DatasetError, match=r"value 'images/i2.png' at row 2 .*outside"):
        load_item_content(ds, image_size=8, on_bad_image="skip")
