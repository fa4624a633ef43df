"""Building objects from `_target_` dicts that come from a file (a checkpoint's hyper-parameters).

A checkpoint passes `torch.load(weights_only=True)` and still names callables in its
hyper-parameters; handing those to Hydra's `instantiate` would call anything importable
(`pathlib.Path.write_text`, `torch.load(weights_only=False)`, ...). `build_untrusted` calls only
allow-listed targets, checked on every nested node before anything is imported or built:

- classes defined in vrs that are `torch.nn.Module`s (fusions, user encoders, losses, towers);
- the tower builders of the `encoder` config group (`TOWER_BUILDERS`);
- `torch.optim` optimisers and `torch.optim.lr_scheduler` schedulers (classes only);
- targets under a prefix the user trusts explicitly: `VRS_TRUSTED_TARGETS=mypkg.,other.mod.`.

Checkpoints written before a vrs module moved still name its old path: `moved_targets` rewrites
them (`MOVED_PREFIXES`) before the allow-list sees them, so a moved target is checked like any other.

The user's own command line (vrs-train) keeps the whole of Hydra: see `trusted_config`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
from collections.abc import Iterator
from typing import Any

from hydra.utils import instantiate

TOWER_BUILDERS = frozenset(
    {
        "vrs.encoders.toy.build_toy_towers",
        "vrs.encoders.lenet.build_lenet_towers",
        "vrs.encoders.pretrained.build_effnet_towers",
        "vrs.encoders.pretrained.build_minilm_towers",
        "vrs.encoders.pretrained.build_effnet_minilm_towers",
        "vrs.encoders.open_clip.build_open_clip_towers",
        "vrs.encoders.hf.build_hf_text_towers",
        "vrs.encoders.hf_clip.build_hf_clip_towers",
    }
)
# Hydra's own keys; any other `_key_` in a file is refused rather than guessed at.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})
TRUST_ENV = "VRS_TRUSTED_TARGETS"
# Old module prefix -> new one, for checkpoints saved before the move. Only whole prefixes of vrs's
# own packages belong here: the rewritten target still has to pass the allow-list.
MOVED_PREFIXES = {"vrs.sequence.": "vrs.user."}
# Old state-dict key prefix -> new one, for checkpoints saved before the towers were keyed by modality.
MOVED_STATE_PREFIXES = {
    "net.item_tower.image_encoder.": "net.item_tower.towers.image.",
    "net.item_tower.text_encoder.": "net.item_tower.towers.text.",
}

_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("vrs_trusted_config", default=False)


class UntrustedTargetError(ValueError):
    """A `_target_` (or other field) from a file that vrs refuses to build."""


@contextlib.contextmanager
def trusted_config() -> Iterator[None]:
    """Within this block `build` uses Hydra's full `instantiate`: for configs the user composed on
    their own command line, never for what a checkpoint holds."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def is_trusted() -> bool:
    """True inside `trusted_config()`."""
    return _trusted.get()


def build(node: dict[str, Any], where: str, trusted: bool) -> Any:
    """Instantiates `node`: in full when `trusted`, else through the allow-list."""
    if trusted:
        return instantiate(node, _convert_="all")
    return build_untrusted(node, where)


def build_untrusted(node: dict[str, Any], where: str) -> Any:
    """Checks every target in `node` (see the module docstring), then instantiates it."""
    check_targets(node, where)
    return instantiate(node, _convert_="all")


def moved_targets(node: Any) -> Any:
    """A copy of `node` whose `_target_`s under an old prefix (`MOVED_PREFIXES`) name the new path.

    Anything else, refused targets included, is copied unchanged for `check_targets` to judge.
    """
    if isinstance(node, dict):
        return {
            key: _moved(value) if key == "_target_" else moved_targets(value) for key, value in node.items()
        }
    if isinstance(node, list | tuple):
        return type(node)(moved_targets(value) for value in node)
    return node


def moved_state_keys(state: dict[str, Any]) -> dict[str, Any]:
    """`state` (a state dict) with keys under an old prefix (`MOVED_STATE_PREFIXES`) renamed, in order."""
    renamed = {}
    for key, value in state.items():
        for old, new in MOVED_STATE_PREFIXES.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
                break
        renamed[key] = value
    return renamed


def _moved(target: Any) -> Any:
    if isinstance(target, str):
        for old, new in MOVED_PREFIXES.items():
            if target.startswith(old):
                return new + target.removeprefix(old)
    return target


def check_targets(node: Any, where: str) -> None:
    """Raises UntrustedTargetError naming the first refused target or field under `where`."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            if not isinstance(key, str):
                raise UntrustedTargetError(f"{path}: keys must be strings, got {type(key).__name__}")
            if key.startswith("_") and key.endswith("_") and key not in HYDRA_KEYS:
                raise UntrustedTargetError(
                    f"{path}: unknown special field (expected one of {sorted(HYDRA_KEYS)})"
                )
            if key == "_target_":
                _check_target(value, path)
            elif key in ("_partial_", "_recursive_") and not isinstance(value, bool):
                raise UntrustedTargetError(f"{path}: expected true or false, got {value!r}")
            elif key == "_convert_" and value not in ("none", "partial", "object", "all"):
                raise UntrustedTargetError(f"{path}: expected none/partial/object/all, got {value!r}")
            else:
                check_targets(value, path)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")
    elif isinstance(node, str) and "${" in node:
        # Interpolations would be resolved by OmegaConf (reading environment variables, for one).
        raise UntrustedTargetError(f"{where}: interpolation {node!r} is not allowed in a checkpoint")
    elif node is not None and not isinstance(node, bool | int | float | str):
        raise UntrustedTargetError(f"{where}: unexpected value of type {type(node).__name__}")


def _check_target(target: Any, where: str) -> None:
    if not isinstance(target, str) or not all(part.isidentifier() for part in target.split(".")):
        raise UntrustedTargetError(f"{where}: {target!r} is not a dotted Python name")
    if _user_trusted(target):
        return
    refused = UntrustedTargetError(
        f"{where}: refusing to build {target!r} from a file: only vrs's own modules, its tower "
        "builders and torch.optim optimisers/schedulers are allowed (trust more with "
        f"{TRUST_ENV}=prefix.,other.prefix. if you wrote that code)"
    )
    if not target.startswith(("vrs.", "torch.optim.")):
        raise refused  # before any import: importing a module runs its code
    obj = _locate(target)
    if obj is None:
        raise UntrustedTargetError(f"{where}: {target!r} does not name anything importable")
    if target.startswith("torch.optim."):
        import torch

        bases = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
        if inspect.isclass(obj) and issubclass(obj, bases):
            return
        raise refused
    if target in TOWER_BUILDERS:
        return
    import torch

    if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) and obj.__module__.startswith("vrs."):
        return
    raise refused


def _user_trusted(target: str) -> bool:
    prefixes = [p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()]
    return any(
        target == p.rstrip(".") or target.startswith(p if p.endswith(".") else p + ".") for p in prefixes
    )


def _locate(target: str) -> Any:
    """The object a dotted name refers to (the longest importable module, then attributes)."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if attr.startswith("_") or not hasattr(obj, attr):
                return None
            obj = getattr(obj, attr)
        return obj
    return None
