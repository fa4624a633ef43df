"""vrs-eval: full-ranking evaluation of a checkpoint or a baseline, written to metrics.json.

vrs-eval run_dir=runs/demo/fused
vrs-eval ckpt_path=runs/demo/fused/checkpoints/last.ckpt
vrs-eval model=popularity
vrs-eval ckpt_path=... trainer=ddp_cpu trainer.devices=2
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from vrs.cli.checks import check_config
from vrs.cli.common import (
    CONFIG_DIR,
    baseline_module,
    finish_run,
    friendly_errors,
    results,
    setup_run,
    setup_trainer,
    write_user_results,
)
from vrs.cli.runs import load_run


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluates as configured; returns the metrics written to metrics.json."""
    check_config(cfg)
    stages = list(cfg.stages)
    if not stages or set(stages) - {"val", "test"}:
        raise ValueError(f"stages={stages}: expected a list of 'val' and/or 'test'")
    if cfg.get("run_dir") or cfg.ckpt_path:
        import lightning as L

        L.seed_everything(cfg.seed, workers=True)
        run = load_run(cfg)
        with open_dict(cfg):  # this evaluation's config.yaml records the data it read
            cfg.data = {"_target_": "vrs.data.datamodule.RecDataModule", **run.data_settings}
        datamodule, module = run.datamodule, run.module
        trainer = setup_trainer(cfg, module, datamodule)
    else:
        datamodule, module, trainer = setup_run(cfg, lambda dm: baseline_module(cfg, dm))
    # model=category_interest's stage (a); verbose=False: finish_run prints the metrics, not Lightning's table too
    metrics: dict[str, float] = results(module, "classifier/")
    if "val" in stages:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics.update(results(module, "val/"))
    if "test" in stages:
        trainer.test(module, datamodule=datamodule, verbose=False)
        metrics.update(results(module, "test/", "test_cold/"))
        if trainer.is_global_zero and not trainer.fast_dev_run:
            write_user_results(Path(cfg.paths.output_dir), module, datamodule)
    finish_run(cfg, trainer, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
