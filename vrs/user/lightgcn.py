"""LightGCN's user side and graph: user and item vectors smoothed over the training interactions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


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

    def resize_graph(self, n_edges: int) -> None:
        """Empty edge buffers of `n_edges` (a checkpoint's graph is then loaded into them)."""
        self.edge_users = torch.zeros(n_edges, dtype=torch.long, device=self.weight.device)
        self.edge_items = torch.zeros(n_edges, dtype=torch.long, device=self.weight.device)

    def propagate(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """items (N, D) layer-0 item vectors -> final (U, D) user and (N, D) item vectors."""
        if not self.edge_users.numel():
            raise RuntimeError(
                "user=lightgcn has no training graph: the model sets it from the datamodule "
                "(RecModule.fit_catalogue) or loads it from the checkpoint"
            )
        eu, ei = self.edge_users, self.edge_items
        n_users, n_items = self.n_users, items.shape[0]
        deg_u = torch.bincount(eu, minlength=n_users).clamp(min=1).to(items.dtype)
        deg_i = torch.bincount(ei, minlength=n_items).clamp(min=1).to(items.dtype)
        norm = (deg_u[eu] * deg_i[ei]).rsqrt()[:, None]  # (E, 1)
        u, i = self.weight.to(items.dtype), items
        sum_u, sum_i = u, i
        for _ in range(self.n_layers):
            u, i = (
                torch.zeros_like(u).index_add_(0, eu, norm * i[ei]),
                torch.zeros_like(i).index_add_(0, ei, norm * u[eu]),
            )
            sum_u, sum_i = sum_u + u, sum_i + i
        return sum_u / (self.n_layers + 1), sum_i / (self.n_layers + 1)

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
        if users is None or items is None:
            raise ValueError("user=lightgcn scores known users only: the batch carries no user indices")
        if users.numel() and int(users.min()) < 0:
            raise ValueError(
                "user=lightgcn keeps a vector for each training user only: a new history (no user "
                "index) cannot be scored; recommend for the dataset's users, or use a history-based "
                "user encoder"
            )
        if users.numel() and int(users.max()) >= self.n_users:
            raise ValueError(
                f"user index out of range [0, {self.n_users}): this model was trained on {self.n_users} users"
            )
        vectors = self.propagate(items)[0][users]  # (B, D)
        states = vectors[:, None, :].expand(-1, mask.shape[1], -1)  # (B, T, D)
        return torch.where(mask.bool()[..., None], states, 0.0)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, dim={self.dim}, n_layers={self.n_layers}, edges={self.edge_users.numel()}"
