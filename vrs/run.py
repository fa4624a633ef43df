"""A trained run, loaded: the network, the data it serves and where its files are.

    run = vrs.load_run("runs/demo/fused")
    run.recommend(["u00001"], k=10)

The run's `config.yaml` (written by vrs-train) supplies the data and feature-cache settings; it is
read as plain YAML and only those values are taken from it, so a run folder cannot make vrs build
anything but its own `RecDataModule`. The network comes from the checkpoint through the allow-list of
`vrs.lit.targets`.
"""

from __future__ import annotations

import inspect
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd
    from torch import Tensor

    from vrs.data.datamodule import RecDataModule
    from vrs.data.sequences import SequenceData
    from vrs.lit.module import RecModule
    from vrs.models.recommender import Recommender

CONFIG_FILE = "config.yaml"
# Written after every epoch by the resume_checkpoint callback (configs/callbacks/default.yaml): the
# state to continue training from, never the checkpoint a run is served or evaluated with.
RESUME_CKPT = "resume.ckpt"


class RunConfigError(ValueError):
    """A run's config.yaml is unreadable, or a setting vrs needs from it is missing or malformed."""


class _ServesLists:
    """`recommend` for anything with `net`, `data`, `max_len`, `exclude_seen`, `train_counts` and
    `index_dir` (a trained `Run`, a `BaselineRun`)."""

    net: Any
    data: SequenceData
    max_len: int
    exclude_seen: bool
    index_dir: Path | None
    train_counts: Tensor

    def recommend(
        self,
        users: Sequence[object] | None = None,
        k: int = 10,
        exclude_seen: bool | None = None,
        cold_users: str = "error",
        histories: Mapping[str, Sequence[object]] | None = None,
        n_explain: int = 3,
        index: str = "exact",
        batch_size: int = 256,
    ) -> pd.DataFrame:
        """Top-K lists of dataset users and new histories: `vrs.serving.recommend` with this run's
        network, data, history length and training popularity (`exclude_seen` None: the run's)."""
        from vrs.serving import recommend

        return recommend(
            self.net,
            self.data,
            self.max_len,
            users=users,
            k=k,
            exclude_seen=self.exclude_seen if exclude_seen is None else exclude_seen,
            cold_users=cold_users,
            histories=histories,
            n_explain=n_explain,
            popularity=self.train_counts,
            index=index,
            index_dir=self.index_dir,
            batch_size=batch_size,
        )


@dataclass(eq=False, repr=False)
class Run(_ServesLists):
    """A loaded run; build it with `load_run` (the attributes after `run_dir` follow from the others).

    Attributes:
        module: the checkpoint's RecModule, in eval mode, with the catalogue attached.
        net: its network.
        datamodule: the set-up RecDataModule of the data the run serves.
        data: its sequences (histories, splits, id look-ups).
        data_settings: the RecDataModule arguments it was built with.
        items: the items table in catalogue order (item_id, title, category, image, ...).
        image_root: the folder that `items.image` paths are relative to.
        max_len: the longest history T the model reads.
        exclude_seen: whether ranking leaves out each user's earlier items (as the run was evaluated).
        n_items: catalogue size N.
        n_users: users in the data.
        checkpoint: the checkpoint file loaded.
        run_dir: the run folder (None for a checkpoint outside one).
        index_dir: where `vrs-index build` saves the checkpoint's approximate indexes.
    """

    module: RecModule
    datamodule: RecDataModule
    data_settings: dict[str, Any]
    checkpoint: Path
    run_dir: Path | None = None
    net: Recommender = field(init=False)
    data: SequenceData = field(init=False)
    items: pd.DataFrame = field(init=False)
    image_root: Path = field(init=False)
    max_len: int = field(init=False)
    exclude_seen: bool = field(init=False)
    n_items: int = field(init=False)
    n_users: int = field(init=False)
    index_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.net, self.data = self.module.net, self.datamodule.data
        self.items, self.image_root = self.datamodule.dataset.items, Path(self.datamodule.dataset.root)
        self.max_len, self.exclude_seen = int(self.module.hparams.max_len), self.module.exclude_seen
        self.n_items, self.n_users = self.data.n_items, self.data.n_users
        self.index_dir = self.checkpoint.parent / "index"

    @property
    def name(self) -> str:
        """The run folder's name (the checkpoint's for one outside a run)."""
        return (self.run_dir or self.checkpoint).resolve().name

    @property
    def train_counts(self) -> Tensor:
        """(N,) training-split item counts, as saved in the checkpoint (on the network's device)."""
        return self.module.train_counts

    def __repr__(self) -> str:
        return f"Run({self.name!r}, checkpoint={str(self.checkpoint)!r}, n_items={self.n_items}, n_users={self.n_users})"

    def similar(self, item_ids: Sequence[object], k: int = 10, index: str = "exact") -> pd.DataFrame:
        """The K nearest items of each query item: `vrs.serving.similar` over this run's catalogue."""
        from vrs.serving import similar

        return similar(self.net, self._catalogue(), item_ids, k=k, index=index, index_dir=self.index_dir)

    def search(self, queries: Sequence[str], k: int = 10, index: str = "exact") -> pd.DataFrame:
        """Text-to-item search: `vrs.serving.search` over this run's catalogue."""
        from vrs.serving import search

        return search(self.net, self._catalogue(), queries, k=k, index=index, index_dir=self.index_dir)

    def _catalogue(self) -> list[str]:
        return list(self.data.item_index)


