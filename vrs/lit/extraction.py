"""Feature extraction through Lightning's predict loop, so `trainer=ddp` spreads it over GPUs/nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vrs.encoders.cache import FeatureCache, InputSource, Progress, key_of, n_items


@dataclass
class ExtractionJob:
    """One frozen encoder over one modality's inputs: (N, ...) in memory, or a source (image files)
    that loads only the items of the shards being encoded."""

    modality: str
    encoder: nn.Module
    inputs: Tensor | InputSource
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # FeatureCache.describe(...), computed once
    progress: Progress | None = None  # this rank's bars, created with its first shard
    items: int = 0  # items encoded by this rank
    seconds: float = 0.0  # wall time from this rank's first shard of the job to its last

    @property
    def n_items(self) -> int:
        return n_items(self.inputs)


class FeatureExtractionModule(L.LightningModule):
    """Encodes the missing shards of every job into `cache`; each rank takes every world_size-th
    shard and writes its own shard files, then rank 0 merges them into complete cache entries.

    Args:
        jobs: what to encode; keys are filled in here.
        cache: the on-disk feature cache.
    """

    def __init__(self, jobs: list[ExtractionJob], cache: FeatureCache) -> None:
        super().__init__()
        self.jobs = jobs
        self.cache = cache
        self.encoders = nn.ModuleList([job.encoder for job in jobs])  # moved to the device by Lightning
        for job in jobs:
            job.encoder.requires_grad_(False).eval()
            job.meta = job.meta or cache.describe(job.modality, job.encoder, job.inputs)
            job.key = key_of(job.meta)
        # Fixed before any rank writes, so every rank agrees on the work list.
        self.todo = [
            (j, shard)
            for j, job in enumerate(jobs)
            if cache.load(job.key) is None
            for shard in cache.missing_shards(job.key, job.n_items)
        ]
        self.stopped = False  # SIGTERM arrived: shards were left for a rerun

    @property
    def encoded(self) -> int:
        """Items encoded by this process."""
        return sum(job.items for job in self.jobs)

    def predict_dataloader(self) -> DataLoader:
        # One (job, shard) pair per step. Lightning's distributed sampler would pad the list by
        # repeating pairs, so ranks stride through it themselves.
        return DataLoader(self._mine(), batch_size=None)

    def _mine(self) -> list[tuple[int, int]]:
        return self.todo[self.global_rank :: self.trainer.world_size]

    @torch.no_grad()
    def predict_step(self, batch: tuple[int, int], batch_idx: int) -> int:
        # Lightning's SIGTERM handler only sets this flag, and its predict loop never reads it: the
        # shard being encoded when it arrived is finished and written, later ones are left for a rerun.
        if self.trainer.received_sigterm:
            self.stopped = True
            self._close()
            return 0
        j, shard = int(batch[0]), int(batch[1])
        job = self.jobs[j]
        mine = [s for i, s in self._mine() if i == j]
        if job.progress is None:
            # One set of bars per job over this rank's shards of it; rank 0 shows them.
            total = sum(len(self.cache.shard_rows(s, job.n_items)) for s in mine)
            source = not isinstance(job.inputs, Tensor)
            show = self.cache.progress and self.global_rank == 0
            job.progress = Progress(job.modality, total, decode=source, enabled=show)
        n = self.cache.encode_shards(job.key, job.encoder, job.inputs, shards=[shard], progress=job.progress)
        job.items += n
        job.seconds = job.progress.seconds
        if shard == mine[-1]:
            job.progress.close()
        return n

    def _close(self) -> None:
        for job in self.jobs:
            if job.progress is not None:
                job.progress.close()

    def merge(self) -> None:
        """Rank 0 joins the shards of every job into complete entries (call on every rank after
        predict; without a trainer, e.g. when nothing was left to encode, this process merges)."""
        strategy = self._trainer.strategy if self._trainer is not None else None
        if strategy is not None:
            strategy.barrier("vrs-extract-shards")
        if strategy is None or self.global_rank == 0:
            for job in self.jobs:
                if self.cache.load(job.key) is None:
                    self.cache.merge(job.key, job.meta)
        if strategy is not None:
            strategy.barrier("vrs-extract-merged")
