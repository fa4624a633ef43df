"""W&B settings from the job: online only with credentials, names and groups from the overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from vrs.cli import tracking


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    netrc = tmp_path / ".netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_online_only_for_a_logged_in_user(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.wandb_offline()  # no key anywhere
    no_credentials.write_text("machine example.com login user password secret\n")
    assert tracking.wandb_offline()  # another host's entry is not a W&B login
    no_credentials.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    no_credentials.chmod(0o600)
    assert not tracking.wandb_offline()  # what `wandb login` writes
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.wandb_offline()  # the user's explicit choice wins
    monkeypatch.setenv("WANDB_MODE", "online")
    no_credentials.unlink()
    assert not tracking.wandb_offline()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not tracking.wandb_offline()


def _job(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    hydra = OmegaConf.create({"hydra": {"overrides": {"task": overrides}}})
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hydra.hydra))


def test_seeds_of_one_arm_share_a_group_and_arms_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = {}
    for fusion in ("concat", "gated"):
        for seed in (0, 1):
            job = [f"fusion={fusion}", f"seed={seed}", "data.root=/data/amazon/Beauty", "hydra.run.dir=/x/1"]
            _job([*job, "experiment=demo", "resume=last"], monkeypatch)
            name = tracking.run_name("train")
            assert name == f"fusion={fusion} seed={seed} data.root=Beauty experiment=demo"
            groups[(fusion, seed)] = tracking.run_group("train")
            assert tracking.run_tags("train") == ["train", "demo"]
    assert (
        groups[("concat", 0)]
        == groups[("concat", 1)]
        == "train fusion=concat data.root=Beauty experiment=demo"
    )
    assert groups[("concat", 0)] != groups[("gated", 0)]
    _job([], monkeypatch)
    assert tracking.run_name("train") == "train" and tracking.run_group("train") == "train"


def test_multirun_folders_say_what_each_job_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    _job(["seed=1", "loss=bpr", "data.root=/data/amazon/Beauty", "hydra.run.dir=/x", "+user.ks=[10,20]"],
         monkeypatch)  # fmt: skip
    name = tracking.job_subdir(3)
    assert name == "3_data.root-Beauty+loss-bpr+user.ks-10_20+seed-1"  # by key, the seed last
    assert tracking.run_title("train") == "train data.root=Beauty loss=bpr user.ks=[10,20] seed=1"
    # The folder can be given back on a command line as it is (hydra.run.dir=..., run_dir=...).
    parsed = OverridesParser.create().parse_override(f"hydra.run.dir=runs/multirun_x/{name}")
    assert parsed.value() == f"runs/multirun_x/{name}"
    _job(["seed=1", "loss=full_softmax"], monkeypatch)
    assert tracking.job_subdir(4) == "4_loss-full_softmax+seed-1"  # another job, another folder
    _job([], monkeypatch)
    assert tracking.job_subdir(0) == "0" and tracking.run_title("train") == "train"
    _job([f"model.dim={'8' * tracking.MAX_SUBDIR}"], monkeypatch)
    assert tracking.job_subdir(7) == "7"  # too long for a folder name: the number alone


def test_multirun_folder_config_resolves(tmp_path: Path) -> None:
    from tests.conftest import compose_config

    cfg = compose_config("train", ["fusion=gated", "seed=2"], tmp_path)
    assert cfg.hydra.sweep.subdir == "0_fusion-gated+seed-2"
