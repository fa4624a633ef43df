"""vrs-search: text-to-item search through the item tower's text path.

vrs-search run_dir=runs/demo/fused 'query="red striped star"' k=10
vrs-search ckpt_path=... 'query=["red star","blue circle"]'

Needs a model whose item tower can embed text alone: a text tower and fusion=text_only, fusion=late
or training with model.modality_dropout > 0; any other model is refused with the reason.
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


def search(cfg: DictConfig) -> pd.DataFrame:
    """Prints (and with `out=PATH` writes) the best items for `cfg.query`; returns the table."""
    if cfg.query is None:
        raise ValueError('query="TEXT" (or a list of texts) is required')
    queries = [str(q) for q in as_list(cfg.query, "query")]
    return serve_items(cfg, Run.search, queries)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="search")
@friendly_errors
def main(cfg: DictConfig) -> None:
    search(cfg)


if __name__ == "__main__":
    main()
