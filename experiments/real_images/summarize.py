"""results.csv (one row per finished run) and the Markdown table (mean ± std over seeds) of the study.

    python experiments/real_images/summarize.py runs/real_images
    python experiments/real_images/summarize.py --keep experiments/real_images/results.csv RUNS...

Reads <out>/<arm>/<dataset>/seed<k>/{metrics.json, test_users.parquet, wall_seconds, commit}. Warm
Recall@10 is computed from test_users.parquet (targets seen in training; a rank below 10 is a hit);
cold Recall@10 is vrs's `test_cold/recall_10`. The content-profile windows (content_profile_w<k>) are
reported as one row, the window with the best validation NDCG@10; the whitened profiles
(content_profile_white<s>_w<k>) as another, the (whitening, window) with the best validation NDCG@10;
the session profiles (content_profile_session_white<s>_gap<g>_w<k>) as a third.

``--curves DIR`` also writes each trained run's validation NDCG@10 per epoch (DIR/curves.csv, from
the runs' csv logs, a resumed run's earlier log included) and one chart per dataset
(DIR/curves_<dataset>.svg: each arm's mean over its seeds, per epoch).

``--keep CSV`` adds the rows of an earlier results.csv (from run folders that are gone, e.g. another
machine's): each (dataset, arm, seed) keeps one row, the one read last (the folders after ``--keep``,
a later folder after an earlier one).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import pandas as pd

from vrs.cli.compare import mean_std

COLUMNS = [
    "dataset", "arm", "seed", "val_ndcg_10", "test_recall_10", "test_ndcg_10", "cold_recall_10",
    "warm_recall_10", "wall_seconds", "commit",
]  # fmt: skip
METRICS = ["val_ndcg_10", "test_recall_10", "test_ndcg_10", "cold_recall_10", "warm_recall_10"]


def rows(out: Path) -> list[dict[str, object]]:
    found = []
    for path in sorted(out.glob("*/*/seed*/metrics.json")):
        run = path.parent
        metrics = json.loads(path.read_text())
        if "test/recall_10" not in metrics:
            continue  # validation only
        users = run / "test_users.parquet"
        warm = None
        if users.is_file():
            table = pd.read_parquet(users, columns=["rank", "cold"])
            table = table[~table["cold"]]
            warm = float((table["rank"] < 10).mean()) if len(table) else None
        wall = run / "wall_seconds"
        commit = run / "commit"
        found.append(
            {
                "dataset": run.parent.name,
                "arm": run.parent.parent.name,
                "seed": int(run.name.removeprefix("seed")),
                "val_ndcg_10": metrics.get("val/ndcg_10"),
                "test_recall_10": metrics["test/recall_10"],
                "test_ndcg_10": metrics["test/ndcg_10"],
                "cold_recall_10": metrics.get("test_cold/recall_10"),
                "warm_recall_10": warm,
                "wall_seconds": int(wall.read_text()) if wall.is_file() else None,
                "commit": "+".join(commit.read_text().split()) if commit.is_file() else None,
            }
        )
    return found


def read_rows(path: Path) -> list[dict[str, object]]:
    """The rows of a results.csv this script wrote, with numbers as numbers and blanks as None."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            raise SystemExit(f"{path}: columns {reader.fieldnames}, expected {COLUMNS}")
        found = list(reader)
    for row in found:
        for name in COLUMNS:
            value = row[name]
            if value == "":
                row[name] = None
            elif name in METRICS:
                row[name] = float(value)
            elif name in ("seed", "wall_seconds"):
                row[name] = int(value)
    return found


def merged(outs: list[Path], keep: Path | None = None) -> list[dict[str, object]]:
    """One row per (dataset, arm, seed): the rows of ``keep``, then of each folder, the last read winning."""
    best: dict[tuple[str, str, int], dict[str, object]] = {}
    for row in (read_rows(keep) if keep is not None else []) + [r for out in outs for r in rows(out)]:
        best[(str(row["dataset"]), str(row["arm"]), int(row["seed"]))] = row  # type: ignore[arg-type]
    return [best[key] for key in sorted(best)]


