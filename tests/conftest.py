"""Shared fixtures: a small synthetic dataset generated once per session, Hydra composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vrs.cli.common import CONFIG_DIR

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = Path(__file__).resolve().parents[1]

# Small enough to train in seconds, big enough that models separate from popularity.
SMALL = {
    "n_users": 300,
    "n_items": 150,
    "seed": 0,
    "image_size": 32,
    "cold_item_fraction": 0.15,
    "text_noise": 0.3,
}


def make_synthetic(tmp_path_factory: pytest.TempPathFactory, name: str, params: dict) -> Path:
    """Generates a synthetic dataset into a fresh temporary folder."""
    from vrs.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / name, **params)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic(tmp_path_factory, "synthetic_small", SMALL)


def run_module(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs `python -m module *args` in `cwd` as a user would, with this checkout's vrs, one thread and
    no HYDRA_FULL_ERROR (so bad input ends with its message, not a traceback)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def compose_config(
    name: str, overrides: list[str], run_dir: Path, data_root: Path | None = None
) -> DictConfig:
    """Composes `configs/{name}.yaml` as the command line would, with paths under `run_dir`."""
    if data_root is not None:  # on the command line, as a user gives them (they override a run's)
        overrides = [*overrides, f"data.root={data_root}", "data.generate=null"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(run_dir)
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        cfg.paths.data_dir = str(run_dir / "data")
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg
