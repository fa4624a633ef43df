"""The dataset fingerprint is the content the run read, not what dataset.json claims."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from vrs.data.datamodule import RecDataModule
from vrs.data.schema import fingerprint, load_dataset
from vrs.run import warn_if_other_dataset


def _module(trained_on: str) -> SimpleNamespace:
    return SimpleNamespace(hparams={"dataset_fingerprint": trained_on})


@pytest.fixture
def data(small_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_data, tmp_path / "data"))


def test_fingerprint_is_the_content_read(data: Path) -> None:
    ds = load_dataset(data, check_images=False)
    dm = RecDataModule(str(data), load_images=False)
    assert dm.fingerprint == fingerprint(ds.items, ds.interactions) == ds.meta["fingerprint"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_other_dataset(_module(ds.meta["fingerprint"]), dm, Path("model.ckpt"))  # same data: silent


def test_changed_table_with_old_dataset_json_is_noticed(data: Path) -> None:
    trained_on = load_dataset(data, check_images=False).meta["fingerprint"]
    inter = pd.read_parquet(data / "interactions.parquet")
    inter.loc[0, "timestamp"] += 1  # dataset.json is left as it was
    inter.to_parquet(data / "interactions.parquet", index=False)
    with pytest.warns(UserWarning, match=r"dataset.json .* tables .*changed"):
        dm = RecDataModule(str(data), load_images=False)
        dm.setup()
    assert dm.fingerprint != trained_on
    with pytest.warns(UserWarning, match=rf"model.ckpt was trained on dataset content {trained_on}.*differs"):
        warn_if_other_dataset(_module(trained_on), dm, Path("model.ckpt"))


def test_checkpoint_without_fingerprint_cannot_be_verified(data: Path) -> None:
    dm = RecDataModule(str(data), load_images=False)
    with pytest.warns(UserWarning, match=r"model.ckpt records no dataset fingerprint.*cannot"):
        warn_if_other_dataset(_module(""), dm, Path("model.ckpt"))
