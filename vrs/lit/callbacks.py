"""Callbacks vrs adds to Lightning's."""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L


class CapWarning(L.Callback):
    """Warns when training ends at `trainer.max_epochs` while the monitored metric was still
    improving (its best epoch among the last `within`), so an under-trained run does not pass as a
    converged one.

    Args:
        monitor: the validation metric early stopping watches.
        mode: "max" or "min".
        within: the best epoch counts as recent when it is one of the last `within` epochs.
    """

    def __init__(self, monitor: str = "val/ndcg_10", mode: str = "max", within: int = 2) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode, self.within = monitor, mode, int(within)
        self.best: tuple[float, int] | None = None  # (value, epoch)
        self.last: int | None = None  # the last validated epoch
        self.message: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if math.isnan(value):
            return
        self.last = trainer.current_epoch
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, trainer.current_epoch)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # At fit end trainer.current_epoch already counts the last epoch as completed: the epochs
        # validated are what tell where training stopped.
        cap = trainer.max_epochs
        if self.best is None or self.last is None or cap is None or cap < 0 or self.last < cap - 1:
            return
        if self.last - self.best[1] >= self.within:
            return
        self.message = (
            f"training ended at the cap trainer.max_epochs={cap} with {self.monitor} still improving "
            f"(best {self.best[0]:.4f} at epoch {self.best[1]}, the last epoch was {self.last}): "
            "the run is probably under-trained; raise trainer.max_epochs (continue it with resume=last)"
        )
        if trainer.is_global_zero:
            warnings.warn(self.message, stacklevel=1)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "last": self.last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.last = state_dict.get("last")
