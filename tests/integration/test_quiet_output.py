"""What vrs-train prints, as a user runs it: each event once, no Lightning adverts, tables or warnings
about its own internals, results headed by the run's title, multirun folders named by their settings."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import run_module

LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")


def test_multirun_prints_each_event_once_and_names_its_folders(tmp_path: Path, small_data: Path) -> None:
    args = ["-m", "seed=0,1", "trainer.max_epochs=1", "data=canonical", f"data.root={small_data}",
            "data.image_size=32", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    result: subprocess.CompletedProcess = run_module("vrs.cli.train", args, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]

    folders = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert folders == ["0_data-canonical+data.image_size-32+data.root-synthetic_small+trainer.max_epochs-1+seed-0",
                       "1_data-canonical+data.image_size-32+data.root-synthetic_small+trainer.max_epochs-1+seed-1"]  # fmt: skip
    for folder in folders:
        assert "test/ndcg_10" in json.loads((tmp_path / "sweep" / folder / "metrics.json").read_text())

    for unwanted in ("Tip:", "litlogger", "LeafSpec", "sync_dist", "Test metric", "DataLoader 0", "INFO:"):
        assert unwanted not in output, unwanted
    # Each job prints each event once (Hydra announces the jobs: "[HYDRA] \t#1 : ...").
    jobs = re.split(r"\[HYDRA\] \t#\d+ : ", result.stdout)[1:]
    assert len(jobs) == 2
    for job in jobs:
        events = [m.group(1) for line in job.splitlines() if (m := LOG_LINE.match(line))]
        assert any(e.startswith("GPU available") for e in events)
        assert len(events) == len(set(events)), events
    # The results of each job are headed by what it set, and the log file holds the job's lines.
    assert (
        "train data=canonical data.image_size=32 data.root=synthetic_small trainer.max_epochs=1 seed=1"
        in output
    )
    log = (tmp_path / "sweep" / folders[0] / "train.log").read_text()
    assert "GPU available" in log and "Tip:" not in log
