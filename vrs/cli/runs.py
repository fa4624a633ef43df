"""What the commands that load a trained run share: the run a command line names, and the result
tables the serving commands print and write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vrs.cli.checks import check_config
from vrs.io import atomic_write
from vrs.run import CONFIG_FILE, BaselineRun, Run, find_run

if TYPE_CHECKING:  # pandas is imported where a command needs it: --help stays fast
    import pandas as pd


def load_run(cfg: DictConfig) -> Run:
    """The run of `cfg.run_dir` / `cfg.ckpt_path`, loaded (`vrs.load_run`).

    A run with a config.yaml brings its own data and feature-cache settings; of the command's, only
    those given on the command line (`data=NAME`, `data.KEY=...`, `feature_cache=`,
    `feature_precision=`) replace them. A checkpoint outside a run takes them all from the command.
    """
    from vrs.run import load_run as load

    check_config(cfg)
    if not cfg.get("run_dir") and not cfg.get("ckpt_path"):
        raise ValueError(
            f"vrs-{cfg.task_name} needs run_dir=DIR (a folder written by vrs-train) or ckpt_path=PATH "
            "(a checkpoint)"
        )
    run_dir, ckpt = find_run(cfg.get("run_dir"), cfg.get("ckpt_path"))
    given = _command_line_keys() if run_dir and (run_dir / CONFIG_FILE).is_file() else None
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("_target_", None)
    if given is not None and "data" not in given:  # data=NAME replaces the run's settings whole
        data = {
            k: v
            for k, v in data.items()
            if any(g == f"data.{k}" or g.startswith(f"data.{k}.") for g in given)
        }
    features = {
        key: cfg.get(key) or (False if key == "feature_cache" else None)
        for key in ("feature_cache", "feature_precision")
        if given is None or key in given
    }
    return load(run_dir, ckpt_path=ckpt, device=cfg.get("device", "cpu"), **features, **data)


def fit_baseline(cfg: DictConfig) -> BaselineRun:
    """The baseline `cfg.model` names (`model=category_interest encoder=lenet ...`), fitted on the
    training split of `cfg.data` as vrs-eval fits it (`setup_module`: same seed, same feature cache),
    for serving."""
    from vrs.cli.common import baseline_module, require_baseline, setup_module

    check_config(cfg)
    name = HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None
    name = str(name or "baseline")
    if cfg.get("run_dir") or cfg.get("ckpt_path"):
        raise ValueError(
            f"model={name} fits a baseline and run_dir / ckpt_path load a trained run: give one of them"
        )
    require_baseline(cfg)
    if OmegaConf.is_interpolation(cfg.model, "encoder") and cfg.get("encoder") is None:
        raise ValueError(
            f"model={name} reads item features: add encoder=NAME (configs/encoder/, e.g. effnet)"
        )
    datamodule, module = setup_module(cfg, lambda dm: baseline_module(cfg, dm))
    for key, value in module.results.items():  # model=category_interest's classifier accuracy
        print(f"{key}: {value:.4f}")
    return BaselineRun(module.scorer(), datamodule, module.exclude_seen, name, dict(module.results))


def _command_line_keys() -> set[str]:
    """The keys the command line set (`data.root` of `data.root=X`, `data` of `data=canonical`)."""
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def serve_items(cfg: DictConfig, query: Callable[..., pd.DataFrame], queries: list[Any]) -> pd.DataFrame:
    """Loads the run, calls `query(run, queries, k=, index=)` (`Run.similar` or `Run.search`),
    prints the table and with `out=PATH` writes it."""
    run = load_run(cfg)
    table = query(run, queries, k=cfg.k, index=cfg.index)
    print(format_table(with_titles(table, run.items)))
    if cfg.out:
        print(f"written to {write_table(table, cfg.out)}")
    return table


def write_table(table: pd.DataFrame, out: str) -> Path:
    """Writes `table` atomically as parquet, or as CSV when `out` ends in .csv."""
    path = Path(out)
    if path.suffix == ".csv":
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def with_titles(table: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """`table` with each item's title (from the `items` table) after its item_id (for printing)."""
    titles = items.set_index("item_id")["title"]
    out = table.copy()
    out.insert(out.columns.get_loc("item_id") + 1, "title", out["item_id"].map(titles))
    return out


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table; explanation lists print as "item (weight), ...", scores with 4 decimals."""
    shown = table.copy()
    if "because_item_ids" in shown:
        shown["because"] = [
            ", ".join(f"{i} ({w:.2f})" for i, w in zip(ids, ws, strict=True))
            for ids, ws in zip(shown.pop("because_item_ids"), shown.pop("because_weights"), strict=True)
        ]
    return shown.to_string(index=False, float_format=lambda x: f"{x:.4f}", max_colwidth=48)
