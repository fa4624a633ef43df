"""experiments/real_images/summarize.py: one table row per content-profile family, its best validation run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.scripts import load_script


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _finished_run(folder: Path, metrics: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_each_profile_family_keeps_its_best_validation_run() -> None:
    summarize = load_script("experiments/real_images/summarize.py", "real_images_summarize")
    runs = [
        ("hm", "content_profile_w1", 0.035), ("hm", "content_profile_w2", 0.034),
        ("hm", "content_profile_white0.1_w2", 0.041), ("hm", "content_profile_white0.01_w2", 0.0425),
        ("hm", "content_profile_white0.01_w3", 0.041), ("ml100k", "content_profile_white0.01_w2", 0.03),
        ("hm", "content_profile_text_w1", 0.0355), ("hm", "concat_cm", 0.0353), ("hm", "concat_cm", 0.0349),
        ("hm", "content_profile_session_white0.1_gap0_w3", 0.0477),
        ("hm", "content_profile_session_white0.01_gap86400_w2", 0.0464),
    ]  # fmt: skip
    found = [{"dataset": d, "arm": a, "val_ndcg_10": v} for d, a, v in runs]
    kept = {(r["dataset"], r["arm"], r["val_ndcg_10"]) for r in summarize._best_windows(found)}
    assert kept == {
        ("hm", "content_profile_w1", 0.035),
        ("hm", "content_profile_white0.01_w2", 0.0425),
        ("ml100k", "content_profile_white0.01_w2", 0.03),
        ("hm", "content_profile_text_w1", 0.0355),
        ("hm", "concat_cm", 0.0353),
        ("hm", "concat_cm", 0.0349),  # trained arms keep every seed
        ("hm", "content_profile_session_white0.1_gap0_w3", 0.0477),
    }


def test_keep_merges_earlier_rows_with_run_folders(tmp_path) -> None:
    summarize = load_script("experiments/real_images/summarize.py", "real_images_summarize")
    earlier = [
        {"dataset": "hm", "arm": "concat", "seed": 0, "val_ndcg_10": 0.02, "test_recall_10": 0.03,
         "test_ndcg_10": 0.015, "cold_recall_10": None, "warm_recall_10": 0.04, "wall_seconds": 540,
         "commit": "aaa"},
        {"dataset": "hm", "arm": "concat", "seed": 1, "val_ndcg_10": 0.021, "test_recall_10": 0.031,
         "test_ndcg_10": 0.016, "cold_recall_10": 0.02, "warm_recall_10": 0.05, "wall_seconds": None,
         "commit": "aaa"},
    ]  # fmt: skip
    keep = _write_csv(tmp_path / "results.csv", summarize.COLUMNS, earlier)
    metrics = {
        "val/ndcg_10": 0.03,
        "test/recall_10": 0.05,
        "test/ndcg_10": 0.025,
        "test_cold/recall_10": 0.04,
    }
    run = _finished_run(tmp_path / "runs" / "concat" / "hm" / "seed1", metrics)  # replaces the earlier seed 1
    (run / "wall_seconds").write_text("60\n")
    (run / "commit").write_text("bbb\nccc\n")
    found = summarize.merged([tmp_path / "runs"], keep)
    assert [(r["seed"], r["test_ndcg_10"], r["wall_seconds"], r["commit"]) for r in found] == [
        (0, 0.015, 540, "aaa"),
        (1, 0.025, 60, "bbb+ccc"),
    ]
    assert found[0]["cold_recall_10"] is None  # a blank stays blank, not 0
    assert "| hm | concat | 2 | 0.0250 ± 0.0071 |" in summarize.table(found)
    (tmp_path / "bad.csv").write_text("dataset,arm\nhm,concat\n")
    with pytest.raises(SystemExit, match="bad.csv: columns"):
        summarize.merged([], tmp_path / "bad.csv")


def test_baselines_keep_merges_earlier_rows_and_joins_commits(tmp_path) -> None:
    summarize = load_script("experiments/baselines/summarize.py", "baselines_summarize")
    blank = {f"test_{b}": "" for b in summarize.BEYOND}
    earlier = [
        {"dataset": "hm", "model": "freedom", "implementation": "vrs", "seed": 0, "val_ndcg_10": "0.01",
         "test_recall_10": "0.02", "test_ndcg_10": "0.008", **blank, "wall_seconds": "90", "commit": "aaa"},
        {"dataset": "hm", "model": "freedom", "implementation": "vrs", "seed": 1, "val_ndcg_10": "0.011",
         "test_recall_10": "0.021", "test_ndcg_10": "0.009", **blank, "wall_seconds": "", "commit": "aaa"},
    ]  # fmt: skip
    keep = _write_csv(tmp_path / "results.csv", summarize.FIELDS, earlier)
    metrics = {"val/ndcg_10": 0.03, "test/recall_10": 0.05, "test/ndcg_10": 0.025}
    run = _finished_run(
        tmp_path / "runs" / "freedom" / "hm" / "seed1", metrics
    )  # replaces the earlier seed 1
    (run / "commit").write_text("bbb\nccc\n")
    found = summarize.merged([tmp_path / "runs"], keep)
    assert [(r["seed"], r["val_ndcg_10"], r["commit"]) for r in found] == [
        (0, "0.01", "aaa"),
        (1, 0.03, "bbb+ccc"),
    ]
    out = tmp_path / "merged.csv"
    summarize.main([str(tmp_path / "runs"), "--keep", str(keep), "--csv", str(out)])
    gap = "," * (len(summarize.BEYOND) + 2)  # the blank list metrics and wall time
    assert out.read_text() == keep.read_text().replace(
        f"hm,freedom,vrs,1,0.011,0.021,0.009{gap}aaa", f"hm,freedom,vrs,1,0.03,0.05,0.025{gap}bbb+ccc"
    )
    # A results.csv from before the visual-diversity column reads with it blank.
    older = [f for f in summarize.FIELDS if f != "test_ild_visual_10"]
    _write_csv(keep, older, [{k: v for k, v in earlier[0].items() if k in older}])
    assert summarize.read_rows(keep)[0]["test_ild_visual_10"] == ""
    keep.write_text("dataset,model\nhm,freedom\n")
    with pytest.raises(SystemExit, match="columns"):
        summarize.main([str(tmp_path / "runs"), "--keep", str(keep)])


def test_curves_read_finished_runs_logs_across_a_resume(tmp_path) -> None:
    summarize = load_script("experiments/real_images/summarize.py", "real_images_summarize")

    def run(arm: str, seed: int, logs: dict[str, str], finished: bool = True) -> None:
        folder = tmp_path / "runs" / arm / "hm" / f"seed{seed}"
        (folder / "csv").mkdir(parents=True)
        for name, text in logs.items():
            (folder / "csv" / name).write_text(text)
        if finished:
            (folder / "metrics.json").write_text("{}")

    header = "epoch,step,train/loss,val/ndcg_10\n"
    # Validation rows and training rows are separate lines of Lightning's csv log.
    run("concat", 0, {"metrics.before_resume.csv": header + "0,7,,0.01\n0,7,3.2,\n1,15,,0.02\n",
                      "metrics.csv": header + "1,15,,0.025\n2,23,,0.03\n"})  # fmt: skip
    run("concat", 1, {"metrics.csv": header + "0,7,,0.03\n1,15,,0.04\n"})
    run("gated", 0, {"metrics.csv": header + "0,7,,0.5\n"}, finished=False)  # no row in results.csv
    found = summarize.curve_rows([tmp_path / "runs"])
    assert [(r["seed"], r["epoch"], r["val_ndcg_10"]) for r in found] == [
        (0, 0, 0.01), (0, 1, 0.025), (0, 2, 0.03), (1, 0, 0.03), (1, 1, 0.04),
    ]  # fmt: skip
    written = summarize.write_curves(found, tmp_path / "curves")
    assert [p.name for p in written] == ["curves.csv", "curves_hm.svg"]
    assert (tmp_path / "curves" / "curves.csv").read_text().splitlines()[:2] == [
        "dataset,arm,seed,epoch,val_ndcg_10", "hm,concat,0,0,0.01",
    ]  # fmt: skip
    svg = written[1].read_text()
    assert "<style>" in svg and ">concat</text>" in svg and "gated" not in svg
    assert "concat @ 1: 0.0200</title>" in svg  # epoch 0 (shown as 1): mean of 0.01 and 0.03
    assert "concat @ 3: 0.0300</title>" in svg  # epoch 2: seed 0 alone


def test_baselines_pick_adds_another_studys_chosen_runs(tmp_path) -> None:
    summarize = load_script("experiments/baselines/summarize.py", "baselines_summarize")
    metrics = {"val/ndcg_10": 0.03, "test/recall_10": 0.05, "test/ndcg_10": 0.025}
    _finished_run(tmp_path / "zoo" / "bpr_mf" / "hm" / "seed0", metrics)
    study = tmp_path / "study"
    for arm, dataset in [("gated_allwin", "ml100k"), ("id_only", "ml100k"), ("attr_v2", "Beauty")]:
        _finished_run(study / arm / dataset / "seed0", metrics)
    found = summarize.merged([tmp_path / "zoo"], picks=[(study, "gated_*,attr_v2")])
    assert sorted((r["dataset"], r["model"]) for r in found) == [
        ("beauty", "attr_v2"),  # dataset names are the driver's (lower case)
        ("hm", "bpr_mf"),
        ("ml100k", "gated_allwin"),
    ]
    with pytest.raises(SystemExit, match="no finished vrs run there whose model matches"):
        summarize.main([str(tmp_path / "zoo"), "--pick", str(study), "concat"])


def test_baselines_visual_diversity_comes_from_a_re_evaluation(tmp_path, capsys) -> None:
    summarize = load_script("experiments/baselines/summarize.py", "baselines_summarize")
    metrics = {"val/ndcg_10": 0.03, "test/recall_10": 0.05, "test/ndcg_10": 0.025}
    _finished_run(tmp_path / "runs" / "bpr_mf" / "hm" / "seed0", metrics)
    again = _finished_run(tmp_path / "runs" / "vbpr" / "hm" / "seed0", metrics)
    _finished_run(again / "visual", {"test/ndcg_10": 0.025, "test/ild_visual_10": 0.41})
    _finished_run(tmp_path / "runs" / "freedom" / "hm" / "seed0", {**metrics, "test/ild_visual_10": 0.37})
    moved = _finished_run(tmp_path / "runs" / "lightgcn" / "hm" / "seed0", metrics)
    _finished_run(moved / "visual", {"test/ndcg_10": 0.020, "test/ild_visual_10": 0.52})
    found = {r["model"]: r["test_ild_visual_10"] for r in summarize.merged([tmp_path / "runs"])}
    assert found == {"bpr_mf": "", "vbpr": 0.41, "freedom": 0.37, "lightgcn": 0.52}
    assert (
        f"{moved / 'visual' / 'metrics.json'} test NDCG@10 0.020000, the run's 0.025000"
        in capsys.readouterr().err
    )


def test_baselines_table_leaves_out_metrics_a_run_could_not_compute(tmp_path, capsys) -> None:
    summarize = load_script("experiments/baselines/summarize.py", "baselines_summarize")
    for seed, ndcg in [(0, 0.02), (1, 0.04)]:
        metrics = {"test/ndcg_10": ndcg, "test/ild_category_10": float("nan"), "test/coverage_10": 0.5}
        _finished_run(tmp_path / "runs" / "bpr_mf" / "beauty" / f"seed{seed}", metrics)
    summarize.main([str(tmp_path / "runs")])
    row = capsys.readouterr().out.splitlines()[-1].split(" | ")
    assert row[6] == "0.0300 ± 0.0141" and row[7] == "0.5000 ± 0.0000" and row[10] == "-"
