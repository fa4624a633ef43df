"""user=lightgcn: propagation equals LightGCN's matrix form; states and item vectors come from it."""

from __future__ import annotations

import pytest
import torch

from vrs.user.lightgcn import Freedom, LightGCN, knn_graph

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
    layers = [torch.cat([encoder.weight, items])]
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


def test_propagation_gradients_equal_the_matrix_forms() -> None:
    # The sparse product's backward multiplies by the stored transpose: a swapped or untransposed
    # matrix would give other gradients (the graph is not square, let alone symmetric).
    encoder = _encoder(n_layers=2)
    items = torch.randn(N, D, generator=torch.Generator().manual_seed(2), requires_grad=True)
    weights = torch.randn(U + N, D, generator=torch.Generator().manual_seed(3))
    users, item_vectors = encoder.propagate(items)
    (torch.cat([users, item_vectors]) * weights).sum().backward()
    got_users, got_items = encoder.weight.grad.clone(), items.grad.clone()
    encoder.weight.grad, items.grad = None, None
    users, item_vectors = _matrix_form(encoder, items)
    (torch.cat([users, item_vectors]) * weights).sum().backward()
    torch.testing.assert_close(got_users, encoder.weight.grad)
    torch.testing.assert_close(got_items, items.grad)


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


def test_knn_graph_keeps_k_neighbours_per_item_symmetrically_normalised() -> None:
    g = torch.Generator().manual_seed(0)
    features, present = torch.randn(8, 3, generator=g), torch.ones(8, dtype=torch.bool)
    present[5] = False  # no such feature: no edges
    src, dst, weight = knn_graph(features, present, k=3)
    assert torch.equal(torch.bincount(src, minlength=8), torch.tensor([3, 3, 3, 3, 3, 0, 3, 3]))
    assert 5 not in dst.tolist()
    x = torch.nn.functional.normalize(features, dim=-1)
    adj = torch.zeros(8, 8)
    for i in [0, 1, 2, 3, 4, 6, 7]:
        sims = x[i] @ x.T
        sims[5] = -2.0
        top = sims.topk(3).indices
        adj[i, top] = sims[top]
    assert adj[0, 0] > 0  # an item is its own nearest neighbour
    deg = adj.sum(1).clamp(min=1e-12)
    want = adj / deg.sqrt()[:, None] / deg.sqrt()[None, :]
    got = torch.zeros(8, 8).index_put_((src, dst), weight, accumulate=True)
    torch.testing.assert_close(got, want)


def _freedom(prune: float) -> Freedom:
    torch.manual_seed(0)
    encoder = Freedom(
        dim=D, max_len=8, n_events=1, n_users=U, n_layers=2, knn_k=2, image_weight=0.25, prune=prune
    )
    encoder.set_interactions(USERS, ITEMS)
    g = torch.Generator().manual_seed(3)
    features = {"image": torch.randn(N, 4, generator=g), "text": torch.randn(N, 7, generator=g)}
    encoder.set_item_graph(features, {m: torch.ones(N, dtype=torch.bool) for m in features})
    return encoder


def test_freedom_adds_the_item_graph_propagation_to_lightgcn() -> None:
    encoder = _freedom(prune=0.5).eval()  # evaluation: every user-item edge
    items = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    users, item_vectors = encoder.propagate(items)
    want_users, want_items = _matrix_form(encoder, items)
    s = torch.zeros(N, N).index_put_(
        (encoder.item_src, encoder.item_dst), encoder.item_weight, accumulate=True
    )
    torch.testing.assert_close(users, want_users)
    torch.testing.assert_close(item_vectors, want_items + s @ items)
    # image 0.25 + text 0.75 of two symmetrically normalised graphs
    image = knn_graph(
        torch.randn(N, 4, generator=torch.Generator().manual_seed(3)), torch.ones(N, dtype=torch.bool), 2
    )
    assert encoder.item_src.numel() == 2 * N * 2
    torch.testing.assert_close(encoder.item_weight[: N * 2], 0.25 * image[2])


def test_freedom_prunes_a_share_of_edges_per_epoch_reproducibly() -> None:
    encoder = _freedom(prune=0.5).train()
    encoder.new_epoch(torch.Generator().manual_seed(0))
    kept = encoder._kept.clone()
    assert len(kept) == 3 and len(set(kept.tolist())) == 3  # half of 7 edges, without replacement
    encoder.new_epoch(torch.Generator().manual_seed(0))
    assert torch.equal(kept, encoder._kept)
    items = torch.randn(N, D)
    users, _ = encoder.propagate(items)
    pruned = LightGCN(dim=D, max_len=8, n_events=1, n_users=U, n_layers=2)
    pruned.weight = encoder.weight
    pruned.set_interactions(encoder.edge_users[kept], encoder.edge_items[kept])
    torch.testing.assert_close(users, pruned.propagate(items)[0])
    assert encoder.edge_users.numel() == 7  # the full graph is kept for evaluation


def test_freedom_needs_frozen_features() -> None:
    encoder = Freedom(dim=D, max_len=8, n_events=1, n_users=U)
    with pytest.raises(ValueError, match="frozen content features"):
        encoder.set_item_graph({}, {})


