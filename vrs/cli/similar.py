"""vrs-similar: the items nearest to given items in the learned item space (cosine).

vrs-similar ckpt_path=runs/demo/checkpoints/last.ckpt 'item_ids=[i00003,i00017]' k=10
"""

from __future__ import annotations

import hydra
import pandas as pd
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, friendly_errors
from vrs.cli.recommend import as_list, format_table, index_dir, load_model, with_titles, write_table


def similar(cfg: DictConfig) -> pd.DataFrame:
    """Prints (and with `out=PATH` writes) the nearest items of `cfg.item_ids`; returns the table."""
    from vrs.serving.items import similar as similar_items

    item_ids = as_list(cfg.item_ids, "item_ids")
    if not item_ids:
        raise ValueError("item_ids=[...] is required: the items to find neighbours of")
    datamodule, module = load_model(cfg)
    catalogue = list(datamodule.data.item_index)
    table = similar_items(
        module.net, catalogue, item_ids, k=cfg.k, index=cfg.index, index_dir=index_dir(cfg.ckpt_path)
    )
    print(format_table(with_titles(table, datamodule)))
    if cfg.out:
        print(f"written to {write_table(table, cfg.out)}")
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="similar")
@friendly_errors
def main(cfg: DictConfig) -> None:
    similar(cfg)


if __name__ == "__main__":
    main()
