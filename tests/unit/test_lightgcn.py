"""user=lightgcn: propagation equals LightGCN's matrix form; states and item vectors come from it."""

from __future__ import annotations

import pytest
import torch

from vrs.user.lightgcn import LightGCN

U, N, D = 4, 6, 5
USERS = torch.tensor([0, 0, 1, 2, 2, 2, 3, 0])
ITEMS = torch.tensor([1, 2, 2, 0, 3, 5, 5, 1])  # (0, 1) twice: one edge


def _encoder(n_layers: int = 2) -> LightGCN:
    torch.manual_seed(0)
    encoder = LightGCN(dim=D, max_len=8, n_events=1, n_users=U, n_layers=n_layers)
    encoder.set_interactions(USERS, ITEMS)
    return encoder


def _matrix_form(encoder: LightGCN, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mean_k A_hat^k E0 with A_hat = D^-1/2 A D^-1/2 over the (U + N) bipartite graph."""
    adj = torch.zeros(U + N, U + N)
    for u, i in set(zip(USERS.tolist(), ITEMS.tolist(), strict=True)):
        adj[u, U + i] = adj[U + i, u] = 1.0
    deg = adj.sum(1).clamp(min=1)
    a_hat = adj / deg.sqrt()[:, None] / deg.sqrt()[None, :]
    e = torch.cat([encoder.weight.detach(), items])
    layers = [e]
    for _ in range(encoder.n_layers):
        layers.append(a_hat @ layers[-1])
    final = torch.stack(layers).mean(0)
    return final[:U], final[U:]


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_propagation_equals_the_matrix_form(n_layers: int) -> None:
    encoder = _encoder(n_layers)
    items = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    users, item_vectors = encoder.propagate(items)
    want_users, want_items = _matrix_form(encoder, items)
    torch.testing.assert_close(users, want_users)
    torch.testing.assert_close(item_vectors, want_items)
    assert encoder.edge_users.numel() == 7  # the repeated pair counts once


def test_state_is_the_users_propagated_vector_at_real_positions() -> None:
    encoder = _encoder()
    items = torch.randn(N, D)
    mask = torch.tensor([[False, True, True], [True, True, True]])
    states = encoder(None, mask, mask.long(), users=torch.tensor([2, 0]), items=items)
    users, _ = encoder.propagate(items)
    assert torch.equal(states[0, 0], torch.zeros(D))
    assert torch.equal(states[0, 2], users[2]) and torch.equal(states[1, 0], users[0])


def test_unknown_users_and_missing_graph_are_refused() -> None:
    encoder = _encoder()
    mask = torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="new history"):
        encoder(None, mask, mask.long(), users=torch.tensor([-1]), items=torch.randn(N, D))
    with pytest.raises(ValueError, match="out of range"):
        encoder(None, mask, mask.long(), users=torch.tensor([U]), items=torch.randn(N, D))
    with pytest.raises(ValueError, match="user index out of range"):
        encoder.set_interactions(torch.tensor([U]), torch.tensor([0]))
    with pytest.raises(RuntimeError, match="no training graph"):
        LightGCN(dim=D, max_len=8, n_events=1, n_users=U).propagate(torch.randn(N, D))
