"""Checks of a dataset's tables and image paths against the canonical format (`vrs.data.schema`).

Each raises one `DatasetError` naming the file, the column, the first offending row (0-based
position) or value, and what was expected.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrs.data.schema.spec import (
    IMAGE_LINKS_KEY,
    INTERACTION_COLUMNS,
    INTERACTIONS_FILE,
    ITEM_COLUMNS,
    ITEMS_FILE,
    META_FILE,
    REQUIRED_ITEM_COLUMNS,
    Dataset,
    DatasetError,
)

_SHOW = 5  # how many offending values an error message lists


def preview(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:_SHOW])
    return shown + (", ..." if len(values) > _SHOW else "")


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so messages read ``0`` rather than ``np.int64(0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_columns(df: pd.DataFrame, file: str, required: Sequence[str], optional: Sequence[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{file}: missing required column(s) {missing}; expected columns {list(required)} "
            f"(optional: {list(optional)}; found {list(map(str, df.columns))})"
        )


def _check_not_null(df: pd.DataFrame, file: str, column: str) -> None:
    nulls = df[column].isna().to_numpy()
    if nulls.any():
        raise DatasetError(
            f"{file}: column '{column}' must not contain nulls, found {int(nulls.sum())} "
            f"(first at row {_first_row(nulls)})"
        )


def _check_string(df: pd.DataFrame, file: str, column: str) -> None:
    """Strings (``str`` dtype or ``object`` holding Python str); nulls are checked elsewhere."""
    col = df[column]
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        return
    nulls = col.isna().to_numpy()
    if nulls.all():  # an all-null optional column has no string dtype to speak of (e.g. float NaN)
        return
    if pd.api.types.is_object_dtype(col.dtype):
        bad = np.array([not isinstance(v, str) for v in col], dtype=bool) & ~nulls
        if not bad.any():
            return
        row = _first_row(bad)
        value = col.iloc[row]
        got = f"{type(value).__name__} value {value!r} at row {row}"
    else:
        row = int(np.flatnonzero(~nulls)[0])
        got = f"{col.dtype} (e.g. value {_plain(col.iloc[row])!r} at row {row})"
    raise DatasetError(
        f"{file}: column '{column}' must be string (numbers are not converted to ids), got {got}"
    )


def in_int64(values: np.ndarray | float) -> np.ndarray:
    """Whether float values fit int64; 2**63 itself does not (it is the first float beyond the max)."""
    return (values >= -(2.0**63)) & (values < 2.0**63)


def _check_timestamp(df: pd.DataFrame, file: str) -> None:
    col = df["timestamp"]
    expected = "must be int64 (seconds or an order index)"
    if pd.api.types.is_bool_dtype(col.dtype):
        raise DatasetError(f"{file}: column 'timestamp' {expected}, got bool")
    if pd.api.types.is_unsigned_integer_dtype(col.dtype):
        values = col.to_numpy()
        bad = values > np.iinfo(np.int64).max  # would wrap to a negative time on the cast
        if bad.any():
            row = _first_row(bad)
            raise DatasetError(
                f"{file}: column 'timestamp' {expected}, got {col.dtype} value {_plain(values[row])} "
                f"at row {row}, above the int64 maximum {np.iinfo(np.int64).max}"
            )
        return
    if pd.api.types.is_integer_dtype(col.dtype):
        return
    if pd.api.types.is_float_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64)
        # Whole-valued floats (e.g. from a CSV round trip) are cast; anything else would lose data,
        # and a value outside int64 would wrap to INT64_MIN, silently reordering the history.
        bad = ~np.isfinite(values) | (values != np.round(values)) | ~in_int64(values)
        if bad.any():
            row = _first_row(bad)
            problem = "non-integer" if np.isfinite(values[row]) and in_int64(values[row]) else "out-of-range"
            raise DatasetError(
                f"{file}: column 'timestamp' {expected}, got {col.dtype} with {problem} value "
                f"{values[row]} at row {row} (int64 holds -2**63 .. 2**63-1)"
            )
        return
    raise DatasetError(
        f"{file}: column 'timestamp' {expected}, got {col.dtype} (value {_plain(col.iloc[0])!r} at row 0)"
    )


def validate_tables(
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    root: Path | None,
    check_images: bool,
    link_roots: Sequence[Path] = (),
) -> None:
    """Check both tables against the canonical format.

    Args:
        items: the items table.
        interactions: the interactions table (the ``event`` column is optional).
        root: the dataset folder, used to check image files; None skips the file check.
        check_images: whether to require every non-null image path to exist under ``root`` and, with
            links followed, to lie inside it.
        link_roots: other folders image links may lead into (see ``IMAGE_LINKS_KEY``).

    Raises:
        DatasetError: on the first problem found, naming file, column, row/value and expectation.
    """
    for file, df in ((ITEMS_FILE, items), (INTERACTIONS_FILE, interactions)):
        if len(df) == 0:
            raise DatasetError(f"{file}: table is empty; expected at least one row")
    _check_columns(items, ITEMS_FILE, REQUIRED_ITEM_COLUMNS, ITEM_COLUMNS[2:])
    _check_columns(interactions, INTERACTIONS_FILE, INTERACTION_COLUMNS, ["event"])

    for column in ("item_id", "title"):
        _check_not_null(items, ITEMS_FILE, column)
    for column in ITEM_COLUMNS:
        if column in items.columns:
            _check_string(items, ITEMS_FILE, column)
    # An event of null would become an event type of its own, so it is required when present.
    ev = ("event",) if "event" in interactions.columns else ()
    for column in ("user_id", "item_id", "timestamp", *ev):
        _check_not_null(interactions, INTERACTIONS_FILE, column)
    for column in ("user_id", "item_id", *ev):
        _check_string(interactions, INTERACTIONS_FILE, column)
    _check_timestamp(interactions, INTERACTIONS_FILE)

    ids = items["item_id"].astype("str")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        first = ids.iloc[_first_row(dup)]
        rows = np.flatnonzero((ids == first).to_numpy())
        raise DatasetError(
            f"{ITEMS_FILE}: column 'item_id' value {first!r} is duplicated at rows {rows[0]} and {rows[1]} "
            f"({int(ids.duplicated().sum())} duplicate row(s) in all); expected unique item ids"
        )
    known = interactions["item_id"].astype("str").isin(set(ids)).to_numpy()
    if not known.all():
        unknown = pd.unique(interactions["item_id"].astype("str").to_numpy()[~known])
        raise DatasetError(
            f"{INTERACTIONS_FILE}: column 'item_id' references {len(unknown)} item id(s) not in "
            f"{ITEMS_FILE}: {preview(unknown)} (first at row {_first_row(~known)})"
        )
    _check_image_paths(items, root, check_images, link_roots)


def _real_paths(root: Path, rel_paths: Sequence[str]) -> list[Path | None]:
    """Each path's real location under ``root`` (links followed), or None for a missing file.

    Parent folders are resolved once each, so only files that are links themselves cost a full resolve.
    """
    parents: dict[Path, Path] = {}
    out: list[Path | None] = []
    for rel in rel_paths:
        path = root / rel
        if not path.is_file():
            out.append(None)
        elif path.is_symlink():
            out.append(path.resolve())
        else:
            if path.parent not in parents:
                parents[path.parent] = path.parent.resolve()
            out.append(parents[path.parent] / path.name)
    return out


def _check_inside(
    root: Path,
    rel_paths: Sequence[str],
    rows: Sequence[int],
    real: Sequence[Path | None],
    link_roots: Sequence[Path],
) -> None:
    """Refuses an image whose real path leaves the dataset folder (a symlinked file or folder)."""
    allowed = [root.resolve(), *(Path(p).resolve() for p in link_roots)]
    for rel, row, path in zip(rel_paths, rows, real, strict=True):
        if path is not None and not any(path.is_relative_to(a) for a in allowed):
            raise DatasetError(
                f"{ITEMS_FILE}: column 'image' value {rel!r} at row {row} is a link to {path}, outside the "
                f"dataset folder {allowed[0]}; expected image files inside the dataset folder (copy the "
                "file in rather than linking to it)"
            )


def check_image_links(ds: Dataset) -> None:
    """Raises :class:`DatasetError` when an existing image file of ``ds`` lies outside its folder.

    :func:`load_dataset` checks this with ``check_images=True``; image loaders call it again so a
    dataset loaded without that check cannot make them read files elsewhere.
    """
    rows = np.flatnonzero(ds.items["image"].notna().to_numpy())
    rel = [str(ds.items["image"].iloc[r]) for r in rows]
    _check_inside(ds.root, rel, rows.tolist(), _real_paths(ds.root, rel), link_roots(ds.meta, ds.root))


def _check_image_paths(
    items: pd.DataFrame, root: Path | None, check_images: bool, link_roots: Sequence[Path] = ()
) -> None:
    if "image" not in items.columns:
        return
    paths = items["image"]
    present = paths.notna().to_numpy()
    for row in np.flatnonzero(present):
        rel = str(paths.iloc[row])
        norm = posixpath.normpath(rel.replace("\\", "/"))
        if os.path.isabs(rel) or rel.startswith(("/", "\\")) or norm == ".." or norm.startswith("../"):
            raise DatasetError(
                f"{ITEMS_FILE}: column 'image' value {rel!r} at row {row} escapes the dataset root; "
                "expected a path relative to the dataset folder (e.g. 'images/x.jpg')"
            )
    if not check_images or root is None:
        return
    rows = np.flatnonzero(present)
    rel_paths = [str(paths.iloc[r]) for r in rows]
    real = _real_paths(root, rel_paths)
    missing = [rel for rel, path in zip(rel_paths, real, strict=True) if path is None]
    if missing:
        raise DatasetError(
            f"{ITEMS_FILE}: column 'image' names {len(missing)} missing file(s) under {root}: "
            f"{preview(missing)}; expected existing image files (or null for items without one)"
        )
    _check_inside(root, rel_paths, rows.tolist(), real, link_roots)


def link_roots(meta: dict[str, Any], root: Path) -> list[Path]:
    value = meta.get(IMAGE_LINKS_KEY) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and os.path.isabs(v) for v in value):
        raise DatasetError(
            f"{META_FILE}: key '{IMAGE_LINKS_KEY}' in {root} is {value!r}; expected a list of absolute folders"
        )
    return [Path(v) for v in value]
