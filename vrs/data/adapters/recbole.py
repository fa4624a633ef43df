"""RecBole atomic files: import ``<name>.inter`` (+ optional ``<name>.item``) and export a canonical
dataset to them.

An atomic file is tab-separated with a ``name:type`` header, type one of token, token_seq, float,
float_seq (sequences separated by spaces). Import: the user, item and time fields (names
configurable; a float time is floored to whole seconds, no time field means file order) and an
optional ``event`` token field become the canonical columns; other ``.inter`` fields are kept as
columns (float fields as float64). From ``.item`` the title comes from ``title`` (or ``movie_title``,
``item_name``, ``name``), the category from ``category`` (or ``categories``, ``genre``, ``class``) and
the description from ``description`` followed by the other text fields as "field: value"; an
``image`` token field names files under ``image_dir``; without it an item's image is
``<image_dir>/<item_id>.<jpg|jpeg|png|webp>`` when present.

Export writes ``user_id:token item_id:token timestamp:float event:token`` plus numeric extra
columns as floats, and ``item_id:token title:token_seq description:token_seq category:token_seq
image:token`` (image paths relative to the dataset folder: import back with ``image_dir=<dataset>``).
Texts lose tabs, newlines and repeated spaces, which the format cannot hold.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from vrs.data.adapters.common import (
    SourceTables,
    find_file,
    images_by_id,
    list_files,
    parse_number,
    read_table,
    require_filled,
    require_int64,
    require_known,
    require_rows,
    require_unique,
    write_prepared,
)
from vrs.data.adapters.output import check_out_dir, source_inputs
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, counts
from vrs.data.schema import DatasetError, load_dataset
from vrs.io import atomic_write

TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("title", "movie_title", "item_name", "name")
CATEGORY_FIELDS = ("category", "categories", "genre", "class")
CANONICAL = ("user_id", "item_id", "timestamp", "event")


def _read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table with bare field names, and field -> type."""
    with path.open(encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split("\t")  # pandas would rename repeated fields
    types: dict[str, str] = {}
    for column in header:
        field, _, kind = column.partition(":")
        if kind not in TYPES or not field or field in types:
            raise DatasetError(
                f"{path}: line 1: header field {column!r} is not a new 'name:type' with type in {list(TYPES)}"
            )
        types[field] = kind
    table = read_table(path, sep="\t")
    table.columns = list(types)
    return table, types


def _require_field(path: Path, types: dict[str, str], field: str, kinds: tuple[str, ...]) -> None:
    if types.get(field) not in kinds:
        raise DatasetError(
            f"{path}: line 1: field '{field}' of type {kinds[0]} not in the header {list(types)}; "
            "expected it (or set the field name option)"
        )


def _extras(table: pd.DataFrame, path: Path, types: dict[str, str], skip: set[str]) -> dict[str, pd.Series]:
    out = {}
    for field, kind in types.items():
        if field in skip or field in CANONICAL:
            continue
        if kind == "float":
            out[field] = parse_number(table, path, field, "a number (float field)", False, allow_missing=True)
        else:
            out[field] = table[field]
    return out


def _text_join(parts: list[pd.Series], index: pd.Index) -> pd.Series:
    text = pd.Series("", index=index, dtype="str")
    for part in parts:
        part = part.fillna("")
        text = text + np.where((text != "") & (part != ""), ". ", "") + part
    return text


def _read_items(path: Path, item_field: str, image_dir: Path | None, report: PrepareReport) -> pd.DataFrame:
    table, types = _read_atomic(path)
    _require_field(path, types, item_field, ("token",))
    require_filled(table, path, [item_field], f"an {item_field} on every line")
    require_unique(table, path, item_field)
    title = next((f for f in TITLE_FIELDS if f in types), None)
    category = next((f for f in CATEGORY_FIELDS if f in types), None)
    used = {item_field, title, category, "description", "image"}
    others = [f for f, k in types.items() if f not in used and k in ("token", "token_seq")]
    parts = [table["description"]] if "description" in types else []
    parts += [(f + ": " + table[f]).where(table[f].notna(), "") for f in others]
    items = pd.DataFrame(
        {
            "item_id": table[item_field],
            "title": table[title].fillna("") if title else "",
            "description": _text_join(parts, table.index),
            "category": table[category].fillna("") if category else "",
        },
        index=table.index,
    )
    for field, values in _extras(table, path, types, used | set(others)).items():
        if field not in items.columns:
            items[field] = values
    items["image"] = None
    if image_dir is not None:
        files = list_files(image_dir)
        if "image" in types:
            named = table["image"]
            missing = (named.notna() & ~named.isin(files)).to_numpy()
            if missing.any():
                row = int(np.flatnonzero(missing)[0])
                raise DatasetError(
                    f"{path}: line {table.index[row]}: image {named.iloc[row]!r} not found under {image_dir} "
                    f"({int(missing.sum())} missing); expected a path relative to image_dir"
                )
            items["image"] = named
        else:
            items["image"] = images_by_id(items["item_id"], files)
    elif "image" in types and table["image"].notna().any():
        report.notes.append("the image field was ignored: pass image_dir to resolve its paths")
    return items


def read_recbole(
    in_dir: str | Path,
    name: str,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    event: str = "interaction",
    image_dir: str | Path | None = None,
) -> SourceTables:
    """Reads ``<name>.inter`` and, when present, ``<name>.item`` into canonical tables.

    Args:
        in_dir: the folder with the atomic files.
        name: the dataset name (file stem).
        user_field, item_field, time_field: the field names of user, item and time.
        event: the event type when ``.inter`` has no ``event`` field.
        image_dir: a folder of images (relative to ``in_dir`` or absolute); None: no images.

    Raises:
        DatasetError: a missing file, a bad header, an empty id, an unparsable time or float, a
            repeated item, or an interaction of an item not in ``.item`` (file and line named).
    """
    if not name:
        raise ValueError("name is required: the file stem of the source files (e.g. name=ml-1m)")
    in_dir = Path(in_dir)
    path = find_file(in_dir / f"{name}.inter", f"the RecBole interaction file {name}.inter")
    table, types = _read_atomic(path)
    require_rows(table, path, "one tab-separated interaction per line after the header")
    _require_field(path, types, user_field, ("token",))
    _require_field(path, types, item_field, ("token",))
    require_filled(table, path, [user_field, item_field], f"{user_field} and {item_field} on every line")
    inter = pd.DataFrame({"user_id": table[user_field], "item_id": table[item_field]}, index=table.index)
    notes = []
    if time_field in types:
        expected = "a numeric time (float field)"
        seconds = np.floor(parse_number(table, path, time_field, expected, integer=False).to_numpy())
        require_int64(table, path, time_field, seconds, expected)
        inter["timestamp"] = seconds.astype(np.int64)
    else:
        inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
        notes.append(f"no '{time_field}' field: the file order is the timestamp")
    if "event" in types:
        require_filled(table, path, ["event"], "an event on every line")
        inter["event"] = table["event"]
    else:
        inter["event"] = event
    for field, values in _extras(table, path, types, {user_field, item_field, time_field}).items():
        inter[field] = values

    image_root = None if image_dir is None else in_dir / image_dir
    if image_root is not None and not image_root.is_dir():
        raise DatasetError(f"{image_root}: image folder not found; expected a folder of images")
    report = PrepareReport(source=f"recbole/{name}")
    item_path = in_dir / f"{name}.item"
    if item_path.is_file():
        items = _read_items(item_path, item_field, image_root, report)
        require_known(inter, path, "item_id", pd.Index(items["item_id"]), item_path.name)
    else:
        ids = pd.unique(inter["item_id"].to_numpy())
        items = pd.DataFrame({"item_id": ids, "title": "", "description": "", "category": "", "image": None})
        notes.append(f"no {item_path.name}: items have no text")
        if image_root is not None:
            files = list_files(image_root)
            items["image"] = images_by_id(items["item_id"], files)
    report.read = counts(inter, items)
    report.notes += notes
    if image_root is not None:
        report.notes.append(
            f"{int(items['image'].notna().sum()):,} of {len(items):,} items read with an image"
        )
    return SourceTables(items.reset_index(drop=True), inter.reset_index(drop=True), report, image_root)


def convert_recbole(
    in_dir: str | Path,
    out_dir: str | Path,
    name: str,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    event: str = "interaction",
    image_dir: str | Path | None = None,
    preprocess: Preprocess | None = None,
    image_mode: str = "copy",
    overwrite: bool = False,
) -> Path:
    """Writes the canonical dataset of RecBole atomic files into ``out_dir`` (idempotent).

    Args: see :func:`read_recbole`; ``preprocess`` holds the shared options, ``image_mode`` is
    "copy" or "symlink" and ``overwrite`` writes into a non-empty ``out_dir`` not prepared from these
    files (see :func:`~vrs.data.adapters.common.check_out_dir`).
    """
    inputs = source_inputs("recbole", in_dir, name=name, image_dir=image_dir)
    check_out_dir(out_dir, inputs, overwrite)
    tables = read_recbole(in_dir, name, user_field, item_field, time_field, event, image_dir)
    return write_prepared(
        out_dir, tables, preprocess, image_mode, name=f"recbole/{name}",
        source=f"RecBole atomic files ({Path(in_dir) / name}.inter)", licence="see the source data",
        inputs=inputs, overwrite=overwrite,
    )  # fmt: skip


def _clean(text: pd.Series) -> pd.Series:
    return text.fillna("").astype("str").str.replace(r"\s+", " ", regex=True).str.strip()


def _write_atomic(path: Path, table: pd.DataFrame, types: list[str]) -> Path:
    header = [f"{c}:{t}" for c, t in zip(table.columns, types, strict=True)]
    return atomic_write(
        path,
        lambda p: table.to_csv(p, sep="\t", header=header, index=False, na_rep="", quoting=csv.QUOTE_MINIMAL),
    )


def export_recbole(
    root: str | Path, out_dir: str | Path, name: str | None = None, overwrite: bool = False
) -> list[Path]:
    """Writes a canonical dataset as RecBole atomic files ``<name>.inter`` and ``<name>.item``.

    Args:
        root: the canonical dataset folder.
        out_dir: where the files go (created if needed).
        name: the RecBole dataset name; None uses the folder name of ``root``.
        overwrite: replace existing ``<name>.inter`` / ``<name>.item`` files (refused otherwise).

    Returns:
        The files written.

    Raises:
        DatasetError: when ``root`` is not a valid canonical dataset.
        FileExistsError: when an output file exists and ``overwrite`` is false.
    """
    ds = load_dataset(root, check_images=False)
    name = name or Path(root).resolve().name
    out_dir = Path(out_dir)
    existing = [p for p in (out_dir / f"{name}.inter", out_dir / f"{name}.item") if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(map(str, existing))} already exist(s): pass overwrite=true to replace, or another "
            "out_dir / name"
        )
    inter = ds.interactions[list(CANONICAL)].copy()
    inter["event"] = _clean(inter["event"])
    inter_types = ["token", "token", "float", "token"]
    for column in ds.interactions.columns:
        values = ds.interactions[column]
        if column in CANONICAL or ":" in str(column):
            continue
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric or pd.api.types.is_string_dtype(values):
            inter[column] = values if numeric else _clean(values)
            inter_types.append("float" if numeric else "token")
    items = pd.DataFrame({c: _clean(ds.items[c]) for c in ("item_id", "title", "description", "category")})
    item_types = ["token", "token_seq", "token_seq", "token_seq"]
    if ds.items["image"].notna().any():
        items["image"] = ds.items["image"]
        item_types.append("token")
    return [
        _write_atomic(out_dir / f"{name}.inter", inter, inter_types),
        _write_atomic(out_dir / f"{name}.item", items, item_types),
    ]
