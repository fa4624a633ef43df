"""The S3-Rec sequential benchmark files (Amazon Beauty/Sports/Toys, Yelp, LastFM).

`<name>.txt` holds one user per line, "user_id item_1 ... item_n" in chronological order, ids from 1;
`<name>_item2attributes.json` maps item ids to attribute ids. The position in the line becomes the
timestamp (an order index); attribute ids become text tokens ("attr12 attr40"), so a text tower can
use them as a content modality.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from vrs.data.adapters.common import SourceTables, write_prepared
from vrs.data.adapters.output import check_out_dir, source_inputs
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, counts
from vrs.data.schema import DatasetError

NAMES = ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp", "LastFM")
# str.isdigit and int() accept other scripts' digits ('١٢', '²'), which would become ids of their own.
_ASCII_ID = re.compile(r"[0-9]+")
_LINE = "'user_id item_id ...' with integer ids of ASCII digits 0-9"


def read_amazon_seq(in_dir: str | Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads `<name>.txt` (+ attributes when present) into canonical (items, interactions) tables.

    Raises:
        DatasetError: a missing file, or a line that is not "user item item ..." with integer ids.
    """
    in_dir = Path(in_dir)
    path = in_dir / f"{name}.txt"
    if not path.is_file():
        raise DatasetError(
            f"{path}: file not found; expected one of {[n + '.txt' for n in NAMES]} in {in_dir}"
        )
    users: list[str] = []
    items: list[str] = []
    order: list[int] = []
    with path.open("rb") as f:  # decoded per line, so a bad byte names its line
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DatasetError(
                    f"{path}: line {line_no}: byte {raw[err.start : err.start + 1]!r} at column {err.start + 1} "
                    f"is not UTF-8; expected UTF-8 text lines {_LINE}"
                ) from err
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not all(_ASCII_ID.fullmatch(x) for x in fields):
                raise DatasetError(f"{path}: line {line_no}: expected {_LINE}, got {line.strip()[:80]!r}")
            users.extend([fields[0]] * (len(fields) - 1))
            items.extend(fields[1:])
            order.extend(range(len(fields) - 1))
    if not users:
        raise DatasetError(
            f"{path}: no interactions (the file has no non-blank line); expected lines {_LINE}"
        )
    interactions = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "timestamp": pd.Series(order, dtype="int64"),
            "event": "interaction",
        }
    )
    item_ids = sorted(set(items), key=int)
    attributes = _read_attributes(in_dir / f"{name}_item2attributes.json")
    catalogue = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"item {i}" for i in item_ids],
            "description": [" ".join(f"attr{a}" for a in attributes.get(i, [])) for i in item_ids],
            "category": "",
            "image": pd.Series([None] * len(item_ids), dtype="object"),
        }
    )
    return catalogue, interactions


def convert_amazon_seq(
    in_dir: str | Path,
    out_dir: str | Path,
    name: str,
    preprocess: Preprocess | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes the canonical dataset for `name` into `out_dir` (idempotent: same input, same files).

    `preprocess` (shared options, see :mod:`vrs.data.adapters.preprocess`) runs before writing; what it
    dropped is reported under ``preparation`` in ``dataset.json``. A non-empty `out_dir` not prepared
    from the same files is refused unless `overwrite` (see :func:`~vrs.data.adapters.common.check_out_dir`).
    """
    inputs = source_inputs("amazon_seq", in_dir, name=name)
    check_out_dir(out_dir, inputs, overwrite)  # before a long read
    items, interactions = read_amazon_seq(in_dir, name)
    report = PrepareReport(source=f"amazon_seq/{name}", read=counts(interactions, items))
    return write_prepared(
        out_dir,
        SourceTables(items, interactions, report),
        preprocess,
        "copy",
        name=f"amazon_seq/{name}",
        source=f"S3-Rec benchmark files ({Path(in_dir) / name}.txt)",
        licence="research use only (Amazon review data, Yelp dataset, HetRec LastFM)",
        inputs=inputs,
        overwrite=overwrite,
    )


def _read_attributes(path: Path) -> dict[str, list[int]]:
    if not path.is_file():
        return {}
    expected = '{item_id: [attribute ids]}, e.g. {"1": [7, 12]}'
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path}: line {err.lineno}: not valid JSON ({err.msg} at column {err.colno}); expected {expected}"
        ) from err
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"{path}: byte offset {err.start}: not UTF-8; expected UTF-8 JSON {expected}"
        ) from err
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object {expected}, got a JSON {type(raw).__name__}")
    for key, value in raw.items():
        # bool is an int subclass, and true/false are no attribute ids
        if not isinstance(value, list) or not all(type(a) is int for a in value):
            raise DatasetError(
                f"{path}: item {key!r}: value {value!r:.80}; expected a list of integer attribute ids ({expected})"
            )
    return {str(k): list(v) for k, v in raw.items()}
