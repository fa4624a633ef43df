"""benchmarks/cornac_reference.py --features: only a plain (N, F) finite array of the catalogue loads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.scripts import load_script


def _script():
    return load_script("benchmarks/cornac_reference.py", "cornac_reference")


def test_features_load_as_float32_rows_of_the_catalogue(tmp_path: Path) -> None:
    load = _script().load_features
    feats = torch.randn(5, 3, dtype=torch.float16)
    torch.save(feats, tmp_path / "features.pt")
    np.save(tmp_path / "features.npy", feats.float().numpy())
    for name in ("features.pt", "features.npy"):
        got = load(tmp_path / name, 5)
        assert got.dtype == np.float32 and got.shape == (5, 3)
        np.testing.assert_allclose(got, feats.float().numpy())


class _Payload:
    def __reduce__(self):  # what a crafted pickle would run on load
        return (print, ("ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_feature_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    load = _script().load_features
    cases = {
        "rows.pt": (torch.randn(4, 3), r"rows.pt: expected \(5, F\) features \(one row per item\), got \(4, 3\)"),
        "flat.npy": (np.zeros(5, dtype=np.float32), r"flat.npy: expected \(5, F\) features"),
        "nan.pt": (torch.full((5, 2), float("nan")), "nan.pt: features hold NaN or infinite values"),
        "dict.pt": ({"image": torch.randn(5, 3)}, "dict.pt: expected one \\(N, F\\) tensor, got dict"),
    }  # fmt: skip
    for name, (value, message) in cases.items():
        path = tmp_path / name
        np.save(path, value) if name.endswith(".npy") else torch.save(value, path)
        with pytest.raises(SystemExit, match=message):
            load(path, 5)
    # Arbitrary pickled objects are never unpickled (weights_only / allow_pickle=False).
    (tmp_path / "code.pt").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(SystemExit, match="code.pt: not a plain array or tensor file"):
        load(tmp_path / "code.pt", 5)
    np.save(tmp_path / "objects.npy", np.array([_Payload()], dtype=object), allow_pickle=True)
    with pytest.raises(SystemExit, match="objects.npy: not a plain array or tensor file.*allow_pickle=False"):
        load(tmp_path / "objects.npy", 5)
