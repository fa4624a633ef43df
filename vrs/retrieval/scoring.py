"""Scoring users against the whole catalogue: the one path of evaluation, the report and serving.

`rank_and_topk` is the exact kernel: one pass over item chunks (one matmul per cache-sized score
tile) yields both the rank of every user's held-out target and each user's top-K list, so nothing
ever materialises the full (B, N) score matrix. `score_batch` encodes a batch's users and scores
them, with this kernel (evaluation, the report) or with an `ItemIndex` (serving, whose exact backend
is this kernel again).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
from torch import Tensor

from vrs.retrieval import native
from vrs.threads import run_split

if TYPE_CHECKING:
    from vrs.data.batch import RecBatch
    from vrs.retrieval.index import ItemIndex

# Per-chunk float counts are exact only below 2**24; larger chunks gain nothing anyway.
_MAX_CHUNK = 1 << 24
# Items per score tile column block. chunk_size is only an upper bound: wider tiles force fewer user
# rows per tile (below), and a (few rows) @ (D x many items) matmul runs far below peak.
_MAX_COLS = 2048
# Elements per score tile: 2 MiB of fp32 (1 MiB per core with 2 threads) stays in L2, so the passes
# after each matmul (mask, group max, compare, count) read the tile from cache, not from memory.
_TILE = 1 << 19
# Groups per super-group (a power of 2): the top-K search first ranks the N/(G*H) super-group maxima,
# which is H times cheaper than a topk over all N/G group maxima.
_FANIN = 8


def _bucket(rows: Tensor, cols: Tensor, chunk: int, n_chunks: int, rb: int, n_rb: int) -> list[Tensor]:
    """Group (row, col) pairs by tile (row block, then column chunk: the scan order); per tile, the
    pairs' flat offsets into that tile's (rows, chunk) score buffer, so one ``index_fill_`` reaches all."""
    tile = (rows // rb) * n_chunks + cols // chunk
    order = torch.argsort(tile)
    flat = ((rows % rb) * chunk + cols % chunk)[order]
    counts = torch.bincount(tile, minlength=n_chunks * n_rb)
    return list(torch.split(flat, counts.tolist()))


def _group_size(n: int, k: int, d: int) -> int:
    """Items per top-K group: balances storing N/G group maxima per user against re-scoring K*G
    candidates (a D-float gather each), i.e. G ~ sqrt(N / (K * D)), a power of 2."""
    if k == 0:
        return 1
    g = math.sqrt(n / max(1.0, k * d))
    return 1 << min(6, max(0, round(math.log2(max(g, 1.0)))))


def _topk_from_levels(
    levels: list[Tensor],
    users: Tensor,
    items: Tensor,
    k: int,
    g: int,
    m: int,
    seen: Tensor | None,
    vec_buf: Tensor,
) -> tuple[Tensor, Tensor]:
    """Exact top-k of one row block from its hierarchy of group maxima.

    Layout, per chunk c of C = m*G items: group c*m + j holds items c*C + j + t*m (t < G); on every
    level above, entry c*m' + s (m' = entries per chunk there) is the max of the entries
    c*(m'*H) + s + u*m' (u < H) one level down. Any top-k item's group, and every ancestor of it, has a
    max at least as large as the item, so the k best entries of the top level hold the k best items;
    among their k*H children the k best hold them too, and so on down to k groups, whose k*G members
    are re-scored. Masked entries (seen, padding) are -inf in the maxima and re-checked here.
    """
    b, n = users.shape[0], items.shape[0]
    dev = users.device
    ids = None  # (rows, k') entries kept on the current level
    for lvl in range(len(levels) - 1, -1, -1):
        vals = levels[lvl]  # (rows, n_chunks * m_lvl)
        if ids is not None:
            mc = m // _FANIN**lvl  # entries per chunk on this level
            sp = mc // _FANIN  # ... and on the parent level
            ids = ((ids // sp) * mc + ids % sp)[:, :, None] + torch.arange(_FANIN, device=dev) * sp
            ids = ids.view(b, -1)  # (rows, k' * H) children
            vals = vals.gather(1, ids)
        top = vals.topk(min(k, vals.shape[1]), dim=1, sorted=False).indices
        ids = top if lvl == len(levels) - 1 else ids.gather(1, top)
    first = (ids // m) * (m * g) + ids % m  # (rows, k2) first item of each kept group
    cand = (first[:, :, None] + torch.arange(g, device=dev) * m).view(b, -1)  # (rows, k2*G)
    # (rows, k2*G, D) candidate vectors, into a buffer reused by every row block (a fresh 10 MB tensor
    # is page-faulted in each time, which costs as much as the gather itself).
    vecs = torch.index_select(items, 0, cand.clamp(max=n - 1).view(-1), out=vec_buf[: cand.numel()])
    scores = torch.bmm(vecs.view(b, cand.shape[1], -1), users[:, :, None]).squeeze(2)  # (rows, k2*G)
    scores.masked_fill_(cand >= n, -math.inf)  # padding columns of the last chunk
    if seen is not None:
        # Seen items inside a kept group: match each seen item's group against the k2 kept groups,
        # (rows, S, k2) compares instead of (rows, k2*G, S), and -inf its candidate slot.
        sg = (seen // (m * g)) * m + seen % m  # (rows, S) group of each seen item
        hit = (sg[:, :, None] == ids[:, None, :]) & (seen >= 0)[:, :, None]  # (rows, S, k2)
        slot = hit.int().argmax(2) * g + (seen % (m * g)) // m  # (rows, S) its candidate slot
        fill = torch.where(hit.any(2), -math.inf, math.inf)  # +inf: leave the slot as it is
        scores.scatter_reduce_(1, slot, fill, reduce="amin")
    vals, pos = scores.topk(min(k, cand.shape[1]), dim=1)
    return vals, cand.gather(1, pos)


def _scan(
    users: Tensor,
    items: Tensor,
    targets: Tensor | None,
    seen: Tensor | None,
    k: int,
    chunk_size: int,
) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
    """The kernel behind `rank_and_topk` (see it for the contract).

    Users are processed in row blocks; each block sweeps the catalogue in (rows, chunk) score tiles
    that stay in L2 while they are masked, group-maxed and counted. Per-block state (group maxima,
    top-K candidates) is small and reused, so nothing of size (B, N/G) is ever allocated: big fresh
    allocations are page-faulted in on every call and cost more than the work done on them.
    """
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(
            f"users (B, D) and items (N, D) must agree on D; got {tuple(users.shape)}, {tuple(items.shape)}"
        )
    if chunk_size < 1 or k < 0:
        raise ValueError(f"chunk_size must be positive and k non-negative, got {chunk_size}, {k}")
    users, items = users.float().contiguous(), items.float()
    (b, d), n = users.shape, items.shape[0]
    dev = users.device
    g = _group_size(n, k, d)
    # Levels of maxima above the groups: add one while the top level is still much longer than the
    # k*H entries a level costs to search (a topk costs ~2 ns per element, plus ~1 us per row).
    n_up = 0
    while k and n_up < 3 and n / (g * _FANIN**n_up) > 2 * k * _FANIN:
        n_up += 1
    q = g * _FANIN**n_up  # chunks hold whole top-level entries
    chunk = -(-max(1, min(chunk_size, n, _MAX_CHUNK, _MAX_COLS)) // q) * q
    n_chunks = max(1, -(-n // chunk))
    m = chunk // g  # groups per chunk
    # Every chunk is `chunk` wide (the last is padded, its padding scores -inf), so one layout serves all.
    pad = n_chunks * chunk - n
    blocks = list(torch.split(items, chunk))  # (C, D) each
    if pad:
        blocks[-1] = torch.cat([blocks[-1], items.new_zeros(pad, d)])
    # Row blocks keep each (rows, chunk) score tile cache-resident for the passes after the matmul.
    rb = max(1, min(b, _TILE // chunk)) if b else 1
    n_rb = max(1, -(-b // rb))
    rows_all = torch.arange(b, device=dev)

    lib = native.load() if dev.type == "cpu" else None
    ranks = target_seen = target_score = t_flat = counts = None
    if targets is not None:
        targets = targets.to(device=dev, dtype=torch.long).contiguous()
        if targets.shape != (b,):
            raise ValueError(f"targets must have shape ({b},), got {tuple(targets.shape)}")
        if b and (int(targets.min()) < 0 or int(targets.max()) >= n):
            raise ValueError(
                f"targets must lie in [0, {n}); got range [{int(targets.min())}, {int(targets.max())}]"
            )
        target_score = (users * items[targets]).sum(-1, keepdim=True)  # (B, 1)
        target_seen = torch.zeros(b, dtype=torch.bool, device=dev)
        if lib is None:  # the C pass leaves the target's column out by position instead
            t_flat = _bucket(rows_all, targets, chunk, n_chunks, rb, n_rb)
        # Per-tile counts as floats (exact: < chunk <= 2**24); summed over chunks in float64 at the end.
        counts = torch.empty(n_chunks, b, device=dev)  # (n_chunks, B)

    s_flat = None
    if seen is not None and not seen.numel():
        seen = None  # e.g. (B, 0): nothing to exclude
    if seen is not None:
        seen = seen.to(device=dev, dtype=torch.long)
        if seen.ndim != 2 or seen.shape[0] != b:
            raise ValueError(f"seen must have shape ({b}, S), got {tuple(seen.shape)}")
        if int(seen.max()) >= n:
            raise ValueError(f"seen items must be < N={n} (-1 pads); got {int(seen.max())}")
        valid = seen >= 0
        if targets is not None:
            target_seen = ((seen == targets[:, None]) & valid).any(1)
        s_flat = _bucket(rows_all[:, None].expand_as(seen)[valid], seen[valid], chunk, n_chunks, rb, n_rb)

    top_val = torch.full((b, k), -math.inf, device=dev)
    top_idx = torch.full((b, k), -1, dtype=torch.long, device=dev)

    def sweep(row_blocks: range) -> None:
        """Scores, counts and top-K of the given row blocks, with buffers of its own."""
        buf = torch.empty(rb * chunk, device=dev)  # reused so every tile writes into warm memory
        # levels[l]: (rows, N/(G*H^l)) maxima, reused by every row block; levels[0] = group maxima.
        levels = (
            [torch.empty(rb, n_chunks * m // _FANIN**lvl, device=dev) for lvl in range(n_up + 1)] if k else []
        )
        vec_buf = torch.empty(rb * k * g, d, device=dev) if k else None  # re-scored candidates
        for ri in row_blocks:
            r0, r1 = ri * rb, min(b, ri * rb + rb)
            rows = r1 - r0
            for ci, block in enumerate(blocks):
                tile = ri * n_chunks + ci
                flat = buf[: rows * chunk]
                scores = flat.view(rows, chunk)
                torch.mm(users[r0:r1], block.T, out=scores)  # (rows, C)
                if pad and ci == n_chunks - 1:
                    scores[:, chunk - pad :] = -math.inf
                if s_flat is not None and s_flat[tile].numel():  # seen items: excluded from everything
                    flat.index_fill_(0, s_flat[tile], -math.inf)
                if lib is not None:
                    # Counts and the running top-K in one C pass over the tile (see native.py).
                    native.tile_pass(
                        lib,
                        scores,
                        ci * chunk,
                        None if counts is None else target_score[r0:r1],
                        None if counts is None else targets[r0:r1],
                        None if counts is None else counts[ci, r0:r1],
                        top_val[r0:r1],
                        top_idx[r0:r1],
                    )
                    continue
                if k:
                    # Group j of this chunk = columns j, j + m, j + 2m, ...: a reduction over the
                    # middle axis of a (rows, G, m) view, which vectorises along m.
                    torch.amax(scores.view(rows, g, m), 1, out=levels[0][:rows, ci * m : ci * m + m])
                if counts is not None:
                    # The target's own column must not count: -inf it (after the group max, where the
                    # target is a legitimate top-K item). Its matmul score may differ from
                    # target_score by rounding, so counting it and subtracting 1 would not be exact.
                    if t_flat[tile].numel():
                        flat.index_fill_(0, t_flat[tile], -math.inf)
                    # In place: 1.0 where >= target score (ties count against the target), then a
                    # contiguous row sum; both read the tile from L2.
                    torch.sum(scores.ge_(target_score[r0:r1]), 1, out=counts[ci, r0:r1])
            if k and n and lib is None:
                # Upper levels once per row block, not per tile (each op has a fixed cost).
                for lvl in range(1, n_up + 1):
                    mc = m // _FANIN**lvl  # entries per chunk on this level
                    below = levels[lvl - 1][:rows].view(rows, n_chunks, _FANIN, mc)
                    torch.amax(below, 2, out=levels[lvl][:rows].view(rows, n_chunks, mc))
                vals, idx = _topk_from_levels(
                    [lvl[:rows] for lvl in levels],
                    users[r0:r1],
                    items,
                    k,
                    g,
                    m,
                    None if seen is None else seen[r0:r1],
                    vec_buf,
                )
                kk = vals.shape[1]
                top_val[r0:r1, :kk], top_idx[r0:r1, :kk] = vals, idx

    run_split(sweep, n_rb, dev)
    if lib is not None and k:  # the C pass leaves per-row heaps: sort them, best first
        top_val, order = top_val.sort(dim=1, descending=True)
        top_idx = top_idx.gather(1, order)
    top_idx.masked_fill_(top_val == -math.inf, -1)

    if counts is not None:
        ranks = counts.sum(0, dtype=torch.float64).long()  # (B,)
        ranks.masked_fill_(target_seen, n)
    return ranks, target_seen, top_val, top_idx


class Ranking(NamedTuple):
    """`rank_and_topk`'s result; ranks and target_seen are None when no targets were given."""

    ranks: Tensor | None  # (B,) long
    target_seen: Tensor | None  # (B,) bool
    top_scores: Tensor  # (B, K) float32
    top_items: Tensor  # (B, K) long


@torch.inference_mode()
def rank_and_topk(
    users: Tensor,
    items: Tensor,
    targets: Tensor | None,
    seen: Tensor | None,
    k: int = 10,
    chunk_size: int = 4096,
) -> Ranking:
    """Target ranks and seen-excluded top-K lists in ONE pass over the catalogue.

    Scores are ``users @ items.T`` in float32, computed chunk by chunk (memory O(B * chunk_size)).
    Items in ``seen`` are excluded from both outputs. The rank counts the OTHER non-excluded items
    scoring >= the target (ties count against the target; 0 = top); a target that is itself in
    ``seen`` is a miss with rank N.

    Args:
        users: (B, D) user vectors.
        items: (N, D) item vectors.
        targets: (B,) held-out item per user, in [0, N), or None (top-K only).
        seen: (B, S) items to exclude, -1 padded, or None.
        k: length of the top-K lists (0 skips them).
        chunk_size: upper bound on items per chunk (capped at 2048 and rounded up to whole groups;
            users are further split so that a score tile is ~2 MiB).

    Returns:
        ranks (B,) long and target_seen (B,) bool (None without targets), top_scores (B, K) float32
        and top_items (B, K) long, best first; -inf and -1 where fewer than K items are left after
        exclusion. Order among exactly tied scores is unspecified.
    """
    return Ranking(*_scan(users, items, targets, seen, k, chunk_size))


class UserScorer(Protocol):
    """What `score_batch` needs of a model: user vectors from a batch and the item vectors."""

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor: ...


def score_batch(
    model: UserScorer,
    items: Tensor,
    batch: RecBatch,
    k: int,
    exclude_seen: bool = True,
    index: ItemIndex | None = None,
    chunk_size: int = 65536,
) -> tuple[Tensor, Ranking]:
    """Encodes a batch's users and scores them against the whole catalogue.

    Without `index` (evaluation) the exact kernel ranks each held-out target and lists the top K in
    one pass; with one (serving) the index lists the top K and the batch's targets are not read.

    Args:
        model: gives the (B, D) user vectors of `batch`.
        items: (N, D) item vectors of the whole catalogue.
        batch: the users' histories (evaluation batches also hold targets).
        k: length of the top-K lists (0: ranks only).
        exclude_seen: exclude `batch.seen` (each user's earlier items) from ranks and lists.
        index: the serving index over `items`, or None.
        chunk_size: see `rank_and_topk` (evaluation only).

    Returns:
        the (B, D) float32 user vectors and their `Ranking` (ranks None when served by an index).
    """
    users = model.encode_users(batch, items).float()  # (B, D)
    seen = batch.seen if exclude_seen else None
    if index is None:
        return users, rank_and_topk(users, items, batch.targets, seen, k, chunk_size)
    scores, top = index.search(users, k, seen)  # (B, K)
    return users, Ranking(None, None, scores, top)
