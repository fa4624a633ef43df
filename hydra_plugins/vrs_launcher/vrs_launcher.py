"""Cluster launches: ``vrs-train -m hydra/launcher=slurm ...`` submits every job of a multirun to SLURM
through submitit; ``hydra/launcher=local`` runs the same jobs as local processes (submitit's local
executor, which the tests use). Configs: ``configs/hydra/launcher/``.

Hydra takes launchers only from the ``hydra_plugins`` package and imports every module there when any
Hydra program starts, so this one imports vrs (and torch) only inside a job.

What these add to Hydra's submitit launchers:

- One run folder per job for all its ranks and all its restarts: the sweep folder (``${now:...}``) is
  resolved once, in the submitting process, and every task receives it as a plain path.
- A job whose run folder already holds a checkpoint continues from it, as ``resume=last`` does: a job
  requeued by submitit (its time limit, or a preemption), requeued by SLURM itself, or submitted again
  into the same sweep folder trains on from its latest complete epoch instead of from scratch.
- The tasks are the trainer's ranks (``tasks_per_node`` = ``trainer.devices``, ``nodes`` =
  ``trainer.num_nodes``): a job whose trainer asks for another count stops before it trains.
- Under the local executor the tasks of a job become the DDP ranks of one run; on SLURM Lightning's
  SLURMEnvironment reads the ranks from SLURM's variables itself.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
from omegaconf import DictConfig, open_dict

# Folders a compute node keeps to itself: a run folder there is lost to the other nodes and to the
# node a requeued job lands on.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quoted(value: str) -> str:
    """`value` as a quoted Hydra override value (a path may hold characters the grammar reserves).
    Hydra reads backslashes literally except before a quote or at the end, where they are doubled."""
    doubled = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    return "'" + doubled.replace("'", "\\'") + "'"


def continuation(overrides: list[str], run_dir: Path) -> list[str]:
    """``["resume=last"]`` when the job's run folder holds a checkpoint to continue (the job started
    before) and its overrides say nothing of ``resume``; else ``[]``."""
    from vrs.cli.train import last_checkpoint

    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None or any(_key(o) == "resume" for o in overrides):
        return []
    print(f"{checkpoint} exists: this job continues its run (resume=last)", file=sys.stderr, flush=True)
    return ["resume=last"]


def check_ranks(trainer: DictConfig, tasks_per_node: int, nodes: int) -> None:
    """Refuses a job whose trainer expects other ranks than the launcher started."""
    devices, num_nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if isinstance(devices, int) and (devices, num_nodes) != (tasks_per_node, nodes):
        raise ValueError(
            f"this job's trainer runs trainer.devices={devices} rank(s) on trainer.num_nodes={num_nodes} "
            f"node(s), but the launcher started {tasks_per_node} task(s) per node on {nodes} node(s). The "
            "launcher takes its resources from the command line's trainer: give trainer.devices and "
            "trainer.num_nodes once for the whole multirun, not as swept values"
        )


class _Launcher:
    """What the SLURM and the local launcher add to Hydra's (see the module docstring)."""

    params: dict[str, Any]
    config: DictConfig | None
    hydra_context: Any
    sweep_dir: str | None = None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[call-arg]
        for key, source in (("tasks_per_node", "trainer.devices"), ("nodes", "trainer.num_nodes")):
            value = self.params.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"hydra.launcher.{key}={value!r}: a job needs a positive number of tasks per node and "
                    f"of nodes; configs/hydra/launcher takes it from {source}, so give that as a number "
                    "(e.g. trainer.devices=8, not -1 or auto)"
                )

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
        assert self.config is not None
        # Resolved here, once: the tasks of a job start at different times (and again after a
        # requeue), and ${now:...} resolved by each would give each its own folder.
        self.sweep_dir = str(self.config.hydra.sweep.dir)
        self.check_sweep_dir(Path(self.sweep_dir))
        return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]

    def check_sweep_dir(self, path: Path) -> None:
        """Refuses a sweep folder the job's tasks cannot share (SLURM: one on a node-local disk)."""

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        overrides = list(sweep_overrides)
        if self.sweep_dir is not None:
            overrides.append(f"hydra.sweep.dir={_quoted(self.sweep_dir)}")
        self.set_ranks()
        cfg = self._job_config(overrides, job_num, singleton_state)
        check_ranks(cfg.trainer, self.params.get("tasks_per_node", 1), self.params.get("nodes", 1))
        subdir = str(cfg.hydra.sweep.subdir)
        # Pinned too: resume=last, once added, would rename a folder named after the overrides
        # (hydra.job.override_dirname), and the job must continue in the folder it ran in.
        overrides.append(f"hydra.sweep.subdir={_quoted(subdir)}")
        overrides += continuation(sweep_overrides, Path(str(cfg.hydra.sweep.dir)) / subdir)
        return super().__call__(overrides, job_dir_key, job_num, job_id, singleton_state)  # type: ignore[misc]

    def _job_config(self, overrides: list[str], job_num: int, singleton_state: dict) -> DictConfig:
        """The job's config as Hydra's launcher composes it (which then does so again to run it)."""
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.id = submitit.JobEnvironment().job_id
            cfg.hydra.job.num = job_num
        return cfg

    def set_ranks(self) -> None:
        """Tells Lightning this task's rank, where the cluster does not (see LocalLauncher)."""


class SlurmLauncher(_Launcher, base.SlurmLauncher):
    """Hydra's submitit SLURM launcher with one run folder per job and continuation after a requeue."""

    def check_sweep_dir(self, path: Path) -> None:
        resolved = path.resolve()
        if any(resolved.is_relative_to(p) for p in NODE_LOCAL):
            raise ValueError(
                f"hydra.sweep.dir={path} is on a node-local disk: the ranks of other nodes and a requeued "
                "job would not find its run folders and checkpoints. Pass hydra.sweep.dir=<a folder on a "
                "shared file system> (or paths.log_dir=...)"
            )


class LocalLauncher(_Launcher, base.LocalLauncher):
    """Hydra's submitit local launcher; a job's tasks (tasks_per_node > 1) are the ranks of one run."""

    def set_ranks(self) -> None:
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks < 2:
            return
        # What Lightning's launcher gives the DDP ranks it starts: a process carrying LOCAL_RANK is
        # taken as a rank started for it, and joins the others at MASTER_ADDR:MASTER_PORT (one port
        # per job, from its id, which every task of the job shares).
        port = 20000 + zlib.crc32(env.job_id.encode()) % 20000
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            NODE_RANK="0",
            LOCAL_RANK=str(env.local_rank),
            WORLD_SIZE=str(env.num_tasks),
        )
