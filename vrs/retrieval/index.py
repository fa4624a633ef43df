"""Exact chunked scoring of users against the whole catalogue.

One pass over item chunks (one matmul each) yields both the rank of every user's held-out target and
each user's top-K list, so evaluation never materialises the full (B, N) score matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Per-chunk float counts are exact only below 2**24; larger chunks gain nothing anyway.
_MAX_CHUNK = 1 << 24
# Elements per score tile: 2 MiB of fp32 stays in a core's L2, which halves the cost of the passes
# (mask, group max, count) that follow each matmul.
_TILE = 1 << 19


def _bucket(
    rows: Tensor, cols: Tensor, chunk: int, n_chunks: int, rb: int, n_rb: int
) -> tuple[Tensor, Tensor, list[int]]:
    """Sort (row, col) pairs by tile (column chunk, row block); return them with per-tile offsets."""
    tile = (cols // chunk) * n_rb + rows // rb
    order = torch.argsort(tile)
    counts = torch.bincount(tile, minlength=n_chunks * n_rb)
    return rows[order], cols[order], [0, *torch.cumsum(counts, 0).tolist()]


def _group_size(n: int, k: int, d: int) -> int:
    """Items per top-K group: balances storing N/G group maxima per user against re-scoring K*G
    candidates (a D-float gather each), i.e. G ~ sqrt(N / (K * D)), a power of 2."""
    if k == 0:
        return 1
    g = math.sqrt(n / max(1.0, k * d))
    return 1 << min(6, max(0, round(math.log2(max(g, 1.0)))))


def _topk_from_groups(
    group_max: Tensor,
    users: Tensor,
    items: Tensor,
    k: int,
    g: int,
    chunk: int,
    n_chunks: int,
    seen_sorted: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Exact top-k from per-group score maxima: any top-k item's group has a max at least as large as
    the item, so the k best groups hold the k best items; only their K*G members are re-scored."""
    b, n = users.shape[0], items.shape[0]
    dev = users.device
    kg = min(k, group_max.shape[1])
    gid = group_max.topk(kg, dim=1).indices  # (B, kg)
    m = chunk // g  # groups per full chunk; group j of chunk c = items c*chunk + j + t*m_c, t < G
    m_last = (n - (n_chunks - 1) * chunk + g - 1) // g
    ci = torch.clamp(gid // m, max=n_chunks - 1)
    j = gid - ci * m
    m_c = torch.where(ci == n_chunks - 1, m_last, m)
    t = torch.arange(g, device=dev)
    cand = (ci * chunk + j)[:, :, None] + t * m_c[:, :, None]  # (B, kg, G)
    cand = cand.reshape(b, kg * g)  # (B, kg*G)
    valid = cand < n  # padding columns of the last chunk
    if seen_sorted is not None:
        pos = torch.searchsorted(seen_sorted, cand).clamp_(max=seen_sorted.shape[1] - 1)
        valid &= seen_sorted.gather(1, pos) != cand
    vecs = items.index_select(0, cand.clamp(max=n - 1).view(-1)).view(b, kg * g, -1)  # (B, kg*G, D)
    scores = torch.bmm(vecs, users[:, :, None]).squeeze(2)  # (B, kg*G)
    scores.masked_fill_(~valid, -math.inf)
    vals, pos = scores.topk(min(k, kg * g), dim=1)
    return vals, cand.gather(1, pos)


def _scan(
    users: Tensor,
    items: Tensor,
    targets: Tensor | None,
    seen: Tensor | None,
    k: int,
    chunk_size: int,
) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
    """Shared kernel of `rank_and_topk` and `ExactIndex.search` (see those for the contract)."""
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
    chunk = -(-max(1, min(chunk_size, n, _MAX_CHUNK)) // g) * g  # a multiple of G
    n_chunks = max(1, -(-n // chunk))
    # Row blocks keep each (rows, chunk) score tile cache-resident for the passes after the matmul.
    rb = max(1, min(b, _TILE // chunk)) if b else 1
    n_rb = max(1, -(-b // rb))
    rows_all = torch.arange(b, device=dev)

    ranks = target_seen = target_score = None
    if targets is not None:
        targets = targets.to(device=dev, dtype=torch.long)
        if targets.shape != (b,):
            raise ValueError(f"targets must have shape ({b},), got {tuple(targets.shape)}")
        if b and (int(targets.min()) < 0 or int(targets.max()) >= n):
            raise ValueError(
                f"targets must lie in [0, {n}); got range [{int(targets.min())}, {int(targets.max())}]"
            )
        target_score = (users * items[targets]).sum(-1, keepdim=True)  # (B, 1)
        ranks = torch.zeros(b, dtype=torch.long, device=dev)
        target_seen = torch.zeros(b, dtype=torch.bool, device=dev)
        t_rows, t_cols, t_off = _bucket(rows_all, targets, chunk, n_chunks, rb, n_rb)

    s_rows = seen_sorted = None
    if seen is not None and seen.numel():
        seen = seen.to(device=dev, dtype=torch.long)
        if seen.ndim != 2 or seen.shape[0] != b:
            raise ValueError(f"seen must have shape ({b}, S), got {tuple(seen.shape)}")
        if int(seen.max()) >= n:
            raise ValueError(f"seen items must be < N={n} (-1 pads); got {int(seen.max())}")
        valid = seen >= 0
        if targets is not None:
            target_seen = ((seen == targets[:, None]) & valid).any(1)
        s_rows, s_cols, s_off = _bucket(
            rows_all[:, None].expand_as(seen)[valid], seen[valid], chunk, n_chunks, rb, n_rb
        )
        seen_sorted = seen.sort(1).values  # (B, S), for membership tests of top-K candidates

    m = chunk // g
    n_groups = (n_chunks - 1) * m + -(-(n - (n_chunks - 1) * chunk) // g)
    group_max = torch.empty(b, n_groups, device=dev) if k else None  # (B, N/G)
    buf = torch.empty(rb * chunk, device=dev)  # reused so every tile writes into warm memory
    for ci in range(n_chunks):
        start = ci * chunk
        block = items[start : start + chunk]
        w = block.shape[0]
        wp = -(-w // g) * g
        if wp != w:  # only the last chunk: pad to whole groups; padding never wins nor counts
            block = torch.cat([block, block.new_zeros(wp - w, d)])
        for ri in range(n_rb):
            r0, r1 = ri * rb, min(b, ri * rb + rb)
            tile = ci * n_rb + ri
            scores = buf[: (r1 - r0) * wp].view(r1 - r0, wp)
            torch.mm(users[r0:r1], block.T, out=scores)  # (rows, C)
            if wp != w:
                scores[:, w:] = -math.inf
            if s_rows is not None and s_off[tile + 1] > s_off[tile]:
                sl = slice(s_off[tile], s_off[tile + 1])
                scores[s_rows[sl] - r0, s_cols[sl] - start] = -math.inf
            if group_max is not None:  # group j of this chunk = columns j, j + C/G, j + 2C/G, ...
                torch.amax(
                    scores.view(r1 - r0, g, wp // g), 1, out=group_max[r0:r1, ci * m : ci * m + wp // g]
                )
            if ranks is not None:
                # The target column is counted below iff its own score reaches the target score;
                # subtract it again so only OTHER items count (robust to matmul vs. dot rounding).
                sl = slice(t_off[tile], t_off[tile + 1])
                r, col = t_rows[sl], t_cols[sl] - start
                self_hit = scores[r - r0, col] >= target_score[r, 0]
                # In place: scores become 1.0 where >= target score (ties count against the target).
                counts = scores.ge_(target_score[r0:r1]).sum(1)  # (rows,) float, exact below 2**24
                ranks[r0:r1] += counts.long()
                ranks.index_add_(0, r, -self_hit.long())
    if ranks is not None:
        ranks.masked_fill_(target_seen, n)

    top_val = torch.full((b, k), -math.inf, device=dev)
    top_idx = torch.full((b, k), -1, dtype=torch.long, device=dev)
    if group_max is not None and n and b:
        vals, idx = _topk_from_groups(group_max, users, items, k, g, chunk, n_chunks, seen_sorted)
        kk = min(k, vals.shape[1])
        top_val[:, :kk], top_idx[:, :kk] = vals[:, :kk], idx[:, :kk]
        top_idx.masked_fill_(top_val == -math.inf, -1)
    return ranks, target_seen, top_val, top_idx


@torch.inference_mode()
def rank_and_topk(
    users: Tensor,
    items: Tensor,
    targets: Tensor,
    seen: Tensor | None,
    k: int = 10,
    chunk_size: int = 4096,
) -> tuple[Tensor, Tensor, Tensor]:
    """Target ranks and seen-excluded top-K lists in ONE pass over the catalogue.

    Scores are ``users @ items.T`` in float32, computed chunk by chunk (memory O(B * chunk_size)).
    Items in ``seen`` are excluded from both outputs. The rank counts the OTHER non-excluded items
    scoring >= the target (ties count against the target; 0 = top); a target that is itself in
    ``seen`` is a miss with rank N.

    Args:
        users: (B, D) user vectors.
        items: (N, D) item vectors.
        targets: (B,) held-out item per user, in [0, N).
        seen: (B, S) items to exclude, -1 padded, or None.
        k: length of the top-K lists (0 skips them).
        chunk_size: items per chunk (users are further split so that a score tile is ~2 MiB).

    Returns:
        ranks (B,) long, target_seen (B,) bool, topk_idx (B, K) long (best first; -1 where fewer
        than K items are left after exclusion).
    """
    ranks, target_seen, _, top_idx = _scan(users, items, targets, seen, k, chunk_size)
    return ranks, target_seen, top_idx


class ExactIndex:
    """Brute-force maximum-inner-product index over a fixed item matrix.

    Args:
        items: (N, D) item vectors (kept as float32).
    """

    def __init__(self, items: Tensor) -> None:
        if items.ndim != 2:
            raise ValueError(f"items must be (N, D), got {tuple(items.shape)}")
        self.items = items.detach().float()

    def __len__(self) -> int:
        return self.items.shape[0]

    @torch.inference_mode()
    def search(
        self, users: Tensor, k: int, exclude: Tensor | None = None, chunk_size: int = 65536
    ) -> tuple[Tensor, Tensor]:
        """Exact top-K items by inner product, chunked over the catalogue.

        Args:
            users: (B, D) query vectors.
            k: number of results per query.
            exclude: (B, S) item indices never to return (e.g. seen items), -1 padded, or None.
            chunk_size: items scored per matmul.

        Returns:
            scores (B, K) float32 and idx (B, K) long, best first. When fewer than K items remain
            after exclusion (or K > N) the tail holds score -inf and index -1. Order among exactly
            tied scores is unspecified.
        """
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        users = users.to(self.items.device)
        _, _, vals, idx = _scan(users, self.items, None, exclude, k, chunk_size)
        return vals, idx
