"""vrs-train: compose, train, test the best checkpoint, write metrics.json.

vrs-train experiment=demo
vrs-train data=canonical data.root=DIR encoder=tiny_clip fusion=gated loss=sampled_softmax
"""

from __future__ import annotations

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


def train(cfg: DictConfig) -> dict[str, float]:
    """Runs one training job as configured; returns the metrics written to metrics.json."""
    run_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = instantiate(
        cfg.model,
        n_items=datamodule.n_items,
        n_events=datamodule.n_events,
        max_len=datamodule.max_len,
        dataset_fingerprint=datamodule.fingerprint,
    )
    module.test_stages = datamodule.test_stages()
    module.attach_data(datamodule.content, datamodule.train_counts)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger")),
    )
    if trainer.is_global_zero:
        save_config(cfg, run_dir)
    trainer.fit(module, datamodule=datamodule)

    metrics: dict[str, float] = {}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics["val/ndcg_10"] = float(checkpoint.best_model_score)
    elif "val/ndcg_10" in trainer.callback_metrics:
        metrics["val/ndcg_10"] = float(trainer.callback_metrics["val/ndcg_10"])
    if cfg.test:
        best = checkpoint.best_model_path if checkpoint is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # Sweepers optimise the returned value: validation only, never test.
    return metrics.get("val/ndcg_10")


if __name__ == "__main__":
    main()
