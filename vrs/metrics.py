"""Full-catalogue ranking metrics computed from target ranks (never from stored score matrices).

Each evaluated query has exactly one held-out target, so HitRate@k equals Recall@k. All metric states
are integer counts (a histogram of ranks below max(ks), the query count, the seen-target count and a
per-item top-K appearance count), so results are exact and independent of how queries are split into
batches or across DDP ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchmetrics
from torch import Tensor


class RankingMetrics(torchmetrics.Metric):
    """Recall@k (= HitRate@k), NDCG@k, MRR@k (= MAP@k), precision@k, top-K catalogue coverage and the
    seen-target share (list metrics beyond coverage: `vrs.list_metrics.ListMetrics`).

    Args:
        n_items: catalogue size N.
        ks: cut-offs k.
        coverage_k: length of the top lists counted by ``coverage_{coverage_k}``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, n_items: int, ks: Sequence[int] = (10, 20), coverage_k: int = 10) -> None:
        super().__init__()
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks}")
        self.n_items = int(n_items)
        self.ks = tuple(int(k) for k in ks)
        self.coverage_k = int(coverage_k)
        max_k = max(self.ks)
        # hist[r] = number of queries whose target has rank r, for r < max(ks); larger ranks are misses.
        self.add_state("hist", torch.zeros(max_k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_seen", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("coverage", torch.zeros(self.n_items, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranks: Tensor, target_seen: Tensor, topk_items: Tensor | None = None) -> None:
        """Accumulate a batch.

        Args:
            ranks: (B,) long target ranks from `vrs.retrieval.rank_and_topk`.
            target_seen: (B,) bool, target was in the user's history (counted as a miss).
            topk_items: (B, K >= coverage_k) top-K item lists (-1 = empty slot), or None.
        """
        ranks = ranks.reshape(-1).to(self.hist.device, torch.long)
        seen = target_seen.reshape(-1).to(self.hist.device, torch.bool)
        # A seen target's rank is N: a miss, even in a catalogue no larger than max(ks).
        hits = ranks[(ranks < self.hist.numel()) & ~seen]
        self.hist += torch.bincount(hits, minlength=self.hist.numel())
        self.n += ranks.numel()
        self.n_seen += seen.sum()
        if topk_items is not None:
            if topk_items.ndim != 2 or topk_items.shape[1] < self.coverage_k:
                raise ValueError(
                    f"topk_items must be (B, K >= {self.coverage_k}), got {tuple(topk_items.shape)}"
                )
            top = topk_items[:, : self.coverage_k].reshape(-1).to(self.coverage.device, torch.long)
            self.coverage += torch.bincount(top[top >= 0], minlength=self.n_items)

    def compute(self) -> dict[str, float]:
        """Metrics as Python floats: ``recall_k``, ``ndcg_k``, ``mrr_k``, ``precision_k``,
        ``hit_rate_k`` and ``map_k`` for each k,
        ``coverage_{coverage_k}`` (distinct items in any top list / N; 0 if no lists were given),
        ``n_users`` and ``seen_target_share``. All are 0 before any update."""
        n = max(int(self.n), 1)
        hist = self.hist.double()
        pos = torch.arange(hist.numel(), dtype=torch.float64, device=hist.device)
        out: dict[str, float] = {}
        for k in self.ks:
            out[f"recall_{k}"] = float(hist[:k].sum()) / n
            out[f"ndcg_{k}"] = float((hist[:k] / torch.log2(pos[:k] + 2)).sum()) / n
            out[f"mrr_{k}"] = float((hist[:k] / (pos[:k] + 1)).sum()) / n
            # One held-out target per query: precision@k = hits / k, HitRate@k = Recall@k and
            # MAP@k = MRR@k (the average precision of a single relevant item is 1 / its rank).
            out[f"precision_{k}"] = out[f"recall_{k}"] / k
            out[f"hit_rate_{k}"] = out[f"recall_{k}"]
            out[f"map_{k}"] = out[f"mrr_{k}"]
        out[f"coverage_{self.coverage_k}"] = float((self.coverage > 0).sum()) / max(self.n_items, 1)
        out["n_users"] = float(self.n)
        out["seen_target_share"] = float(self.n_seen) / n
        return out