@dataclass(eq=False, repr=False)
class BaselineRun(_ServesLists):
    """A baseline fitted by the command that serves it (`vrs-recommend model=category_interest ...`):
    its scorer in place of a trained network, the data it was fitted on, no checkpoint.

    Attributes:
        net: the baseline's scorer (`RankingModule.scorer()`: encode_items / encode_users).
        datamodule: the set-up RecDataModule it was fitted on.
        exclude_seen: whether ranking leaves out each user's earlier items.
        name: what the printed tables call it (the model word).
        results: what fitting measured (category_interest's `classifier/accuracy`, ...).
        data, items, max_len, n_items, n_users: as `Run`'s.
    """

    net: Any
    datamodule: RecDataModule
    exclude_seen: bool
    name: str
    results: dict[str, float] = field(default_factory=dict)
    data: SequenceData = field(init=False)
    items: pd.DataFrame = field(init=False)
    max_len: int = field(init=False)
    n_items: int = field(init=False)
    n_users: int = field(init=False)
    index_dir: None = field(default=None, init=False)  # no saved indexes: approximate ones are built per call

    def __post_init__(self) -> None:
        self.data, self.items = self.datamodule.data, self.datamodule.dataset.items
        self.max_len = int(self.datamodule.max_len)
        self.n_items, self.n_users = self.data.n_items, self.data.n_users

    @property
    def train_counts(self) -> Tensor:
        """(N,) training-split item counts."""
        return self.datamodule.train_counts

    def __repr__(self) -> str:
        return f"BaselineRun({self.name!r}, n_items={self.n_items}, n_users={self.n_users})"


def load_run(
    run_dir: str | Path | None = None,
    *,
    ckpt_path: str | Path | None = None,
    device: str = "cpu",
    feature_cache: str | Path | bool = True,
    feature_precision: str | None = None,
    **data: Any,
) -> Run:
    """Loads a trained run: its checkpoint, and the data it serves set up as it was trained.

    Args:
        run_dir: a folder written by vrs-train; its checkpoint is the one vrs-train tested
            (`find_checkpoint`). None: the run above `ckpt_path`.
        ckpt_path: the checkpoint to load instead. Without `run_dir`, the run is its folder's parent
            when that holds a config.yaml; otherwise the data settings come from `data` alone.
        device: where the network lives ("cpu", "cuda", ...).
        feature_cache: the frozen-feature cache: True the run's (none without a config.yaml),
            False none, or a folder.
        feature_precision: "fp32" or "bf16"; None: the run's (fp32 without a config.yaml).
        **data: RecDataModule arguments that replace the run's (`root="data/copy"`,
            `image_size=64`, ...). `overwrite` is never taken from the run.

    Raises:
        FileNotFoundError: no such run folder or checkpoint.
        RunConfigError: the run's config.yaml is unreadable or lacks a setting it needs.
        ValueError: unknown data arguments.
    """
    run, ckpt = find_run(run_dir, ckpt_path)
    config = read_run_config(run / CONFIG_FILE) if run and (run / CONFIG_FILE).is_file() else {}
    settings = {k: v for k, v in config.get("data", {}).items() if k != "overwrite"}
    settings.update(_checked(data, "data."))
    if "root" not in settings:
        where = f"{run / CONFIG_FILE} has none" if config else f"there is no {CONFIG_FILE} beside {ckpt}"
        raise RunConfigError(f"the data's root folder is unknown ({where}): pass root=DIR")
    cache = config.get("feature_cache") if feature_cache is True else feature_cache or None
    precision = feature_precision or config.get("feature_precision", "fp32")
    return _load(ckpt, settings, device, cache, precision, run)


def find_run(run_dir: str | Path | None, ckpt_path: str | Path | None) -> tuple[Path | None, Path]:
    """(the run folder, the checkpoint): `run_dir` and its tested checkpoint unless `ckpt_path` names
    one; for `ckpt_path` alone, its folder's parent when that holds a config.yaml, else None."""
    if run_dir is not None:
        run = Path(run_dir)
        if not run.is_dir():
            raise FileNotFoundError(f"run_dir={run_dir}: no such folder")
        ckpt = Path(ckpt_path) if ckpt_path else find_checkpoint(run)
    elif ckpt_path:
        ckpt = Path(ckpt_path)
        run = ckpt.parent.parent if (ckpt.parent.parent / CONFIG_FILE).is_file() else None
    else:
        raise ValueError("a run folder (run_dir) or a checkpoint (ckpt_path) is needed")
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt}: no such checkpoint file")
    return run, ckpt


