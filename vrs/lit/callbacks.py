"""Callbacks vrs adds to Lightning's."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections import deque
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


class PatienceWarning(L.Callback):
    """Warns when early stopping ended a run whose patience spanned only a few training batches.

    Patience counts epochs; on a small dataset an epoch can be a handful of batches (MovieLens-100K's
    943 users, one window each, are 4 batches of 256), so 10 epochs without a gain can be 40
    optimizer steps: a model still on the plateau before it learns (a GRU or transformer at
    popularity level) is stopped there and its best epoch reported as if converged.

    Args:
        min_batches: warn when `patience x training batches per epoch` is below this.
    """

    def __init__(self, min_batches: int = 200) -> None:
        if min_batches < 1:
            raise ValueError(f"min_batches must be >= 1, got {min_batches}")
        self.min_batches = int(min_batches)
        self.message: str | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.callbacks import EarlyStopping

        stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
        batches = trainer.num_training_batches
        if stopper is None or stopper.stopped_epoch <= 0 or not math.isfinite(batches) or batches <= 0:
            return  # no early stop happened, or batches per epoch unknown (an iterable loader)
        every = trainer.check_val_every_n_epoch or 1
        window = int(stopper.patience * every * batches)
        if window >= self.min_batches:
            return
        self.message = (
            f"early stopping ended training at epoch {stopper.stopped_epoch} after a patience of "
            f"{stopper.patience} validations = {window} training batches ({int(batches)} per epoch), "
            f"fewer than {self.min_batches}: a model still on its early plateau is stopped there. "
            "Raise callbacks.early_stopping.patience or give epochs more batches "
            "(data.train_windows=all, a smaller data.batch_size)"
        )
        if trainer.is_global_zero:
            warnings.warn(self.message, stacklevel=1)


class EpochTimer(L.Callback):
    """Logs each epoch's wall time so speed and time-to-quality read off the metrics log:
    `time/train_s` (the epoch's training batches), `time/epoch_s` (training and validation) and
    `time/elapsed_s` (the fit so far, summed over resumed runs; its value at the best validation
    epoch is the wall time to that epoch), `time/first_step_s` (from the epoch's start to the end of
    its first batch: loader start-up and one-off allocations such as optimiser state included) and,
    with two batches or more, `time/step_s` (the mean of the later batches, loading included: the
    steady rate to extrapolate from)."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._start: float | None = None
        self._train_s: float | None = None
        self._first_end: float | None = None
        self._batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._train_s = time.perf_counter(), None
        self._first_end, self._batches = None, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._batches += 1
        if self._batches == 1:
            self._first_end = time.perf_counter()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None and self._train_s is None and not trainer.sanity_checking:
            self._train_s = time.perf_counter() - self._start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None:
            return
        epoch_s = time.perf_counter() - self._start
        self.elapsed += epoch_s
        train_s = epoch_s if self._train_s is None else self._train_s
        times = [("train_s", train_s), ("epoch_s", epoch_s), ("elapsed_s", self.elapsed)]
        if self._first_end is not None:
            first = self._first_end - self._start
            times.append(("first_step_s", first))
            if self._batches > 1:
                times.append(("step_s", (train_s - first) / (self._batches - 1)))
        for name, value in times:
            # Under DDP the slowest rank's time is the epoch's.
            pl_module.log(
                f"time/{name}", value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max"
            )
        self._start = None

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.elapsed = float(state_dict.get("elapsed", 0.0))


class LogProgress(L.Callback):
    """A log line every `every_s` seconds of a long training, validation or test loop: batches done,
    batches/s and the time left. vrs adds it when the output is not a terminal (a log file, a cluster
    job), where the progress bar shows nothing until the loop ends; rank zero only.

    Args:
        every_s: seconds between lines (a loop shorter than that logs nothing).
    """

    def __init__(self, every_s: float = 60.0) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s!r}")
        self.every_s = float(every_s)
        self.lines: deque[str] = deque(maxlen=100)  # the latest lines logged (tests read them)
        self._start = self._last = 0.0

    def _begin(self) -> None:
        self._start = self._last = time.perf_counter()

    def _tick(self, trainer: L.Trainer, loop: str, done: int, total: float | int) -> None:
        now = time.perf_counter()
        if now - self._last < self.every_s or not trainer.is_global_zero:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        where = f"{loop} epoch {trainer.current_epoch}" if loop == "train" else loop
        line = f"{where}: batch {done:,}"
        if isinstance(total, int) or math.isfinite(total):
            total = int(total)
            left = max(total - done, 0) / rate if rate > 0 else float("inf")
            line += f"/{total:,} ({100 * done / max(total, 1):.0f}%), {rate:.2f} batches/s, about {_duration(left)} left"
        else:
            line += f", {rate:.2f} batches/s"
        self.lines.append(line)
        _log.info(line)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._begin()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:  # fmt: skip
        self._tick(trainer, "train", batch_idx + 1, trainer.num_training_batches)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._begin()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:  # fmt: skip
        if not trainer.sanity_checking:
            self._tick(trainer, "validation", batch_idx + 1, _count(trainer.num_val_batches, dataloader_idx))

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._begin()

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:  # fmt: skip
        self._tick(trainer, "test", batch_idx + 1, _count(trainer.num_test_batches, dataloader_idx))


_log = logging.getLogger("vrs.progress")


def _count(batches: Any, dataloader_idx: int) -> float:
    """The loop's batch count from Lightning's per-dataloader list (inf when unknown)."""
    try:
        return batches[dataloader_idx]
    except (IndexError, TypeError):
        return float("inf")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "? s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
