"""vrs-prepare: convert a public dataset format to the canonical format.

vrs-prepare source=amazon_seq in_dir=../shared/data/amazon-seq name=Beauty out_dir=data/beauty
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, friendly_errors


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from vrs.data.schema import format_summary, load_dataset, summarize

    root = instantiate(cfg.source)
    print(format_summary(summarize(load_dataset(root, check_images=True))))
    print(f"dataset written to {root}")


if __name__ == "__main__":
    main()
