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
