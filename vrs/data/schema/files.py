"""Reading, writing and fingerprinting a dataset folder in the canonical format (`vrs.data.schema`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrs.data.schema.checks import link_roots, validate_tables
from vrs.data.schema.spec import (
    DEFAULT_EVENT,
    IMAGE_LINKS_KEY,
    IMAGES_DIR,
    INTERACTIONS_FILE,
    ITEMS_FILE,
    META_FILE,
    Dataset,
    DatasetError,
)
from vrs.io import atomic_write


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
    missing = items["image"].isna()
    # pandas 2's astype("str") writes a null as the string "None" (pandas 3 keeps it null): put the
    # nulls back, so that items without a photo (and the fingerprint) do not depend on the version.
    items["image"] = items["image"].astype("str").where(~missing, np.nan)
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
    validate_tables(items, interactions, root, check_images, link_roots(meta, root))
    items, interactions = _normalise(items, interactions)
    return Dataset(root=root, items=items, interactions=interactions, meta=meta)


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
