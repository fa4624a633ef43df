"""benchmarks/mmrec_reference.py: the MMRec files hold vrs's training pairs and targets (runs without
MMRec, which the script imports from a checkout at run time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.scripts import load_script
from vrs.data.schema.files import write_dataset


def _script():
    return load_script("benchmarks/mmrec_reference.py", "mmrec_reference")


def test_mmrec_files_hold_vrs_training_pairs_once_and_the_targets(tmp_path: Path) -> None:
    ref = _script()
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(7)], "title": [f"t{k}" for k in range(7)]})
    rows = [  # ux repeats i2 within training; uy's test target repeats a training item
        ("ux", "i2", 1), ("ux", "i2", 2), ("ux", "i3", 3), ("ux", "i4", 4), ("ux", "i5", 5),
        ("uy", "i1", 1), ("uy", "i0", 2), ("uy", "i3", 3), ("uy", "i1", 4),
        ("uz", "i6", 1), ("uz", "i0", 2),
    ]  # fmt: skip
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    root = write_dataset(tmp_path / "d", items, inter, name="tiny", source="test", licence="CC0")
    data, *_ = ref.load_split(root)
    image = np.arange(data.n_items * 3, dtype=np.float32).reshape(data.n_items, 3)
    text = -image[:, :2]
    n = ref.write_mmrec_dataset(data, tmp_path / "mm", image, text)
    written = pd.read_csv(tmp_path / "mm" / "vrs.inter", sep="\t")
    assert list(written.columns) == ["userID", "itemID", "x_label"]

    def pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:  # catalogue order: item k is "ik"
        return sorted(
            (str(data.user_ids[u]), f"i{i}") for u, i in zip(frame["userID"], frame["itemID"], strict=True)
        )

    train = written[written["x_label"] == 0]
    assert len(train) == n == 6
    # ux trains on i2, i2, i3 (two pairs), uy on i1, i0; uz (2 events, not evaluated) on both.
    assert pairs(train) == sorted(
        [("ux", "i2"), ("ux", "i3"), ("uy", "i1"), ("uy", "i0"), ("uz", "i6"), ("uz", "i0")]
    )
    assert pairs(written[written["x_label"] == 1]) == [("ux", "i4"), ("uy", "i3")]
    assert pairs(written[written["x_label"] == 2]) == [("ux", "i5"), ("uy", "i1")]
    np.testing.assert_array_equal(np.load(tmp_path / "mm" / "image_feat.npy"), image)
    np.testing.assert_array_equal(np.load(tmp_path / "mm" / "text_feat.npy"), text)


def test_grid_parsing_and_errors() -> None:
    ref = _script()
    assert ref.parse_grid("dropout=0.8,0.9 reg_weight=0") == [
        {"dropout": 0.8, "reg_weight": 0.0},
        {"dropout": 0.9, "reg_weight": 0.0},
    ]
    assert len(ref.parse_grid(ref.DEFAULT_GRID)) == 8
    with pytest.raises(SystemExit, match="not key=v1"):
        ref.parse_grid("dropout")
    with pytest.raises(SystemExit, match="reg_weight=x"):
        ref.parse_grid("reg_weight=x")