def find_checkpoint(run_dir: Path) -> Path:
    """The checkpoint vrs-train tested: the newest file in run_dir/checkpoints other than last*.ckpt
    and resume.ckpt (the callback keeps only the best one), else the newest last*.ckpt."""
    files = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    files = [p for p in files if p.name != RESUME_CKPT]
    best = [p for p in files if not p.name.startswith("last")]
    if best or files:
        return (best or files)[0]
    raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}: pass ckpt_path=PATH")


def read_run_config(path: Path) -> dict[str, Any]:
    """The settings vrs reads from a run's config.yaml: `data` (RecDataModule arguments, checked
    against its signature), `feature_cache` and `feature_precision`. Nothing else is read."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunConfigError(f"{path}: not a readable YAML file ({err})") from err
    if not isinstance(config, dict):
        raise RunConfigError(f"{path}: expected a mapping of settings, got {type(config).__name__}")
    data = config.get("data")
    if not isinstance(data, dict):
        raise RunConfigError(f"{path}: `data` is missing or not a mapping (the run's data settings)")
    out: dict[str, Any] = {"data": _checked(data, f"{path}: data.", RunConfigError, known_only=True)}
    cache, precision = config.get("feature_cache"), config.get("feature_precision", "fp32")
    if cache is not None and not isinstance(cache, str):
        raise RunConfigError(f"{path}: feature_cache must be a folder path or null, got {cache!r}")
    if precision not in ("fp32", "bf16"):
        raise RunConfigError(f"{path}: feature_precision must be fp32 or bf16, got {precision!r}")
    return out | {"feature_cache": cache, "feature_precision": precision}


def _checked(
    settings: Mapping[str, Any], where: str, error: type[ValueError] = ValueError, known_only: bool = False
) -> dict[str, Any]:
    """`settings` whose keys are RecDataModule arguments, each of its annotated type (errors name the
    key after `where`); with `known_only`, other keys (such as `_target_`) are dropped, not refused."""
    from vrs.data.datamodule import RecDataModule

    hints = typing.get_type_hints(RecDataModule.__init__)
    params = [p for p in inspect.signature(RecDataModule.__init__).parameters if p != "self"]
    unknown = sorted(set(settings) - set(params))
    if unknown and not known_only:
        raise error(f"unknown data setting(s) {unknown}: expected some of {params}")
    for key in set(settings) & set(params):
        if not _fits(settings[key], hints[key]):
            hint = hints[key]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise error(f"{where}{key}: expected {expected}, got {settings[key]!r}")
    return {k: settings[k] for k in params if k in settings}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a plain (YAML) value has the annotated type `hint` (int, str, dict[...], X | None)."""
    if hint is Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    kind = typing.get_origin(hint) or hint
    if kind in (int, float):
        return isinstance(value, int | float if kind is float else int) and not isinstance(value, bool)
    return value is None if kind is type(None) else isinstance(value, kind)


def _load(
    ckpt: Path,
    settings: dict[str, Any],
    device: str,
    cache: str | Path | None,
    precision: str,
    run: Path | None,
) -> Run:
    from vrs.data.datamodule import RecDataModule
    from vrs.encoders.cache import FeatureCache
    from vrs.lit.module import RecModule

    datamodule = RecDataModule(**settings)
    datamodule.prepare_data()
    datamodule.setup()
    module = RecModule.load_from_checkpoint(ckpt, map_location=device, weights_only=True)
    warn_if_other_dataset(module, datamodule, ckpt)
    # The checkpoint's own training counts decide which item IDs count as trained.
    module.attach_data(
        datamodule.content, feature_cache=FeatureCache(cache, precision=precision) if cache else None
    )
    module.eval()
    return Run(module, datamodule, settings, ckpt, run)


def warn_if_other_dataset(module: RecModule, datamodule: RecDataModule, path: Path) -> None:
    """Warns when the checkpoint at `path` was trained on other content than `datamodule` read.

    Both sides are `vrs.data.schema.fingerprint` of the tables: checkpoints store the datamodule's
    fingerprint of what training read, and older ones the dataset.json value, written by the same
    function, so either compares with what this run read.
    """
    trained_on = module.hparams.get("dataset_fingerprint", "")
    if not trained_on:
        warnings.warn(
            f"{path} records no dataset fingerprint, so it cannot be verified that it was trained on "
            f"data.root={datamodule.root} (content fingerprint {datamodule.fingerprint})",
            stacklevel=4,
        )
    elif trained_on != datamodule.fingerprint:
        warnings.warn(
            f"{path} was trained on dataset content {trained_on}, which differs from the content read "
            f"from data.root={datamodule.root} ({datamodule.fingerprint}): another dataset, or its tables "
            "changed since training; the results will not match the training run's",
            stacklevel=4,
        )
