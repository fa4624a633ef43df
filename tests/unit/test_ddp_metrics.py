"""RankingMetrics and InBatchLoss under a real 2-process gloo group on CPU."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vrs.losses import InBatchLoss
from vrs.metrics import RankingMetrics
from vrs.retrieval import rank_and_topk

N_ITEMS, SHARDS = 40, (slice(0, 7), slice(7, 13))  # uneven shards: 7 and 6 queries


def problem():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(-2, 3, (13, 4), generator=g).float()
    items = torch.randint(-2, 3, (N_ITEMS, 4), generator=g).float()
    targets = torch.randint(0, N_ITEMS, (13,), generator=g)
    seen = torch.randint(-1, N_ITEMS, (13, 5), generator=g)
    seen[3, 0] = targets[3]
    return users, items, targets, seen


def worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        users, items, targets, seen = problem()
        sl = SHARDS[rank]
        metric = RankingMetrics(n_items=N_ITEMS, ks=(10, 20))
        ranks, target_seen, _, top = rank_and_topk(users[sl], items, targets[sl], seen[sl], k=10)
        metric.update(ranks, target_seen, top)
        result = {"metrics": metric.compute()}

        weight = torch.nn.Parameter(items.clone())
        states = users[sl].clone().requires_grad_(True)
        loss = InBatchLoss(logq_correction=False)(states, targets[sl], lambda idx: weight[idx])
        loss.backward()
        result["loss"] = loss.detach()
        result["state_grad"] = states.grad
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_matches_single_process(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    users, items, targets, seen = problem()
    single = RankingMetrics(n_items=N_ITEMS, ks=(10, 20))
    ranks, target_seen, _, top = rank_and_topk(users, items, targets, seen, k=10)
    single.update(ranks, target_seen, top)
    expected = single.compute()
    assert expected["seen_target_share"] > 0 and expected["n_users"] == 13.0

    states = users.clone().requires_grad_(True)
    logits = states @ items[targets].T
    collide = (targets[None, :] == targets[:, None]) & ~torch.eye(13, dtype=torch.bool)
    per_row = F.cross_entropy(logits.masked_fill(collide, float("-inf")), torch.arange(13), reduction="none")
    for rank, sl in enumerate(SHARDS):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["metrics"] == expected  # integer states: exactly equal on every rank
        torch.testing.assert_close(got["loss"], per_row[sl].mean())
        (grad,) = torch.autograd.grad(per_row[sl].mean(), states, retain_graph=True)
        torch.testing.assert_close(got["state_grad"], grad[sl])
