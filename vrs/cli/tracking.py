"""Experiment tracking as W&B users expect it: online when logged in, runs named by what differs,
seeds of one configuration grouped, the whole resolved config and the best validation in the summary.
The same settings name multirun folders and head the printed results (``job_subdir``, ``run_title``).

The run name and group come from the job's command-line overrides (Hydra's ``overrides.task``): a
multirun's arms differ by their swept values, its seeds by ``seed`` alone, so ``group`` (the overrides
minus the seed) puts each arm's seeds together.
"""

from __future__ import annotations

import netrc
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

# Overrides that say where a run is written or how it is resumed, not what it is.
_NOT_WHAT = ("hydra.", "paths.", "resume", "logger", "feature_cache", "hparams_search")


def _has_credentials() -> bool:
    """W&B's own places for a key: WANDB_API_KEY, an identity token file, or the netrc entry of the
    W&B host (WANDB_BASE_URL, default api.wandb.ai) that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """Offline when WANDB_MODE says so or when no credentials exist; online for a logged-in user."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun")
    return not _has_credentials()


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    task = HydraConfig.get().overrides.task
    return [o for o in task if not o.lstrip("+~").startswith(_NOT_WHAT)]


def _short(override: str) -> str:
    """key=value with a path value cut to its last part (data.root=/x/amazon/Beauty -> data.root=Beauty)."""
    key, _, value = override.partition("=")
    return f"{key}={Path(value).name}" if "/" in value else override


def _settings() -> list[str]:
    """What the command line set, shortened (_short), by key whatever the order it was typed in, the
    seed last: the runs of one arm read alike up to their seed."""
    settings = [_short(o).lstrip("+~") for o in _overrides()]
    return sorted(settings, key=lambda o: (o.startswith("seed="), o.partition("=")[0]))


def run_title(task_name: str) -> str:
    """The task and what the command line set, as printed above a run's results
    ("train loss=bpr seed=1"; "train" when nothing was set)."""
    return " ".join([task_name, *_settings()])


# A multirun job's folder name keeps these characters: safe in file systems, in a shell, and in a
# Hydra override value (hydra.run.dir=..., run_dir=...), where "=" and "," are syntax.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SUBDIR = 120


def job_subdir(num: int) -> str:
    """A multirun job's folder (hydra.sweep.subdir): its number (unique, in launch order), then what
    its command line set as key-value pairs joined by "+", by key, the seed last: ``3_loss-bpr+seed-1``.
    Paths are cut to their last part (data.root=/x/Beauty -> data.root-Beauty); the number alone past
    MAX_SUBDIR characters."""
    pairs = [o.partition("=")[::2] for o in _settings()]
    safe = "+".join(f"{_UNSAFE.sub('_', k)}-{_UNSAFE.sub('_', v).strip('_')}" for k, v in pairs)
    name = f"{num}_{safe}" if safe else str(num)
    return name if len(name) <= MAX_SUBDIR else str(num)


def run_name(task_name: str) -> str:
    """What distinguishes this run: its overrides (seed included), or the task name when none."""
    return " ".join(_short(o) for o in _overrides()) or task_name


def run_group(task_name: str) -> str:
    """The configuration minus the seed: the seeds of one arm share it."""
    rest = [_short(o) for o in _overrides() if o.partition("=")[0].lstrip("+~") != "seed"]
    return " ".join([task_name, *rest])


def run_tags(task_name: str) -> list[str]:
    """The task and the experiment named on the command line."""
    tags = [task_name]
    for o in _overrides():
        key, _, value = o.partition("=")
        if key.lstrip("+") == "experiment" and value not in tags:
            tags.append(value)
    return tags


OmegaConf.register_new_resolver("vrs.wandb_offline", wandb_offline, replace=True)
OmegaConf.register_new_resolver("vrs.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("vrs.run_group", run_group, replace=True)
OmegaConf.register_new_resolver("vrs.run_tags", run_tags, replace=True)
OmegaConf.register_new_resolver("vrs.job_subdir", job_subdir, replace=True)


def _wandb_loggers(trainer: Any) -> list[Any]:
    return [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]


def log_config(trainer: Any, cfg: DictConfig) -> None:
    """Logs the whole resolved config (data, seed, trainer, encoder...), not only the model's."""
    loggers = _wandb_loggers(trainer)
    if loggers and trainer.is_global_zero:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        resolved.pop("hydra", None)
        for logger in loggers:
            logger.experiment.config.update(resolved, allow_val_change=True)


def finish(trainer: Any, metrics: dict[str, float]) -> None:
    """Puts the run's result in the W&B summary (the best validation value, i.e. the checkpoint chosen,
    and that checkpoint's test metrics) and finishes the W&B run: the next job of a multirun would
    otherwise log into this one (WandbLogger reuses a run in progress)."""
    loggers = _wandb_loggers(trainer)
    if not loggers or not trainer.is_global_zero:
        return
    summary = {f"best/{k}" if k.startswith("val/") else k: v for k, v in metrics.items()}
    checkpoint = trainer.checkpoint_callback
    path = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
    if path:
        summary["best/checkpoint"] = Path(path).name
    for logger in loggers:
        logger.experiment.summary.update(summary)
        logger.experiment.finish()
