"""results.csv of the baseline zoo (README.md beside this file): one row per finished run.

vrs runs are folders RUN_ROOT/<model>/<dataset>/seed<k> (metrics.json, wall_seconds, commit);
references are folders RUN_ROOT/<reference>_<dataset> holding a `results.json` written by a
`benchmarks/*_reference.py` script (one row per seed of its chosen setting), or, for
`recbole_reference.py`, RUN_ROOT/<reference>_<dataset>/seed<k>/results.json (one per seed).

    python experiments/baselines/summarize.py RUN_ROOT... [--csv experiments/baselines/results.csv]
        [--keep experiments/baselines/results.csv] [--pick STUDY_ROOT PATTERN[,PATTERN...]]...

``--pick STUDY_ROOT PATTERNS`` adds the vrs runs of another study's run folder (the same
<model>/<dataset>/seed<k> layout, e.g. experiments/real_images/run.sh's) whose model matches one of
the comma-separated shell patterns: vrs's best fused model of each dataset, chosen in its own study.

``--keep CSV`` adds the rows of an earlier results.csv (from run folders that are gone, e.g. another
machine's): each (dataset, model, implementation, seed) keeps one row, the one read last (the folders
after ``--keep``, a later folder after an earlier one). A run resumed at another commit records both,
joined by "+".
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import os
import statistics
import sys
from pathlib import Path

# Beyond accuracy: vrs's metrics.json, and the reference scripts that score lists with vrs's code.
BEYOND = ["coverage_10", "gini_10", "novelty_10", "ild_category_10", "ild_visual_10"]
FIELDS = ["dataset", "model", "implementation", "seed", "val_ndcg_10", "test_recall_10", "test_ndcg_10",
          *(f"test_{m}" for m in BEYOND), "wall_seconds", "commit"]  # fmt: skip
# Columns added later: a results.csv written before them is read with them blank.
ADDED = ["test_ild_visual_10"]


def visual_diversity(run: Path, m: dict) -> object:
    """The run's test ild_visual_10: its metrics.json's, else that of its re-evaluation with an image
    encoder for diversity (RUN/visual/metrics.json, visual_eval.sh); "" when neither has it."""
    if "test/ild_visual_10" in m:
        return m["test/ild_visual_10"]
    again = run / "visual" / "metrics.json"
    if not again.is_file():
        return ""
    v = json.loads(again.read_text())
    before, after = m.get("test/ndcg_10"), v.get("test/ndcg_10")
    if before is not None and after is not None and abs(before - after) > 1e-6:
        # Same checkpoint and lists; a later evaluation fix can move the target's rank, not the lists.
        print(f"note: {again} test NDCG@10 {after:.6f}, the run's {before:.6f}", file=sys.stderr)
    return v.get("test/ild_visual_10", "")


def vrs_rows(root: Path) -> list[dict]:
    rows = []
    for metrics in sorted(root.glob("*/*/seed*/metrics.json")):
        run = metrics.parent
        m = json.loads(metrics.read_text())
        wall = run / "wall_seconds"
        commit = run / "commit"
        rows.append({
            "dataset": run.parent.name.lower(), "model": run.parent.parent.name, "implementation": "vrs",
            "seed": int(run.name.removeprefix("seed")), "val_ndcg_10": m.get("val/ndcg_10"),
            "test_recall_10": m.get("test/recall_10"), "test_ndcg_10": m.get("test/ndcg_10"),
            **{f"test_{b}": m.get(f"test/{b}", "") for b in BEYOND},
            "test_ild_visual_10": visual_diversity(run, m),
            "wall_seconds": wall.read_text().strip() if wall.is_file() else "",
            "commit": "+".join(commit.read_text().split()) if commit.is_file() else "",
        })  # fmt: skip
    return rows


def reference_rows(root: Path) -> list[dict]:
    rows = []
    for results in sorted(root.glob("*_*/results.json")):
        r = json.loads(results.read_text())
        name, _, dataset = results.parent.name.rpartition("_")
        for run in r["runs"]:
            rows.append({
                "dataset": dataset, "model": name, "implementation": r["model"], "seed": run["seed"],
                "val_ndcg_10": run["val"]["ndcg_10"], "test_recall_10": run["test"]["hr_10"],
                "test_ndcg_10": run["test"]["ndcg_10"], **{f"test_{b}": run["test"].get(b, "") for b in BEYOND},
                "wall_seconds": round(run["fit_seconds"], 2),
                "commit": "",
            })  # fmt: skip
    return rows


def recbole_rows(root: Path) -> list[dict]:
    rows = []
    for results in sorted(root.glob("*_*/seed*/results.json")):
        r = json.loads(results.read_text())
        if "recbole" not in r:
            continue
        name, _, dataset = results.parent.parent.name.rpartition("_")
        rows.append({
            "dataset": dataset, "model": name,
            # Scored with vrs's history mask (recbole_reference.py --data since 2026-12-01) or RecBole's own.
            "implementation": f"RecBole {r['recbole']} {r['model']}" + (" (vrs mask)" if r.get("history_mask") else ""),
            "seed": r["seed"], "val_ndcg_10": r["val"]["ndcg@10"], "test_recall_10": r["test"]["hit@10"],
            "test_ndcg_10": r["test"]["ndcg@10"], **{f"test_{b}": "" for b in BEYOND},
            "wall_seconds": round(r["wall_seconds"], 2), "commit": "",
        })  # fmt: skip
    return rows


def read_rows(path: Path) -> list[dict]:
    """The rows of a results.csv this script wrote (numbers stay strings, as the folders' wall and commit)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        older = [c for c in FIELDS if c not in ADDED]
        if reader.fieldnames not in (FIELDS, older):
            sys.exit(f"{path}: columns {reader.fieldnames}, expected {FIELDS}")
        found = [{**dict.fromkeys(ADDED, ""), **row} for row in reader]
    for line, row in enumerate(found, start=2):
        try:
            row["seed"] = int(row["seed"])
        except ValueError:
            sys.exit(f"{path}, row {line}: seed {row['seed']!r}, expected an integer")
        row["commit"] = "+".join(row["commit"].split())  # older files kept a resumed run's commits on lines
    return found


def merged(
    roots: list[Path], keep: Path | None = None, picks: list[tuple[Path, str]] | None = None
) -> list[dict]:
    """One row per (dataset, model, implementation, seed): ``keep``'s, then each root's, then each
    pick's (vrs runs of a study root whose model matches a comma-separated pattern), the last read
    winning."""
    found = read_rows(keep) if keep is not None else []
    for root in roots:
        found += vrs_rows(root) + reference_rows(root) + recbole_rows(root)
    for root, patterns in picks or []:
        wanted = [p for p in patterns.split(",") if p]
        rows = [r for r in vrs_rows(root) if any(fnmatch.fnmatchcase(r["model"], p) for p in wanted)]
        if not rows:
            sys.exit(f"--pick {root} {patterns}: no finished vrs run there whose model matches")
        found += rows
    best = {(r["dataset"], r["model"], r["implementation"], r["seed"]): r for r in found}
    return [best[key] for key in sorted(best)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", type=Path, nargs="+", metavar="RUN_ROOT")
    p.add_argument("--csv", type=Path)
    p.add_argument("--keep", type=Path, help="an earlier results.csv whose rows the folders do not replace")
    p.add_argument(
        "--pick", nargs=2, action="append", metavar=("STUDY_ROOT", "PATTERNS"), default=[],
        help="vrs runs of another study's run folder whose model matches a comma-separated pattern",
    )  # fmt: skip
    args = p.parse_args(argv)
    rows = merged(args.roots, args.keep, [(Path(root), patterns) for root, patterns in args.pick])
    if not rows:
        sys.exit(f"no finished run under {', '.join(map(str, args.roots))}")
    if args.csv:
        tmp = args.csv.with_name(args.csv.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, args.csv)
    print(
        "| dataset | model | implementation | seeds | val NDCG@10 | test R@10 | test NDCG@10 | coverage@10 | "
        "Gini@10 | novelty@10 | category ILD@10 | visual ILD@10 | wall s / run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"], r["implementation"]), []).append(r)

    def cell(values: list) -> str:
        # NaN: a metric the run could not compute (e.g. category ILD without categories).
        values = [x for x in (float(v) for v in values if v not in ("", None)) if math.isfinite(x)]
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.4f}"
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    for (dataset, model, impl), group in groups.items():
        walls = [float(r["wall_seconds"]) for r in group if r["wall_seconds"] != ""]
        wall = f"{statistics.mean(walls):.0f}" if walls else "-"
        print(f"| {dataset} | {model} | {impl} | {len(group)} | {cell([r['val_ndcg_10'] for r in group])} | "
              f"{cell([r['test_recall_10'] for r in group])} | {cell([r['test_ndcg_10'] for r in group])} | "
              + " | ".join(cell([r[f"test_{b}"] for r in group]) for b in BEYOND) + f" | {wall} |")  # fmt: skip


if __name__ == "__main__":
    main()
