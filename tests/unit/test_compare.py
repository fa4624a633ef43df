"""vrs-compare: seed groups, labels from what differs, paired tests over users, output formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vrs.cli import compare


def _run(path: Path, fusion: str, seed: int, ranks: np.ndarray, root: str = "/d/Beauty") -> Path:
    path.mkdir(parents=True)
    cfg = {
        "seed": seed,
        "fusion": {"_target_": fusion},
        "data": {"root": root},
        "paths": {"output_dir": str(path)},
        # A saved config is resolved: its folder settings name the run's own folder.
        "trainer": {"default_root_dir": str(path), "max_epochs": 200},
        "callbacks": {
            "model_checkpoint": {"dirpath": f"{path}/checkpoints"},
            "resume_checkpoint": {"dirpath": f"{path}/checkpoints"},
        },
        "resume": "last" if seed == 1 else None,  # an interrupted and continued seed
    }
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    hit = ranks < 10
    ndcg = np.where(hit, 1 / np.log2(ranks + 2.0), 0.0)
    (path / "metrics.json").write_text(
        json.dumps({"test/ndcg_10": ndcg.mean(), "test/recall_10": hit.mean()})
    )
    users = [f"u{i}" for i in range(len(ranks))]
    frame = pd.DataFrame({"user": users, "target": "i1", "rank": ranks, "seen": False, "cold": False})
    frame.to_parquet(path / "test_users.parquet")
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    for seed in (0, 1, 2):  # the same folder names in both arms (the study's <arm>/<dataset>/seed<k>)
        _run(tmp_path / "concat" / "Beauty" / f"seed{seed}", "Concat", seed, rng.integers(0, 40, n))
        _run(tmp_path / "gated" / "Beauty" / f"seed{seed}", "Gated", seed, rng.integers(0, 15, n))
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")  # a multirun folder's own file: not a run
    return tmp_path


def test_groups_seeds_and_labels_by_what_differs(sweep: Path) -> None:
    groups = compare.group_runs(compare.find_runs([str(sweep)]))
    assert sorted(g.label for g in groups) == ["fusion._target_=Concat", "fusion._target_=Gated"]
    assert all(len(g.runs) == 3 for g in groups)
    rows = compare.metric_rows(groups, ["test/ndcg_10"])
    assert rows[0][1].endswith("(n=3)") and "±" in rows[1][1]


def test_groups_that_differ_in_many_settings_are_labelled_by_folder(tmp_path: Path) -> None:
    """The demo's fused model, popularity and visual_profile differ in dozens of settings: a label of
    all of them is unreadable, their folders name them."""
    rng = np.random.default_rng(0)
    for name in ("fused", "popularity"):
        _run(tmp_path / "demo" / name, name, 0, rng.integers(0, 40, 50))
    for key, values in (("model", {"a": 1, "b": 2, "c": 3}), ("user", {"x": 1})):
        for name, extra in (("fused", values), ("popularity", {})):
            path = tmp_path / "demo" / name / "config.yaml"
            cfg = yaml.safe_load(path.read_text())
            cfg[key] = extra
            path.write_text(yaml.safe_dump(cfg))
    groups = compare.group_runs(compare.find_runs([str(tmp_path / "demo")]))
    assert sorted(g.label for g in groups) == ["fused", "popularity"]
    # Seed groups in study folders: the group's folder below what all runs share.
    for seed in (0, 1):
        _run(tmp_path / "s" / "a" / "Beauty" / f"seed{seed}", "A", seed, rng.integers(0, 40, 50))
        _run(tmp_path / "s" / "b" / "Beauty" / f"seed{seed}", "B", seed, rng.integers(0, 40, 50))
        for arm in ("a", "b"):
            path = tmp_path / "s" / arm / "Beauty" / f"seed{seed}" / "config.yaml"
            cfg = yaml.safe_load(path.read_text())
            cfg["model"] = {k: f"{arm}{k}" for k in "pqrs"}
            path.write_text(yaml.safe_dump(cfg))
    groups = compare.group_runs(compare.find_runs([str(tmp_path / "s")]))
    assert sorted((g.label, len(g.runs)) for g in groups) == [("a/Beauty", 2), ("b/Beauty", 2)]


def test_paired_tests_find_the_better_group(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    groups = compare.group_runs(compare.find_runs([str(sweep)]))
    base = next(g for g in groups if "Concat" in g.label)
    rows = compare.significance_rows(groups, base, "ndcg_10")
    _, delta, ci, t_p, w_p, n = rows[1]
    lo, hi = (float(x) for x in ci.strip("[]").split(","))
    assert float(delta) > 0 and 0 < lo <= float(delta) <= hi  # gated ranks its targets higher
    assert float(t_p) < 0.01 and float(w_p) < 0.01 and n == "400"
    # Identical groups: no difference to find.
    same = compare.significance_rows([base, base], base, "ndcg_10")
    assert len(same) == 1
    assert compare.main([str(sweep), "--baseline", "Concat", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| metric |" in out and "paired tests" in out and "Wilcoxon p" in out


def test_formats_and_plot(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for fmt, marker in (("csv", "metric,"), ("latex", r"\begin{tabular}"), ("table", "metric  ")):
        assert compare.main([str(sweep), "--format", fmt, "--no-tests"]) == 0
        assert marker in capsys.readouterr().out
    plot = tmp_path / "k.svg"
    assert compare.main([str(sweep), "--no-tests", "--plot", str(plot)]) == 0
    assert plot.read_text().startswith("<svg") and "Gated" in plot.read_text()


def test_refuses_mixed_datasets_and_unknown_baseline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ranks = np.arange(20)
    _run(tmp_path / "a", "Concat", 0, ranks, root="/d/Beauty")
    _run(tmp_path / "b", "Concat", 0, ranks, root="/d/Toys")
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "2 datasets" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--mixed-datasets", "--no-tests"]) == 0
    assert (
        compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--mixed-datasets", "--baseline", "zzz"]) == 1
    )
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0 and "--baseline" in capsys.readouterr().out
