"""Hyper-parameter search (vrs-train -m hparams_search=...): trials on validation only, and DDP trials
whose ranks train the values the sweeper sampled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from vrs.cli.sweeps import child_argv

ROOT = Path(__file__).resolve().parents[2]


def _search(tmp_path: Path, data: Path, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = [
        "hparams_search=sasrec_beauty",
        f"data.root={data}",
        "data.image_size=32",
        "trainer.max_epochs=1",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        # Tiny models: the search space's widths would only slow the test down.
        'hydra.sweeper.params={model.dim: "choice(8, 16)"}',
        *extra,
    ]
    return subprocess.run(
        [sys.executable, "-m", "vrs.cli.train", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _trials(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def test_three_trials_choose_on_validation_only(tmp_path: Path, small_data: Path) -> None:
    result = _search(tmp_path, small_data, "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    trials = _trials(sweep)
    assert [t.name for t in trials] == ["0", "1", "2"]
    values = []
    for trial in trials:
        metrics = json.loads((trial / "metrics.json").read_text())
        assert set(metrics) == {"val/ndcg_10"}  # no test metric was computed
        values.append(metrics["val/ndcg_10"])
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(values)
    # Each trial trained the values the sweeper reported for it.
    chosen = trials[values.index(max(values))]
    config = yaml.safe_load((chosen / "config.yaml").read_text())
    assert config["model"]["dim"] == best["best_params"]["model.dim"]
    assert config["model"]["optimizer"]["lr"] == best["best_params"]["model.optimizer.lr"]


def test_a_search_continues_from_its_database(tmp_path: Path, small_data: Path) -> None:
    """hydra.sweeper.storage keeps the study: a second process (a relaunch, or a second worker with
    its own sweep folder) adds its trials to the first one's."""
    import optuna

    db = tmp_path / "study.db"
    storage = f"hydra.sweeper.storage=sqlite:///{db}"
    first = _search(tmp_path, small_data, "hydra.sweeper.n_trials=2", storage)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = _search(tmp_path, small_data, "hydra.sweeper.n_trials=1", storage,
                     f"hydra.sweep.dir={tmp_path / 'sweep2'}", "hydra.sweeper.sampler.seed=1")  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    study = optuna.load_study(study_name="sasrec_beauty", storage=f"sqlite:///{db}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len(_trials(tmp_path / "sweep2")) == 1


def test_search_refuses_test_metrics(tmp_path: Path, small_data: Path) -> None:
    result = _search(tmp_path, small_data, "hydra.sweeper.n_trials=1", "test=true")
    assert result.returncode != 0
    assert "test=true inside a hyper-parameter search" in result.stderr
    assert not (tmp_path / "sweep" / "0" / "metrics.json").exists()


def test_ddp_trials_run_in_their_own_folder_with_the_sampled_values(tmp_path: Path, small_data: Path) -> None:
    # A rank running the sweep's own command line starts a second sweep, and the first one waits for
    # it for good: the timeout (a trial takes seconds) turns that into a failure.
    extra = ("hydra.sweeper.n_trials=2", "trainer=ddp_cpu", "data.batch_size=8")
    result = _search(tmp_path, small_data, *extra, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("Starting with 2 processes") == 2
    trials = _trials(tmp_path / "sweep")
    assert [t.name for t in trials] == ["0", "1"]  # no rank started a sweep of its own
    for trial in trials:
        # Rank 1 ran in the trial's folder (it would log elsewhere had it run the sweep's command line).
        assert (trial / "train_ddp_process_1.log").is_file()
        assert "val/ndcg_10" in json.loads((trial / "metrics.json").read_text())
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("multirun_*"))


def test_child_command_line_is_the_trial_alone() -> None:
    from omegaconf import OmegaConf

    hydra = OmegaConf.create({"overrides": {"task": ["model.dim=16", "hparams_search=sasrec_beauty"]}})
    argv = child_argv(hydra, "vrs-train")
    assert argv == ["vrs-train", "model.dim=16", "hparams_search=sasrec_beauty", "hydra.mode=RUN"]
    assert "-m" not in argv and "--multirun" not in argv
