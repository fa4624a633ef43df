"""RankingModule: the full-ranking evaluation loop shared by trained models and baselines."""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import lightning as L
from torch import Tensor, nn

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.list_metrics import ItemStats, ListMetrics
from vrs.lit.samples import Samples, capture, log_to_wandb
from vrs.metrics import RankingMetrics
from vrs.retrieval.scoring import UserScorer, score_batch

STAGES = ("val", "test", "test_cold")
DEFAULT_EVALUATION: dict[str, Any] = {"ks": [10, 20], "exclude_seen": True, "chunk_size": 65536}


class Scorer(UserScorer, Protocol):
    def encode_items(self, idx: Tensor | None = None) -> Tensor: ...


class RankingModule(L.LightningModule):
    """Scores every held-out target against the whole catalogue, one metric state per stage.

    Subclasses provide `scorer()`. Test dataloaders come in the order of `test_stages`
    ("test", then "test_cold" when the split has cold targets).
    """

    def __init__(self, n_items: int, evaluation: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = {**DEFAULT_EVALUATION, **(evaluation or {})}
        self.ks = [int(k) for k in cfg["ks"]]
        self.exclude_seen = bool(cfg["exclude_seen"])
        self.chunk_size = int(cfg["chunk_size"])
        self.coverage_k = 10  # lists shown in W&B samples
        self.list_k = max([*self.ks, self.coverage_k])  # length of the top-K lists scored
        self.metrics = nn.ModuleDict({s: RankingMetrics(n_items, ks=self.ks) for s in STAGES})
        # Coverage, exposure Gini, novelty, popularity, diversity of the lists (set_item_stats).
        self.list_metrics = nn.ModuleDict({s: ListMetrics(n_items, ks=self.ks) for s in STAGES})
        self.test_stages: list[str] = ["test", "test_cold"]
        # Latest value of every "{stage}/{metric}" at full float64 precision (logged copies are
        # float32 tensors).
        self.results: dict[str, float] = {}
        self._item_vectors: Tensor | None = None
        # Catalogue content (set by attach_data): pictures for the W&B sample tables.
        self.content: ItemContent | None = None
        self._samples: dict[str, Samples] = {}
        # Per-target results of the test stages (user, target, rank, seen; every rank's rows), for
        # paired significance tests between models: see vrs.cli.common.write_user_results.
        self.user_results: dict[str, dict[str, Tensor]] = {}
        self._user_rows: dict[str, list[tuple[Tensor, ...]]] = {}

    def scorer(self) -> Scorer:
        raise NotImplementedError

    def attach_data(
        self, content: ItemContent, train_counts: Tensor | None = None, feature_cache: Any = None
    ) -> None:
        """Hands the catalogue content to the module (subclasses also build what they score with)."""
        self.content = content

    def fit_catalogue(self, datamodule: Any, feature_cache: Any = None) -> None:
        """Fits what a model builds from the training split before evaluation (nothing by default;
        the commands call it after `attach_data`)."""

    def set_item_stats(self, stats: ItemStats | None) -> None:
        """Per-item facts (training counts, categories, image features) the list metrics read."""
        for metric in self.list_metrics.values():
            metric.set_stats(stats)

    # Item vectors do not depend on the user: encode the catalogue once per evaluation epoch.
    def on_validation_epoch_start(self) -> None:
        self._item_vectors = self.scorer().encode_items().float()

    def on_test_epoch_start(self) -> None:
        self._item_vectors = self.scorer().encode_items().float()

    def validation_step(self, batch: RecBatch, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: RecBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(self.test_stages[dataloader_idx], batch)

    def _evaluate(self, stage: str, batch: RecBatch) -> None:
        scorer, items = self.scorer(), self._item_vectors
        _, (ranks, target_seen, _, topk) = score_batch(
            scorer, items, batch, self.list_k, self.exclude_seen, chunk_size=self.chunk_size
        )
        self.metrics[stage].update(ranks, target_seen)
        self.list_metrics[stage].update(topk)
        if stage != "val" and batch.users is not None and batch.index is not None:
            row = (batch.index, batch.users, batch.targets, ranks, target_seen)
            self._user_rows.setdefault(stage, []).append(tuple(t.detach().cpu() for t in row))
        if stage not in self._samples and self.global_rank == 0 and self._wants_samples():
            self._samples[stage] = capture(batch.items, batch.mask, topk, batch.targets, ranks)

    def _wants_samples(self) -> bool:
        from lightning.pytorch.loggers import WandbLogger

        trainer = self._trainer
        return trainer is not None and any(isinstance(lg, WandbLogger) for lg in trainer.loggers)

    def on_validation_epoch_end(self) -> None:
        self._log_stages(["val"])

    def on_test_epoch_end(self) -> None:
        self._log_stages(self.test_stages)

    def _log_stages(self, stages: list[str]) -> None:
        values: dict[str, float] = {}
        for stage in stages:
            with warnings.catch_warnings():
                # A rank may hold no sample of a small stage; the synced sums are still right.
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                result = self.metrics[stage].compute()
                # Coverage comes from the list metrics (at every k), not RankingMetrics' unfed state.
                result = {n: v for n, v in result.items() if not n.startswith("coverage")}
                result.update(self.list_metrics[stage].compute())
            self.metrics[stage].reset()
            self.list_metrics[stage].reset()
            if result["n_users"] > 0:
                values.update({f"{stage}/{name}": float(v) for name, v in result.items()})
        self._item_vectors = None
        for stage in stages:
            if stage != "val":
                self.user_results[stage] = _gathered(self._user_rows.pop(stage, []))
        for stage in stages:
            samples = self._samples.pop(stage, None)
            if samples is not None and self.content is not None:
                log_to_wandb(self.trainer.loggers, stage, samples, self.content, self.coverage_k)
        self.results.update(values)
        # Values are already global (metric states are summed across ranks), the same on every rank:
        # synced with max, which returns them unchanged (a mean over ranks could change the last bit).
        self.log_dict(values, add_dataloader_idx=False, batch_size=1, sync_dist=True, reduce_fx="max")


USER_COLUMNS = ("index", "user", "target", "rank", "seen")


def _gathered(rows: list[tuple[Tensor, ...]]) -> dict[str, Tensor]:
    """One stage's per-target rows from every DDP rank, once each (by sample index), in index order."""
    import torch
    import torch.distributed as dist

    cols = [torch.cat(c) for c in zip(*rows, strict=True)] if rows else [torch.empty(0, dtype=torch.long)] * 5
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, cols)
        cols = [torch.cat([p[i] for p in parts]) for i in range(len(USER_COLUMNS))]
    index, first = torch.unique(cols[0], return_inverse=True)
    keep = torch.full((index.numel(),), -1, dtype=torch.long)
    keep.scatter_(0, first, torch.arange(first.numel()))  # one row per sample index
    return {name: col[keep] for name, col in zip(USER_COLUMNS, cols, strict=True)}
