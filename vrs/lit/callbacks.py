"""Callbacks vrs adds to Lightning's."""

from __future__ import annotations

import math
import time
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
            f"training ended at the cap trainer.max_epochs={cap} with {self.monitor} still improving: "
            f"its best ({self.best[0]:.4f}, epoch {self.best[1]}) is among the last {self.within} "
            f"epochs (0-{self.last}), "
            "the run is probably under-trained; raise trainer.max_epochs (continue it with resume=last)"
        )
        if trainer.is_global_zero:
            warnings.warn(self.message, stacklevel=1)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "last": self.last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.last = state_dict.get("last")


class EpochTimer(L.Callback):
    """Logs each epoch's wall time so speed and time-to-quality read off the metrics log:
    `time/train_s` (the epoch's training batches), `time/epoch_s` (training and validation) and
    `time/elapsed_s` (the fit so far, summed over resumed runs; its value at the best validation
    epoch is the wall time to that epoch)."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._start: float | None = None
        self._train_s: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._train_s = time.perf_counter(), None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None and self._train_s is None and not trainer.sanity_checking:
            self._train_s = time.perf_counter() - self._start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None:
            return
        epoch_s = time.perf_counter() - self._start
        self.elapsed += epoch_s
        train_s = epoch_s if self._train_s is None else self._train_s
        for name, value in (("train_s", train_s), ("epoch_s", epoch_s), ("elapsed_s", self.elapsed)):
            # Under DDP the slowest rank's time is the epoch's.
            pl_module.log(
                f"time/{name}", value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max"
            )
        self._start = None

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.elapsed = float(state_dict.get("elapsed", 0.0))
