"""vrs-extract: encode every item image and text once into the on-disk feature cache.

vrs-extract encoder=effnet_minilm data.image_size=128
vrs-extract data=canonical data.root=DIR encoder=clip_b32 trainer=ddp trainer.devices=8

Training with `model.freeze_encoders=true` and the same data/encoder settings then reads the cached
features instead of running the encoders. An interrupted extraction resumes where it stopped.
"""

from __future__ import annotations

import time

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vrs.cli.common import CONFIG_DIR, friendly_errors, setup_data

MODALITIES = ("image", "text")


def extract(cfg: DictConfig) -> dict[str, str]:
    """Fills the cache for the configured data and encoder; returns modality -> features path."""
    from vrs.encoders.cache import FeatureCache
    from vrs.lit.extraction import ExtractionJob, FeatureExtractionModule
    from vrs.lit.module import build_towers

    wanted = list(cfg.modalities)
    if not wanted or set(wanted) - set(MODALITIES):
        raise ValueError(f"modalities={wanted}: expected a non-empty list of {list(MODALITIES)}")
    if not cfg.feature_cache:
        raise ValueError("feature_cache=null: give the cache folder to extract into")
    datamodule = setup_data(cfg)
    content = datamodule.content
    towers = build_towers(OmegaConf.to_container(cfg.encoder, resolve=True))
    jobs = []
    if "image" in wanted and towers.image is not None:
        if content.images is None:
            print("no item has a usable image (or data.load_images=false): skipping the image tower")
        else:
            jobs.append(ExtractionJob("image", towers.image, content.images))
    if "text" in wanted and towers.text is not None:
        jobs.append(ExtractionJob("text", towers.text, towers.text.tokenize(list(content.texts))))
    if not jobs:
        raise ValueError(f"encoder has no tower for modalities {wanted}")

    cache = FeatureCache(
        cfg.feature_cache, shard_size=cfg.shard_size, batch_size=cfg.batch_size, progress=False
    )
    module = FeatureExtractionModule(jobs, cache)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    start = time.perf_counter()
    if module.todo:  # the same on every rank
        trainer.predict(module, return_predictions=False)
    module.merge()
    seconds = time.perf_counter() - start
    paths = {job.modality: str(cache.path(job.key)) for job in jobs}
    if trainer.is_global_zero:
        n = content.has_image.shape[0]
        done = module.encoded
        rate = f", {done / module.seconds:.0f} items/s per process" if done and module.seconds else ""
        print(f"{n} items; encoded {done} item-modalities on this process in {seconds:.1f} s{rate}")
        for modality, path in paths.items():
            print(f"{modality:>5}: {path}")
    return paths


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="extract")
@friendly_errors
def main(cfg: DictConfig) -> None:
    extract(cfg)


if __name__ == "__main__":
    main()
