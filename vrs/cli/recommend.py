"""vrs-recommend: top-K lists of a trained checkpoint, with explanations, written to parquet.

vrs-recommend ckpt_path=runs/demo/checkpoints/last.ckpt users=all k=10 out=recs.parquet
vrs-recommend ckpt_path=... 'users=[u00001,unknown]' cold_users=popular
vrs-recommend ckpt_path=... 'users=[]' 'histories={alice:[i00003,i00017]}'

Also home of what vrs-similar and vrs-search share: loading a checkpoint with the data it serves,
writing and printing result tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from vrs.cli.common import CONFIG_DIR, feature_cache, friendly_errors, warn_if_other_dataset
from vrs.io import atomic_write


def recommend(cfg: DictConfig) -> pd.DataFrame:
    """Writes the configured users' top-K lists to `cfg.out` and returns them."""
    from vrs.serving.recommend import recommend as recommend_users

    if not cfg.out:
        raise ValueError("out=PATH is required (the parquet file to write)")
    datamodule, module = load_model(cfg)
    users = None if cfg.users in (None, "all") else as_list(cfg.users, "users")
    histories = OmegaConf.to_container(cfg.histories) if cfg.histories else None
    if histories is not None and not isinstance(histories, dict):
        raise ValueError(f"histories must map a name to a list of item ids, got {histories!r}")
    table = recommend_users(
        module.net,
        datamodule.data,
        module.hparams.max_len,
        users=users,
        k=cfg.k,
        exclude_seen=cfg.exclude_seen,
        cold_users=cfg.cold_users,
        histories={name: as_list(items, f"histories.{name}") for name, items in (histories or {}).items()},
        n_explain=cfg.explain,
        popularity=module.train_counts,
        index=cfg.index,
        index_dir=index_dir(cfg.ckpt_path),
        batch_size=cfg.batch_size,
    )
    skipped = table.attrs.get("skipped_users", [])
    if skipped:
        print(f"skipped {len(skipped)} unknown user id(s) (cold_users=skip)")
    path = write_table(table, cfg.out)
    print(format_table(with_titles(table, datamodule).head(cfg.preview)))
    print(f"{table['user_id'].nunique()} users, {len(table)} rows written to {path}")
    return table


def load_model(cfg: DictConfig) -> tuple[Any, Any]:
    """The configured dataset (set up) and checkpoint (with the catalogue attached, in eval mode)."""
    from vrs.cli.checks import check_config
    from vrs.lit.module import RecModule

    check_config(cfg)
    if not cfg.ckpt_path:
        raise ValueError(f"vrs-{cfg.task_name} needs ckpt_path=PATH, a checkpoint written by vrs-train")
    path = Path(cfg.ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    module = RecModule.load_from_checkpoint(path, map_location=cfg.device, weights_only=True)
    warn_if_other_dataset(module, datamodule, path)
    # The checkpoint's own training counts decide which item IDs count as trained.
    module.attach_data(datamodule.content, feature_cache=feature_cache(cfg))
    module.eval()
    return datamodule, module


def serve_items(cfg: DictConfig, query: Callable[..., pd.DataFrame], queries: list[Any]) -> pd.DataFrame:
    """Loads the model, runs `query(net, catalogue, queries, k=, index=, index_dir=)` (`similar` or
    `search` of vrs.serving.items), prints the table and with `out=PATH` writes it."""
    datamodule, module = load_model(cfg)
    catalogue = list(datamodule.data.item_index)
    table = query(
        module.net, catalogue, queries, k=cfg.k, index=cfg.index, index_dir=index_dir(cfg.ckpt_path)
    )
    print(format_table(with_titles(table, datamodule)))
    if cfg.out:
        print(f"written to {write_table(table, cfg.out)}")
    return table


def index_dir(ckpt_path: str) -> Path:
    """Where `vrs-index build` saves a checkpoint's approximate indexes (read by the serving commands)."""
    return Path(ckpt_path).parent / "index"


def as_list(value: Any, name: str) -> list[Any]:
    """A config value given as one scalar or a list, as a plain list."""
    if isinstance(value, ListConfig | list | tuple):
        return list(OmegaConf.to_container(value) if isinstance(value, ListConfig) else value)
    if value is None or isinstance(value, DictConfig | dict):
        raise ValueError(f"{name} must be a value or a list of values, got {value!r}")
    return [value]


def write_table(table: pd.DataFrame, out: str) -> Path:
    """Writes `table` atomically as parquet, or as CSV when `out` ends in .csv."""
    path = Path(out)
    if path.suffix == ".csv":
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def with_titles(table: pd.DataFrame, datamodule: Any) -> pd.DataFrame:
    """`table` with each item's title after its item_id (for printing)."""
    titles = datamodule.dataset.items.set_index("item_id")["title"]
    out = table.copy()
    out.insert(out.columns.get_loc("item_id") + 1, "title", out["item_id"].map(titles))
    return out


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table; explanation lists print as "item (weight), ...", scores with 4 decimals."""
    shown = table.copy()
    if "because_item_ids" in shown:
        shown["because"] = [
            ", ".join(f"{i} ({w:.2f})" for i, w in zip(ids, ws, strict=True))
            for ids, ws in zip(shown.pop("because_item_ids"), shown.pop("because_weights"), strict=True)
        ]
    return shown.to_string(index=False, float_format=lambda x: f"{x:.4f}", max_colwidth=48)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="recommend")
@friendly_errors
def main(cfg: DictConfig) -> None:
    recommend(cfg)


if __name__ == "__main__":
    main()
