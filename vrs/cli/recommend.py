"""vrs-recommend: top-K lists of a trained run or a baseline, with explanations, written to parquet.

vrs-recommend run_dir=runs/demo/fused users=all k=10 out=recs.parquet
vrs-recommend model=category_interest encoder=lenet users=all out=recs.parquet   # fitted here, as vrs-eval fits it
vrs-recommend ckpt_path=runs/demo/fused/checkpoints/last.ckpt 'users=[u00001,unknown]' cold_users=popular
vrs-recommend run_dir=... 'users=[]' 'histories={alice:[i00003,i00017]}'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from vrs.cli.common import CONFIG_DIR, as_list, friendly_errors
from vrs.cli.runs import fit_baseline, format_table, load_run, with_titles, write_table

if TYPE_CHECKING:  # pandas is imported where a command needs it: --help stays fast
    import pandas as pd


def recommend(cfg: DictConfig) -> pd.DataFrame:
    """Writes the configured users' top-K lists to `cfg.out` and returns them: of the trained run
    `cfg.run_dir` / `cfg.ckpt_path`, or of the baseline `cfg.model` fitted on `cfg.data`."""
    if not cfg.out:
        raise ValueError("out=PATH is required (the parquet file to write)")
    run = fit_baseline(cfg) if cfg.get("model") else load_run(cfg)
    users = None if cfg.users in (None, "all") else as_list(cfg.users, "users")
    histories = OmegaConf.to_container(cfg.histories) if cfg.histories else None
    if histories is not None and not isinstance(histories, dict):
        raise ValueError(f"histories must map a name to a list of item ids, got {histories!r}")
    table = run.recommend(
        users,
        k=cfg.k,
        exclude_seen=cfg.exclude_seen,
        cold_users=cfg.cold_users,
        histories={name: as_list(items, f"histories.{name}") for name, items in (histories or {}).items()},
        n_explain=cfg.explain,
        index=cfg.index,
        batch_size=cfg.batch_size,
    )
    skipped = table.attrs.get("skipped_users", [])
    if skipped:
        print(f"skipped {len(skipped)} unknown user id(s) (cold_users=skip)")
    path = write_table(table, cfg.out)
    print(format_table(with_titles(table, run.items).head(cfg.preview)))
    print(f"{table['user_id'].nunique()} users, {len(table)} rows written to {path}")
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="recommend")
@friendly_errors
def main(cfg: DictConfig) -> None:
    recommend(cfg)


if __name__ == "__main__":
    main()
