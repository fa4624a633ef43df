"""The SASRec study's results.csv is recomputed from run folders (summarize.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

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
    path = _summarize().write_results(tmp_path)
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
