"""The canonical on-disk dataset format: loading, validation, atomic writing and summaries.

A dataset is a folder holding

- ``items.parquet``: ``item_id`` (str, unique), ``title`` (str), ``description`` (str, may be empty),
  ``category`` (str, may be empty), ``image`` (str path relative to the folder, may be null); extra
  columns are kept. Row order is catalogue order. Only ``item_id`` and ``title`` are required
  columns; absent ``description``/``category`` read as "" and an absent ``image`` as null.
- ``interactions.parquet``: ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int64, seconds or an
  order index), ``event`` (str such as view/click/purchase; "interaction" when the column is absent).
- ``images/`` with the image files and ``dataset.json`` (name, source, licence, counts, fingerprint).

Every problem found in a dataset is reported as one :class:`DatasetError` whose message names the
file, the column, the first offending row (0-based position) or value, and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrs.io import atomic_write

ITEMS_FILE = "items.parquet"
INTERACTIONS_FILE = "interactions.parquet"
META_FILE = "dataset.json"
IMAGES_DIR = "images"
DEFAULT_EVENT = "interaction"
# dataset.json key: folders that image symlinks may lead into (vrs-prepare image_mode=symlink).
IMAGE_LINKS_KEY = "image_links_to"

ITEM_COLUMNS = ("item_id", "title", "description", "category", "image")
REQUIRED_ITEM_COLUMNS = ("item_id", "title")  # the others default to "", "" and null when absent
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
_SHOW = 5  # how many offending values an error message lists


class DatasetError(ValueError):
    """A dataset folder or table breaks the canonical format; the message says where and how."""


@dataclass
class Dataset:
    """A validated dataset with normalised dtypes.

    Attributes:
        root: the dataset folder; ``items.image`` paths are relative to it.
        items: one row per item in catalogue order (ids and texts ``str``, ``image`` ``str`` or NaN).
        interactions: one row per event in file order (ids ``str``, ``timestamp`` int64, ``event`` str).
        meta: the contents of ``dataset.json`` ({} when the file is absent).
    """

    root: Path
    items: pd.DataFrame
    interactions: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)


def _preview(values: Sequence[Any]) -> str:
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
    _check_inside(ds.root, rel, rows.tolist(), _real_paths(ds.root, rel), _link_roots(ds.meta, ds.root))


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
            f"{_preview(missing)}; expected existing image files (or null for items without one)"
        )
    _check_inside(root, rel_paths, rows.tolist(), real, link_roots)


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
            f"{ITEMS_FILE}: {_preview(unknown)} (first at row {_first_row(~known)})"
        )
    _check_image_paths(items, root, check_images, link_roots)


def _normalise(items: pd.DataFrame, interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copies with canonical dtypes; assumes ``validate_tables`` passed."""
    items = items.reset_index(drop=True).copy()
    for column in ("item_id", "title"):
        items[column] = items[column].astype("str")
    for column in ("description", "category"):
        if column not in items.columns:
            items[column] = ""
        items[column] = items[column].fillna("").astype("str")
    if "image" not in items.columns:
        items["image"] = None
    items["image"] = items["image"].astype("str")  # nulls stay NaN
    interactions = interactions.reset_index(drop=True).copy()
    for column in ("user_id", "item_id"):
        interactions[column] = interactions[column].astype("str")
    interactions["timestamp"] = interactions["timestamp"].astype("int64")
    if "event" in interactions.columns:
        interactions["event"] = interactions["event"].astype("str")
    else:
        interactions["event"] = pd.Series(DEFAULT_EVENT, index=interactions.index, dtype="str")
    return items, interactions


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{path.name}: file not found at {path}; expected a parquet table")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DatasetError(f"{path.name}: cannot read parquet file {path}: {exc}") from exc


