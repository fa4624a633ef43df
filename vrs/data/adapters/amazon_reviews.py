"""Amazon Reviews 2018 and 2023 (JSON lines, optionally gzipped), with item metadata and local images.

Files in ``in_dir``: reviews ``<name>.jsonl``/``.json`` and metadata ``meta_<name>.jsonl``/``.json``,
each optionally ``.gz``. The version is detected from the first review line:

- 2018: reviews ``reviewerID``, ``asin``, ``unixReviewTime`` (s), ``overall``; metadata ``asin``,
  ``title``, ``description`` (list or str), ``category`` (list), ``imageURLHighRes``/``imageURL``.
- 2023: reviews ``user_id``, ``parent_asin``, ``timestamp`` (ms, floored to s), ``rating``; metadata
  ``parent_asin``, ``title``, ``description`` (list), ``categories`` (list; else ``main_category``),
  ``images`` (list of dicts with ``hi_res``/``large``).

Reviews become ``review`` events with ``rating`` kept. Images cannot be downloaded here: an item's
image is ``<image_dir>/<item_id>.<jpg|jpeg|png|webp>`` or the file named like its first image URL in
``image_dir``; otherwise it is null and the URL is kept in an ``image_url`` column. The report says how
many items have a local image, a URL only, or nothing. Amazon benchmarks usually add
``preprocess.k_core=5``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from vrs.data.adapters.common import (
    SourceTables,
    images_by_id,
    list_files,
    parse_number,
    require_filled,
    require_known,
    write_prepared,
)
from vrs.data.adapters.output import check_out_dir, source_inputs
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, counts
from vrs.data.schema import DatasetError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
UNKNOWN_ITEMS = ("error", "drop")
# version -> review fields (user, item, time, rating) and the time unit in seconds
REVIEW_FIELDS = {
    "2018": (("reviewerID", "asin", "unixReviewTime", "overall"), 1),
    "2023": (("user_id", "parent_asin", "timestamp", "rating"), 1000),
}
META_ID = {"2018": "asin", "2023": "parent_asin"}


def _find(in_dir: Path, stem: str) -> Path:
    for suffix in SUFFIXES:
        if (in_dir / (stem + suffix)).is_file():
            return in_dir / (stem + suffix)
    raise DatasetError(f"{in_dir / stem}: file not found; expected {stem} with a suffix in {list(SUFFIXES)}")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a line that is not a JSON object names its line."""
    opener = gzip.open if path.name.endswith(".gz") else open
    line_no = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetError(
                        f"{path}: line {line_no}: not valid JSON ({err.msg} at column {err.colno}); "
                        "expected one JSON object per line"
                    ) from err
                if not isinstance(rec, dict):
                    raise DatasetError(
                        f"{path}: line {line_no}: expected a JSON object, got {type(rec).__name__}"
                    )
                yield line_no, rec
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DatasetError(
            f"{path}: line {line_no + 1}: cannot read ({err}); expected UTF-8 JSON lines"
        ) from err


def _version(path: Path) -> str:
    for _, rec in _records(path):
        for version, (fields, _) in REVIEW_FIELDS.items():
            if fields[0] in rec:
                return version
        raise DatasetError(
            f"{path}: line 1: unknown review format (keys {sorted(rec)[:8]}); expected the 2018 fields "
            f"{list(REVIEW_FIELDS['2018'][0])} or the 2023 fields {list(REVIEW_FIELDS['2023'][0])}"
        )
    raise DatasetError(f"{path}: no reviews; expected one JSON object per line")


def _read_reviews(path: Path, version: str) -> pd.DataFrame:
    fields, per_second = REVIEW_FIELDS[version]
    # The JSON parse is per line anyway; only the four fields are kept so big files fit in memory.
    lines, values = [], []
    for line_no, rec in _records(path):
        lines.append(line_no)
        values.append(tuple(rec.get(f) for f in fields))
    raw = pd.DataFrame(values, columns=list(fields), index=lines, dtype="str")
    expected = f"the {version} review fields {list(fields)}"
    require_filled(raw, path, fields, expected)
    time = parse_number(raw, path, fields[2], f"an integer time ({expected})", integer=True) // per_second
    rating = parse_number(raw, path, fields[3], f"a numeric rating ({expected})", integer=False)
    return pd.DataFrame(
        {
            "user_id": raw[fields[0]],
            "item_id": raw[fields[1]],
            "timestamp": time,
            "event": "review",
            "rating": rating,
        }
    )


def _text(value: Any, sep: str) -> str:
    if isinstance(value, list):
        return sep.join(str(v).strip() for v in value if isinstance(v, str | int | float) and str(v).strip())
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _as_list(value: Any) -> list[Any]:
    """A list field as a list: a lone string is one entry; any other type (a malformed line) none."""
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []


def _first_url(rec: dict[str, Any], version: str) -> str | None:
    if version == "2018":
        urls = _as_list(rec.get("imageURLHighRes")) + _as_list(rec.get("imageURL"))
        return next((u for u in urls if isinstance(u, str) and u), None)
    for image in _as_list(rec.get("images")):
        if isinstance(image, dict):
            url = image.get("hi_res") or image.get("large")
            if isinstance(url, str) and url:
                return url
    return None


