"""DDP on two CPU processes (gloo): evaluation equals one process exactly; training runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import compose_config
from vrs.cli.train import train

ROOT = Path(__file__).resolve().parents[2]


def _cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    run = tmp_path_factory.mktemp("train")
    cfg = compose_config(
        "train", ["trainer.max_epochs=1", "data.image_size=32", "test=false"], run, small_data
    )
    train(cfg)
    return run / "checkpoints" / "last.ckpt"


def test_ddp_evaluation_equals_single_process(tmp_path: Path, small_data: Path, checkpoint: Path) -> None:
    common = [f"ckpt_path={checkpoint}", "data=canonical", f"data.root={small_data}", "data.image_size=32",
              "data.eval_batch_size=16", "stages=[val,test]"]  # fmt: skip
    _cli("vrs.cli.evaluate", [*common, f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    ddp = _cli(
        "vrs.cli.evaluate",
        [*common, "trainer=ddp_cpu", "trainer.devices=2", f"hydra.run.dir={tmp_path / 'two'}"],
        tmp_path,
    )
    assert "Starting with 2 processes" in ddp.stdout + ddp.stderr
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["test/n_users"] == 300 and one["val/n_users"] == 300
    assert one == two  # exactly: no target counted twice, none lost
    # Per-target rows: every rank's, once each, identical to one process's.
    import pandas as pd

    rows = [
        pd.read_parquet(tmp_path / run / "test_users.parquet").sort_values("user") for run in ("one", "two")
    ]
    assert len(rows[0]) == 300
    pd.testing.assert_frame_equal(rows[0].reset_index(drop=True), rows[1].reset_index(drop=True))


def test_ddp_training_with_in_batch_negatives_runs(tmp_path: Path, small_data: Path) -> None:
    args = ["data=canonical", f"data.root={small_data}", "data.image_size=32", "trainer=ddp_cpu",
            "trainer.max_epochs=1", "loss=in_batch", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    result = _cli("vrs.cli.train", args, tmp_path)
    # Quiet: the metrics are logged synced (no sync_dist advice), rank 1's INFO lines stay in its log.
    output = result.stdout + result.stderr
    assert "sync_dist" not in output and "GLOBAL_RANK: 0" in output
    assert "GLOBAL_RANK: 1" not in output and "[rank: 1]" not in output
    assert "GLOBAL_RANK: 1" in (tmp_path / "train_ddp_process_1.log").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/n_users"] == 300
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
