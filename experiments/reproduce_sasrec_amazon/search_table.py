"""One row per trial of the study's Optuna search (`vrs-train -m hparams_search=sasrec_beauty`), from
the trial folders: the values the sweeper sampled (`.hydra/overrides.yaml`), the best validation
NDCG@10 and its epoch, the epochs run and the training wall time (`csv/metrics.csv`). Trials still
running or stopped show what they reached (status `partial`).

    python experiments/reproduce_sasrec_amazon/search_table.py SWEEP_DIR... [--csv results_search.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

import yaml

FIXED = {"hparams_search", "data.root", "seed"}


def trial_row(folder: Path) -> dict | None:
    overrides = folder / ".hydra" / "overrides.yaml"
    log = folder / "csv" / "metrics.csv"
    if not overrides.is_file() or not log.is_file():
        return None
    params = {}
    for line in yaml.safe_load(overrides.read_text()) or []:
        key, _, value = str(line).partition("=")
        if key not in FIXED:
            params[key] = value
    val: dict[int, float] = {}
    elapsed = math.nan
    with log.open() as f:
        for rec in csv.DictReader(f):
            if rec.get("val/ndcg_10"):
                val[int(rec["epoch"])] = float(rec["val/ndcg_10"])
            if rec.get("time/elapsed_s"):
                elapsed = float(rec["time/elapsed_s"])
    if not val:
        return None
    best_epoch = max(val, key=val.get)
    done = (folder / "metrics.json").is_file()
    if done:
        json.loads((folder / "metrics.json").read_text())  # a finished trial wrote a readable file
    return {
        "trial": f"{folder.parent.name}/{folder.name}",
        "status": "finished" if done else "partial",
        **params,
        "best_val_ndcg_10": round(val[best_epoch], 6),
        "best_epoch": best_epoch,
        "epochs_run": len(val),
        "wall_seconds": "" if math.isnan(elapsed) else round(elapsed),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (hydra.sweep.dir)")
    p.add_argument("--csv", type=Path, help="write the rows here (replaced atomically)")
    args = p.parse_args(argv)
    rows = []
    for sweep in args.sweeps:
        for folder in sorted(sweep.iterdir(), key=lambda q: (len(q.name), q.name)):
            if folder.is_dir() and folder.name.isdigit() and (row := trial_row(folder)) is not None:
                rows.append(row)
    if not rows:
        sys.exit(f"no trial with a validation epoch under {', '.join(map(str, args.sweeps))}")
    rows.sort(key=lambda r: -r["best_val_ndcg_10"])
    fields = list(dict.fromkeys(k for r in rows for k in r))
    out = sys.stdout
    if args.csv:
        tmp = args.csv.with_name(args.csv.name + ".tmp")
        out = tmp.open("w", newline="")
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    if args.csv:
        out.close()
        os.replace(tmp, args.csv)
        print(f"{len(rows)} trials -> {args.csv}")


if __name__ == "__main__":
    main()
