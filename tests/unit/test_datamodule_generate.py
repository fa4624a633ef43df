"""RecDataModule with `generate`: reuse of the same catalogue, refusal of anything else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vrs.data.datamodule import RecDataModule
from vrs.data.synthetic import generate

TINY = {"n_users": 20, "n_items": 30, "image_size": 16}


def _params(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())["generator"]["params"]


def _files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_same_parameters_reuse(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = generate(tmp_path / "syn", **TINY)
    before = _files(root)
    with caplog.at_level(logging.INFO, logger="vrs.data.synthetic"):
        RecDataModule(str(root), generate=dict(TINY)).prepare_data()
    assert "Reusing" in caplog.text and _files(root) == before


def test_other_parameters_refused_not_overwritten(tmp_path: Path) -> None:
    # `vrs-train data.root=X` keeps data=synthetic, whose default parameters differ from X's.
    root = generate(tmp_path / "syn", **TINY)
    before = _files(root)
    dm = RecDataModule(str(root), generate={**TINY, "n_users": 25})
    with pytest.raises(FileExistsError, match=r"n_users=20 .*25.*data=canonical.*overwrite=true"):
        dm.prepare_data()
    assert _files(root) == before and _params(root)["n_users"] == 20


def test_overwrite_regenerates(tmp_path: Path) -> None:
    root = generate(tmp_path / "syn", **TINY)
    RecDataModule(str(root), generate={**TINY, "n_users": 25}, overwrite=True).prepare_data()
    assert _params(root)["n_users"] == 25


def test_folder_of_other_files_refused(tmp_path: Path) -> None:
    # No dataset.json: generating would have replaced images/ whole.
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "images" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"photos.*no dataset.json"):
        RecDataModule(str(root), generate=dict(TINY)).prepare_data()
    with pytest.raises(FileExistsError, match=r"photos.*no dataset.json"):
        generate(root, **TINY)
    assert (root / "images" / "holiday.jpg").read_bytes() == b"mine"


def test_an_interrupted_generation_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vrs.data.synthetic as synthetic

    def die(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_dataset", die)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "syn", **TINY)
    monkeypatch.undo()
    assert generate(tmp_path / "syn", **TINY) == tmp_path / "syn"
    assert _params(tmp_path / "syn")["n_users"] == 20


def test_make_demo_reuses_what_vrs_synth_wrote() -> None:
    # make demo: vrs-synth out_dir=X, then vrs-train data.root=X (data=synthetic): same catalogue.
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vrs.cli.common import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        synth = compose(config_name="synth", overrides=["out_dir=X"])
        train = compose(config_name="train", overrides=["experiment=demo", "data.root=X"])
    GlobalHydra.instance().clear()
    synth_params = {k: v for k, v in synth.items() if k not in ("out_dir", "overwrite")}
    assert dict(train.data.generate) == synth_params and train.data.overwrite is False


def test_evaluation_batches_go_by_history_length(tmp_path: Path) -> None:
    """Evaluation visits targets shortest history first (less padding per batch), each once."""
    root = generate(tmp_path / "syn", n_users=40, n_items=30, image_size=16)
    dm = RecDataModule(str(root), max_len=50, eval_batch_size=7, load_images=False)
    dm.setup()
    for stage in ("val", "test"):
        batches = list(dm.eval_dataloader(stage))
        lengths = [int(n) for b in batches for n in b.mask.sum(dim=1)]
        indices = [int(i) for b in batches for i in b.index]
        assert lengths == sorted(lengths) and len(set(lengths)) > 1
        assert sorted(indices) == list(range(len(indices)))
