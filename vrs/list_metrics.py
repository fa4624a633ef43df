"""Beyond-accuracy metrics of the top-K lists: coverage, exposure Gini, novelty, popularity and
intra-list diversity (by category and by image features).

Every state except the visual distance sum is an integer count (per-item exposure, list and pair
counts), so those metrics are exact and independent of how lists are split into batches or across
DDP ranks; the visual distance sum is float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor


@dataclass(frozen=True)
class ItemStats:
    """Per-item facts the list metrics read.

    Args:
        train_counts: (N,) training events of each item (popularity, novelty).
        categories: (N,) long category code of each item (-1: none), or None.
        features: (N, F) image features (L2-normalised here), or None.
        has_features: (N,) bool, items whose features are real (others count in no visual pair).
    """

    train_counts: Tensor
    categories: Tensor | None = None
    features: Tensor | None = None
    has_features: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.train_counts.numel()
        for name in ("categories", "features", "has_features"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != n:
                raise ValueError(f"ItemStats.{name} has {value.shape[0]} rows, expected one per item ({n})")
        if self.features is not None:
            object.__setattr__(self, "features", F.normalize(self.features.float(), dim=-1))
            if self.has_features is None:
                object.__setattr__(self, "has_features", torch.ones(n, dtype=torch.bool))


def category_codes(categories: pd.Series) -> Tensor:
    """(N,) long code per distinct category value; missing or empty values get -1."""
    values = categories.astype("string").str.strip()
    missing = values.isna() | (values == "")
    codes, _ = pd.factorize(values.where(~missing), use_na_sentinel=True)
    return torch.as_tensor(np.asarray(codes, dtype=np.int64))


class ListMetrics(torchmetrics.Metric):
    """Metrics of the top-K lists at each cut-off k in `ks`.

    - ``coverage_k``: distinct items in any list / N;
    - ``gini_k``: Gini coefficient of the items' exposure (appearances in lists; 0 = even, 1 = one item);
    - ``novelty_k``: mean self-information -log2 p(i) of listed items, p(i) = (training events of i
      + 1) / (training events + N) (add-one, so unseen items have a finite value);
    - ``arp_k``: average recommendation popularity, the mean training-event count of listed items;
    - ``ild_category_k``: share of pairs within a list whose categories differ (pairs of items with
      a category);
    - ``ild_visual_k``: mean cosine distance 1 - cos between the image features of a list's pairs.

    The last two need `ItemStats.categories` / `features`; popularity metrics need `train_counts`
    (none of them are reported without `stats`).

    Args:
        n_items: catalogue size N.
        ks: cut-offs; lists passed to `update` must hold at least max(ks) items.
        stats: per-item facts, or None (then coverage and Gini only).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, n_items: int, ks: Sequence[int] = (10, 20), stats: ItemStats | None = None) -> None:
        super().__init__()
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks}")
        self.n_items = int(n_items)
        self.ks = tuple(sorted({int(k) for k in ks}))
        self.stats = stats
        self.add_state("n_lists", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        for k in self.ks:
            self.add_state(f"exposure_{k}", torch.zeros(self.n_items, dtype=torch.long), dist_reduce_fx="sum")
            for name in ("cat_diff", "cat_pairs", "vis_pairs"):
                self.add_state(f"{name}_{k}", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
            self.add_state(f"vis_sum_{k}", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def set_stats(self, stats: ItemStats | None) -> None:
        if stats is not None and stats.train_counts.numel() != self.n_items:
            raise ValueError(f"ItemStats cover {stats.train_counts.numel()} items, expected {self.n_items}")
        self.stats = stats

    def update(self, topk_items: Tensor) -> None:
        """Accumulate (B, K >= max(ks)) top-K item lists (-1 = empty slot)."""
        if topk_items.ndim != 2 or topk_items.shape[1] < self.ks[-1]:
            raise ValueError(f"topk_items must be (B, K >= {self.ks[-1]}), got {tuple(topk_items.shape)}")
        top = topk_items.to(self.n_lists.device, torch.long)
        self.n_lists += top.shape[0]
        stats = self.stats
        for k in self.ks:
            lists = top[:, :k]  # (B, k)
            valid = lists >= 0
            getattr(self, f"exposure_{k}").add_(torch.bincount(lists[valid], minlength=self.n_items))
            if stats is not None and stats.categories is not None:
                cats = stats.categories.to(lists.device)[lists.clamp(min=0)]  # (B, k)
                has = valid & (cats >= 0)
                diff, pairs = _pair_counts(cats, has)
                getattr(self, f"cat_diff_{k}").add_(diff)
                getattr(self, f"cat_pairs_{k}").add_(pairs)
            if stats is not None and stats.features is not None:
                idx = lists.clamp(min=0)
                feats = stats.features.to(lists.device)[idx]  # (B, k, F)
                has = valid & stats.has_features.to(lists.device)[idx]
                dist = 1.0 - feats @ feats.transpose(1, 2)  # (B, k, k)
                both = _upper_pairs(has)  # (B, k, k)
                getattr(self, f"vis_sum_{k}").add_(dist[both].double().sum())
                getattr(self, f"vis_pairs_{k}").add_(both.sum())

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        stats = self.stats
        for k in self.ks:
            exposure = getattr(self, f"exposure_{k}")
            shown = int(exposure.sum())
            out[f"coverage_{k}"] = float((exposure > 0).sum()) / max(self.n_items, 1)
            out[f"gini_{k}"] = gini(exposure)
            if stats is not None:
                counts = stats.train_counts.to(exposure.device, torch.float64)
                p = (counts + 1.0) / (counts.sum() + self.n_items)
                weights = exposure.double()
                out[f"novelty_{k}"] = float((weights * -torch.log2(p)).sum()) / max(shown, 1)
                out[f"arp_{k}"] = float((weights * counts).sum()) / max(shown, 1)
            if stats is not None and stats.categories is not None:
                pairs = int(getattr(self, f"cat_pairs_{k}"))
                out[f"ild_category_{k}"] = int(getattr(self, f"cat_diff_{k}")) / pairs if pairs else math.nan
            if stats is not None and stats.features is not None:
                pairs = int(getattr(self, f"vis_pairs_{k}"))
                out[f"ild_visual_{k}"] = float(getattr(self, f"vis_sum_{k}")) / pairs if pairs else math.nan
        return out


def gini(exposure: Tensor) -> float:
    """Gini coefficient of non-negative counts over all N items (0 when nothing was shown)."""
    x = exposure.double().sort().values
    n, total = x.numel(), float(x.sum())
    if n == 0 or total == 0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    return float(((2 * i - n - 1) * x).sum()) / (n * total)


def _upper_pairs(has: Tensor) -> Tensor:
    """(B, k) bool -> (B, k, k) bool: pairs i < j of one list whose items both count."""
    k = has.shape[1]
    upper = torch.ones(k, k, dtype=torch.bool, device=has.device).triu(diagonal=1)
    return has[:, :, None] & has[:, None, :] & upper


def _pair_counts(cats: Tensor, has: Tensor) -> tuple[Tensor, Tensor]:
    """Pairs with different categories and all counted pairs, over the lists (long scalars)."""
    both = _upper_pairs(has)
    differ = cats[:, :, None] != cats[:, None, :]
    return (both & differ).sum(), both.sum()
