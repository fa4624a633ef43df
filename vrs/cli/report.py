"""vrs-report: a self-contained HTML report of a training run.

vrs-report run_dir=runs/demo/fused
vrs-report run_dir=runs/demo/fused 'baselines=[runs/demo/popularity]' users=12 out=report.html
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, as_list, friendly_errors, is_debug_run
from vrs.cli.runs import load_run


def report(cfg: DictConfig) -> Path:
    """Writes the report of `cfg.run_dir` and returns its path."""
    from vrs.report import ReportSettings, build_report

    if not cfg.run_dir:
        raise ValueError("run_dir=DIR is required (a folder written by vrs-train)")
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir={cfg.run_dir}: no such folder")
    baselines = _columns(run_dir, baseline_dirs(run_dir, cfg.baselines))
    run = load_run(cfg)
    hp = run.module.hparams
    users = cfg.users if isinstance(cfg.users, int) else [str(u) for u in as_list(cfg.users, "users")]
    settings = ReportSettings(
        ks=[int(k) for k in as_list(cfg.ks, "ks")],
        k=cfg.k,
        users=users,
        n_explain=cfg.explain,
        n_history=cfg.history,
        thumb_size=cfg.thumb_size,
        map_items=cfg.map_items,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    data = run.data
    facts = {
        "run": str(run_dir),
        "checkpoint": str(run.checkpoint),
        "dataset": f"{run.datamodule.root} ({data.n_items} items, {data.n_users} users, "
        f"{len(data.test_targets)} test targets, {len(data.test_cold_targets)} cold)",
        "model": ", ".join(
            f"{part}={_short((hp.get(part) or {}).get('_target_', 'none'))}"
            for part in ("encoder", "fusion", "user")
        )
        + f", modalities={'+'.join(run.module.net.item_tower.modalities)}, dim={hp.dim}, max_len={hp.max_len}",
    }
    path = build_report(
        Path(cfg.out) if cfg.out else run_dir / "report.html",
        run,
        read_metrics(run_dir) if (run_dir / "metrics.json").is_file() else None,
        baselines,
        settings,
        facts=facts,
    )
    print(f"report: {path}")
    return path


def baseline_dirs(run_dir: Path, baselines: object) -> list[Path]:
    """The runs shown beside `run_dir`: "auto" finds its siblings that hold a metrics.json."""
    if baselines is None:
        return []
    if baselines == "auto":
        run = run_dir.resolve()
        return sorted(
            d
            for d in run.parent.iterdir()
            if d != run and (d / "metrics.json").is_file() and not is_debug_run(d)
        )
    return [Path(str(d)) for d in as_list(baselines, "baselines")]


def read_metrics(run: Path) -> dict[str, float]:
    path = run / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (run vrs-train / vrs-eval there first)")
    return {k: float(v) for k, v in json.loads(path.read_text()).items()}


def _columns(run_dir: Path, runs: list[Path]) -> dict[str, dict[str, float]]:
    """Each run's metrics.json under the folder's name, or its path where names would clash."""
    names = [d.resolve().name for d in [run_dir, *runs]]
    for d in runs:
        if is_debug_run(d):
            raise ValueError(
                f"baseline {d} is a debug run (trainer.fast_dev_run): its metrics are not a result"
            )
    return {
        (str(d) if names.count(name) > 1 else name): read_metrics(d)
        for d, name in zip(runs, names[1:], strict=True)
    }


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="report")
@friendly_errors
def main(cfg: DictConfig) -> None:
    report(cfg)


if __name__ == "__main__":
    main()
