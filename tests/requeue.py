"""A callback that makes a cluster job look preempted once (tests/integration/test_cluster.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L


class PreemptOnce(L.Callback):
    """At the start of epoch `epoch`, the first time only (`marker` records it), sends this process the
    signal SLURM sends at a preemption (submitit's USR2): submitit then requeues the job, as it would
    on a cluster, and the job starts again from its first line.

    Args:
        marker: a file that exists once the signal was sent.
        epoch: the epoch whose start is interrupted (its predecessor's checkpoint is on disk by then).
    """

    def __init__(self, marker: str, epoch: int = 1) -> None:
        self.marker, self.epoch = Path(marker), epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGUSR2)
