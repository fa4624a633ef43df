"""vrs-eval: full-ranking evaluation of a checkpoint or a baseline, written to metrics.json.

vrs-eval ckpt_path=runs/demo/checkpoints/last.ckpt
vrs-eval model=popularity
vrs-eval ckpt_path=... trainer=ddp_cpu trainer.devices=2
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.checks import check_config
from vrs.cli.common import CONFIG_DIR, finish_run, friendly_errors, results, setup_run, warn_if_other_dataset
from vrs.lit.evaluation import RankingModule
from vrs.lit.module import RecModule
from vrs.lit.targets import trusted_config


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluates as configured; returns the metrics written to metrics.json."""
    check_config(cfg)
    stages = list(cfg.stages)
    if not stages or set(stages) - {"val", "test"}:
        raise ValueError(f"stages={stages}: expected a list of 'val' and/or 'test'")
    datamodule, module, trainer = setup_run(cfg, lambda dm: _load_module(cfg, dm))
    metrics: dict[str, float] = {}
    if "val" in stages:
        trainer.validate(module, datamodule=datamodule)
        metrics.update(results(module, "val/"))
    if "test" in stages:
        trainer.test(module, datamodule=datamodule)
        metrics.update(results(module, "test/", "test_cold/"))
    finish_run(cfg, trainer, metrics)
    return metrics


def _load_module(cfg: DictConfig, datamodule) -> RankingModule:
    if cfg.ckpt_path:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
        module = RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        warn_if_other_dataset(module, datamodule, path)
        return module
    if cfg.model._target_.endswith("RecModule"):
        raise ValueError(
            "vrs-eval needs ckpt_path=PATH to evaluate a trained model, or model=popularity / "
            "model=visual_profile for a baseline"
        )
    with trusted_config():  # the user's own command line
        return instantiate(cfg.model, n_items=datamodule.n_items)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
