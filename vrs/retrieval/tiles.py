"""The exact kernel's tiling of the (B, N) score matrix (`TileLayout`), and the search of a row
block's top K through its hierarchy of group maxima (`topk_from_levels`); see
`vrs.retrieval.scoring.rank_and_topk`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

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
FANIN = 8


def _group_size(n: int, k: int, d: int) -> int:
    """Items per top-K group: balances storing N/G group maxima per user against re-scoring K*G
    candidates (a D-float gather each), i.e. G ~ sqrt(N / (K * D)), a power of 2."""
    if k == 0:
        return 1
    g = math.sqrt(n / max(1.0, k * d))
    return 1 << min(6, max(0, round(math.log2(max(g, 1.0)))))


def topk_from_levels(
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
    n_rows, n_items = users.shape[0], items.shape[0]
    dev = users.device
    kept = None  # (rows, k') entries kept on the current level
    for lvl in range(len(levels) - 1, -1, -1):
        maxima = levels[lvl]  # (rows, n_chunks * m') entries of this level
        if kept is not None:
            per_chunk = m // FANIN**lvl  # m', entries per chunk on this level
            parent = per_chunk // FANIN  # ... and on the parent level
            kept = ((kept // parent) * per_chunk + kept % parent)[:, :, None]
            kept = (kept + torch.arange(FANIN, device=dev) * parent).view(n_rows, -1)  # (rows, k' * H)
            maxima = maxima.gather(1, kept)
        best = maxima.topk(min(k, maxima.shape[1]), dim=1, sorted=False).indices
        kept = best if lvl == len(levels) - 1 else kept.gather(1, best)
    first = (kept // m) * (m * g) + kept % m  # (rows, k2) first item of each kept group
    candidates = (first[:, :, None] + torch.arange(g, device=dev) * m).view(n_rows, -1)  # (rows, k2*G)
    # (rows, k2*G, D) candidate vectors, into a buffer reused by every row block (a fresh 10 MB tensor
    # is page-faulted in each time, which costs as much as the gather itself).
    vectors = torch.index_select(
        items, 0, candidates.clamp(max=n_items - 1).view(-1), out=vec_buf[: candidates.numel()]
    )
    scores = torch.bmm(vectors.view(n_rows, candidates.shape[1], -1), users[:, :, None]).squeeze(2)
    scores.masked_fill_(candidates >= n_items, -math.inf)  # padding columns of the last chunk
    if seen is not None:
        # Seen items inside a kept group: match each seen item's group against the k2 kept groups,
        # (rows, S, k2) compares instead of (rows, k2*G, S), and -inf its candidate slot.
        seen_group = (seen // (m * g)) * m + seen % m  # (rows, S)
        hit = (seen_group[:, :, None] == kept[:, None, :]) & (seen >= 0)[:, :, None]  # (rows, S, k2)
        slot = hit.int().argmax(2) * g + (seen % (m * g)) // m  # (rows, S) its candidate slot
        fill = torch.where(hit.any(2), -math.inf, math.inf)  # +inf: leave the slot as it is
        scores.scatter_reduce_(1, slot, fill, reduce="amin")
    top_scores, position = scores.topk(min(k, candidates.shape[1]), dim=1)
    return top_scores, candidates.gather(1, position)


@dataclass
class TileLayout:
    """How one scan tiles the (B, N) score matrix.

    Items are swept in chunks of C columns, every chunk C wide (the last is padded, its padding scored
    -inf, so one layout serves all); group j of a chunk holds its columns j, j + m, j + 2m, ... (m
    groups of G items). Users are swept in row blocks sized so that a (rows, C) tile stays in L2 for
    the passes after its matmul. Tile `block * n_chunks + chunk` is the scan order.
    """

    n_users: int  # B
    n_items: int  # N
    group: int  # G, items per top-K group
    levels_up: int  # levels of maxima above the groups, each H = FANIN times shorter
    chunk: int  # C, a multiple of G * H**levels_up: chunks hold whole top-level entries
    n_chunks: int
    groups_per_chunk: int  # m = C / G
    pad: int  # padding columns of the last chunk
    block_rows: int
    n_blocks: int

    @classmethod
    def plan(cls, n_users: int, n_items: int, dim: int, k: int, chunk_size: int) -> TileLayout:
        group = _group_size(n_items, k, dim)
        levels_up = _levels_above_groups(n_items, k, group)
        whole = group * FANIN**levels_up
        chunk = -(-max(1, min(chunk_size, n_items, _MAX_CHUNK, _MAX_COLS)) // whole) * whole
        n_chunks = max(1, -(-n_items // chunk))
        block_rows = max(1, min(n_users, _TILE // chunk)) if n_users else 1
        return cls(
            n_users=n_users,
            n_items=n_items,
            group=group,
            levels_up=levels_up,
            chunk=chunk,
            n_chunks=n_chunks,
            groups_per_chunk=chunk // group,
            pad=n_chunks * chunk - n_items,
            block_rows=block_rows,
            n_blocks=max(1, -(-n_users // block_rows)),
        )

    def rows(self, block: int) -> slice:
        start = block * self.block_rows
        return slice(start, min(self.n_users, start + self.block_rows))

    def tile_offsets(self, rows: Tensor, cols: Tensor) -> list[Tensor]:
        """(row, col) pairs grouped by tile; per tile, the pairs' flat offsets into that tile's
        (rows, C) score buffer, so one ``index_fill_`` reaches all."""
        tile = (rows // self.block_rows) * self.n_chunks + cols // self.chunk
        order = torch.argsort(tile)
        flat = ((rows % self.block_rows) * self.chunk + cols % self.chunk)[order]
        counts = torch.bincount(tile, minlength=self.n_chunks * self.n_blocks)
        return list(torch.split(flat, counts.tolist()))


def _levels_above_groups(n_items: int, k: int, group: int) -> int:
    """Adds a level of maxima while the top level is still much longer than the k*H entries a level
    costs to search (a topk costs ~2 ns per element, plus ~1 us per row)."""
    levels = 0
    while k and levels < 3 and n_items / (group * FANIN**levels) > 2 * k * FANIN:
        levels += 1
    return levels
