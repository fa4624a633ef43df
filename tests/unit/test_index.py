import math

import pytest
import torch

from vrs.retrieval import ExactItemIndex


def reference(users, items, k, exclude=None):
    scores = users @ items.T
    if exclude is not None:
        for b in range(users.shape[0]):
            scores[b, exclude[b][exclude[b] >= 0]] = -math.inf
    vals, idx = scores.sort(dim=1, descending=True)
    vals, idx = vals[:, :k], idx[:, :k]
    idx = idx.masked_fill(vals == -math.inf, -1)
    if k > items.shape[0]:
        pad = k - items.shape[0]
        vals = torch.cat([vals, torch.full((users.shape[0], pad), -math.inf)], 1)
        idx = torch.cat([idx, torch.full((users.shape[0], pad), -1)], 1)
    return vals, idx


@pytest.mark.parametrize("chunk_size", [1, 13, 256, 65536])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_search_equals_argsort(chunk_size, k):
    g = torch.Generator().manual_seed(k)
    users, items = torch.randn(17, 8, generator=g), torch.randn(500, 8, generator=g)
    exclude = torch.randint(-1, 500, (17, 30), generator=g)
    for exc in (None, exclude):
        vals, idx = ExactItemIndex(items, chunk_size).search(users, k, exclude=exc)
        ref_vals, ref_idx = reference(users, items, k, exc)
        assert idx.shape == (17, k) and vals.dtype == torch.float32
        assert torch.equal(idx, ref_idx)  # continuous random scores: no ties
        torch.testing.assert_close(vals, ref_vals)


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_k_larger_than_remaining_items(chunk_size):
    users, items = torch.randn(3, 4), torch.randn(6, 4)
    exclude = torch.tensor([[0, 1, 2, 3, -1], [-1, -1, -1, -1, -1], [0, 1, 2, 3, 4]])
    vals, idx = ExactItemIndex(items, chunk_size).search(users, 8, exclude=exclude)
    ref_vals, ref_idx = reference(users, items, 8, exclude)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(vals, ref_vals)
    assert (idx[0, 2:] == -1).all() and (idx[1, 6:] == -1).all() and (idx[2, 1:] == -1).all()
    assert torch.isinf(vals[0, 2:]).all() and sorted(idx[0, :2].tolist()) == [4, 5]


def test_k_zero_and_validation():
    index = ExactItemIndex(torch.randn(5, 2))
    vals, idx = index.search(torch.randn(3, 2), 0)
    assert vals.shape == idx.shape == (3, 0)
    assert len(index) == 5
    with pytest.raises(ValueError):
        index.search(torch.randn(3, 3), 2)


@pytest.mark.parametrize("chunk_size", [100, 65536])
@pytest.mark.parametrize("k", [2, 5])
def test_search_multi_level_hierarchy(chunk_size, k):
    """Large N, small k: several levels of group maxima above the groups, a padded last chunk."""
    g = torch.Generator().manual_seed(chunk_size + k)
    users, items = torch.randn(7, 4, generator=g), torch.randn(20_001, 4, generator=g)
    exclude = torch.randint(-1, 20_001, (7, 50), generator=g)
    exclude[:, :3] = (users @ items.T).topk(3, dim=1).indices  # the best items are seen
    vals, idx = ExactItemIndex(items, chunk_size).search(users, k, exclude=exclude)
    ref_vals, ref_idx = reference(users, items, k, exclude)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(vals, ref_vals)


def test_native_tile_pass_equals_torch_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    from vrs.retrieval import native, scoring

    if native.load() is None:
        pytest.skip("no C compiler: the PyTorch-op path is the only one (tested everywhere else)")
    torch.manual_seed(0)
    n, d, b = 3001, 8, 300
    users = torch.randint(-2, 3, (b, d)).float()  # small integers: many exact ties
    items = torch.randint(-2, 3, (n, d)).float()
    targets = torch.randint(0, n, (b,))
    seen = torch.randint(-1, n, (b, 7))
    seen[:10, 0] = targets[:10]  # some targets were seen
    fused = scoring.rank_and_topk(users, items, targets, seen, k=15, chunk_size=256)
    monkeypatch.setattr(native, "load", lambda: None)
    plain = scoring.rank_and_topk(users, items, targets, seen, k=15, chunk_size=256)
    assert torch.equal(fused[0], plain[0]) and torch.equal(fused[1], plain[1])
    # Top-K lists may order exact ties differently: compare the scores they reach.
    scores = users @ items.T  # (B, N)
    got = [scores.gather(1, top.clamp(min=0)).masked_fill(top < 0, -1e9) for top in (fused[3], plain[3])]
    assert torch.equal(got[0], got[1])