def load_dataset(root: str | Path, check_images: bool = True) -> Dataset:
    """Read, validate and normalise a dataset folder.

    Args:
        root: the dataset folder.
        check_images: whether to require every non-null image path to exist.

    Returns:
        The dataset; items keep catalogue (row) order and interactions keep file order.

    Raises:
        DatasetError: when the folder or any table breaks the canonical format.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found; expected a folder with {ITEMS_FILE}")
    items = _read_parquet(root / ITEMS_FILE)
    interactions = _read_parquet(root / INTERACTIONS_FILE)
    meta: dict[str, Any] = {}
    if (root / META_FILE).is_file():
        try:
            meta = json.loads((root / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{META_FILE}: cannot read JSON in {root}: {exc}") from exc
        if not isinstance(meta, dict):
            raise DatasetError(f"{META_FILE}: expected a JSON object in {root}, got {type(meta).__name__}")
    validate_tables(items, interactions, root, check_images, _link_roots(meta, root))
    items, interactions = _normalise(items, interactions)
    return Dataset(root=root, items=items, interactions=interactions, meta=meta)


def _link_roots(meta: dict[str, Any], root: Path) -> list[Path]:
    value = meta.get(IMAGE_LINKS_KEY) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and os.path.isabs(v) for v in value):
        raise DatasetError(
            f"{META_FILE}: key '{IMAGE_LINKS_KEY}' in {root} is {value!r}; expected a list of absolute folders"
        )
    return [Path(v) for v in value]


def fingerprint(items: pd.DataFrame, interactions: pd.DataFrame) -> str:
    """A content hash of both tables (16 hex chars), independent of dtype spelling and index.

    Columns are hashed in sorted name order with ``pandas.util.hash_pandas_object``, so the value is
    the same for ``object`` and ``str`` columns holding the same strings.
    """
    items, interactions = _normalise(items, interactions)
    sha = hashlib.sha256()
    for name, df in ((ITEMS_FILE, items), (INTERACTIONS_FILE, interactions)):
        sha.update(f"{name}:{len(df)}".encode())
        for column in sorted(map(str, df.columns)):
            col = df[column]
            try:
                hashed = pd.util.hash_pandas_object(col, index=False)
            except TypeError:  # unhashable cells (lists, dicts) in extra columns
                hashed = pd.util.hash_pandas_object(col.map(repr), index=False)
            sha.update(column.encode())
            sha.update(hashed.to_numpy().tobytes())
    return sha.hexdigest()[:16]


def write_dataset(
    root: str | Path,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    *,
    name: str,
    source: str,
    licence: str,
    extra_meta: dict[str, Any] | None = None,
    image_links_to: Path | None = None,
) -> Path:
    """Validate, then atomically write both tables and ``dataset.json``.

    Images must already be in ``root/images``. Nothing is written when validation fails, so an
    existing dataset in ``root`` stays intact.

    Args:
        root: the dataset folder (created if needed).
        items: the items table.
        interactions: the interactions table.
        name: dataset name.
        source: where the data came from (URL or generator).
        licence: the data licence.
        extra_meta: more keys for ``dataset.json``; the standard keys above take precedence.
        image_links_to: a folder outside ``root`` that image symlinks lead into (recorded in
            ``dataset.json``, so loading accepts those links); None accepts no link leaving ``root``.

    Returns:
        ``root`` as a Path.

    Raises:
        DatasetError: when the tables break the canonical format.
    """
    root = Path(root)
    links = [] if image_links_to is None else [str(Path(image_links_to).resolve())]
    validate_tables(items, interactions, root, check_images=True, link_roots=[Path(p) for p in links])
    items, interactions = _normalise(items, interactions)
    root.mkdir(parents=True, exist_ok=True)
    (root / IMAGES_DIR).mkdir(exist_ok=True)
    n_images = int(items["image"].notna().sum())
    meta = {
        **(extra_meta or {}),
        **({IMAGE_LINKS_KEY: links} if links else {}),
        "name": name,
        "source": source,
        "licence": licence,
        "counts": {
            "users": int(interactions["user_id"].nunique()),
            "items": len(items),
            "interactions": len(interactions),
            "images": n_images,
        },
        "fingerprint": fingerprint(items, interactions),
    }
    atomic_write(root / ITEMS_FILE, lambda p: items.to_parquet(p, index=False))
    atomic_write(root / INTERACTIONS_FILE, lambda p: interactions.to_parquet(p, index=False))
    atomic_write(root / META_FILE, lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"))
    return root


def summarize(ds: Dataset) -> dict[str, Any]:
    """Headline statistics of a dataset.

    Returns:
        users, items, interactions, density (interactions / (users * items)), events (event -> count),
        images_present (items whose image file exists), items_without_image, time_range (min, max),
        mean_history and median_history (events per user).
    """
    has_path = ds.items["image"].notna()
    images_present = int(sum((ds.root / p).is_file() for p in ds.items.loc[has_path, "image"]))
    lengths = ds.interactions.groupby("user_id", sort=False).size()
    ts = ds.interactions["timestamp"]
    events = ds.interactions["event"].value_counts()
    return {
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": ds.n_interactions,
        "density": ds.n_interactions / max(ds.n_users * ds.n_items, 1),
        "events": {str(k): int(v) for k, v in sorted(events.items())},
        "images_present": images_present,
        "items_without_image": ds.n_items - images_present,
        "time_range": (int(ts.min()), int(ts.max())),
        "mean_history": float(lengths.mean()),
        "median_history": float(lengths.median()),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize` output as aligned ``key : value`` lines."""
    width = max(len(k) for k in summary)
    lines = []
    for key, value in summary.items():
        if isinstance(value, float):
            text = f"{value:.3g}" if key == "density" else f"{value:.2f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v:,}" for k, v in value.items())
        elif isinstance(value, tuple):
            text = " .. ".join(str(v) for v in value)
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        lines.append(f"{key.ljust(width)} : {text}")
    return "\n".join(lines)
