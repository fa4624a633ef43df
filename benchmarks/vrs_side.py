"""vrs's own reading of a dataset folder and its leave-one-out split, for the reference scripts
(`cornac_reference.py`, `recbole_reference.py`), which run in side environments where vrs is not
installed: it is imported from this checkout, and the dataset reader, the split and the sequence
tables need numpy, pandas, pyarrow and torch only."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_split(root: Path):
    """(SequenceData, Split, Dataset) of the canonical dataset folder `root`."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from vrs.data.schema.files import load_dataset
    from vrs.data.sequences import SequenceData
    from vrs.data.splits import make_split

    ds = load_dataset(root, check_images=False)
    split = make_split(ds.interactions, "leave_one_out")
    return SequenceData(ds.items, ds.interactions, split), split, ds
