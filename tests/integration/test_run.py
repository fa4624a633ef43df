"""vrs.load_run: a run folder is all a user needs; run_dir= on the commands equals the explicit form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import vrs
from tests.conftest import compose_config, run_module
from vrs.cli.evaluate import evaluate
from vrs.cli.recommend import recommend
from vrs.cli.runs import load_run
from vrs.cli.train import train
from vrs.code_version import CODE_FILE, code_version
from vrs.run import RESUME_CKPT, RunConfigError, find_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    run = tmp_path_factory.mktemp("run")
    overrides = ["trainer.max_epochs=1", "data.image_size=32", "test=false", "logger=none"]
    train(compose_config("train", overrides, run, small_data))
    return run


@pytest.fixture
def loose_checkpoint(run_dir: Path, tmp_path: Path) -> Path:
    """The run's tested checkpoint, copied where no config.yaml is beside it."""
    path = tmp_path / "elsewhere" / "model.ckpt"
    path.parent.mkdir()
    shutil.copy(find_checkpoint(run_dir), path)
    return path


def test_a_run_records_the_code_that_trained_it(run_dir: Path) -> None:
    entries = json.loads((run_dir / CODE_FILE).read_text())
    assert len(entries) == 1 and entries[0]["package"] == str(Path(vrs.__file__).resolve().parent)
    assert entries[0]["commit"] == code_version()["commit"]


def test_three_lines_serve_a_run(run_dir: Path, small_data: Path) -> None:
    run = vrs.load_run(run_dir)
    table = run.recommend(["u00001"], k=10)
    assert table["user_id"].tolist() == ["u00001"] * 10 and table["rank"].tolist() == list(range(1, 11))

    assert run.checkpoint == find_checkpoint(run_dir) and run.checkpoint.name != RESUME_CKPT
    assert (run.n_items, run.n_users, run.max_len) == (150, 300, 50) and run.exclude_seen
    assert run.data_settings["root"] == str(small_data) and run.data_settings["image_size"] == 32
    assert run.index_dir == run.checkpoint.parent / "index" and run.name == run_dir.name
    assert not run.module.training and int(run.train_counts.sum()) > 0
    assert repr(run) == f"Run({run_dir.name!r}, checkpoint={str(run.checkpoint)!r}, n_items=150, n_users=300)"
    similar = run.similar(["i00003"], k=5)
    assert len(similar) == 5 and "i00003" not in set(similar["item_id"])
    assert run.search(["red star"], k=3)["query"].tolist() == ["red star"] * 3


def test_overrides_win_over_the_run_config(run_dir: Path, small_data: Path, tmp_path: Path) -> None:
    run = vrs.load_run(run_dir, eval_batch_size=7)
    assert run.datamodule.eval_batch_size == 7 and run.data_settings["root"] == str(small_data)
    with pytest.raises(ValueError, match=r"unknown data setting\(s\) \['imagesize'\]"):
        vrs.load_run(run_dir, imagesize=32)
    # On the command line, only what was given replaces the run's settings (the command's default
    # data.root, another folder, is not).
    cfg = compose_config("recommend", [f"run_dir={run_dir}", "data.eval_batch_size=9"], tmp_path)
    run = load_run(cfg)
    assert run.datamodule.eval_batch_size == 9 and run.data_settings["root"] == str(small_data)


def test_recommend_run_dir_equals_checkpoint_and_data_settings(
    run_dir: Path, loose_checkpoint: Path, small_data: Path, tmp_path: Path
) -> None:
    args = [f"run_dir={run_dir}", "users=[u00001,u00002,u00003]", "k=5", "out=by_run.parquet"]
    result = run_module("vrs.cli.recommend", args, tmp_path)
    assert result.returncode == 0, result.stderr
    explicit = [f"ckpt_path={loose_checkpoint}", "data=canonical", "data.image_size=32",
                "users=[u00001,u00002,u00003]", "k=5", f"out={tmp_path / 'explicit.parquet'}"]  # fmt: skip
    table = recommend(compose_config("recommend", explicit, tmp_path, small_data))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "by_run.parquet"), table)
    assert len(table) == 15


def test_eval_run_dir_equals_checkpoint_and_data_settings(
    run_dir: Path, loose_checkpoint: Path, small_data: Path, tmp_path: Path
) -> None:
    by_run = evaluate(compose_config("eval", [f"run_dir={run_dir}"], tmp_path / "by_run"))
    explicit = [f"ckpt_path={loose_checkpoint}", "data=canonical", "data.image_size=32"]
    assert evaluate(compose_config("eval", explicit, tmp_path / "explicit", small_data)) == by_run
    assert json.loads((tmp_path / "by_run" / "metrics.json").read_text())["test/n_users"] == 300


def _bad_run(tmp_path: Path, config: str) -> Path:
    run = tmp_path / "bad"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints" / "epoch_000.ckpt").write_bytes(b"")  # never read: the config fails first
    (run / "config.yaml").write_text(config)
    return run


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("data: {root: /data, image_size: big}\n", r"config.yaml: data.image_size: expected int, got 'big'"),
        ("data: {root: /data, generate: [1, 2]}\n", r"config.yaml: data.generate: expected dict"),
        ("data: {image_size: 32}\n", r"config.yaml has none\): pass root=DIR"),
        ("seed: 0\n", r"config.yaml: `data` is missing or not a mapping"),
        ("- a list\n", r"config.yaml: expected a mapping of settings, got list"),
        ("data: {root: /data}\nfeature_precision: fp16\n", r"config.yaml: feature_precision must be"),
        ("data: [unclosed\n", r"config.yaml: not a readable YAML file"),
        ("data: !!python/object/apply:os.system [touch marker]\n", r"config.yaml: not a readable YAML file"),
    ],
)
def test_a_malformed_run_config_is_named(tmp_path: Path, config: str, message: str) -> None:
    run = _bad_run(tmp_path, config)
    with pytest.raises(RunConfigError, match=message):
        vrs.load_run(run)
    assert not (tmp_path / "marker").exists() and not Path("marker").exists()


def test_a_run_config_builds_nothing_but_vrs_datamodule(
    run_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    config = f"data:\n  _target_: pathlib.Path.write_text\n  root: {small_data}\n  image_size: 32\n"
    run = _bad_run(tmp_path, config)
    shutil.copy(find_checkpoint(run_dir), run / "checkpoints" / "epoch_000.ckpt")
    assert type(vrs.load_run(run).datamodule).__name__ == "RecDataModule"

    (run / "config.yaml").write_text("data: {root: /data, image_size: big}\n")
    result = run_module("vrs.cli.recommend", [f"run_dir={run}", "out=recs.parquet"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {run / 'config.yaml'}: data.image_size: expected int, got 'big'" in result.stderr