def curve_rows(outs: list[Path]) -> list[dict[str, object]]:
    """(dataset, arm, seed, epoch, val_ndcg_10) of every finished trained run's csv log; a resumed run's log
    before the resume (metrics.before_resume.csv) first, a later value of an epoch winning."""
    found = []
    for out in outs:
        for log in sorted(out.glob("*/*/seed*/csv/metrics.csv")):
            run = log.parent.parent
            if not (run / "metrics.json").is_file():
                continue  # unfinished: no row in results.csv either
            per_epoch: dict[int, float] = {}
            for part in (log.with_name("metrics.before_resume.csv"), log):
                if not part.is_file():
                    continue
                with part.open(newline="") as f:
                    for row in csv.DictReader(f):
                        if row.get("val/ndcg_10"):
                            per_epoch[int(row["epoch"])] = float(row["val/ndcg_10"])
            found += [
                {"dataset": run.parent.name, "arm": run.parent.parent.name, "seed": int(run.name.removeprefix("seed")),
                 "epoch": epoch, "val_ndcg_10": value}
                for epoch, value in sorted(per_epoch.items())
            ]  # fmt: skip
    return found


def write_curves(found: list[dict[str, object]], folder: Path) -> list[Path]:
    """curves.csv and curves_<dataset>.svg (each arm's mean over its seeds per epoch) in `folder`."""
    from vrs.report.plots import PALETTE, Series, line_chart_svg, standalone

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "curves.csv"]
    frame = pd.DataFrame(found, columns=["dataset", "arm", "seed", "epoch", "val_ndcg_10"])
    tmp = folder / ".curves.csv.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(written[0])
    for dataset, runs in frame.groupby("dataset"):
        means = runs.groupby(["arm", "epoch"])["val_ndcg_10"].mean()
        series = [
            Series(
                str(arm), [(float(e) + 1, float(v)) for e, v in means[arm].items()], PALETTE[i % len(PALETTE)]
            )
            for i, arm in enumerate(sorted(runs["arm"].unique()))
        ]
        svg = line_chart_svg(
            series, f"{dataset}: validation NDCG@10 per epoch (mean over seeds)", "epoch", 720, 360,
            log_x=False, legend=True,
        )  # fmt: skip
        path = folder / f"curves_{dataset}.svg"
        tmp = folder / f".{path.name}.tmp"
        tmp.write_text(standalone(svg) + "\n")
        tmp.replace(path)
        written.append(path)
    return written


def _family(arm: str) -> str | None:
    """content_profile<variant>_w<k>, content_profile_white<s>_w<k> and
    content_profile_session_white<s>_gap<g>_w<k> -> their family (one table row), None for any other arm."""
    match = re.fullmatch(r"(content_profile[\w.-]*?)_w\d+", arm)
    return re.sub(r"_white[\d.e-]+", "_white", re.sub(r"_gap\d+$", "", match.group(1))) if match else None


def _best_windows(found: list[dict[str, object]]) -> list[dict[str, object]]:
    """Keeps, per dataset and content-profile family, the run (window, whitening) with the best
    validation NDCG@10."""
    best: dict[tuple[str, str], dict[str, object]] = {}
    kept = []
    for row in found:
        family = _family(str(row["arm"]))
        if family is not None:
            key = (str(row["dataset"]), family)
            if key not in best or float(row["val_ndcg_10"] or 0) > float(best[key]["val_ndcg_10"] or 0):
                best[key] = row
        else:
            kept.append(row)
    return kept + list(best.values())


def table(found: list[dict[str, object]]) -> str:
    lines = [
        "| dataset | arm | seeds | val NDCG@10 | test R@10 | test NDCG@10 | cold R@10 | warm R@10 | wall / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in _best_windows(found):
        groups.setdefault((str(row["dataset"]), str(row["arm"])), []).append(row)
    for (dataset, arm), runs in sorted(groups.items()):
        cells = [mean_std([float(r[m]) for r in runs if r[m] is not None]) for m in METRICS]
        walls = [int(r["wall_seconds"]) for r in runs if r["wall_seconds"] is not None]
        wall = f"{sum(walls) / len(walls) / 60:.0f} min" if walls else "-"
        lines.append(f"| {dataset} | {arm} | {len(runs)} | " + " | ".join(cells) + f" | {wall} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="*", help="run folders (default: runs/real_images)")
    parser.add_argument("--csv", type=Path, help="results file (default: results.csv beside this script)")
    parser.add_argument(
        "--keep", type=Path, help="an earlier results.csv whose rows the folders do not replace"
    )
    parser.add_argument("--curves", type=Path, help="folder for curves.csv and curves_<dataset>.svg")
    args = parser.parse_args()
    outs = args.out or [Path("runs/real_images")]
    found = merged(outs, args.keep)
    path = args.csv or Path(__file__).with_name("results.csv")
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(found)
    tmp.replace(path)
    print(table(found))
    print(f"rows per run: {path}")
    if args.curves:
        written = write_curves(curve_rows(outs), args.curves)
        print("curves: " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
