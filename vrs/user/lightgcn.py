"""LightGCN's user side and graph: user and item vectors smoothed over the training interactions."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from vrs.threads import take_rows
from vrs.user.mf import at_real_positions, known_users


class LightGCN(nn.Module):
    """LightGCN (He et al., 2020): embeddings propagated over the user-item graph of training.

    Layer 0 holds a learned vector per user and the item tower's vector per item (with
    `fusion=id_embedding`: the item's ID embedding, as in the paper). Each of `n_layers` layers
    replaces every node's vector by the sum of its neighbours', each edge (u, i) weighted
    1 / sqrt(deg(u) deg(i)); the final vectors are the mean over layers 0..K. The score is their dot
    product. The state at every position of a user's history is that user's final vector
    (`user=mf` likewise), so `loss=bpr` on the history's targets is LightGCN's BPR training.

    The graph is the training split's (user, item) pairs, set by `set_interactions` (the model
    calls it from the datamodule) and saved with the checkpoint. Users are the dataset's user indices.

    Args:
        dim: vector width D (the item width).
        max_len, n_events: accepted for the common user-encoder interface; unused.
        n_users: number of users U (the dataset's, passed by the model).
        n_layers: propagation layers K (0: matrix factorisation).
        init_std: standard deviation of the users' normal initialisation.
    """

    causal: bool = True
    uses_users: bool = True
    reads_history: bool = False  # the history's items are never read (data.first_target allowed)
    graph: bool = True

    def __init__(
        self, dim: int, max_len: int, n_events: int, n_users: int, n_layers: int = 3, init_std: float = 0.1
    ) -> None:
        super().__init__()
        if n_users < 1:
            raise ValueError(f"user=lightgcn needs the number of users (n_users >= 1), got {n_users}")
        if n_layers < 0:
            raise ValueError(f"user.n_layers must be >= 0, got {n_layers}")
        self.dim = dim
        self.n_layers = n_layers
        self.weight = nn.Parameter(torch.randn(n_users, dim) * init_std)
        # The training graph: edge e joins user edge_users[e] and item edge_items[e].
        self.register_buffer("edge_users", torch.zeros(0, dtype=torch.long))
        self.register_buffer("edge_items", torch.zeros(0, dtype=torch.long))
        self._adjacency_cache: tuple[tuple, tuple[Tensor, Tensor]] | None = None

    @property
    def n_users(self) -> int:
        return self.weight.shape[0]

    def set_interactions(self, users: Tensor, items: Tensor) -> None:
        """The training (user, item) pairs (E,) each; repeated pairs count once."""
        if users.shape != items.shape or users.dim() != 1:
            raise ValueError(
                f"interactions: expected two (E,) tensors, got {tuple(users.shape)}, {tuple(items.shape)}"
            )
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.n_users):
            raise ValueError(f"interactions: user index out of range [0, {self.n_users})")
        pairs = torch.unique(torch.stack([users.long(), items.long()]), dim=1)
        device = self.weight.device
        self.edge_users, self.edge_items = pairs[0].to(device), pairs[1].to(device)
        self._adjacency_cache = None

    def check_graph(self, state: dict[str, Tensor], n_items: int, prefix: str = "") -> None:
        """Refuses a saved graph (`state`: a state dict, keys under `prefix`) that propagation could
        not use: edges that are not two integer vectors of one length, or that name a user or item
        outside this model's ranges (a crafted or mismatched checkpoint would otherwise fail deep in
        propagation, or index past a buffer)."""
        users, items = state.get(prefix + "edge_users"), state.get(prefix + "edge_items")
        if users is None or items is None:
            raise ValueError(f"checkpoint: {prefix}edge_users and {prefix}edge_items must be saved together")
        _check_index(users, prefix + "edge_users", self.n_users)
        _check_index(items, prefix + "edge_items", n_items)
        if len(users) != len(items):
            raise ValueError(
                f"checkpoint: {prefix}edge_users has {len(users)} edges, {prefix}edge_items {len(items)}"
            )

    def resize_graph(self, n_edges: int) -> None:
        """Empty edge buffers of `n_edges` (a checkpoint's graph is then loaded into them)."""
        self.edge_users = torch.zeros(n_edges, dtype=torch.long, device=self.weight.device)
        self.edge_items = torch.zeros(n_edges, dtype=torch.long, device=self.weight.device)
        self._adjacency_cache = None

    def propagate(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """items (N, D) layer-0 item vectors -> final (U, D) user and (N, D) item vectors."""
        if not self.edge_users.numel():
            raise RuntimeError(
                "user=lightgcn has no training graph: the model sets it from the datamodule "
                "(RecModule.fit_catalogue) or loads it from the checkpoint"
            )
        adjacency, adjacency_t = self._adjacency(items.shape[0], items.device)
        u, i = self.weight.float(), items.float()
        sum_u, sum_i = u, i
        for _ in range(self.n_layers):
            # Sparse products: 5x faster forward and backward than gathering E x D rows and adding
            # them back with index_add_ (ML-100K: 98k edges, one thread).
            u, i = (
                _SparseProduct.apply(adjacency, adjacency_t, i),
                _SparseProduct.apply(adjacency_t, adjacency, u),
            )
            sum_u, sum_i = sum_u + u, sum_i + i
        return (sum_u / (self.n_layers + 1)).to(items.dtype), (sum_i / (self.n_layers + 1)).to(items.dtype)

    def _adjacency(self, n_items: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The symmetrically normalised (U, N) user-item matrix of the edges propagation uses and its
        transpose, sparse; rebuilt only when those edges change (a new graph, a loaded checkpoint,
        FREEDOM's per-epoch pruning, train/eval)."""
        key = (
            n_items,
            device,
            self.edge_users.data_ptr(),
            self.edge_users.numel(),
            getattr(self, "graph_key", None),
        )
        if self._adjacency_cache is not None and self._adjacency_cache[0] == key:
            return self._adjacency_cache[1]
        eu, ei = self._edges()
        deg_u = torch.bincount(eu, minlength=self.n_users).clamp(min=1).float()
        deg_i = torch.bincount(ei, minlength=n_items).clamp(min=1).float()
        norm = (deg_u[eu] * deg_i[ei]).rsqrt()  # (E,)
        a = torch.sparse_coo_tensor(
            torch.stack([eu, ei]), norm, (self.n_users, n_items), check_invariants=True
        ).coalesce()
        pair = (_compressed(a, device), _compressed(a.t().coalesce(), device))
        self._adjacency_cache = (key, pair)
        return pair

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._adjacency_cache = None  # the edge buffers are overwritten in place
        super()._load_from_state_dict(*args, **kwargs)

    def _edges(self) -> tuple[Tensor, Tensor]:
        """The user-item edges propagation uses: every training pair."""
        return self.edge_users, self.edge_items

    def forward(
        self,
        h: Tensor,
        mask: Tensor,
        events: Tensor,
        users: Tensor | None = None,
        items: Tensor | None = None,
    ) -> Tensor:
        """h (B, T, D) (unused), mask (B, T), users (B,), items (N, D) layer-0 item vectors ->
        (B, T, D): the user's final vector at every real position, zeros at padding."""
        if items is None:
            raise ValueError("user=lightgcn needs the layer-0 item vectors (items=)")
        return self.user_states(users, mask, self.propagate(items)[0])

    def user_states(self, users: Tensor | None, mask: Tensor, final_users: Tensor) -> Tensor:
        """users (B,) indices, mask (B, T), final_users (U, D) from `propagate` -> (B, T, D): each
        user's final vector at every real position, zeros at padding."""
        users = known_users(users, self.n_users, "user=lightgcn")
        return at_real_positions(take_rows(final_users, users), mask)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, dim={self.dim}, n_layers={self.n_layers}, edges={self.edge_users.numel()}"


class _SparseProduct(torch.autograd.Function):
    """A @ x for a constant sparse A whose transpose is at hand: the backward pass multiplies by the
    given transpose instead of transposing A on every step (with CSR: 77 ms forward and backward
    against 203 ms for COO's `torch.sparse.mm` on Beauty's graph, one thread; benchmarks/bench_graph.py)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, torch.sparse.mm(ctx.a_t, grad)


def _compressed(a: Tensor, device: torch.device) -> Tensor:
    """A coalesced COO matrix on `device`, as CSR where the device's sparse products take it."""
    a = a.to(device)
    if device.type not in ("cpu", "cuda"):
        return a
    with warnings.catch_warnings():  # "CSR support is in beta": the products used here are stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return a.to_sparse_csr()


def _check_index(t: object, name: str, size: int) -> None:
    if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype != torch.long:
        what = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"checkpoint: {name} must be a 1-D int64 tensor, got {what}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
        raise ValueError(
            f"checkpoint: {name} holds indices in [{int(t.min())}, {int(t.max())}], expected [0, {size})"
        )


def knn_graph(
    features: Tensor, present: Tensor, k: int, chunk_size: int = 1024, binary: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """The items' k-nearest-neighbour graph by cosine of their features, symmetrically normalised.

    Row i keeps its k most similar items (itself included, as FREEDOM's graph does), weighted by the
    cosine (`binary`: by 1, as FREEDOM's code does); weights are then scaled by 1 / sqrt(deg(i)
    deg(j)) with deg the row sums. Items without the modality (`present` False) have no edges.

    Exact search, `chunk_size` rows at a time: O(N^2 F) time and O(chunk_size N) memory, seconds
    for 10^4-10^5 items on a CPU; an approximate index would be needed far beyond that.

    Returns:
        (src, dst, weight) of the edges, (N * k,) each at most.
    """
    x = torch.nn.functional.normalize(features.float(), dim=-1)
    rows = present.nonzero().flatten()
    if len(rows) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, torch.zeros(0)
    k = min(k, len(rows))
    candidates = x[rows]  # (P, F)
    src, dst, weight = [], [], []
    for start in range(0, len(rows), chunk_size):
        block = rows[start : start + chunk_size]
        sims = x[block] @ candidates.T  # (b, P)
        values, idx = sims.topk(k, dim=1)
        src.append(block.repeat_interleave(k))
        dst.append(rows[idx.flatten()])
        weight.append(torch.ones_like(values).flatten() if binary else values.flatten())
    src_t, dst_t, w = torch.cat(src), torch.cat(dst), torch.cat(weight)
    deg = torch.zeros(len(features)).index_add_(0, src_t, w)
    inv = deg.clamp(min=1e-12).rsqrt()
    return src_t, dst_t, inv[src_t] * w * inv[dst_t]


class Freedom(LightGCN):
    """FREEDOM (Zhou and Shen, 2023) on vrs's item tower: LightGCN over a pruned user-item graph plus
    a frozen item-item graph from the items' content features.

    Item vectors: layer-0 vectors (the item tower's: with `fusion=concat`, the ID embedding fused with
    the frozen image and text features) go through LightGCN's layers over the user-item graph, and
    the item-item graph's `item_layers` propagation of the layer-0 vectors is added. The item-item
    graph is each modality's k-nearest-neighbour graph by cosine of its frozen features (symmetric
    normalisation), mixed `image_weight` image / 1 - `image_weight` for the other modalities (text),
    built once (`set_item_graph`, from the item tower's frozen features) and saved with the
    checkpoint. Training prunes the user-item graph afresh each epoch (`new_epoch`): it keeps a
    1 - `prune` share of the edges, drawn without replacement with probability proportional to
    1 / sqrt(deg(u) deg(i)) (FREEDOM's degree-sensitive edge pruning), normalised over the kept edges;
    evaluation uses every edge.

    With `fusion=side` layer 0 is the ID embedding and the content features reach the model only
    through the item-item graph and an auxiliary BPR term, as in the paper (`experiment=
    freedom_paper`); with a fusion of content and ID (`experiment=freedom`) layer 0 is the item
    tower's fused vector, so items never seen in training get a vector from their own content as
    well as from their neighbours'.

    Args:
        dim, max_len, n_events, n_users, n_layers, init_std: as `LightGCN`.
        knn_k: neighbours per item in the item-item graph.
        image_weight: share of the image graph (the rest is split evenly over the other modalities).
        item_layers: propagation steps over the item-item graph.
        prune: share of user-item edges dropped per training epoch (0: none).
        knn_weights: "cosine" (edges weighted by similarity) or "binary" (by 1, as FREEDOM's code).
    """

    def __init__(
        self,
        dim: int,
        max_len: int,
        n_events: int,
        n_users: int,
        n_layers: int = 2,
        init_std: float = 0.1,
        knn_k: int = 10,
        image_weight: float = 0.1,
        item_layers: int = 1,
        prune: float = 0.8,
        knn_weights: str = "cosine",
    ) -> None:
        super().__init__(dim, max_len, n_events, n_users, n_layers, init_std)
        if knn_weights not in ("cosine", "binary"):
            raise ValueError(f"user.knn_weights must be 'cosine' or 'binary', got {knn_weights!r}")
        self.knn_weights = knn_weights
        if knn_k < 1:
            raise ValueError(f"user.knn_k must be >= 1, got {knn_k}")
        if not 0.0 <= image_weight <= 1.0:
            raise ValueError(f"user.image_weight must be in [0, 1], got {image_weight}")
        if not 0.0 <= prune < 1.0:
            raise ValueError(f"user.prune must be in [0, 1), got {prune}")
        self.knn_k, self.image_weight, self.item_layers, self.prune = knn_k, image_weight, item_layers, prune
        self.register_buffer("item_src", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_dst", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_weight", torch.zeros(0))
        self._kept: Tensor | None = None  # this epoch's kept user-item edges (training)
        self._draws = 0  # how many times `new_epoch` drew them

    needs_item_graph: bool = True

    def set_item_graph(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> None:
        """Builds the item-item graph from each modality's (N, F) frozen features."""
        if not features:
            raise ValueError(
                "user=freedom builds its item-item graph from frozen content features: the item tower "
                "has none (use an image/text encoder with encoder.finetune.freeze=true and a fusion "
                "that reads them, e.g. fusion=concat)"
            )
        others = [m for m in features if m != "image"]
        weights = {m: (self.image_weight if m == "image" else 1.0) for m in features}
        if "image" in features and others:
            weights.update({m: (1.0 - self.image_weight) / len(others) for m in others})
        elif "image" in features:
            weights["image"] = 1.0
        else:
            weights = {m: 1.0 / len(others) for m in others}
        src, dst, w = [], [], []
        for m, x in features.items():
            s, d, v = knn_graph(x.cpu(), present[m].cpu(), self.knn_k, binary=self.knn_weights == "binary")
            src.append(s), dst.append(d), w.append(v * weights[m])
        device = self.weight.device
        self.item_src, self.item_dst = torch.cat(src).to(device), torch.cat(dst).to(device)
        self.item_weight = torch.cat(w).to(device)

    def check_graph(self, state: dict[str, Tensor], n_items: int, prefix: str = "") -> None:
        super().check_graph(state, n_items, prefix)
        src, dst, w = (state.get(prefix + k) for k in ("item_src", "item_dst", "item_weight"))
        if src is None and dst is None and w is None:
            return  # no item-item graph saved: propagation refuses to run until one is built
        if src is None or dst is None or w is None:
            raise ValueError(f"checkpoint: {prefix}item_src, item_dst and item_weight must be saved together")
        _check_index(src, prefix + "item_src", n_items)
        _check_index(dst, prefix + "item_dst", n_items)
        if not isinstance(w, Tensor) or w.shape != src.shape or dst.shape != src.shape:
            raise ValueError(f"checkpoint: {prefix}item_src, item_dst and item_weight must have one length")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"checkpoint: {prefix}item_weight holds non-finite values")

    def resize_graph(self, n_edges: int, n_item_edges: int = 0) -> None:
        super().resize_graph(n_edges)
        device = self.weight.device
        self.item_src = torch.zeros(n_item_edges, dtype=torch.long, device=device)
        self.item_dst = torch.zeros(n_item_edges, dtype=torch.long, device=device)
        self.item_weight = torch.zeros(n_item_edges, device=device)

    def new_epoch(self, generator: torch.Generator | None = None) -> None:
        """Draws this epoch's pruned user-item graph (degree-sensitive, without replacement)."""
        self._draws += 1
        if self.prune <= 0 or not self.edge_users.numel():
            self._kept = None
            return
        eu, ei = self.edge_users, self.edge_items
        deg_u = torch.bincount(eu).float()
        deg_i = torch.bincount(ei).float()
        probs = (deg_u[eu] * deg_i[ei]).rsqrt()
        n_keep = max(1, int(len(eu) * (1.0 - self.prune)))
        self._kept = torch.multinomial(probs.cpu(), n_keep, replacement=False, generator=generator).to(
            eu.device
        )

    @property
    def graph_key(self) -> int | None:
        """Changes whenever the pruned graph propagation uses does (see `Recommender.propagated`)."""
        return self._draws if self.training and self._kept is not None else None

    def _edges(self) -> tuple[Tensor, Tensor]:
        """This epoch's pruned edges while training; every edge in evaluation."""
        if self.training and self._kept is not None:
            return self.edge_users[self._kept], self.edge_items[self._kept]
        return self.edge_users, self.edge_items

    def propagate(self, items: Tensor) -> tuple[Tensor, Tensor]:
        users, item_vectors = super().propagate(items)
        if not self.item_src.numel():
            raise RuntimeError(
                "user=freedom has no item-item graph: the model builds it from the item tower's frozen "
                "features (RecModule.fit_catalogue) or loads it from the checkpoint"
            )
        h = items
        for _ in range(self.item_layers):
            h = torch.zeros_like(h).index_add_(
                0, self.item_src, self.item_weight[:, None].to(h.dtype) * take_rows(h, self.item_dst)
            )
        return users, item_vectors + h

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", knn_k={self.knn_k}, knn_weights={self.knn_weights}, item_edges={self.item_src.numel()}"
            + f", prune={self.prune}"
        )
