"""The commands as a user runs them: exit codes and messages, no tracebacks for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_module
from vrs.cli import compare, data


def test_validate_prints_summary_or_error(
    small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert data.main(["validate", f"root={small_data}"]) == 0
    out = capsys.readouterr().out
    assert "users" in out and "300" in out and "valid" in out

    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("items.parquet", "interactions.parquet"):
        (bad / name).write_bytes((small_data / name).read_bytes())
    inter = pd.read_parquet(bad / "interactions.parquet")
    inter.loc[3, "item_id"] = "no-such-item"
    inter.to_parquet(bad / "interactions.parquet", index=False)
    assert data.main(["validate", f"root={bad}"]) == 1
    err = capsys.readouterr().err
    assert "interactions.parquet" in err and "no-such-item" in err

    assert data.main(["frobnicate"]) == 2
    assert data.main(["validate"]) == 2


def test_synth_command_writes_a_valid_dataset(tmp_path: Path) -> None:
    result = run_module(
        "vrs.cli.synth", ["out_dir=out", "n_users=20", "n_items=15", "image_size=16"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "dataset written to out" in result.stdout
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["counts"]["users"] == 20
    assert not (tmp_path / "outputs").exists()  # no stray Hydra run folders


def test_bad_input_ends_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = run_module(
        "vrs.cli.train",
        ["data=canonical", "data.root=/no/such/dataset", f"hydra.run.dir={tmp_path}"],
        tmp_path,
    )
    assert result.returncode == 1
    assert "error: /no/such/dataset: dataset folder not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_prints_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, value in (("a", 0.5), ("b", 0.25)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"test/ndcg_10": value}))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "test/ndcg_10" in out and "0.5000" in out and "0.2500" in out
    assert compare.main([str(tmp_path / "missing")]) == 1
