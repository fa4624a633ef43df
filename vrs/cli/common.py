"""What every Hydra entry point shares: the config folder, resolvers, output files."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from vrs.cli import tracking
from vrs.cli.console import ignore_irrelevant_warnings
from vrs.code_version import record_code
from vrs.io import atomic_write_text, write_json
from vrs.run import RESUME_CKPT as RESUME_CKPT  # resume=last continues from it

# configs/ sits at the repository root; VRS_CONFIG_DIR points elsewhere (an installed copy).
CONFIG_DIR = os.environ.get("VRS_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "configs"))
# The model words that vrs-eval and vrs-recommend fit themselves (no vrs-train run).
BASELINE_WORDS = "model=popularity / visual_profile / content_profile / category_interest"


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiates every `_target_` node of a callbacks/logger group (in key order)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def setup_data(cfg: DictConfig) -> Any:
    """Seeds every generator with ``cfg.seed`` and returns the prepared, set-up datamodule."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def require_baseline(cfg: DictConfig) -> None:
    """Raises ValueError unless `cfg.model` is a baseline the command fits itself (not `model=fused`,
    which vrs-train trains)."""
    if not cfg.get("model") or str(cfg.model.get("_target_", "")).endswith("RecModule"):
        raise ValueError(
            f"vrs-{cfg.task_name} needs run_dir=DIR or ckpt_path=PATH for a trained model, or "
            f"{BASELINE_WORDS} for a baseline it fits itself"
        )


def baseline_module(cfg: DictConfig, datamodule: Any) -> Any:
    """The baseline that `cfg.model` names (`model=popularity`, ...), built for `datamodule`'s
    catalogue; the caller fits it (`attach_data`, `fit_catalogue`)."""
    from vrs.lit.targets import trusted_config

    require_baseline(cfg)
    with trusted_config():  # the user's own command line
        return instantiate(cfg.model, n_items=datamodule.n_items)


