"""vrs-index build: precompute the approximate item indexes of a checkpoint, saved beside it.

vrs-index build run_dir=runs/demo/fused backend=hnsw
vrs-index build ckpt_path=runs/demo/fused/checkpoints/last.ckpt backend=hnsw

Writes `<checkpoint folder>/index/<backend>-<hash>.index` for the item vectors (inner product, used by
vrs-recommend) and for the normalised item vectors (cosine, used by vrs-similar). Those commands,
run with the same `index=` backend, load the saved index instead of building it; the hash in the
name is of the vectors themselves, so an index never serves another checkpoint or dataset.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, friendly_errors
from vrs.cli.runs import load_run

USAGE = "usage: vrs-index build run_dir=DIR|ckpt_path=PATH [backend=flat|ivf|hnsw] [data overrides ...]"


def build(cfg: DictConfig) -> list[Path]:
    """Builds and saves the configured backend over the checkpoint's item vectors."""
    import torch.nn.functional as F

    from vrs.retrieval.index import build_index, saved_index_path
    from vrs.serving.base import item_vectors

    if cfg.backend == "exact":
        raise ValueError("backend=exact needs no index (search is brute force); use flat, ivf or hnsw")
    run = load_run(cfg)
    items = item_vectors(run.net).float()  # (N, D)
    written = []
    for name, vectors in (("inner product", items), ("cosine", F.normalize(items, dim=-1))):
        start = time.perf_counter()
        index = build_index(vectors, backend=cfg.backend)
        path = index.save(saved_index_path(run.index_dir, vectors, cfg.backend))
        print(
            f"{name:>13}: {cfg.backend} over {len(index)} items in {time.perf_counter() - start:.1f} s -> {path}"
        )
        written.append(path)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="index")
@friendly_errors
def _hydra_main(cfg: DictConfig) -> None:
    build(cfg)


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(f"{USAGE}\nvrs-index build --help lists the options")
        return
    if len(sys.argv) < 2 or sys.argv[1] != "build":
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    del sys.argv[1]  # the rest are Hydra overrides
    _hydra_main()


if __name__ == "__main__":
    main()
