"""ListMetrics (beyond-accuracy metrics of the top-K lists) against direct per-list computations."""

import itertools
import math
import os

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vrs.list_metrics import ItemStats, ListMetrics, category_codes, gini

N = 30


def problem(b: int = 17, width: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lists = torch.stack([torch.randperm(N, generator=g)[:width] for _ in range(b)])
    lists[0, -2:] = -1  # a short list (catalogue smaller than K after exclusions)
    counts = torch.randint(0, 9, (N,), generator=g).float()
    cats = torch.randint(-1, 4, (N,), generator=g)  # -1: no category
    feats = torch.randn(N, 5, generator=g)
    has = torch.rand(N, generator=g) > 0.2
    return lists, ItemStats(counts, cats, feats, has)


def reference(lists: torch.Tensor, stats: ItemStats, k: int) -> dict[str, float]:
    """Each metric computed list by list, pair by pair."""
    shown = [[int(i) for i in row[:k] if i >= 0] for row in lists]
    flat = [i for row in shown for i in row]
    counts = stats.train_counts.double()
    p = (counts + 1) / (counts.sum() + N)
    cat_pairs = [
        (a, b)
        for row in shown
        for a, b in itertools.combinations(row, 2)
        if stats.categories[a] >= 0 and stats.categories[b] >= 0
    ]
    feats = torch.nn.functional.normalize(stats.features, dim=-1)
    vis = [
        1 - float(feats[a] @ feats[b])
        for row in shown
        for a, b in itertools.combinations(row, 2)
        if stats.has_features[a] and stats.has_features[b]
    ]
    exposure = torch.bincount(torch.tensor(flat), minlength=N).double().sort().values
    i = torch.arange(1, N + 1, dtype=torch.float64)
    return {
        f"coverage_{k}": len(set(flat)) / N,
        f"gini_{k}": float(((2 * i - N - 1) * exposure).sum() / (N * exposure.sum())),
        f"novelty_{k}": sum(-math.log2(float(p[j])) for j in flat) / len(flat),
        f"arp_{k}": sum(float(counts[j]) for j in flat) / len(flat),
        f"ild_category_{k}": sum(int(stats.categories[a] != stats.categories[b]) for a, b in cat_pairs)
        / len(cat_pairs),
        f"ild_visual_{k}": sum(vis) / len(vis),
    }


def test_list_metrics_match_per_list_computation_and_ignore_batching():
    lists, stats = problem()
    metric = ListMetrics(N, ks=(3, 6), stats=stats)
    for sl in (slice(0, 5), slice(5, 17)):
        metric.update(lists[sl])
    out = metric.compute()
    expected = {**reference(lists, stats, 3), **reference(lists, stats, 6)}
    assert set(out) == set(expected)
    for name, value in expected.items():  # visual distances come from float32 features
        assert out[name] == pytest.approx(value, rel=1e-6 if "visual" in name else 1e-12), name


def test_without_stats_only_coverage_and_gini_and_short_lists_refused():
    lists, _ = problem()
    metric = ListMetrics(N, ks=(3,))
    metric.update(lists)
    assert set(metric.compute()) == {"coverage_3", "gini_3"}
    with pytest.raises(ValueError, match=r"K >= 6"):
        ListMetrics(N, ks=(6,)).update(lists[:, :4])


def test_gini_extremes():
    assert gini(torch.ones(10)) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0] * 9 + [5.0])) == pytest.approx(0.9)  # (N - 1) / N: one item
    assert gini(torch.zeros(4)) == 0.0


def test_category_codes_missing_values():
    codes = category_codes(pd.Series(["shoes", None, "", "bags", "shoes", " bags "]))
    assert codes.tolist() == [0, -1, -1, 1, 0, 1]


def test_item_stats_rows_checked():
    with pytest.raises(ValueError, match="categories has 3 rows, expected one per item \\(4\\)"):
        ItemStats(torch.zeros(4), categories=torch.zeros(3, dtype=torch.long))


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        lists, stats = problem()
        metric = ListMetrics(N, ks=(3, 6), stats=stats)
        metric.update(lists[(slice(0, 9), slice(9, 17))[rank]])
        torch.save(metric.compute(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_agree_with_one_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    lists, stats = problem()
    single = ListMetrics(N, ks=(3, 6), stats=stats)
    single.update(lists)
    expected = single.compute()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        integer = {n: v for n, v in expected.items() if not n.startswith("ild_visual")}
        assert {n: got[n] for n in integer} == integer  # integer states: exactly equal
        for n in expected:
            assert got[n] == pytest.approx(expected[n], rel=1e-12)


def test_report_bolds_the_lower_gini_and_no_popularity():
    from vrs.report.html import metrics_table

    html = metrics_table(
        {"a": {"test/gini_10": 0.4, "test/arp_10": 3.0}, "b": {"test/gini_10": 0.7, "test/arp_10": 9.0}}
    )
    assert '<td class="best">0.4000</td>' in html and '<td class="best">0.7000</td>' not in html
    assert 'best">3.0000' not in html and 'best">9.0000' not in html  # arp: no better direction


def test_diversity_encoder_without_images_says_which_setting() -> None:
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from vrs.cli.common import item_stats

    cfg = OmegaConf.create({"diversity_encoder": {"_target_": "vrs.encoders.toy.build_toy_towers"}})
    datamodule = SimpleNamespace(load_images=False, train_counts=None, item_categories=None, content=None)
    with pytest.raises(ValueError, match=r"add data.load_images=true"):
        item_stats(cfg, datamodule)


def test_diversity_encoder_leaves_the_random_stream_of_training_alone(monkeypatch) -> None:
    # Building the encoder draws random numbers (its init); training after it must draw the same
    # numbers as a run without the metric, or adding visual ILD would change the trained model.
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    import vrs.lit.baselines
    from vrs.cli.common import item_stats

    def features(encoder_cfg, content, cache):
        torch.nn.Linear(8, 8)  # a random init, as a real encoder's
        return torch.randn(3, 4), torch.ones(3, dtype=torch.bool)

    monkeypatch.setattr(vrs.lit.baselines, "image_features", features)
    cfg = OmegaConf.create({"diversity_encoder": {"_target_": "unused"}, "feature_cache": None})
    datamodule = SimpleNamespace(
        load_images=True, train_counts=torch.ones(3), item_categories=None, content=None
    )
    torch.manual_seed(0)
    expected = torch.rand(5)
    torch.manual_seed(0)
    stats = item_stats(cfg, datamodule)
    assert torch.equal(torch.rand(5), expected)
    assert stats.features is not None and stats.features.shape == (3, 4)
