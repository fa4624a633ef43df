"""Checks of the composed config, run before anything is loaded: a wrong value is named with what was
expected, instead of failing later (after minutes of data loading) deep inside a library."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from vrs.lit import finetune
from vrs.rules import BOOL, Rule, choice, integer, number, optional

_MISSING = object()

# key -> (test, what is expected). Keys absent from a command's config are skipped.
RULES: dict[str, Rule] = {
    "seed": integer(0),
    "test": BOOL,
    "feature_precision": choice("fp32", "bf16"),
    "progress_every_s": optional(number(0, open_low=True)),
    "trainer.max_epochs": integer(-1),
    "trainer.min_epochs": optional(integer(0)),
    "trainer.max_steps": integer(-1),
    "trainer.check_val_every_n_epoch": integer(1),
    "trainer.log_every_n_steps": integer(1),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.gradient_clip_val": optional(number(0)),
    "trainer.deterministic": ((lambda v: isinstance(v, bool) or v == "warn"), "true, false or warn"),
    "data.batch_size": integer(1),
    "data.eval_batch_size": integer(1),
    "data.max_len": integer(1),
    "data.num_workers": integer(0),
    "data.image_size": integer(1),
    "data.length_grouping": integer(1),
    "data.train_windows": choice("last", "all"),
    "data.first_target": BOOL,
    "data.train_stride": optional(integer(1)),
    "data.load_images": BOOL,
    "data.on_bad_image": choice("error", "skip", "blank"),
    "data.split": choice("leave_one_out", "temporal"),
    "model.dim": integer(1),
    "model.modality_dropout": number(0, 1),
    "model.use_id": BOOL,
    "model.feature_norm": BOOL,
    "model.optimizer.lr": number(0, open_low=True),
    "model.optimizer.weight_decay": number(0),
    "user.n_layers": integer(1),
    "user.n_heads": integer(1),
    "user.dropout": number(0, 1),
    "user.bias": BOOL,
    "user.positions": choice("forward", "inverse"),
    "user.block": choice("prenorm", "sasrec"),
    "user.ff_mult": integer(1),
    "user.activation": choice("gelu", "relu"),
    "model.id_init_std": number(0, open_low=True),
    "model.init": choice("default", "xavier_normal"),
    "model.session_gap": optional(integer(0)),
    "model.content_match.session_gap": optional(integer(0)),
    **{f"encoder.finetune.{key}": rule for key, rule in finetune.RULES.items()},
    "loss.n_negatives": integer(1),
    "loss.negatives": choice("shared", "per_target"),
    "loss.temperature": number(0, open_low=True),
    "callbacks.early_stopping.patience": integer(0),
    "k": integer(1),
    "batch_size": optional(integer(1)),
    "shard_size": integer(1),
    "workers": optional(integer(1)),
}


def check_config(cfg: DictConfig) -> None:
    """Raises ValueError naming every setting of `cfg` that breaks `RULES`."""
    problems = []
    for key, (ok, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        if value is not _MISSING and not ok(value):
            problems.append(f"{key}={value!r}: expected {expected}")
    if problems:
        raise ValueError("invalid settings:\n  " + "\n  ".join(problems))
