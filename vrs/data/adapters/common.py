"""What the source adapters share: reading text tables with line numbers, parsing columns with errors
that name file and line, placing images under ``out_dir/images``, and writing the prepared dataset.

A reader returns :class:`SourceTables`: canonical tables whose ``image`` column holds paths relative
to the source's image folder; :func:`write_prepared` preprocesses them, copies or links the images
of the items kept to the same relative paths under ``out_dir/images`` and writes the dataset with its
:class:`PrepareReport` in ``dataset.json`` (key ``preparation``).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrs.data.adapters.output import PREPARATION_KEY, PREPARED_FROM_KEY, check_out_dir, prune_images
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, apply_preprocess
from vrs.data.schema import (
    IMAGES_DIR,
    DatasetError,
    in_int64,
    preview,
    validate_tables,
    write_dataset,
)

IMAGE_MODES = ("copy", "symlink")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
_SURPLUS = "\x00surplus"  # an extra column that catches a field beyond the header's


@dataclass
class SourceTables:
    """A source read into canonical tables, before preprocessing.

    Attributes:
        items: canonical items; ``image`` is a path relative to ``image_root`` (or null).
        interactions: canonical interactions (extra columns such as ``rating`` are kept).
        report: what was read, dropped while reading, and notes.
        image_root: the folder the ``image`` paths are relative to; None when no item has one.
    """

    items: pd.DataFrame
    interactions: pd.DataFrame
    report: PrepareReport
    image_root: Path | None = None


def find_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found; expected {expected}")
    return path


def read_table(
    path: Path,
    *,
    sep: str,
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_MINIMAL,
) -> pd.DataFrame:
    """An all-string table indexed by 1-based file line number; blank lines are skipped.

    Args:
        path: the file.
        sep: field separator.
        names: column names of a file without a header line; None reads the header line.
        encoding: text encoding.
        quoting: ``csv`` quoting mode.

    Raises:
        DatasetError: when the file cannot be decoded or a line has more fields than the header
            (file and line named). Lines with fewer fields read the missing ones as empty.
    """
    options = dict(
        sep=sep, dtype="str", keep_default_na=False, na_values=[""], skip_blank_lines=False,
        index_col=False, encoding=encoding, quoting=quoting, engine="c",
    )  # fmt: skip
    first = 1 if names is not None else 2  # file line of the first row
    columns = list(names or [])
    try:
        if names is None:
            columns = list(pd.read_csv(path, nrows=0, **options).columns)
        # pandas drops fields beyond the names without a word (a ParserWarning at most): a surplus
        # column catches one, and a line with more makes the parser fail with its line number.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, header=None, names=[*columns, _SURPLUS], skiprows=first - 1, **options)
    except pd.errors.ParserWarning:  # the first row is two or more fields too long
        raise _too_many_fields(
            path, first, _count_fields(path, first, sep, encoding, quoting), columns
        ) from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(err))
        if found:
            raise _too_many_fields(path, int(found[1]), int(found[2]), columns) from None
        raise DatasetError(f"{path}: {err} (expected {sep!r}-separated fields)") from err
    except UnicodeDecodeError as err:
        line = _undecodable_line(path, encoding)
        raise DatasetError(
            f"{path}: line {line}: cannot decode ({err.reason}); expected {encoding} text"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise DatasetError(
            f"{path}: the file is empty; expected a header line and {sep!r}-separated rows"
        ) from err
    df.index = np.arange(len(df)) + first  # line numbers (no quoted newlines)
    surplus = df.pop(_SURPLUS).notna().to_numpy()
    if surplus.any():
        raise _too_many_fields(path, int(df.index[np.flatnonzero(surplus)[0]]), len(columns) + 1, columns)
    blank = df.isna().all(axis=1).to_numpy()
    return df[~blank] if blank.any() else df


def _too_many_fields(path: Path, line: int, n: int, columns: Sequence[str]) -> DatasetError:
    return DatasetError(
        f"{path}: line {line}: {n} fields, expected {len(columns)} ({', '.join(map(str, columns))}); "
        "extra fields would be lost"
    )


def _count_fields(path: Path, line: int, sep: str, encoding: str, quoting: int) -> int:
    with path.open(encoding=encoding, newline="") as f:
        for _ in range(line - 1):
            f.readline()
        return len(next(csv.reader([f.readline()], delimiter=sep, quoting=quoting), []))


def _undecodable_line(path: Path, encoding: str) -> int:
    """The first line of ``path`` that does not decode (only called once decoding failed)."""
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return line_no
    return 0


def require_rows(df: pd.DataFrame, path: Path, expected: str) -> None:
    """An input without a data row fails here, naming it, rather than later as an empty dataset."""
    if len(df) == 0:
        raise DatasetError(
            f"{path}: no data lines (the file is empty or holds only a header); expected {expected}"
        )


def require_columns(df: pd.DataFrame, path: Path, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {missing}; expected columns {list(required)} "
            f"(found {list(map(str, df.columns))})"
        )


def _fail(path: Path, df: pd.DataFrame, bad: np.ndarray, column: str, problem: str, expected: str) -> None:
    row = int(np.flatnonzero(bad)[0])
    value = df[column].iloc[row]
    what = "is empty" if pd.isna(value) else f"value {value!r} {problem}"
    raise DatasetError(
        f"{path}: line {df.index[row]}: column '{column}' {what}; expected {expected} "
        f"({int(bad.sum())} bad line(s) in all)"
    )


def require_filled(df: pd.DataFrame, path: Path, columns: Iterable[str], expected: str) -> None:
    for column in columns:
        bad = df[column].isna().to_numpy()
        if bad.any():
            _fail(path, df, bad, column, "", expected)


def parse_number(
    df: pd.DataFrame, path: Path, column: str, expected: str, integer: bool, allow_missing: bool = False
) -> pd.Series:
    """Column as int64 (``integer``) or float64; a non-number names its file and line.

    ``allow_missing`` lets empty cells through as NaN (floats only). An integer outside int64 is
    refused: the cast would wrap it to a negative number.
    """
    numeric = pd.to_numeric(df[column], errors="coerce")
    if integer and pd.api.types.is_signed_integer_dtype(numeric.dtype):  # exact, no float round trip
        return pd.Series(numeric.to_numpy(dtype=np.int64), index=df.index)
    values = numeric.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if allow_missing:
        bad &= df[column].notna().to_numpy()
    if bad.any():
        _fail(path, df, bad, column, "is not " + ("an integer" if integer else "a number"), expected)
    if integer:
        fraction = np.isfinite(values) & (values != np.round(values))
        if fraction.any():
            _fail(path, df, fraction, column, "is not an integer", expected)
        require_int64(df, path, column, values, expected)
    return pd.Series(values.astype(np.int64) if integer else values, index=df.index)


def require_int64(df: pd.DataFrame, path: Path, column: str, values: np.ndarray, expected: str) -> None:
    """Raises naming the first line whose (float) value lies outside int64."""
    outside = np.isfinite(values) & ~in_int64(values)
    if outside.any():
        _fail(path, df, outside, column, "is outside the int64 range (-2**63 .. 2**63-1)", expected)


def require_known(
    df: pd.DataFrame, path: Path, column: str, known: pd.Index, where: str, hint: str = ""
) -> None:
    """Raises naming the first line whose ``column`` is not in ``known`` (ids listed in ``where``)."""
    ok = df[column].isin(known).to_numpy()
    if not ok.all():
        unknown = pd.unique(df[column].to_numpy()[~ok])
        _fail(
            path,
            df,
            ~ok,
            column,
            f"is not in {where}",
            f"ids listed there (unknown: {preview(unknown)}){hint}",
        )


def require_unique(df: pd.DataFrame, path: Path, column: str) -> None:
    dup = df[column].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        value = df[column].iloc[row]
        first = df.index[int(np.flatnonzero((df[column] == value).to_numpy())[0])]
        raise DatasetError(
            f"{path}: line {df.index[row]}: column '{column}' value {value!r} repeats line {first}; "
            f"expected unique ids ({int(dup.sum())} repeated line(s) in all)"
        )


def list_files(root: Path) -> set[str]:
    """Every file under ``root`` as a posix path relative to it (one directory walk)."""
    out: set[str] = set()
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        out.update(prefix + f for f in files)
    return out


def images_by_id(item_ids: pd.Series, files: set[str]) -> pd.Series:
    """``<item_id>.<ext>`` for the first of ``IMAGE_EXTENSIONS`` in ``files``, else null."""
    found = pd.Series(None, index=item_ids.index, dtype="str")
    for ext in IMAGE_EXTENSIONS:
        candidate = item_ids + ext
        found = found.fillna(candidate.where(candidate.isin(files)))
    return found


def _check_disjoint(out_images: Path, image_root: Path) -> None:
    a, b = out_images.resolve(), image_root.resolve()
    if a == b or a in b.parents:  # pruning stale images would then delete source files
        raise ValueError(f"out_dir images folder {a} holds the source images {b}; choose another out_dir")


def _same(src: Path, dst: Path, mode: str) -> bool:
    if mode == "symlink":
        return dst.is_symlink() and os.readlink(dst) == str(src)
    if dst.is_symlink() or not dst.is_file():
        return False
    a, b = src.stat(), dst.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def place_images(out_dir: Path, rel_paths: pd.Series, image_root: Path, mode: str) -> pd.Series:
    """Copies (or symlinks) ``image_root/rel`` to ``out_dir/images/rel``; unchanged files are skipped.

    Returns:
        The canonical ``image`` column: ``images/rel`` or null.
    """
    if mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {mode!r}")
    out_images = out_dir / IMAGES_DIR
    if out_images.is_symlink():  # writing through it would put files outside out_dir
        raise FileExistsError(f"{out_images} is a link to {out_images.resolve()}; expected a plain folder")
    _check_disjoint(out_images, image_root)
    src_root = image_root.resolve()
    for rel in pd.unique(rel_paths.dropna().to_numpy()):
        src, dst = src_root / rel, out_images / rel
        if _same(src, dst, mode):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        if mode == "symlink":
            dst.symlink_to(src)
        else:
            shutil.copy2(src, dst)  # keeps mtime, so a rerun recognises the copy
    return (IMAGES_DIR + "/" + rel_paths).where(rel_paths.notna(), None)


def write_prepared(
    out_dir: str | Path,
    tables: SourceTables,
    preprocess: Preprocess | None,
    image_mode: str,
    *,
    name: str,
    source: str,
    licence: str,
    inputs: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Preprocesses, places images and writes the canonical dataset with its report.

    Idempotent: the same input and options give the same files (images already in place are kept;
    images of an earlier run that no item names any more are removed). Everything is validated
    before the first file is written, so a failure leaves ``out_dir`` as it was.

    Args:
        out_dir: the dataset folder; see :func:`check_out_dir` for what it may already hold.
        tables: the source read into canonical tables.
        preprocess: shared preprocessing options (None: the defaults).
        image_mode: "copy" or "symlink" the images.
        name, source, licence: for ``dataset.json``.
        inputs: what identifies the source (:func:`source_inputs`), recorded in ``dataset.json``.
        overwrite: write into a folder of other origin (removing none of its files).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        FileExistsError: see :func:`check_out_dir`.
        DatasetError: when the tables break the canonical format.
    """
    out_dir = Path(out_dir)
    written = check_out_dir(out_dir, inputs, overwrite)
    report = tables.report
    items, inter = apply_preprocess(tables.items, tables.interactions, preprocess or Preprocess(), report)
    items = items.copy()
    has_images = tables.image_root is not None and items["image"].notna().any()
    rel_paths = items["image"] if has_images else None
    items["image"] = (IMAGES_DIR + "/" + rel_paths).where(rel_paths.notna(), None) if has_images else None
    validate_tables(items, inter, None, check_images=False)  # before anything lands in out_dir
    if has_images:
        place_images(out_dir, rel_paths, tables.image_root, image_mode)
    write_dataset(
        out_dir, items, inter, name=name, source=source, licence=licence,
        extra_meta={PREPARATION_KEY: report.to_dict(), PREPARED_FROM_KEY: inputs},
        image_links_to=tables.image_root if image_mode == "symlink" else None,
    )  # fmt: skip
    prune_images(out_dir, written, items["image"].dropna())
    return out_dir
