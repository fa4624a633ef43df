"""How encoder weights train: the `encoder.finetune` config node, RecModule's `finetune` argument.

Kept free of torch imports at module level: `vrs.cli.checks` reads `RULES` before anything loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vrs.rules import BOOL, Rule, choice, integer, number, optional

if TYPE_CHECKING:
    from vrs.encoders.base import Towers

NEGATIVES = ("in_batch", "catalogue")


_LAYERS_OK, _LAYERS = optional(integer(0))


def _layers_ok(v: Any) -> bool:
    """One value for every tower, or one per tower, e.g. {image: 1, text: 0} (0 freezes a tower)."""
    if isinstance(v, Mapping):
        return bool(v) and all(isinstance(k, str) and _LAYERS_OK(x) for k, x in v.items())
    return _LAYERS_OK(v)


TRAINABLE_LAYERS: Rule = (_layers_ok, f"{_LAYERS}, or {{modality: {_LAYERS}}} naming each tower")

# setting -> (test, what is expected); vrs.cli.checks applies the same rules to `encoder.finetune.*`.
RULES: dict[str, Rule] = {
    "freeze": BOOL,
    "trainable_layers": TRAINABLE_LAYERS,
    "lr": optional(number(0, open_low=True)),
    "gradient_checkpointing": BOOL,
    "negatives": choice(*NEGATIVES),
}


@dataclass(frozen=True)
class FineTuning:
    """Fine-tuning settings, checked on construction.

    Args:
        freeze: keep encoder weights fixed (their features come from the feature cache).
        trainable_layers: with trainable encoders, train only the last K blocks of each (and what
            follows them); None trains every layer. A dict gives each tower its own (every tower
            named), e.g. {"image": 1, "text": 0}: a tower with 0 is frozen (its features computed
            once), and of a tower whose top alone trains the frozen stages run once per catalogue
            (`ModalityEncoder.trunk_depth`).
        lr: learning rate of the encoder weights (None: the optimiser's).
        gradient_checkpointing: recompute encoder activations in the backward pass (less memory).
        negatives: "in_batch": while encoder weights train, the loss is replaced by what its
            `while_encoders_train()` returns (see `vrs.losses.Loss`: full softmax hands over to
            in-batch negatives, since re-encoding the whole catalogue every step is unaffordable for
            real encoders); "catalogue" keeps the configured loss.
    """

    freeze: bool = False
    trainable_layers: int | Mapping[str, int | None] | None = None
    lr: float | None = None
    gradient_checkpointing: bool = False
    negatives: str = "in_batch"

    def __post_init__(self) -> None:
        problems = [
            f"finetune.{name}={getattr(self, name)!r}: expected {expected}"
            for name, (ok, expected) in RULES.items()
            if not ok(getattr(self, name))
        ]
        if problems:
            raise ValueError("invalid fine-tuning settings:\n  " + "\n  ".join(problems))

    @classmethod
    def from_dict(cls, node: Mapping[str, Any] | None) -> FineTuning:
        """Settings from a config node or a checkpoint: known keys and plain values only (None: defaults)."""
        if node is None:
            return cls()
        if not isinstance(node, Mapping):
            raise ValueError(f"finetune must be a dict of settings, got {type(node).__name__}")
        unknown = sorted(map(str, set(node) - set(RULES)))
        if unknown:
            raise ValueError(f"finetune: unknown settings {unknown}; expected some of {list(RULES)}")
        values = dict(node)
        if isinstance(values.get("trainable_layers"), Mapping):  # plain values (a DictConfig too)
            values["trainable_layers"] = dict(values["trainable_layers"])
        return cls(**values)

    def apply(self, towers: Towers) -> None:
        """Marks which weights of trainable towers train, and switches on gradient checkpointing.

        Frozen towers are left as they are: `ItemTower(freeze_encoders=True)` freezes them.
        """
        from vrs.encoders.base import set_trainable_layers

        layers = self.trainable_layers
        if isinstance(layers, Mapping) and not self.freeze and set(layers) != set(towers):
            raise ValueError(
                f"finetune.trainable_layers names the towers {sorted(layers)}; this encoder's towers are "
                f"{list(towers)}: give each one (0 freezes a tower, null trains all its layers)"
            )
        for m, enc in towers.items():
            if self.freeze:
                continue
            k = layers.get(m) if isinstance(layers, Mapping) else layers
            if k is not None:
                set_trainable_layers(enc, k)
            if self.gradient_checkpointing:
                enc.set_grad_checkpointing(True)


# RecModule arguments of checkpoints written before the `finetune` node, and their new names.
LEGACY_ARGUMENTS = {
    "freeze_encoders": "freeze",
    "trainable_layers": "trainable_layers",
    "encoder_lr": "lr",
    "gradient_checkpointing": "gradient_checkpointing",
    "finetune_negatives": "negatives",
}
# The same settings as the old `encoder` node repeated them (RecModule read the arguments above).
LEGACY_ENCODER_KEYS = ("freeze", "trainable_layers", "lr", "gradient_checkpointing", "finetune_negatives")


def upgrade_legacy(
    finetune: dict[str, Any] | None, encoder: dict[str, Any] | None, legacy: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The `finetune` and `encoder` arguments for RecModule keyword arguments in the old layout.

    Args:
        finetune: the `finetune` argument as given (None in an old checkpoint).
        encoder: the `encoder` node as given.
        legacy: every other keyword argument RecModule received.

    Raises:
        TypeError: an argument that is neither a RecModule argument nor an old one, or old arguments
            given together with `finetune`.
    """
    if not legacy:
        return finetune, encoder
    unknown = sorted(set(legacy) - set(LEGACY_ARGUMENTS))
    if unknown:
        raise TypeError(f"RecModule got unexpected keyword arguments {unknown}")
    if finetune is not None:
        raise TypeError(f"give `finetune` or the old arguments {sorted(legacy)}, not both")
    finetune = {LEGACY_ARGUMENTS[k]: v for k, v in legacy.items()}
    if encoder:
        encoder = {k: v for k, v in encoder.items() if k not in LEGACY_ENCODER_KEYS}
    return finetune, encoder
