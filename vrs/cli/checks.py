"""Checks of the composed config, run before anything is loaded: a wrong value is named with what was
expected, instead of failing later (after minutes of data loading) deep inside a library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vrs.lit import finetune


def _int(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an integer >= {low}"


def _number(
    low: float, high: float | None = None, open_low: bool = False
) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool) or v != v:
            return False
        return (v > low if open_low else v >= low) and (high is None or v < high)

    bound = f"> {low}" if open_low else f">= {low}"
    return ok, f"a number {bound}" + (f" and < {high}" if high is not None else "")


def _choice(*options: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), "one of " + ", ".join(map(str, options))


_BOOL = (lambda v: isinstance(v, bool)), "true or false"
_OPTIONAL_INT = (
    (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)),
    ("null or an integer >= 0"),
)

# key -> (test, what is expected). Keys absent from a command's config are skipped.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _int(0),
    "test": _BOOL,
    "feature_precision": _choice("fp32", "bf16"),
    "trainer.max_epochs": _int(-1),
    "trainer.min_epochs": _OPTIONAL_INT,
    "trainer.max_steps": _int(-1),
    "trainer.check_val_every_n_epoch": _int(1),
    "trainer.log_every_n_steps": _int(1),
    "trainer.accumulate_grad_batches": _int(1),
    "trainer.num_sanity_val_steps": _int(-1),
    "trainer.gradient_clip_val": ((lambda v: v is None or _number(0)[0](v)), "null or a number >= 0"),
    "trainer.deterministic": ((lambda v: isinstance(v, bool) or v == "warn"), "true, false or warn"),
    "data.batch_size": _int(1),
    "data.eval_batch_size": _int(1),
    "data.max_len": _int(1),
    "data.num_workers": _int(0),
    "data.image_size": _int(1),
    "data.length_grouping": _int(1),
    "data.load_images": _BOOL,
    "data.on_bad_image": _choice("error", "skip", "blank"),
    "data.split": _choice("leave_one_out", "temporal"),
    "model.dim": _int(1),
    "model.modality_dropout": _number(0, 1),
    "model.use_id": _BOOL,
    "model.feature_norm": _BOOL,
    "model.optimizer.lr": _number(0, open_low=True),
    "model.optimizer.weight_decay": _number(0),
    "user.n_layers": _int(1),
    "user.n_heads": _int(1),
    "user.dropout": _number(0, 1),
    "user.positions": _choice("forward", "inverse"),
    "user.block": _choice("prenorm", "sasrec"),
    "user.ff_mult": _int(1),
    "user.activation": _choice("gelu", "relu"),
    "model.id_init_std": _number(0, open_low=True),
    "model.init": _choice("default", "xavier_normal"),
    **{f"encoder.finetune.{key}": rule for key, rule in finetune.RULES.items()},
    "loss.n_negatives": _int(1),
    "loss.temperature": _number(0, open_low=True),
    "callbacks.early_stopping.patience": _int(0),
    "k": _int(1),
}


def check_config(cfg: DictConfig) -> None:
    """Raises ValueError naming every setting of `cfg` that breaks `RULES`."""
    problems = []
    for key, (ok, expected) in RULES.items():
        if OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False) is _MISSING:
            continue
        value = OmegaConf.select(cfg, key)
        if not ok(value):
            problems.append(f"{key}={value!r}: expected {expected}")
    if problems:
        raise ValueError("invalid settings:\n  " + "\n  ".join(problems))


_MISSING = object()
