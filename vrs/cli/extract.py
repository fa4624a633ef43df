"""vrs-extract: encode every item image and text once into the on-disk feature cache.

vrs-extract encoder=effnet_minilm encoder.image_size=128   # images loaded at the encoder's size
vrs-extract data=canonical data.root=DIR encoder=clip_b32 trainer=ddp trainer.devices=8

Training with `encoder.finetune.freeze=true` and the same data/encoder settings (and
feature_precision) then reads the cached features instead of running the encoders. Image features
are keyed by the image files' bytes and the decoding settings, so only the items of missing shards
are decoded, here and in training. An interrupted extraction resumes where it stopped; SIGTERM stops
it after the shard in progress, with exit code 143. Progress bars show decoding and encoding, and
the end prints items/s per modality.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vrs.cli.common import CONFIG_DIR, friendly_errors, setup_data, warn_if_upsampled


class ExtractionStopped(RuntimeError):
    """SIGTERM (a scheduler's time limit, ``kill``) stopped the extraction after the shard in
    progress: the shards written are complete and a rerun of the same command encodes only the rest."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process killed by it


def extract(cfg: DictConfig) -> dict[str, str]:
    """Fills the cache for the configured data and encoder; returns modality -> features path."""
    import torch

    from vrs.cli.checks import check_config
    from vrs.encoders.cache import PRECISIONS, FeatureCache
    from vrs.lit.extraction import FeatureExtractionModule
    from vrs.lit.module import build_towers
    from vrs.lit.targets import trusted_config

    check_config(cfg)
    wanted = list(cfg.towers)
    if not wanted:
        raise ValueError("towers=[]: name the encoder towers to extract, e.g. towers=[image,text]")
    if not cfg.feature_cache:
        raise ValueError("feature_cache=null: give the cache folder to extract into")
    precision = cfg.get("feature_precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"feature_precision={precision}: expected one of {list(PRECISIONS)}")
    datamodule = setup_data(cfg)
    content = datamodule.content
    with trusted_config():  # the user's own command line
        towers = build_towers(OmegaConf.to_container(cfg.encoder, resolve=True))
    warn_if_upsampled(datamodule, towers.get("image") if "image" in wanted else None)
    jobs = extraction_jobs(towers, wanted, content)
    if not jobs:
        raise ValueError(f"towers={wanted}: the encoder has none of these towers")

    # No progress bar of Lightning's own: the cache shows decoding and encoding item by item.
    trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False, enable_progress_bar=False
    )
    # The precision is part of the key, as in training (vrs.cli.common.feature_cache); bf16 on a
    # device without bf16 units says so and computes (and keys) fp32.
    cache = FeatureCache(
        cfg.feature_cache,
        shard_size=cfg.shard_size,
        batch_size=cfg.batch_size,
        precision=precision,
        device=trainer.strategy.root_device,
        workers=cfg.get("workers"),
    )
    module = FeatureExtractionModule(jobs, cache)
    start = time.perf_counter()
    if module.todo:  # the same on every rank
        trainer.predict(module, return_predictions=False)
        # Every rank must agree before merge's barriers: a rank may have finished its shards first.
        if trainer.strategy.reduce_boolean_decision(module.stopped, all=False):
            left = sum(len(cache.missing_shards(job.key, job.n_items)) for job in jobs)
            raise ExtractionStopped(
                f"extraction stopped by SIGTERM; {left} of {len(module.todo)} shard(s) left to encode "
                f"under {cfg.feature_cache}. Continue with the same command: the written shards are kept"
            )
    module.merge()
    seconds = time.perf_counter() - start
    paths = {job.modality: str(cache.path(job.key)) for job in jobs}
    for job in jobs:
        if not isinstance(job.inputs, torch.Tensor):  # missing or unreadable image files
            job.inputs.check(cache.usable(job.key, job.n_items))
    if trainer.is_global_zero:
        workers = cache.workers or torch.get_num_threads()
        print(
            f"{len(content)} items; encoded {module.encoded} item-modalities on this process in "
            f"{seconds:.1f} s ({cache.precision}, {workers} worker thread(s))"
        )
        for job in jobs:
            if job.items:
                unit = "images" if job.modality == "image" else "texts"
                rate = job.items / max(job.seconds, 1e-9)
                print(f"{job.modality:>5}: {job.items} {unit} in {job.seconds:.1f} s, {rate:.1f} {unit}/s")
        for modality, path in paths.items():
            print(f"{modality:>5}: {path}")
    return paths


def extraction_jobs(towers: dict[str, Any], wanted: list[str], content: Any) -> list[Any]:
    """One job per tower named in `wanted` (others are not the encoder's: skipped) with any input."""
    from vrs.lit.extraction import ExtractionJob

    jobs = []
    for modality in [m for m in wanted if m in towers]:
        encoder = towers[modality]
        source = encoder.source(content)  # image files: decoded shard by shard, where features are missing
        if source is not None:
            jobs.append(ExtractionJob(modality, encoder, source))
            continue
        inputs, present = encoder.read(content)
        if present.any():
            jobs.append(ExtractionJob(modality, encoder, inputs))
        else:
            print(
                f"no item has a {modality} input (or data.load_images=false): skipping the {modality} tower"
            )
    return jobs


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="extract")
@friendly_errors
def main(cfg: DictConfig) -> None:
    try:
        extract(cfg)
    except ExtractionStopped as err:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank == 0:  # every rank stops; one says so
            print(f"stopped: {err}", file=sys.stderr)
        sys.exit(ExtractionStopped.exit_code)


if __name__ == "__main__":
    main()
