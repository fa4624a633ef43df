"""What vrs-prepare may do to its ``out_dir``: recognise its own earlier output (by the source it was
prepared from, recorded in ``dataset.json``), refuse anyone else's folder, and remove only the
images it wrote itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from vrs.data.schema import IMAGES_DIR, ITEMS_FILE, META_FILE

PREPARATION_KEY = "preparation"
# dataset.json key: the adapter and source files an output was prepared from, so a rerun
# recognises its own output (and the files it wrote) and refuses anyone else's folder.
PREPARED_FROM_KEY = "prepared_from"


def source_inputs(adapter: str, in_dir: str | Path, **inputs: Any) -> dict[str, Any]:
    """What identifies a source for :func:`check_out_dir`: the adapter, its resolved folder, names."""
    extra = {k: str(v) if isinstance(v, Path) else v for k, v in inputs.items()}
    return {"adapter": adapter, "in_dir": str(Path(in_dir).resolve()), **extra}


def check_out_dir(out_dir: str | Path, inputs: dict[str, Any], overwrite: bool) -> set[str]:
    """Refuses an ``out_dir`` that holds anything but an earlier output from the same ``inputs``.

    An empty or absent folder is fine, and so is one prepared from the same source files (other
    preprocessing or image options replace it). ``overwrite`` accepts any folder, but even then
    only files vrs-prepare wrote are ever removed.

    Returns:
        The image files (relative to ``out_dir``) an earlier vrs-prepare run wrote there: the only
        ones a rerun may remove.

    Raises:
        ValueError: when ``out_dir`` is the source folder ``inputs["in_dir"]``.
        FileExistsError: when ``out_dir`` is a file, or a non-empty folder of other origin and
            ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists() and not out_dir.is_symlink():
        return set()
    if out_dir.resolve() == Path(inputs["in_dir"]):
        raise ValueError(
            f"out_dir {out_dir.resolve()} holds the source images and files (in_dir); choose another out_dir"
        )
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: is a file; expected out_dir to be a folder or a new path")
    if not any(out_dir.iterdir()):
        return set()
    meta = _read_meta(out_dir)
    ours = PREPARATION_KEY in meta or PREPARED_FROM_KEY in meta  # older outputs lack the inputs
    if meta.get(PREPARED_FROM_KEY) != inputs and not overwrite:
        if ours:
            previous = meta.get(PREPARED_FROM_KEY) or "not recorded by the vrs-prepare that wrote it"
            raise FileExistsError(
                f"{out_dir} holds a dataset prepared from other inputs ({previous}), not from {inputs}; "
                "pass overwrite=true to replace it, or choose another out_dir"
            )
        what = (
            f"a dataset not written by vrs-prepare ({meta.get('name')!r})"
            if meta
            else "files and is not empty"
        )
        raise FileExistsError(
            f"{out_dir} holds {what}; choose another out_dir, or pass overwrite=true to write the "
            "tables there (files vrs-prepare did not write are kept)"
        )
    return _images_named(out_dir) if ours else set()


def _read_meta(out_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((out_dir / META_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _images_named(out_dir: Path) -> set[str]:
    """The image paths the items table in ``out_dir`` names (an unreadable table names none)."""
    try:
        paths = pd.read_parquet(out_dir / ITEMS_FILE, columns=["image"])["image"]
    except Exception:  # pyarrow raises several unrelated types; nothing named is the safe answer
        return set()
    return {p for p in paths.dropna() if isinstance(p, str) and p.startswith(IMAGES_DIR + "/")}


def prune_images(out_dir: Path, written: set[str], keep: Iterable[str]) -> None:
    """Removes the images an earlier run wrote that no item names any more, and the folders that
    this leaves empty; every other file and folder under ``out_dir/images`` stays."""
    images = (out_dir / IMAGES_DIR).resolve()
    for rel in sorted(written - set(keep)):
        path = out_dir / rel
        # A path that resolves elsewhere (a linked folder) was not written here by this tool.
        if not (path.is_file() or path.is_symlink()) or not path.parent.resolve().is_relative_to(images):
            continue
        path.unlink()
        folder = path.parent
        while (
            folder.resolve() != images
            and folder.resolve().is_relative_to(images)
            and not any(folder.iterdir())
        ):
            folder.rmdir()
            folder = folder.parent
