"""vrs-prepare: convert a public dataset format to the canonical format, or export one.

vrs-prepare source=amazon_seq in_dir=../shared/data/amazon-seq name=Beauty out_dir=data/beauty
vrs-prepare source=hm in_dir=../shared/data/hm-fashion-sample out_dir=data/hm preprocess.k_core=2
vrs-prepare source=recbole_export in_dir=data/hm out_dir=data/hm_recbole name=hm

A non-empty out_dir is refused unless an earlier vrs-prepare wrote it from the same source files;
overwrite=true writes there anyway, and even then only files vrs-prepare wrote are removed.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, friendly_errors


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from vrs.data.adapters.common import PREPARATION_KEY
    from vrs.data.adapters.preprocess import format_report
    from vrs.data.schema import format_summary, load_dataset, summarize

    result = instantiate(cfg.source)
    if isinstance(result, list):  # an exporter returns the files it wrote
        for path in result:
            print(f"wrote {path}")
        return
    ds = load_dataset(Path(result), check_images=True)
    if PREPARATION_KEY in ds.meta:
        print(format_report(ds.meta[PREPARATION_KEY]) + "\n")
    print(format_summary(summarize(ds)))
    print(f"dataset written to {result}")


if __name__ == "__main__":
    main()
