"""Matrix factorisation's user side: one learned vector per user, whatever the history."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.threads import take_rows


def known_users(users: Tensor | None, n_users: int, name: str) -> Tensor:
    """The batch's user indices, checked: encoders with a vector per training user (`name`) cannot
    score a batch without indices, a new history (index -1) or an index beyond their `n_users`."""
    if users is None:
        raise ValueError(f"{name} scores known users only: the batch carries no user indices")
    if users.numel() and int(users.min()) < 0:
        raise ValueError(
            f"{name} keeps a vector for each training user only: a new history (no user index) "
            "cannot be scored; recommend for the dataset's users, or use a history-based user encoder"
        )
    if users.numel() and int(users.max()) >= n_users:
        raise ValueError(f"user index out of range [0, {n_users}): this model was trained on {n_users} users")
    return users


def at_real_positions(vectors: Tensor, mask: Tensor) -> Tensor:
    """vectors (B, D), mask (B, T) -> (B, T, D): each row's vector at its real positions, zeros at padding."""
    states = vectors[:, None, :].expand(-1, mask.shape[1], -1)
    return torch.where(mask.bool()[..., None], states, 0.0)


class UserEmbedding(nn.Module):
    """A learned vector per user (BPR-MF with `loss=bpr` and the ID embedding as the item vector).

    The state at every position of a user's history is that user's vector, so training on the
    history's next-item targets fits the user vector to all of them: matrix factorisation over the
    (user, item) pairs of training, each history's first item included with `data.first_target=true`
    (otherwise an input, never a target).
    The history's items themselves are ignored. Users are the dataset's user indices
    (`RecBatch.users`); a batch without them is refused.

    With `item_bias` the state's last coordinate is a constant 1, so the item vector's last coordinate
    is an item bias (a learned popularity term, as in Cornac's and most BPR-MF implementations).

    Args:
        dim: user vector width D (the item width).
        max_len, n_events: accepted for the common user-encoder interface; unused.
        n_users: number of users U (the dataset's, passed by the model).
        init_std: standard deviation of the normal initialisation.
        item_bias: keep the last coordinate at 1 (D - 1 learned coordinates per user).
    """

    causal: bool = True
    uses_users: bool = True
    reads_history: bool = False  # the history's items are never read (data.first_target allowed)

    def __init__(
        self,
        dim: int,
        max_len: int,
        n_events: int,
        n_users: int,
        init_std: float = 0.02,
        item_bias: bool = True,
    ) -> None:
        super().__init__()
        if n_users < 1:
            raise ValueError(f"user=mf needs the number of users (n_users >= 1), got {n_users}")
        if item_bias and dim < 2:
            raise ValueError(f"user=mf with item_bias needs dim >= 2, got {dim}")
        self.dim = dim
        self.item_bias = item_bias
        self.weight = nn.Parameter(torch.randn(n_users, dim - int(item_bias)) * init_std)

    def forward(self, h: Tensor, mask: Tensor, events: Tensor, users: Tensor | None = None) -> Tensor:
        """h (B, T, D) (unused), mask (B, T), users (B,) -> (B, T, D): the user's vector at every real
        position, zeros at padding."""
        users = known_users(users, self.weight.shape[0], "user=mf")
        vectors = take_rows(self.weight, users)  # (B, D or D - 1)
        if self.item_bias:
            vectors = torch.cat([vectors, vectors.new_ones(len(users), 1)], dim=1)
        return at_real_positions(vectors, mask)

    def extra_repr(self) -> str:
        return f"n_users={self.weight.shape[0]}, dim={self.dim}, item_bias={self.item_bias}"
