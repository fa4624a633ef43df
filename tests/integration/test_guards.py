"""Runs that cannot produce a result say why, early, and never leave files that look like one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import compose_config
from vrs.cli.train import train
from vrs.data.schema import write_dataset


def test_bad_settings_are_named_before_any_data_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dataset"  # would fail to load, so the error proves loading never began
    overrides = ["data=canonical", "trainer.max_epochs=abc", "data.batch_size=0", "user.dropout=1.5"]
    cfg = compose_config("train", overrides, tmp_path / "run", data_root=missing)
    with pytest.raises(ValueError) as err:
        train(cfg)
    message = str(err.value)
    assert "trainer.max_epochs='abc': expected an integer >= -1" in message
    assert "data.batch_size=0: expected an integer >= 1" in message
    assert "user.dropout=1.5: expected a number >= 0 and < 1" in message


def test_bad_setting_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vrs.cli.train", "trainer.max_epochs=abc", f"data.root={tmp_path / 'd'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "trainer.max_epochs='abc'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()  # nothing generated or loaded


def _two_events_per_user(root: Path) -> Path:
    """Two events per user: too short for leave-one-out to hold any out, so no validation target."""
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(6)], "title": [f"t{i}" for i in range(6)]})
    items["description"] = ""
    items["category"] = ""
    items["image"] = None
    users = [f"u{u}" for u in range(4) for _ in range(2)]
    interactions = pd.DataFrame(
        {"user_id": users, "item_id": [f"i{(i * 5) % 6}" for i in range(8)], "timestamp": list(range(8))}
    )
    return write_dataset(root, items, interactions, name="tiny", source="test", licence="CC0")


def test_a_split_with_nothing_to_train_on_is_an_error(tmp_path: Path) -> None:
    data = _two_events_per_user(tmp_path / "data")
    cfg = compose_config(
        "train", ["data=canonical", "data.load_images=false", "encoder=toy"], tmp_path / "run", data_root=data
    )
    with pytest.raises(ValueError, match=r"split leaves \d+ user\(s\) .* and 0 validation target\(s\)"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_debug_run_writes_no_result_and_is_refused_as_a_baseline(tmp_path: Path, small_data: Path) -> None:
    from vrs.cli.compare import main as compare
    from vrs.cli.report import _columns, baseline_dirs

    debug = tmp_path / "debug"
    train(compose_config("train", ["debug=fdr", "data.image_size=32"], debug, data_root=small_data))
    assert not (debug / "metrics.json").exists()
    assert not list(debug.glob("checkpoints/*.ckpt"))
    # A debug run written before this rule, with a metrics.json: still not a result.
    (debug / "metrics.json").write_text(json.dumps({"test/ndcg_10": 0.9}))
    assert compare([str(debug)]) == 1
    run = tmp_path / "run"
    run.mkdir()
    assert baseline_dirs(run, "auto") == []
    with pytest.raises(ValueError, match="debug run"):
        _columns(run, [debug])
