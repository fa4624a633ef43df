import math

import pytest
import torch

from vrs.retrieval import INDEX_BACKENDS, ExactItemIndex, FaissItemIndex, ItemIndex, build_index

N, D, B = 5000, 32, 64


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    items, queries = torch.randn(N, D, generator=g), torch.randn(B, D, generator=g)
    exclude = torch.randint(-1, N, (B, 40), generator=g)
    return items, queries, exclude


@pytest.fixture(scope="module")
def indexes(data):
    indexes = {backend: build_index(data[0], backend) for backend in INDEX_BACKENDS}
    # Random Gaussian vectors have no clusters: IVF needs half of its 128 lists for recall@10 >= 0.9
    # (the default nlist/8 suits clustered embeddings).
    indexes["ivf"].set_search_params(nprobe=64)
    return indexes


def recall(idx, ref):
    hits = (idx[:, :, None] == ref[:, None, :]) & (ref >= 0)[:, None, :]  # (B, K, K)
    return hits.any(1).sum().item() / (ref >= 0).sum().item()


def test_flat_equals_exact(data, indexes):
    items, queries, exclude = data
    for exc in (None, exclude):
        ref_s, ref_i = indexes["exact"].search(queries, 10, exc)
        s, i = indexes["flat"].search(queries, 10, exc)
        torch.testing.assert_close(s, ref_s, atol=1e-4, rtol=1e-5)
        # Ids agree except where two scores are within rounding of each other (order of ties).
        tied = torch.zeros_like(ref_s, dtype=torch.bool)
        tied[:, 1:] |= (ref_s[:, 1:] - ref_s[:, :-1]).abs() < 1e-4
        tied[:, :-1] |= tied[:, 1:].clone()
        assert torch.equal(i[~tied], ref_i[~tied])


@pytest.mark.parametrize("backend", ["ivf", "hnsw"])
def test_ann_recall(data, indexes, backend):
    items, queries, exclude = data
    for exc in (None, exclude):
        _, ref = indexes["exact"].search(queries, 10, exc)
        _, idx = indexes[backend].search(queries, 10, exc)
        assert recall(idx, ref) >= 0.9


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
def test_exclusion(data, indexes, backend):
    items, queries, exclude = data
    # The exact top 5 of every row, random ids, duplicates and -1 padding.
    _, top = indexes["exact"].search(queries, 5)
    exc = torch.cat([top, top[:, :2], exclude], 1)  # (B, 47)
    scores, idx = indexes[backend].search(queries, 20, exc)
    assert idx.shape == scores.shape == (B, 20) and idx.dtype == torch.long and scores.dtype == torch.float32
    assert (idx >= 0).all()  # plenty of items left: every row is full
    assert not (idx[:, :, None] == exc[:, None, :]).any()
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    assert all(len(set(row.tolist())) == 20 for row in idx)


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
def test_tail_when_items_run_out(backend):
    g = torch.Generator().manual_seed(1)
    items, queries = torch.randn(30, 4, generator=g), torch.randn(3, 4, generator=g)
    exclude = torch.tensor([list(range(25)), [-1] * 25, [3] * 25])
    index = build_index(items, backend, **({"nlist": 4} if backend == "ivf" else {}))
    scores, idx = index.search(queries, 40, exclude)
    n_valid = (idx >= 0).sum(1).tolist()
    assert n_valid == [5, 30, 29]
    assert torch.isinf(scores[idx < 0]).all() and not torch.isinf(scores[idx >= 0]).any()
    assert sorted(idx[0, :5].tolist()) == [25, 26, 27, 28, 29]
    assert index.search(queries, 0)[1].shape == (3, 0)


def test_refetch_fills_short_rows(data):
    # One probed list of ~18 items cannot hold 50 results: the search widens until rows are full.
    items, queries, exclude = data
    index = build_index(items, "ivf", nprobe=1)
    _, idx = index.search(queries, 50, exclude)
    assert (idx >= 0).all()
    assert not (idx[:, :, None] == exclude[:, None, :]).any()
    assert index.params["nprobe"] == 1  # widening is per call, not stored


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
def test_save_load_round_trip(data, indexes, backend, tmp_path):
    items, queries, exclude = data
    index = indexes[backend]
    path = index.save(tmp_path / "sub" / f"{backend}.index")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    loaded = ItemIndex.load(path)
    assert type(loaded) is type(index) and loaded.backend == backend
    assert len(loaded) == N and loaded.dim == D and loaded.params == index.params
    for exc in (None, exclude):
        s, i = index.search(queries, 10, exc)
        s2, i2 = loaded.search(queries, 10, exc)
        assert torch.equal(i, i2) and torch.equal(s, s2)
    wrong = FaissItemIndex if backend == "exact" else ExactItemIndex
    with pytest.raises(TypeError, match="holds a"):
        wrong.load(path)


def test_errors(data, indexes):
    items, queries, _ = data
    with pytest.raises(ValueError, match="index='annoy': expected one of"):
        build_index(items, "annoy")
    with pytest.raises(ValueError, match="items must be"):
        build_index(items[0], "hnsw")
    with pytest.raises(TypeError):
        build_index(items, "flat", nprobe=3)
    with pytest.raises(ValueError, match="nprobe"):
        indexes["hnsw"].set_search_params(nprobe=3)
    for backend, index in indexes.items():
        with pytest.raises(ValueError):
            index.search(torch.randn(3, D + 1), 5)
        with pytest.raises(ValueError):
            index.search(queries[0], 5)
        with pytest.raises(ValueError, match="non-negative"):
            index.search(queries, -1)
        with pytest.raises(ValueError):
            index.search(queries, 5, exclude=torch.full((B, 2), N))
        assert repr(index).startswith(f"{type(index).__name__}(backend={backend!r}")


def test_scores_are_inner_products(data, indexes):
    items, queries, _ = data
    for index in indexes.values():
        scores, idx = index.search(queries, 5)
        expected = (queries[:, None, :] * items[idx]).sum(-1)  # (B, K)
        torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-5)
        assert not math.isinf(scores.min().item())
