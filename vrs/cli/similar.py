"""vrs-similar: the items nearest to given items in the learned item space (cosine).

vrs-similar run_dir=runs/demo/fused 'item_ids=[i00003,i00017]' k=10
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from vrs.cli.common import CONFIG_DIR, as_list, friendly_errors
from vrs.cli.runs import serve_items
from vrs.run import Run

if TYPE_CHECKING:  # pandas is imported where a command needs it: --help stays fast
    import pandas as pd


def similar(cfg: DictConfig) -> pd.DataFrame:
    """Prints (and with `out=PATH` writes) the nearest items of `cfg.item_ids`; returns the table."""
    item_ids = as_list(cfg.item_ids, "item_ids")
    if not item_ids:
        raise ValueError("item_ids=[...] is required: the items to find neighbours of")
    return serve_items(cfg, Run.similar, item_ids)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="similar")
@friendly_errors
def main(cfg: DictConfig) -> None:
    similar(cfg)


if __name__ == "__main__":
    main()
