"""What the reference scripts (`cornac_reference.py`, `recbole_reference.py`, `rectools_sasrec.py`)
take from vrs, in side environments where vrs is not installed: it is imported from this checkout.
The dataset reader, the split and the sequence tables need numpy, pandas, pyarrow and torch only;
so does the guard on the pickled checkpoints a script writes and reloads."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # this checkout's vrs


def vrs_io():
    """vrs.io of this checkout (hash records of written files)."""
    _on_path()
    import vrs.io

    return vrs.io


def own_checkpoint(path: Path) -> Path:
    """`path`, if a script wrote it with vrs.io's hash record beside it: reference checkpoints (such
    as RecTools') are pickles, so only a file whose record the script wrote, both this user's and
    writable by no one else, is loaded."""
    if not vrs_io().matches_record(path):
        raise SystemExit(
            f"refusing to load {path}: not a checkpoint this script wrote (its {path.name}.sha256 record "
            "is missing or differs, or one of them is not this user's or is writable by others); "
            "loading it could run code. Start a fresh --out folder."
        )
    return path


def load_own_checkpoint(path: Path) -> dict:
    """torch.load of a pickled checkpoint, after own_checkpoint has vetted it."""
    import torch

    return torch.load(own_checkpoint(path), map_location="cpu", weights_only=False)


def load_split(root: Path):
    """(SequenceData, Split, Dataset) of the canonical dataset folder `root`."""
    _on_path()
    from vrs.data.schema.files import load_dataset
    from vrs.data.sequences import SequenceData
    from vrs.data.splits import make_split

    ds = load_dataset(root, check_images=False)
    split = make_split(ds.interactions, "leave_one_out")
    return SequenceData(ds.items, ds.interactions, split), split, ds
