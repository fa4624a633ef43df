"""Scoring users against the whole catalogue: the one path of evaluation, the report and serving.

`rank_and_topk` is the exact kernel: one pass over item chunks (one matmul per cache-sized score
tile) yields both the rank of every user's held-out target and each user's top-K list, so nothing
ever materialises the full (B, N) score matrix. `score_batch` encodes a batch's users and scores
them, with this kernel (evaluation, the report) or with an `ItemIndex` (serving, whose exact backend
is this kernel again).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
from torch import Tensor

from vrs.retrieval import native
from vrs.retrieval.tiles import FANIN, TileLayout, topk_from_levels
from vrs.threads import run_split

if TYPE_CHECKING:
    from vrs.data.batch import RecBatch
    from vrs.retrieval.index import ItemIndex


@dataclass
class _Targets:
    """The held-out targets being ranked and, per chunk, how many items score at least as high."""

    items: Tensor  # (B,) long
    scores: Tensor  # (B, 1) each target's own score
    seen: Tensor  # (B,) bool: the target is one of the user's seen items (a miss)
    counts: Tensor  # (n_chunks, B) float: exact below 2**24, summed in float64 at the end
    offsets: list[Tensor] | None  # per tile, the target columns (the PyTorch pass only)


@dataclass
class _Seen:
    """Items excluded from ranks and lists."""

    items: Tensor  # (B, S) long, -1 pads
    offsets: list[Tensor]  # per tile, the seen columns


def _check_vectors(users: Tensor, items: Tensor, k: int, chunk_size: int) -> None:
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(
            f"users (B, D) and items (N, D) must agree on D; got {tuple(users.shape)}, {tuple(items.shape)}"
        )
    if chunk_size < 1 or k < 0:
        raise ValueError(f"chunk_size must be positive and k non-negative, got {chunk_size}, {k}")


def _targets(
    targets: Tensor, users: Tensor, items: Tensor, layout: TileLayout, native_pass: bool
) -> _Targets:
    b, n = layout.n_users, layout.n_items
    targets = targets.to(device=users.device, dtype=torch.long).contiguous()
    if targets.shape != (b,):
        raise ValueError(f"targets must have shape ({b},), got {tuple(targets.shape)}")
    if b and (int(targets.min()) < 0 or int(targets.max()) >= n):
        raise ValueError(
            f"targets must lie in [0, {n}); got range [{int(targets.min())}, {int(targets.max())}]"
        )
    vectors = items[targets]  # (B, D)
    scores = (users * vectors).sum(-1, keepdim=True)  # (B, 1)
    # An item whose vector equals the target's (e.g. every cold item's shared fallback) ties with it,
    # but the pass's matmul rounds its score differently from this dot product, either way: lower the
    # bar by 8 sqrt(D) u sum|u_i v_i|, several times the rounding that D-term float32 sums show (it
    # grows like sqrt(D), not like the worst case D), so ties count against the target as they must;
    # distinct items 1e-4 apart (relative; 1e-5 at D=64) still rank as they score.
    u = torch.finfo(users.dtype).eps / 2
    scores = scores - 8 * math.sqrt(users.shape[1]) * u * (users.abs() * vectors.abs()).sum(-1, keepdim=True)
    return _Targets(
        items=targets,
        scores=scores,
        seen=torch.zeros(b, dtype=torch.bool, device=users.device),
        counts=torch.empty(layout.n_chunks, b, device=users.device),
        # The C pass leaves the target's column out by position instead.
        offsets=None if native_pass else layout.tile_offsets(torch.arange(b, device=users.device), targets),
    )


def _seen(seen: Tensor | None, layout: TileLayout, device: torch.device) -> _Seen | None:
    if seen is None or not seen.numel():
        return None  # e.g. (B, 0): nothing to exclude
    b, n = layout.n_users, layout.n_items
    seen = seen.to(device=device, dtype=torch.long)
    if seen.ndim != 2 or seen.shape[0] != b:
        raise ValueError(f"seen must have shape ({b}, S), got {tuple(seen.shape)}")
    if int(seen.max()) >= n:
        raise ValueError(f"seen items must be < N={n} (-1 pads); got {int(seen.max())}")
    valid = seen >= 0
    rows = torch.arange(b, device=device)[:, None].expand_as(seen)
    return _Seen(seen, layout.tile_offsets(rows[valid], seen[valid]))


class _Sweep:
    """Scores, target counts and top-K lists of row blocks (`run_split` calls it from every thread).

    Each call allocates its own buffers and writes only its own rows of the shared results.
    """

    def __init__(
        self,
        users: Tensor,
        items: Tensor,
        k: int,
        layout: TileLayout,
        lib: ctypes.CDLL | None,
        targets: _Targets | None,
        seen: _Seen | None,
    ) -> None:
        self.users, self.items, self.k, self.layout, self.lib = users, items, k, layout, lib
        self.targets, self.seen = targets, seen
        chunks = list(torch.split(items, layout.chunk))  # (C, D) each
        if layout.pad:
            chunks[-1] = torch.cat([chunks[-1], items.new_zeros(layout.pad, items.shape[1])])
        self.chunks = chunks
        self.top_scores = torch.full((layout.n_users, k), -math.inf, device=users.device)
        self.top_items = torch.full((layout.n_users, k), -1, dtype=torch.long, device=users.device)

    def __call__(self, blocks: range) -> None:
        tile_buffer, levels, candidate_buffer = self._buffers()
        for block in blocks:
            rows = self.layout.rows(block)
            for chunk_index, chunk_items in enumerate(self.chunks):
                self._tile(block, rows, chunk_index, chunk_items, tile_buffer, levels)
            if self.k and self.layout.n_items and self.lib is None:
                self._block_topk(rows, levels, candidate_buffer)

    def _buffers(self) -> tuple[Tensor, list[Tensor], Tensor | None]:
        """This call's buffers, reused by each of its row blocks so that every tile writes warm memory.

        Returns:
            a (rows * C,) score tile; levels[l], the (rows, N/(G*H^l)) maxima (levels[0]: the group
            maxima); the (rows * K * G, D) candidates `topk_from_levels` re-scores (None for K = 0).
        """
        layout, dev = self.layout, self.users.device
        rows = layout.block_rows
        tile = torch.empty(rows * layout.chunk, device=dev)
        if not self.k:
            return tile, [], None
        groups = layout.n_chunks * layout.groups_per_chunk
        levels = [torch.empty(rows, groups // FANIN**lvl, device=dev) for lvl in range(layout.levels_up + 1)]
        candidates = torch.empty(rows * self.k * layout.group, self.items.shape[1], device=dev)
        return tile, levels, candidates

    def _tile(
        self,
        block: int,
        rows: slice,
        chunk_index: int,
        chunk_items: Tensor,
        buffer: Tensor,
        levels: list[Tensor],
    ) -> None:
        """Scores one (rows, C) tile, masks it, and adds it to the counts and group maxima."""
        layout = self.layout
        n_rows, tile = rows.stop - rows.start, block * layout.n_chunks + chunk_index
        flat = buffer[: n_rows * layout.chunk]
        scores = flat.view(n_rows, layout.chunk)
        torch.mm(self.users[rows], chunk_items.T, out=scores)  # (rows, C)
        if layout.pad and chunk_index == layout.n_chunks - 1:
            scores[:, layout.chunk - layout.pad :] = -math.inf
        if self.seen is not None and self.seen.offsets[tile].numel():  # excluded from everything
            flat.index_fill_(0, self.seen.offsets[tile], -math.inf)
        if self.lib is not None:
            self._native_pass(rows, chunk_index, scores)
            return
        if self.k:
            # Group j of this chunk = columns j, j + m, j + 2m, ...: a reduction over the middle axis
            # of a (rows, G, m) view, which vectorises along m.
            m = layout.groups_per_chunk
            group_max = levels[0][:n_rows, chunk_index * m : chunk_index * m + m]
            torch.amax(scores.view(n_rows, layout.group, m), 1, out=group_max)
        if self.targets is not None:
            self._count(rows, chunk_index, tile, flat, scores)

    def _native_pass(self, rows: slice, chunk_index: int, scores: Tensor) -> None:
        """Counts and the running top-K in one C pass over the tile (see native.py)."""
        targets = self.targets
        native.tile_pass(
            self.lib,
            scores,
            chunk_index * self.layout.chunk,
            None if targets is None else targets.scores[rows],
            None if targets is None else targets.items[rows],
            None if targets is None else targets.counts[chunk_index, rows],
            self.top_scores[rows],
            self.top_items[rows],
        )

    def _count(self, rows: slice, chunk_index: int, tile: int, flat: Tensor, scores: Tensor) -> None:
        """Items of the tile scoring at least as high as each row's target."""
        targets = self.targets
        # The target's own column must not count: -inf it (after the group max, where the target is
        # a legitimate top-K item). Its matmul score may differ from the target's score by rounding,
        # so counting it and subtracting 1 would not be exact.
        if targets.offsets[tile].numel():
            flat.index_fill_(0, targets.offsets[tile], -math.inf)
        # In place: 1.0 where >= target score (ties count against the target), then a contiguous row
        # sum; both read the tile from L2.
        torch.sum(scores.ge_(targets.scores[rows]), 1, out=targets.counts[chunk_index, rows])

    def _block_topk(self, rows: slice, levels: list[Tensor], candidate_buffer: Tensor) -> None:
        """The row block's top-K from its group maxima, once all its tiles are done."""
        layout, n_rows = self.layout, rows.stop - rows.start
        # Upper levels once per row block, not per tile (each op has a fixed cost).
        for lvl in range(1, layout.levels_up + 1):
            per_chunk = layout.groups_per_chunk // FANIN**lvl  # entries per chunk on this level
            below = levels[lvl - 1][:n_rows].view(n_rows, layout.n_chunks, FANIN, per_chunk)
            torch.amax(below, 2, out=levels[lvl][:n_rows].view(n_rows, layout.n_chunks, per_chunk))
        scores, items = topk_from_levels(
            [level[:n_rows] for level in levels],
            self.users[rows],
            self.items,
            self.k,
            layout.group,
            layout.groups_per_chunk,
            None if self.seen is None else self.seen.items[rows],
            candidate_buffer,
        )
        found = scores.shape[1]
        self.top_scores[rows, :found], self.top_items[rows, :found] = scores, items

    def top_k(self) -> tuple[Tensor, Tensor]:
        """(B, K) scores and items, best first; -inf and -1 where fewer than K items are left."""
        top_scores, top_items = self.top_scores, self.top_items
        if self.lib is not None and self.k:  # the C pass leaves per-row heaps: sort them, best first
            top_scores, order = top_scores.sort(dim=1, descending=True)
            top_items = top_items.gather(1, order)
        top_items.masked_fill_(top_scores == -math.inf, -1)
        return top_scores, top_items


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
    _check_vectors(users, items, k, chunk_size)
    users, items = users.float().contiguous(), items.float()
    layout = TileLayout.plan(users.shape[0], items.shape[0], users.shape[1], k, chunk_size)
    lib = native.load() if users.device.type == "cpu" else None
    ranked = None if targets is None else _targets(targets, users, items, layout, lib is not None)
    excluded = _seen(seen, layout, users.device)
    if ranked is not None and excluded is not None:
        ranked.seen = ((excluded.items == ranked.items[:, None]) & (excluded.items >= 0)).any(1)
    sweep = _Sweep(users, items, k, layout, lib, ranked, excluded)
    run_split(sweep, layout.n_blocks, users.device)
    top_scores, top_items = sweep.top_k()
    if ranked is None:
        return None, None, top_scores, top_items
    ranks = ranked.counts.sum(0, dtype=torch.float64).long()  # (B,)
    ranks.masked_fill_(ranked.seen, layout.n_items)
    return ranks, ranked.seen, top_scores, top_items


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
