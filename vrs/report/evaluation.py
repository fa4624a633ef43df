"""What a report computes from a trained model: target ranks, metrics at many K, user cards.

Everything is scored the way `vrs-eval` scores it (the history before each held-out target, the
last `max_len` events of it, every earlier item excluded), so the numbers at K = 10, 20 equal the
run's metrics.json when the same checkpoint and data are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vrs.data.batch import RecBatch
from vrs.data.sequences import EvalDataset, SequenceData, collate_eval
from vrs.encoders.base import device_of
from vrs.metrics import RankingMetrics
from vrs.models.recommender import Recommender
from vrs.retrieval.scoring import score_batch
from vrs.serving.base import inference
from vrs.serving.recommend import explain


@dataclass
class UserCard:
    """One test user as the model saw them at test time.

    Attributes:
        user_id: the dataset's user id.
        history: item indices the model read (the last `max_len` before the target), oldest first.
        events: the event type of each history item.
        target: the held-out test item.
        target_rank: its rank among the candidates (0 = top; N when it was already seen).
        items: the top-K recommended item indices, best first.
        scores: their scores (user · item).
        because: per recommended item, the history items closest to it (most similar first).
        because_weights: their cosine similarity to the recommended item.
    """

    user_id: str
    history: list[int]
    events: list[str]
    target: int
    target_rank: int
    items: list[int]
    scores: list[float]
    because: list[list[int]]
    because_weights: list[list[float]]

    @property
    def hit(self) -> bool:
        return self.target in self.items


def eval_batches(
    data: SequenceData, targets: np.ndarray, max_len: int, batch_size: int
) -> Iterator[RecBatch]:
    """`collate_eval` batches over (user index, seq_pos) targets, in order."""
    dataset = EvalDataset(data, targets, max_len)
    for start in range(0, len(dataset), batch_size):
        yield collate_eval([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


def rank_targets(
    net: Recommender,
    data: SequenceData,
    targets: np.ndarray,
    max_len: int,
    exclude_seen: bool = True,
    batch_size: int = 256,
    item_vecs: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Full-catalogue rank of every held-out target.

    Args:
        net: the recommender, with its catalogue content attached.
        data: the dataset's sequences.
        targets: (M, 2) (user index, seq_pos) of the held-out events, e.g. `data.test_targets`.
        max_len: the longest history T the model was trained with.
        exclude_seen: exclude the items each user had before the target (as evaluation does).
        batch_size: targets scored at once.
        item_vecs: (N, D) the catalogue's item vectors when already computed (`item_vectors(net)`).

    Returns:
        ranks (M,) long (0 = top) and target_seen (M,) bool, as `vrs.retrieval.rank_and_topk`.
    """
    device = device_of(net)
    ranks, seen_flags = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.bool)]
    with inference(net):
        items = (net.encode_items() if item_vecs is None else item_vecs).float()  # (N, D)
        for batch in eval_batches(data, targets, max_len, batch_size):
            _, (r, s, _, _) = score_batch(net, items, batch.to(device), 0, exclude_seen)  # ranks only
            ranks.append(r.cpu())
            seen_flags.append(s.cpu())
    return torch.cat(ranks), torch.cat(seen_flags)


def metrics_at_k(ranks: Tensor, target_seen: Tensor, n_items: int, ks: Sequence[int]) -> dict[str, float]:
    """`recall_k`, `ndcg_k`, `mrr_k` for every k in `ks` (and `n_users`), from target ranks."""
    metric = RankingMetrics(n_items, ks=sorted(set(ks)))
    metric.update(ranks, target_seen)
    return {name: v for name, v in metric.compute().items() if not name.startswith("coverage")}


def pick_users(ranks: Tensor, k: int, n: int, seed: int = 0) -> list[int]:
    """`n` target rows to show: up to half of them hits at `k`, the rest misses, seeded.

    Showing both kinds tells more than the first `n` users would: what the model gets right and
    what it recommends instead when it misses.
    """
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ranks), generator=gen)  # (M,)
    hit = ranks[order] < k
    hits, misses = order[hit].tolist(), order[~hit].tolist()
    n_hits = min(len(hits), (n + 1) // 2)
    chosen = hits[:n_hits] + misses[: n - n_hits]
    chosen += hits[n_hits : n_hits + n - len(chosen)]  # too few misses: more hits
    return sorted(chosen)


def user_cards(
    net: Recommender,
    data: SequenceData,
    targets: np.ndarray,
    max_len: int,
    k: int = 10,
    n_explain: int = 3,
    exclude_seen: bool = True,
    item_vecs: Tensor | None = None,
) -> list[UserCard]:
    """Top-K lists with explanations for held-out targets, as the model saw them at test time.

    `vrs.serving.recommend` serves a dataset user on everything the dataset holds for them (the test
    item included, then excluded as seen); a card needs the test-time view instead, so that the
    held-out item can show up as a hit. Ranks and top-K lists come from one pass of the evaluation
    kernel; explanations are the serving library's.

    Args:
        net: the recommender, with its catalogue content attached.
        data: the dataset's sequences.
        targets: (M, 2) (user index, seq_pos) of the targets to show.
        max_len: the longest history T the model was trained with.
        k: recommendations per user.
        n_explain: history items listed per recommendation.
        exclude_seen: never recommend an item the user had before the target.
        item_vecs: (N, D) the catalogue's item vectors when already computed (`item_vectors(net)`).
    """
    if len(targets) == 0:
        return []
    device = device_of(net)
    batch = next(eval_batches(data, targets, max_len, len(targets))).to(device)
    with inference(net):
        items = (net.encode_items() if item_vecs is None else item_vecs).float()  # (N, D)
        users, (ranks, _, _, top) = score_batch(net, items, batch, k, exclude_seen)  # (M,), (M, K): one pass
        scores = torch.einsum("mkd,md->mk", items[top.clamp(min=0)], users)  # (M, K)
        because, weights = explain(items, batch.items, batch.mask, top.to(device), n_explain)  # (M, K, n')
    event_names = {i: name for name, i in data.event_index.items()}
    cards = []
    for m in range(len(targets)):
        real = batch.mask[m].cpu()  # (T,)
        valid = top[m] >= 0  # (K,) False in the tail when fewer than K items were left
        cards.append(
            UserCard(
                user_id=str(data.user_ids[int(batch.users[m])]),
                history=batch.items[m].cpu()[real].tolist(),
                events=[event_names.get(e, "") for e in batch.events[m].cpu()[real].tolist()],
                target=int(batch.targets[m]),
                target_rank=int(ranks[m]),
                items=top[m][valid].tolist(),
                scores=scores[m][valid].tolist(),
                because=[[i for i in row if i >= 0] for row in because[m][valid].tolist()],
                because_weights=[
                    [w for w, i in zip(ws, ids, strict=True) if i >= 0]
                    for ws, ids in zip(weights[m][valid].tolist(), because[m][valid].tolist(), strict=True)
                ],
            )
        )
    return cards
