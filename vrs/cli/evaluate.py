"""vrs-eval: full-ranking evaluation of a checkpoint or a baseline, written to metrics.json.

vrs-eval ckpt_path=runs/demo/checkpoints/last.ckpt
vrs-eval model=popularity
vrs-eval ckpt_path=... trainer=ddp_cpu trainer.devices=2
"""

from __future__ import annotations

import warnings
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.common import (
    CONFIG_DIR,
    format_metrics,
    friendly_errors,
    instantiate_group,
    save_config,
    write_metrics,
)
from vrs.lit.evaluation import RankingModule
from vrs.lit.module import RecModule


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluates as configured; returns the metrics written to metrics.json."""
    run_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("test")
    module = _load_module(cfg, datamodule)
    module.test_stages = datamodule.test_stages()
    module.attach_data(datamodule.content, datamodule.train_counts)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger")),
    )
    if trainer.is_global_zero:
        save_config(cfg, run_dir)
    stages = list(cfg.stages)
    unknown = set(stages) - {"val", "test"}
    if unknown:
        raise ValueError(f"stages={stages}: expected a list of 'val' and/or 'test'")
    metrics: dict[str, float] = {}
    if "val" in stages:
        trainer.validate(module, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
    if "test" in stages:
        trainer.test(module, datamodule=datamodule)
        metrics.update(
            {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith(("test/", "test_cold/"))
            }
        )
    if trainer.is_global_zero:
        write_metrics(run_dir, metrics)
        print(format_metrics({cfg.task_name: metrics}))
        print(f"run directory: {run_dir}")
    return metrics


def _load_module(cfg: DictConfig, datamodule) -> RankingModule:
    if cfg.ckpt_path:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
        module = RecModule.load_from_checkpoint(path, map_location="cpu")
        trained_on = module.hparams.get("dataset_fingerprint", "")
        if trained_on and datamodule.fingerprint and trained_on != datamodule.fingerprint:
            warnings.warn(
                f"{path} was trained on dataset {trained_on} but data.root={datamodule.root} has "
                f"fingerprint {datamodule.fingerprint}",
                stacklevel=2,
            )
        return module
    if cfg.model._target_.endswith("RecModule"):
        raise ValueError(
            "vrs-eval needs ckpt_path=PATH to evaluate a trained model, or model=popularity / "
            "model=visual_profile for a baseline"
        )
    return instantiate(cfg.model, n_items=datamodule.n_items)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
