"""Checkpoints cannot run code: a file's `_target_`s go through the allow-list (vrs.lit.targets)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrs.cli.common import CONFIG_DIR
from vrs.fusion.concat import ConcatFusion
from vrs.lit.module import RecModule
from vrs.lit.targets import (
    TOWER_BUILDERS,
    TRUST_ENV,
    UntrustedTargetError,
    check_targets,
    trusted_config,
)

TINY = {"n_items": 20, "n_events": 1, "max_len": 5, "dim": 8, "use_id": True}


class OutsideFusion(ConcatFusion):
    """A fusion defined outside vrs (here: in a test module), as a researcher's own code would be."""


class _Marker:
    """Unpickling it writes a marker file: proves whether a pickle was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path(self.path).write_text, ("pwned",))


def _checkpoint(tmp_path: Path, **hparams: Any) -> Path:
    """A Lightning-style checkpoint of a real tiny model, its hyper-parameters replaced by `hparams`."""
    module = RecModule(**TINY)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams) | hparams,
        "pytorch-lightning_version": "2.6.0",
    }
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    torch.load(path, weights_only=True)  # the file itself is a "safe" one
    return path


def _payloads(tmp_path: Path) -> dict[str, dict[str, Any]]:
    marker = tmp_path / "marker"
    pickled = tmp_path / "payload.pkl"
    pickled.write_bytes(pickle.dumps(_Marker(str(marker))))
    write = {
        "_target_": "pathlib.Path.write_text",
        "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "x"],
    }
    return {
        # The reported exploit: write a file, then torch.load(weights_only=False) a pickle.
        "write_text": {"fusion": write},
        "torch_load": {"user": {"_target_": "torch.load", "f": str(pickled), "weights_only": False}},
        # A refused target nested inside an allowed one (in _args_ and in a keyword).
        "nested_args": {"loss": {"_target_": "vrs.losses.FullSoftmaxLoss", "_args_": [write]}},
        "nested_kwarg": {
            "fusion": {"_target_": "vrs.fusion.concat.ConcatFusion", "_partial_": True, "x": write}
        },
        # vrs functions that write files, and names re-exported by vrs modules.
        "vrs_function": {"loss": {"_target_": "vrs.io.atomic_write_text", "_args_": [str(marker), "x"]}},
        "reexport": {"loss": {"_target_": "vrs.lit.targets.instantiate", "_args_": [write]}},
        "module_attr": {
            "loss": {"_target_": "vrs.lit.module.torch.load", "f": str(pickled), "weights_only": False}
        },
        # A scheduler is built only in configure_optimizers: still refused when the checkpoint loads.
        "scheduler": {"scheduler": {"_target_": "builtins.eval", "_args_": ["1"]}},
        "lr_lambda": {
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.LambdaLR",
                "_partial_": True,
                "lr_lambda": {"_target_": "builtins.eval", "_partial_": True, "_args_": ["lambda e: 1"]},
            }
        },
        "optimizer_function": {"optimizer": {"_target_": "torch.optim.adam.adam", "_partial_": True}},
        "interpolation": {
            "loss": {"_target_": "vrs.losses.FullSoftmaxLoss", "temperature": "${oc.env:HOME}"}
        },
        "special_key": {"loss": {"_target_": "vrs.losses.FullSoftmaxLoss", "_set_": {"x": 1}}},
    }


@pytest.mark.parametrize(
    "name",
    [
        "write_text",
        "torch_load",
        "nested_args",
        "nested_kwarg",
        "vrs_function",
        "reexport",
        "module_attr",
        "scheduler",
        "lr_lambda",
        "optimizer_function",
        "interpolation",
        "special_key",
    ],
)
def test_crafted_checkpoint_is_refused_without_side_effects(tmp_path: Path, name: str) -> None:
    payload = _payloads(tmp_path)[name]
    path = _checkpoint(tmp_path, **payload)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UntrustedTargetError, match=r"hyper_parameters\.\w+"):
        RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert not (tmp_path / "marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("where", ["node", "setting"])
def test_finetune_holds_plain_values_only(tmp_path: Path, where: str) -> None:
    write = _payloads(tmp_path)["write_text"]["fusion"]
    path = _checkpoint(tmp_path, finetune=write if where == "node" else {"lr": write})
    with pytest.raises(
        ValueError, match=r"finetune(: unknown settings \['_args_', '_target_'\]|\.lr=.*expected)"
    ):
        RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert not (tmp_path / "marker").exists()


def test_error_names_the_refused_target(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, **_payloads(tmp_path)["write_text"])
    with pytest.raises(
        UntrustedTargetError, match=r"hyper_parameters\.fusion\._target_: .*'pathlib\.Path\.write_text'"
    ):
        RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def test_vrs_eval_refuses_a_crafted_checkpoint(tmp_path: Path, small_data: Path) -> None:
    from vrs.cli.evaluate import evaluate

    path = _checkpoint(tmp_path, **_payloads(tmp_path)["torch_load"])
    cfg = compose_config("eval", [f"ckpt_path={path}", "data.image_size=32"], tmp_path / "eval", small_data)
    with pytest.raises(UntrustedTargetError, match="torch.load"):
        evaluate(cfg)
    assert not (tmp_path / "marker").exists()


def test_a_genuine_checkpoint_loads(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    module = RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    module.configure_optimizers()  # the optimiser is built through the allow-list too
    assert module.net.item_tower.n_items == TINY["n_items"]


def test_a_checkpoint_naming_a_moved_module_loads(tmp_path: Path) -> None:
    from vrs.user import SASRecUserEncoder

    old = {"_target_": "vrs.sequence.sasrec.SASRecUserEncoder", "_partial_": True, "dropout": 0.3}
    path = _checkpoint(tmp_path, user=old)
    module = RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert isinstance(module.net.user_encoder, SASRecUserEncoder)
    assert module.net.user_encoder.input_drop.p == 0.3
    # Saved again, the checkpoint names the new path.
    assert module.hparams.user == old | {"_target_": "vrs.user.sasrec.SASRecUserEncoder"}


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        ("vrs.sequence.sasrec.NoSuchEncoder", "does not name anything importable"),
        ("vrs.sequence.sasrec.torch.load", "refusing to build"),
        ("vrs.sequences.SASRecUserEncoder", "does not name anything importable"),
        ("vrs_sequence.sasrec.SASRecUserEncoder", "refusing to build"),
    ],
)
def test_a_moved_prefix_admits_nothing_new(tmp_path: Path, target: str, refusal: str) -> None:
    path = _checkpoint(tmp_path, user={"_target_": target, "_partial_": True})
    with pytest.raises(UntrustedTargetError, match=rf"hyper_parameters\.user\._target_: .*{refusal}"):
        RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def test_own_code_is_allowed_from_the_command_line_and_by_explicit_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fusion = {"_target_": f"{__name__}.OutsideFusion", "_partial_": True}
    with trusted_config():  # vrs-train: the user's own config, the whole of Hydra
        module = RecModule(**TINY, fusion=fusion)
    assert isinstance(module.net.item_tower.fusion, OutsideFusion)
    path = _checkpoint(tmp_path, fusion=fusion)
    with pytest.raises(UntrustedTargetError, match="OutsideFusion"):
        RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    monkeypatch.setenv(TRUST_ENV, "tests.unit.")
    module = RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert isinstance(module.net.item_tower.fusion, OutsideFusion)


def _model_nodes(overrides: list[str], tmp_path: Path) -> dict[str, Any]:
    cfg = compose_config("train", overrides, tmp_path, data_root=tmp_path)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: model[k] for k in ("encoder", "fusion", "user", "loss", "optimizer", "scheduler")}


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"experiment={name}" for name in _group_options("experiment")]
    + [
        f"{group}={name}" for group in ("encoder", "fusion", "user", "loss") for name in _group_options(group)
    ],
)
def test_every_shipped_config_passes_the_allow_list(tmp_path: Path, override: str) -> None:
    for name, node in _model_nodes([override], tmp_path).items():
        check_targets(node, f"hyper_parameters.{name}")


def test_tower_builders_exist() -> None:
    from vrs.lit.targets import _locate

    for name in TOWER_BUILDERS:
        assert callable(_locate(name)), name


@pytest.mark.parametrize("experiment", ["sasrec_amazon_tuned", "sasrec_amazon_attr_tuned"])
def test_shipped_experiments_rebuild_from_their_hyper_parameters(tmp_path: Path, experiment: str) -> None:
    nodes = _model_nodes([f"experiment={experiment}"], tmp_path)
    module = RecModule(**TINY, **nodes)  # outside trusted_config: as from a checkpoint
    module.configure_optimizers()
    assert sum(p.numel() for p in module.parameters()) > 0
