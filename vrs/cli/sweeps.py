"""Hyper-parameter searches (vrs-train -m hparams_search=NAME): what keeps a trial honest and a DDP
trial one trial.

Lightning starts the other ranks of a one-node DDP run by re-running the command line with the
run's folder appended. Inside a sweep that command line is the sweep itself (``-m``, the search
space), so every rank would start its own search and sample other values. ``pin_ddp_ranks`` replaces
it with this trial's concrete overrides, in RUN mode, in this trial's folder: the ranks train what
the sweeper (rank 0's process) sampled, and nothing else samples.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, read_write

# Sweepers that optimise the value vrs-train returns: a model-selection search, on validation only.
SEARCH_SWEEPERS = ("hydra_plugins.hydra_optuna_sweeper.",)


def _hydra() -> DictConfig | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def is_search(hydra: DictConfig | None) -> bool:
    """Whether this job is a trial of a hyper-parameter search (a sweeper that optimises a value)."""
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return False
    target = str((hydra.get("sweeper") or {}).get("_target_", ""))
    return target.startswith(SEARCH_SWEEPERS)


def child_argv(hydra: DictConfig, argv0: str) -> list[str]:
    """The command line of this trial alone: its resolved overrides (the sampled values included),
    run in RUN mode."""
    return [argv0, *hydra.overrides.task, "hydra.mode=RUN"]


def check_search(cfg: DictConfig) -> None:
    """Refuses test metrics inside a search: a trial is chosen on validation, and a search that can
    see test numbers chooses on them."""
    if cfg.get("test") and is_search(_hydra()):
        raise ValueError(
            "test=true inside a hyper-parameter search: trials are compared on validation only "
            "(the returned val/ndcg_10). Drop test=true; test the chosen configuration afterwards "
            "with 3 seeds (vrs-train <best overrides> seed=0,1,2 -m)"
        )


# What Lightning's launcher sets in this process when it starts DDP ranks. Left behind, the next job
# of a multirun would take LOCAL_RANK as a sign that its ranks exist already and wait for dead peers.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def sweep_job() -> Iterator[None]:
    """One job of a multirun: its DDP ranks run this job alone (``pin_ddp_ranks``), and it leaves no
    process group or launcher variables to the next job. Outside a multirun: nothing."""
    hydra = _hydra()
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        yield
        return
    saved = {key: os.environ.get(key) for key in LAUNCH_ENV}
    argv = list(sys.argv)
    pin_ddp_ranks(hydra)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.argv[:] = argv


def pin_ddp_ranks(hydra: DictConfig) -> None:
    """Makes the DDP ranks Lightning starts run this multirun job as resolved (see module docstring).
    Refuses a sweep started by torchrun: each rank would run its own sweep."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ:
        raise ValueError(
            "a multirun (-m) under torchrun: torchrun starts every rank with the same command line, so "
            "each rank would run the whole sweep with its own samples. Start the sweep from one process "
            "(trainer=ddp with trainer.devices=N starts the ranks of each trial), or launch trials as "
            "cluster jobs with a Hydra launcher"
        )
    sys.argv[:] = child_argv(hydra, sys.argv[0])
    with read_write(hydra):
        # Lightning appends hydra.run.dir=<HydraConfig run.dir>: make that this trial's folder.
        hydra.run.dir = hydra.runtime.output_dir