def setup_run(cfg: DictConfig, build_module: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
    """`setup_module`, then the trainer (which saves the resolved config). Returns (datamodule,
    module, trainer)."""
    datamodule, module = setup_module(cfg, build_module)
    return datamodule, module, setup_trainer(cfg, module, datamodule)


def setup_module(cfg: DictConfig, build_module: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Seeds, builds the datamodule and the module (`build_module(datamodule)`), hands the catalogue
    to the module and fits what it builds from the training split. Returns (datamodule, module)."""
    datamodule = setup_data(cfg)
    module = build_module(datamodule)
    towers = getattr(getattr(getattr(module, "net", None), "item_tower", None), "towers", {})
    warn_if_upsampled(datamodule, towers["image"] if "image" in towers else None)
    cache = feature_cache(cfg)
    module.attach_data(datamodule.content, datamodule.train_counts, feature_cache=cache)
    module.fit_catalogue(datamodule, cache)
    return datamodule, module


def warn_if_upsampled(datamodule: Any, image_encoder: Any) -> None:
    """Warns when images are loaded smaller than the image encoder reads them (enlarged: detail lost)."""
    loaded, reads = getattr(datamodule, "image_size", None), getattr(image_encoder, "image_size", None)
    if not (isinstance(loaded, int) and isinstance(reads, int)) or loaded >= reads:
        return
    if getattr(datamodule, "load_images", True) is False:
        return
    import warnings

    warnings.warn(
        f"images are loaded at data.image_size={loaded} and enlarged to the {reads} pixels the image "
        f"encoder reads: leave data.image_size unset (it follows encoder.image_size) or set it to {reads}",
        stacklevel=2,
    )


def item_stats(cfg: DictConfig, datamodule: Any) -> Any:
    """Training counts, categories and (with `diversity_encoder` set) image features of the
    catalogue, for the beyond-accuracy list metrics."""
    from vrs.list_metrics import ItemStats

    features = has_features = None
    if cfg.get("diversity_encoder"):
        from vrs.lit.baselines import image_features

        if getattr(datamodule, "load_images", True) is False:
            raise ValueError(
                "encoder@diversity_encoder reads the item images, but data.load_images=false (set by "
                "the experiment or the command line): add data.load_images=true"
            )

        import torch

        # A metric must not change what is trained: building the encoder (its random init before the
        # pretrained weights load) would otherwise move the random stream that training then draws.
        with torch.random.fork_rng():
            features, has_features = image_features(
                cfg.diversity_encoder, datamodule.content, feature_cache(cfg)
            )
    return ItemStats(datamodule.train_counts, datamodule.item_categories, features, has_features)


def setup_trainer(cfg: DictConfig, module: Any, datamodule: Any) -> Any:
    """The trainer of `module` (its callbacks and loggers instantiated); saves the resolved config."""
    module.test_stages = datamodule.test_stages()
    if hasattr(module, "set_item_stats"):
        module.set_item_stats(item_stats(cfg, datamodule))
    callbacks = instantiate_group(cfg.get("callbacks"))
    every = cfg.get("progress_every_s")
    if every and not sys.stderr.isatty():  # a terminal has the progress bar
        from vrs.lit.callbacks import LogProgress

        callbacks.append(LogProgress(every))
    if cfg.trainer.get("fast_dev_run"):  # a debug run's weights are one batch's: no checkpoint of them
        callbacks = [c for c in callbacks if type(c).__name__ != "ModelCheckpoint"]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate_group(cfg.get("logger")),
    )
    if trainer.is_global_zero:
        save_config(cfg, Path(cfg.paths.output_dir))
        record_code(cfg.paths.output_dir)
    tracking.log_config(trainer, cfg)
    return trainer


def feature_cache(cfg: DictConfig) -> Any:
    """The on-disk feature cache of frozen encoders (`feature_cache=DIR`; null turns it off)."""
    from vrs.encoders.cache import FeatureCache

    root = cfg.get("feature_cache")
    return FeatureCache(root, precision=cfg.get("feature_precision", "fp32")) if root else None


def as_list(value: Any, name: str) -> list[Any]:
    """A config value given as one scalar or a list, as a plain list."""
    if isinstance(value, ListConfig | list | tuple):
        return list(OmegaConf.to_container(value) if isinstance(value, ListConfig) else value)
    if value is None or isinstance(value, DictConfig | dict):
        raise ValueError(f"{name} must be a value or a list of values, got {value!r}")
    return [value]


def results(module: Any, *prefixes: str) -> dict[str, float]:
    """The module's latest evaluation results whose keys start with one of `prefixes`."""
    return {k: v for k, v in module.results.items() if k.startswith(prefixes)}


def finish_run(cfg: DictConfig, trainer: Any, metrics: dict[str, float]) -> None:
    """Rank zero writes metrics.json and prints the table; a run that measured nothing is an error."""
    if not metrics:
        raise ValueError(
            f"{cfg.paths.output_dir}: nothing was evaluated (no validation or test target in the split), "
            "so no metrics.json was written"
        )
    if not trainer.is_global_zero:
        return
    run_dir = Path(cfg.paths.output_dir)
    if trainer.fast_dev_run:
        # One batch per stage checks that a composition runs; its numbers must not pass for a result.
        print(format_metrics({f"{tracking.run_title(cfg.task_name)} (debug)": metrics}))
        print(f"debug run (fast_dev_run: one batch per stage): no metrics.json written in {run_dir}")
        return
    write_metrics(run_dir, metrics)
    tracking.finish(trainer, metrics)
    print(format_metrics({tracking.run_title(cfg.task_name): metrics}))
    print(f"run directory: {run_dir}")


USER_RESULTS = "test_users.parquet"


def write_user_results(run_dir: Path, module: Any, datamodule: Any) -> Path | None:
    """Writes RUN/test_users.parquet: one row per test target (user, target item, rank among the
    catalogue, seen = the target was already in the history, a miss; cold = the target item never
    occurs in training), the input of vrs-compare's paired tests. None when no test ran."""
    import pandas as pd

    rows = module.user_results.get("test")
    if rows is None or not len(rows["user"]):
        return None
    cold_rows = module.user_results.get("test_cold")
    cold_pairs = (
        set()
        if cold_rows is None
        else set(zip(cold_rows["user"].tolist(), cold_rows["target"].tolist(), strict=True))
    )
    users, targets = rows["user"].tolist(), rows["target"].tolist()
    frame = pd.DataFrame({
        "user": datamodule.data.user_ids[users],
        "target": datamodule.dataset.items["item_id"].to_numpy()[targets],
        "rank": rows["rank"].numpy().astype("int64"),
        "seen": rows["seen"].numpy().astype(bool),
        "cold": [pair in cold_pairs for pair in zip(users, targets, strict=True)],
    })  # fmt: skip
    path = run_dir / USER_RESULTS
    tmp = path.with_name(f".{USER_RESULTS}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def is_debug_run(run_dir: Path) -> bool:
    """True for a run folder written with trainer.fast_dev_run (debug=fdr): not a result."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return False
    try:
        return bool(OmegaConf.select(OmegaConf.load(path), "trainer.fast_dev_run", default=False))
    except Exception:  # an unreadable config says nothing either way
        return False


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def write_metrics(run_dir: Path, metrics: dict[str, float]) -> Path:
    return write_json(run_dir / "metrics.json", {k: float(v) for k, v in sorted(metrics.items())})


def format_metrics(columns: dict[str, dict[str, float]], keys: list[str] | None = None) -> str:
    """A plain-text table: one row per metric, one column per run."""
    names = list(columns)
    if keys is None:
        keys = sorted({k for m in columns.values() for k in m if not k.endswith(("n_users", "share"))})
    width = max([len(k) for k in keys] + [6])
    cols = [max(14, len(n)) for n in names]  # a long run name widens its column
    head = " " * width + "".join(f"  {n:>{w}}" for n, w in zip(names, cols, strict=True))
    rows = [head]
    for key in keys:
        cells = "".join(
            f"  {columns[n][key]:>{w}.4f}" if key in columns[n] else f"  {'-':>{w}}"
            for n, w in zip(names, cols, strict=True)
        )
        rows.append(f"{key:<{width}}{cells}")
    return "\n".join(rows)


def _user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind `err` (Hydra wraps errors raised while instantiating)."""
    from vrs.data.schema import DatasetError
    from vrs.encoders.base import EncoderWeightsError

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    expected = (DatasetError, EncoderWeightsError, FileNotFoundError, FileExistsError, ValueError)
    return err if isinstance(err, expected) else None


def friendly_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input (a dataset, a path, a value) ends the command with its message and exit code 1
    instead of a traceback; anything else still raises. HYDRA_FULL_ERROR=1 shows tracebacks.
    Every Hydra command's job starts here: warnings about dependencies' own internals are ignored."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ignore_irrelevant_warnings()
        try:
            return main(*args, **kwargs)
        except Exception as err:
            user_error = _user_error(err)
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {user_error}", file=sys.stderr)
            sys.exit(1)

    return wrapper
