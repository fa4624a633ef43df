"""The SASRec study's results.csv is recomputed from run folders (summarize.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _summarize():
    return load_script("experiments/reproduce_sasrec_amazon/summarize.py", "study_summarize")


def _run(
    out: Path, config: str, seed: int, fusion: dict, curve: list[tuple[float, float]], **files: str
) -> Path:
    run = out / config / "Beauty" / f"seed{seed}"
    (run / "csv").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"fusion": fusion}))
    rows = ["epoch,step,val/ndcg_10,val/recall_10"] + [
        f"{e},{e * 10},{n},{r}" for e, (n, r) in enumerate(curve)
    ]
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    for name, text in files.items():
        (run / name).write_text(text)
    return run


def test_results_csv_has_one_row_per_run(tmp_path: Path) -> None:
    id_only = {"_target_": "vrs.fusion.single_modality.SingleModalityFusion", "modality": "id"}
    concat = {"_target_": "vrs.fusion.concat.ConcatFusion"}
    metrics = json.dumps({"val/ndcg_10": 0.05, "test/recall_10": 0.07, "test/ndcg_10": 0.04})
    _run(tmp_path, "tuned", 0, id_only, [(0.01, 0.02), (0.05, 0.09), (0.04, 0.08)],
         **{"metrics.json": metrics, "wall_seconds": "600\n", "commit": "abc\ndef\n"})  # fmt: skip
    _run(tmp_path, "attr", 1, concat, [(0.02, 0.03), (0.03, 0.05)])  # still training
    summarize = _summarize()
    path = summarize.write_results(summarize.all_rows((tmp_path,)), tmp_path / "results.csv")
    rows = list(csv.DictReader(path.open()))
    assert [(r["config"], r["seed"], r["kind"], r["status"]) for r in rows] == [
        ("attr", "1", "content", "partial"),
        ("tuned", "0", "id_only", "finished"),
    ]
    tuned = rows[1]
    assert (tuned["best_epoch"], tuned["epochs_run"], tuned["wall_seconds"]) == ("1", "3", "600")
    assert float(tuned["val_ndcg_10"]) == 0.05 and float(tuned["val_hr_10"]) == 0.09
    assert float(tuned["test_hr_10"]) == 0.07 and float(tuned["test_ndcg_10"]) == 0.04
    assert tuned["commit"] == "abc+def"
    assert rows[0]["test_ndcg_10"] == "" and float(rows[0]["val_hr_10"]) == 0.05


def test_keep_carries_rows_the_folders_do_not_replace(tmp_path: Path) -> None:
    """Rows of an earlier results.csv (run folders on another machine) stay unless a folder given now
    holds the same (dataset, config, seed) at least as complete; one row per key, counted once."""
    summarize = _summarize()
    id_only = {"_target_": "vrs.fusion.single_modality.SingleModalityFusion", "modality": "id"}
    old = tmp_path / "old.csv"
    fields = ("seed", "status", "best_epoch", "epochs_run", "wall_seconds", "val_ndcg_10", "test_hr_10",
              "test_ndcg_10", "commit")  # fmt: skip
    base = {**dict.fromkeys(summarize.RESULT_COLUMNS, ""), "dataset": "Beauty", "config": "v2"}
    earlier = [
        {**base, "kind": "id_only", "val_hr_10": "0.1", **dict(zip(fields, values, strict=True))}
        for values in (
            ("0", "finished", "5", "16", "900", "0.06", "0.08", "0.05", "old"),
            ("1", "stopped", "3", "9", "500", "0.05", "0.07", "0.04", "old"),
            # the same run recorded twice (stopped, then continued elsewhere): the finished row counts
            ("0", "stopped", "4", "8", "400", "0.05", "0.06", "0.03", "older"),
            ("2", "finished", "4", "14", "800", "0.06", "0.08", "0.05", "old"),
        )
    ]
    summarize.write_results(earlier, old)
    out = tmp_path / "runs"
    metrics = json.dumps({"val/ndcg_10": 0.07, "test/recall_10": 0.09, "test/ndcg_10": 0.06})
    _run(out, "v2", 1, id_only, [(0.03, 0.05), (0.07, 0.11)],
         **{"metrics.json": metrics, "wall_seconds": "700\n", "commit": "new\n"})  # fmt: skip
    _run(out, "v2", 2, id_only, [(0.03, 0.05)])  # still training: the finished old row stays
    rows = summarize.all_rows((out,), keep=old)
    assert sorted((r["seed"], r["commit"], r["status"]) for r in rows) == [
        ("0", "old", "finished"),
        ("1", "new", "finished"),
        ("2", "old", "finished"),
    ]
    table = summarize.table(rows)
    assert (
        "| Beauty | v2 | 3 | 0.0833 ± 0.0058 | 0.0533 ± 0.0058 | 0.0633 ± 0.0058 | 5 / 16, 1 / 2, 4 / 14 | 13 min |"
        in table
    )
    assert "v2 (3 seed(s)): 0.0833 / 0.0533" in summarize.targets(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,config\nBeauty,v2\n")
    with pytest.raises(SystemExit, match="bad.csv: columns"):
        summarize.all_rows((out,), keep=bad)
