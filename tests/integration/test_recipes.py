"""docs/architecture.md's recipes, followed literally: each extension (tests/recipes.py) gets its
config file in a config folder of its own (added to Hydra's search path, as a user's project
would), trains, and reloads as a run that serves recommendations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import vrs
from tests.conftest import compose_config
from vrs.cli.train import train

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = {
    "encoder/mean_colour.yaml": "_target_: tests.recipes.build_mean_colour_towers\nout_dim: 8\n"
    "finetune: {freeze: false, trainable_layers: null, lr: null, gradient_checkpointing: false, "
    "negatives: catalogue}\n",
    "fusion/max.yaml": "_target_: tests.recipes.MaxFusion\n_partial_: true\n",
    "modalities/title_length.yaml": "title_length:\n  _target_: tests.recipes.TitleLengthEncoder\n  out_dim: 4\n",
    "user/decay.yaml": "_target_: tests.recipes.DecayUserEncoder\n_partial_: true\ndecay: 0.7\n",
    "loss/hinge.yaml": "_target_: tests.recipes.OneNegativeHingeLoss\nmargin: 0.5\n",
    "source/plain_csv.yaml": "_target_: tests.recipes.convert_plain_csv\nin_dir: ${in_dir}\nout_dir: ${out_dir}\n"
    "preprocess: ${preprocess}\noverwrite: ${overwrite}\nimage_mode: ${image_mode}\n",
}


@pytest.fixture(scope="module")
def user_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("my_configs")
    for name, text in CONFIGS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _train_and_serve(tmp_path: Path, data: Path, configs: Path, choice: str, monkeypatch) -> dict:
    overrides = [f"hydra.searchpath=[file://{configs}]", choice, "trainer.max_epochs=1", "data.image_size=32"]
    metrics = train(compose_config("train", overrides, tmp_path, data))
    # A run naming the user's own classes reloads once the user trusts their package.
    with pytest.raises(ValueError, match="tests.recipes"):
        vrs.load_run(tmp_path)
    monkeypatch.setenv("VRS_TRUSTED_TARGETS", "tests.recipes.")
    run = vrs.load_run(tmp_path)
    top = run.recommend(list(run.datamodule.data.user_ids[:2]), k=5)
    assert len(top) == 10
    return metrics


@pytest.mark.parametrize(
    "choice, check",
    [
        ("encoder=mean_colour", lambda run: type(run.module.net.item_tower.towers["image"]).__name__),
        (
            "modalities=[title_length]",
            lambda run: type(run.module.net.item_tower.towers["title_length"]).__name__,
        ),
        ("fusion=max", lambda run: type(run.module.net.item_tower.fusion).__name__),
        ("user=decay", lambda run: type(run.module.net.user_encoder).__name__),
        ("loss=hinge", lambda run: type(run.module.loss_fn).__name__),
    ],
    ids=["encoder", "modality", "fusion", "user_encoder", "loss"],
)
def test_recipe(choice, check, tmp_path, small_data, user_configs, monkeypatch) -> None:
    metrics = _train_and_serve(tmp_path, small_data, user_configs, choice, monkeypatch)
    assert 0.0 <= metrics["test/ndcg_10"] <= 1.0
    expected = {"encoder": "MeanColourEncoder", "modalities": "TitleLengthEncoder", "fusion": "MaxFusion",
                "user": "DecayUserEncoder", "loss": "OneNegativeHingeLoss"}[choice.split("=")[0]]  # fmt: skip
    assert check(vrs.load_run(tmp_path)) == expected


def _prepare(cwd: Path, configs: Path, raw: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [f"hydra.searchpath=[file://{configs}]", "source=plain_csv", f"in_dir={raw}", f"out_dir={out}"]
    return subprocess.run([sys.executable, "-m", "vrs.cli.prepare", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_recipe_adapter(tmp_path: Path, user_configs: Path) -> None:
    from vrs.data.schema import load_dataset

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.csv").write_text("".join(f"u{u},i{(u + t) % 7},{t}\n" for u in range(6) for t in range(5)))
    (raw / "titles.csv").write_text("".join(f"i{i},item {i}\n" for i in range(7)))
    result = _prepare(tmp_path, user_configs, raw, tmp_path / "ds")
    assert result.returncode == 0, result.stderr[-2000:]
    dataset = load_dataset(tmp_path / "ds", check_images=False)
    assert len(dataset.interactions) == 30 and len(dataset.items) == 7
    # A bad line is reported with its file and line, and nothing is written.
    (raw / "events.csv").write_text("u1,i1,1\nu1,i2,not-a-time\n")
    result = _prepare(tmp_path, user_configs, raw, tmp_path / "ds2")
    assert result.returncode != 0 and "events.csv" in result.stderr and "line 2" in result.stderr
    assert not (tmp_path / "ds2" / "interactions.parquet").exists()