def _read_meta(path: Path, version: str, wanted: set[str]) -> tuple[pd.DataFrame, int]:
    """Metadata rows of the reviewed items (first row per id) and the number of repeated rows."""
    key = META_ID[version]
    rows: dict[str, tuple[str, str, str, str | None]] = {}
    repeated = 0
    for line_no, rec in _records(path):
        item = rec.get(key)
        if not isinstance(item, str) or not item:
            raise DatasetError(
                f"{path}: line {line_no}: missing '{key}'; expected the {version} metadata fields"
            )
        if item not in wanted:
            continue
        if item in rows:
            repeated += 1
            continue
        category = _text(rec.get("category" if version == "2018" else "categories"), " > ")
        if not category and version == "2023":
            category = _text(rec.get("main_category"), "")
        rows[item] = (
            _text(rec.get("title"), " "),
            _text(rec.get("description"), " "),
            category,
            _first_url(rec, version),
        )
    items = pd.DataFrame(
        list(rows.values()), columns=["title", "description", "category", "image_url"], dtype="str"
    )
    items.insert(0, "item_id", pd.Series(list(rows), dtype="str"))
    return items, repeated


def _local_images(items: pd.DataFrame, image_dir: Path) -> pd.Series:
    files = list_files(image_dir)
    found = images_by_id(items["item_id"], files)
    by_url = items["image_url"].str.split("?").str[0].str.rsplit("/", n=1).str[-1]
    return found.fillna(by_url.where(by_url.isin(files)))


def read_amazon_reviews(
    in_dir: str | Path, name: str, image_dir: str | Path | None = None, unknown_items: str = "error"
) -> SourceTables:
    """Reads ``<name>`` reviews and ``meta_<name>`` metadata (2018 or 2023) into canonical tables.

    Args:
        in_dir: the folder with the two files.
        name: the category file stem, e.g. "All_Beauty".
        image_dir: a folder of downloaded images (relative to ``in_dir`` or absolute); None: no images.
        unknown_items: a review of an item absent from the metadata: "error" raises, "drop" drops it
            and reports the count.

    Raises:
        DatasetError: a missing file, a line that is not JSON or lacks a field, an unparsable time or
            rating, or (``unknown_items="error"``) a review of an item without metadata.
    """
    if unknown_items not in UNKNOWN_ITEMS:
        raise ValueError(f"unknown_items must be one of {UNKNOWN_ITEMS}, got {unknown_items!r}")
    if not name:
        raise ValueError("name is required: the file stem of the source files (e.g. name=All_Beauty)")
    in_dir = Path(in_dir)
    review_path, meta_path = _find(in_dir, name), _find(in_dir, f"meta_{name}")
    version = _version(review_path)
    inter = _read_reviews(review_path, version)
    items, repeated = _read_meta(meta_path, version, set(inter["item_id"].unique()))
    report = PrepareReport(source=f"amazon_reviews/{version}/{name}", read=counts(inter, items))
    if repeated:
        report.notes.append(
            f"{repeated:,} repeated metadata line(s) ignored (the first line of an item is kept)"
        )
    if unknown_items == "error":
        hint = "; unknown_items=drop drops such reviews"
        require_known(inter, review_path, "item_id", pd.Index(items["item_id"]), meta_path.name, hint)
    known = inter["item_id"].isin(items["item_id"]).to_numpy()
    if not known.all():
        dropped = inter[~known]
        kept = inter[known]
        report.drop(
            "unknown_items", f"item not in {meta_path.name}", interactions=len(dropped),
            users=inter["user_id"].nunique() - kept["user_id"].nunique(), items=dropped["item_id"].nunique(),
        )  # fmt: skip
        inter = kept
        if len(inter) == 0:
            raise DatasetError(
                f"{review_path}: none of the {len(dropped):,} reviews is of an item in {meta_path.name} "
                "(unknown_items=drop dropped them all); expected reviews of items listed there"
            )
    image_root = None if image_dir is None else in_dir / image_dir
    if image_root is not None and not image_root.is_dir():
        raise DatasetError(f"{image_root}: image folder not found; expected a folder of <item_id>.jpg files")
    items["image"] = None if image_root is None else _local_images(items, image_root)
    local = int(items["image"].notna().sum())
    url_only = int((items["image"].isna() & items["image_url"].notna()).sum())
    report.notes.append(
        f"{local:,} items with a local image, {url_only:,} with image URLs only (not downloaded: image null, "
        f"URL kept in image_url), {len(items) - local - url_only:,} with no image"
    )
    return SourceTables(items, inter.reset_index(drop=True), report, image_root=image_root)


def convert_amazon_reviews(
    in_dir: str | Path,
    out_dir: str | Path,
    name: str,
    image_dir: str | Path | None = None,
    unknown_items: str = "error",
    preprocess: Preprocess | None = None,
    image_mode: str = "copy",
    overwrite: bool = False,
) -> Path:
    """Writes the canonical dataset into ``out_dir`` (idempotent).

    Args:
        in_dir, name, image_dir, unknown_items: see :func:`read_amazon_reviews`.
        out_dir: the dataset folder.
        preprocess: shared preprocessing options; Amazon benchmarks use ``k_core=5``.
        image_mode: "copy" or "symlink" the local images.
        overwrite: write into a non-empty ``out_dir`` not prepared from these files
            (see :func:`~vrs.data.adapters.common.check_out_dir`).
    """
    inputs = source_inputs("amazon_reviews", in_dir, name=name, image_dir=image_dir)
    check_out_dir(out_dir, inputs, overwrite)  # before a long read
    tables = read_amazon_reviews(in_dir, name, image_dir, unknown_items)
    return write_prepared(
        out_dir, tables, preprocess, image_mode, name=f"amazon_reviews/{name}", source=tables.report.source,
        licence="Amazon Reviews (McAuley lab): research use only", inputs=inputs, overwrite=overwrite,
    )  # fmt: skip
