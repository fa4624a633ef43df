"""vrs-train: compose, train, test the best checkpoint, write metrics.json.

vrs-train experiment=demo
vrs-train data=canonical data.root=DIR encoder=tiny_clip fusion=gated loss=sampled_softmax
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, finish_run, friendly_errors, results, setup_run


def train(cfg: DictConfig) -> dict[str, float]:
    """Runs one training job as configured; returns the metrics written to metrics.json."""

    def build(datamodule):
        return instantiate(
            cfg.model,
            n_items=datamodule.n_items,
            n_events=datamodule.n_events,
            max_len=datamodule.max_len,
            dataset_fingerprint=datamodule.fingerprint,
        )

    datamodule, module, trainer = setup_run(cfg, build)
    trainer.fit(module, datamodule=datamodule)

    metrics: dict[str, float] = {}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics["val/ndcg_10"] = float(checkpoint.best_model_score)
    else:
        metrics.update(results(module, "val/ndcg_10"))
    if cfg.test:
        best = checkpoint.best_model_path if checkpoint is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(results(module, "test/", "test_cold/"))
    finish_run(cfg, trainer, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # Sweepers optimise the returned value: validation only, never test.
    return metrics.get("val/ndcg_10")


if __name__ == "__main__":
    main()