def _graph_module():
    from types import SimpleNamespace

    from vrs.data.content import ItemContent
    from vrs.lit.module import RecModule

    torch.manual_seed(0)
    module = RecModule(
        n_items=N,
        n_events=1,
        max_len=4,
        dim=D,
        n_users=U,
        fusion={
            "_target_": "vrs.fusion.single_modality.SingleModalityFusion",
            "_partial_": True,
            "modality": "id",
            "project": False,
        },
        user={"_target_": "vrs.user.lightgcn.LightGCN", "_partial_": True, "n_layers": 2},
        loss={"_target_": "vrs.losses.BPRLoss"},
    )
    content = ItemContent(
        images=torch.zeros(N, 3, 8, 8, dtype=torch.uint8),
        has_image=torch.zeros(N, dtype=torch.bool),
        texts=[""] * N,
        has_text=torch.zeros(N, dtype=torch.bool),
    )
    module.attach_data(content, torch.ones(N))
    module.fit_catalogue(SimpleNamespace(train_pairs=(USERS, ITEMS)))
    return module


def _count_propagations(module, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    propagate = module.net.user_encoder.propagate

    def counted(items):
        calls[0] += 1
        return propagate(items)

    monkeypatch.setattr(module.net.user_encoder, "propagate", counted)
    return calls


def test_propagation_runs_once_per_training_step_and_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from vrs.data.batch import RecBatch

    module = _graph_module()
    calls = _count_propagations(module, monkeypatch)
    items = torch.tensor([[0, 1, 2, 3], [0, 0, 2, 4]])
    mask = torch.tensor([[True] * 4, [False, False, True, True]])
    batch = RecBatch(
        items=items, events=mask.long(), mask=mask, targets=torch.where(mask, items.roll(-1, 1), -1),
        users=torch.tensor([0, 2]),
    )  # fmt: skip
    optimizer = module.configure_optimizers()
    for step in range(2):
        optimizer.zero_grad()
        module.training_step(batch, step).backward()  # states, positives and negatives: one propagation
        assert calls[0] == step + 1
        optimizer.step()  # new weights: the next step propagates again
    module.eval()
    with torch.no_grad():
        vectors = module.net.encode_items()
        for _ in range(3):
            module.net.encode_users(batch, vectors)
    assert calls[0] == 3  # one for the whole evaluation
    with torch.no_grad(), pytest.raises(ValueError, match="new history"):
        module.net.encode_users(RecBatch(**{**batch.__dict__, "users": torch.tensor([-1, 0])}), vectors)


def test_a_saved_graph_that_propagation_could_not_use_is_refused_on_load() -> None:
    module = _graph_module()
    good = {k: v.clone() for k, v in module.state_dict().items()}
    module.on_load_checkpoint({"state_dict": dict(good)})  # the module's own graph loads
    assert module.net.user_encoder.edge_users.numel() == 7
    key = "net.user_encoder."
    crafted = {
        "edge_items": (good[key + "edge_items"].clone().fill_(N), r"edge_items holds indices in \[6, 6\], expected \[0, 6\)"),
        "edge_users": (good[key + "edge_users"] - 1, r"edge_users holds indices in \[-1, 2\], expected \[0, 4\)"),
    }  # fmt: skip
    for name, (bad, message) in crafted.items():
        with pytest.raises(ValueError, match=message):
            module.on_load_checkpoint({"state_dict": {**good, key + name: bad}})
    with pytest.raises(ValueError, match="must be a 1-D int64 tensor, got torch.float32"):
        module.on_load_checkpoint(
            {"state_dict": {**good, key + "edge_users": good[key + "edge_users"].float()}}
        )
    with pytest.raises(ValueError, match="edge_users has 7 edges, net.user_encoder.edge_items 6"):
        module.on_load_checkpoint({"state_dict": {**good, key + "edge_items": good[key + "edge_items"][:6]}})


def test_freedom_refuses_a_saved_item_graph_it_could_not_use() -> None:
    encoder = _freedom(prune=0.0)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.check_graph(state, N)  # its own graph passes
    with pytest.raises(ValueError, match=r"item_dst holds indices in \[0, 9\], expected \[0, 6\)"):
        encoder.check_graph(
            {**state, "item_dst": state["item_dst"].clone().index_fill_(0, torch.tensor([0]), 9)}, N
        )
    with pytest.raises(ValueError, match="item_weight holds non-finite values"):
        encoder.check_graph({**state, "item_weight": state["item_weight"].clone().fill_(float("nan"))}, N)
    with pytest.raises(ValueError, match="must be saved together"):
        encoder.check_graph({k: v for k, v in state.items() if k != "item_weight"}, N)


def test_loading_another_graph_of_the_same_size_is_not_served_a_stale_matrix() -> None:
    first, second = _encoder(), _encoder()
    second.set_interactions(USERS, ITEMS.flip(0))  # other edges, the same count
    items = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    first.propagate(items)  # builds and caches its matrix
    ptr = first.edge_users.data_ptr()
    first.load_state_dict(second.state_dict())  # copied into the same buffers
    assert first.edge_users.data_ptr() == ptr
    torch.testing.assert_close(first.propagate(items), second.propagate(items))
