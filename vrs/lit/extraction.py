"""Feature extraction through Lightning's predict loop, so `trainer=ddp` spreads it over GPUs/nodes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vrs.encoders.cache import FeatureCache, key_of


@dataclass
class ExtractionJob:
    """One frozen encoder over one modality's inputs (N, ...)."""

    modality: str
    encoder: nn.Module
    inputs: Tensor
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # FeatureCache.describe(...), computed once


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
            for shard in cache.missing_shards(job.key, job.inputs.shape[0])
        ]
        self.encoded = 0
        self.seconds = 0.0
        self.stopped = False  # SIGTERM arrived: shards were left for a rerun

    def predict_dataloader(self) -> DataLoader:
        # One (job, shard) pair per step. Lightning's distributed sampler would pad the list by
        # repeating pairs, so ranks stride through it themselves.
        return DataLoader(self.todo[self.global_rank :: self.trainer.world_size], batch_size=None)

    @torch.no_grad()
    def predict_step(self, batch: tuple[int, int], batch_idx: int) -> int:
        # Lightning's SIGTERM handler only sets this flag, and its predict loop never reads it: the
        # shard being encoded when it arrived is finished and written, later ones are left for a rerun.
        if self.trainer.received_sigterm:
            self.stopped = True
            return 0
        j, shard = batch
        job = self.jobs[j]
        start = time.perf_counter()
        n = self.cache.encode_shards(job.key, job.encoder, job.inputs, shards=[int(shard)])
        self.seconds += time.perf_counter() - start
        self.encoded += n
        return n

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
