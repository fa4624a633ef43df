"""Table (mean ± std over seeds, next to the published numbers) and validation curves of the study.

    python experiments/reproduce_sasrec_amazon/summarize.py runs/reproduce_sasrec_amazon
    python experiments/reproduce_sasrec_amazon/summarize.py --tune runs/reproduce_sasrec_amazon
    python experiments/reproduce_sasrec_amazon/summarize.py --csv results.csv OUT [OUT ...]
    python experiments/reproduce_sasrec_amazon/summarize.py --keep results.csv --csv results.csv OUT
    python experiments/reproduce_sasrec_amazon/summarize.py --help

Reads <out>/<config>/<dataset>/seed<k>/{metrics.json, wall_seconds, csv/metrics.csv, stopped, commit};
prints a Markdown table, then which published targets the mean over seeds meets, and writes
<out>/val_ndcg10_<dataset>.svg (validation NDCG@10 per epoch, one line per run) and <out>/results.csv
(one row per run, finished or not: see RESULT_COLUMNS). A run with a
`stopped` file was stopped for time before early stopping; the file says why, and its
best-validation checkpoint was evaluated with vrs-eval.

``--keep CSV`` adds the rows of an earlier results.csv (written by this script on another machine,
whose run folders are gone); each (dataset, config, seed) then keeps one row, the most complete
(finished > stopped for time > partial; a folder given now wins a tie), and the table and the
targets are computed from those rows.

``--tune`` ranks the Beauty tuning arms of tune.sh (<out>/tune/<arm>/Beauty/seed0, test never computed)
together with the a-priori configuration's Beauty seed-0 run, by best validation NDCG@10 only, and
writes <out>/val_ndcg10_tune_Beauty.svg.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import yaml

from vrs.cli.compare import mean_std

# Published full-ranking test numbers on exactly these files (HR@10, NDCG@10): the data README (the
# S3-Rec / ICLRec papers) and the eSASRec benchmark's leave-one-out table (RecSys 2025; RecTools 0.19's
# SASRecModel with 256 sampled negatives, and eSASRec).
RECTOOLS = "RecTools SASRec+SS"
PUBLISHED = {
    "Beauty": {
        "PopRec": (0.0152, 0.0068),
        "SASRec": (0.0605, 0.0318),
        "ICLRec": (0.0744, 0.0403),
        RECTOOLS: (0.0921, 0.0531),
        "eSASRec": (0.0928, 0.0523),
    },
    "Sports_and_Outdoors": {
        "PopRec": (0.0094, 0.0053),
        "SASRec": (0.0350, 0.0192),
        "ICLRec": (0.0437, 0.0238),
        RECTOOLS: (0.0569, 0.0314),
        "eSASRec": (0.0560, 0.0323),
    },
    "Toys_and_Games": {
        "PopRec": (0.0113, 0.0061),
        "SASRec": (0.0675, 0.0374),
        "ICLRec": (0.0834, 0.0480),
        RECTOOLS: (0.0970, 0.0580),
        "eSASRec": (0.0939, 0.0538),
    },
}
BARS = ("SASRec", "ICLRec", RECTOOLS)  # the rows each configuration is checked against
CONTENT_GAIN = 0.05  # a content configuration's NDCG@10 over its ID-only sibling (<name> without "_attr")
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def val_curve(run: Path) -> list[tuple[int, float]]:
    """(epoch, val NDCG@10) of a run, with the rows a stopped resume left in metrics.before_resume.csv."""
    curve: dict[int, float] = {}
    for name in ("metrics.before_resume.csv", "metrics.csv"):  # later rows win
        path = run / "csv" / name
        if path.is_file():
            with path.open() as f:
                curve.update(
                    (int(row["epoch"]), float(row["val/ndcg_10"]))
                    for row in csv.DictReader(f)
                    if row.get("val/ndcg_10")
                )
    return sorted(curve.items())


def _epochs(run: Path) -> str:
    """ "best / run" epochs of one run; * = stopped for time, not by early stopping."""
    curve = val_curve(run)
    if not curve:
        return "-"
    best = max(curve, key=lambda p: p[1])[0]
    return _epoch_text(best, curve[-1][0] + 1, (run / "stopped").is_file())


def _epoch_text(best: object, run: object, stopped: bool) -> str:
    """ "best / run" epochs; * = stopped for time, not by early stopping."""
    return f"{best} / {run}{'*' if stopped else ''}"


RESULT_COLUMNS = [
    "dataset", "config", "seed", "kind", "status", "best_epoch", "epochs_run", "wall_seconds",
    "val_hr_10", "val_ndcg_10", "test_hr_10", "test_ndcg_10", "commit",
]  # fmt: skip


def _kind(cfg: dict) -> str:
    """id_only when the item vector is the ID embedding alone, content when other modalities enter."""
    fusion = cfg.get("fusion") or {}
    single_id = (
        str(fusion.get("_target_", "")).endswith("SingleModalityFusion") and fusion.get("modality") == "id"
    )
    return "id_only" if single_id else "content"


def result_rows(out: Path) -> list[dict[str, object]]:
    """One row per run folder <out>/<config>/<dataset>/seed<k> with a validation curve. status:
    finished (early stopping or the epoch cap; metrics.json written), stopped (for time, then its best
    checkpoint evaluated) or partial (still training or interrupted: validation columns only). The
    validation numbers are those of the best validation epoch; test is that epoch's checkpoint."""
    rows = []
    for run in sorted(out.glob("*/*/seed*")):
        curve = val_curve(run)
        if not curve or not (run / "config.yaml").is_file():
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        best_epoch, best = max(curve, key=lambda p: p[1])
        val_hr = ""
        for name in ("metrics.before_resume.csv", "metrics.csv"):
            path = run / "csv" / name
            if path.is_file():
                with path.open() as f:
                    for row in csv.DictReader(f):
                        if row.get("val/recall_10") and int(row["epoch"]) == best_epoch:
                            val_hr = f"{float(row['val/recall_10']):.6f}"
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
        status = "partial" if not metrics else "stopped" if (run / "stopped").is_file() else "finished"
        wall = run / "wall_seconds"
        commit = run / "commit"
        rows.append({
            "dataset": run.parent.name,
            "config": run.parents[1].name,
            "seed": run.name.removeprefix("seed"),
            "kind": _kind(cfg),
            "status": status,
            "best_epoch": best_epoch,
            "epochs_run": curve[-1][0] + 1,
            "wall_seconds": wall.read_text().strip() if wall.is_file() else "",
            "val_hr_10": val_hr,
            "val_ndcg_10": f"{best:.6f}",
            "test_hr_10": f"{metrics['test/recall_10']:.6f}" if "test/recall_10" in metrics else "",
            "test_ndcg_10": f"{metrics['test/ndcg_10']:.6f}" if "test/ndcg_10" in metrics else "",
            "commit": "+".join(commit.read_text().split()) if commit.is_file() else "",
        })  # fmt: skip
    return rows


def read_results(path: Path) -> list[dict[str, object]]:
    """The rows of a results.csv this script wrote."""
    with path.open() as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != RESULT_COLUMNS:
            raise SystemExit(f"{path}: columns {reader.fieldnames}, expected {RESULT_COLUMNS}")
        return list(reader)


STATUS_RANK = {"partial": 0, "stopped": 1, "finished": 2}


def all_rows(outs: tuple[Path, ...], keep: Path | None = None) -> list[dict[str, object]]:
    """One row per (dataset, config, seed) from the rows of ``keep`` and the result_rows of every
    folder in ``outs``: the most complete (finished, then stopped for time, then partial), and among
    equals the one read last (folders after ``keep``, later folders after earlier ones)."""
    rows = read_results(keep) if keep is not None else []
    rows += [row for out in outs for row in result_rows(out)]
    best: dict[tuple[str, str, str], tuple[tuple[int, int], dict[str, object]]] = {}
    for order, row in enumerate(rows):
        key = (str(row["dataset"]), str(row["config"]), str(row["seed"]))
        rank = (STATUS_RANK[str(row["status"])], order)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, row)
    return [row for _, row in sorted(best.values(), key=lambda v: v[0][1])]


def write_results(rows: list[dict[str, object]], path: Path) -> Path:
    """Writes ``rows`` to ``path`` through a temporary file; returns its path."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _evaluated(rows: list[dict[str, object]], dataset: str) -> dict[str, list[dict[str, object]]]:
    """config -> its rows on ``dataset`` that have test numbers (finished or stopped for time), by seed;
    runs still training have none and are left out."""
    out: dict[str, list[dict[str, object]]] = {}
    for row in sorted(rows, key=lambda r: (r["config"], int(r["seed"]))):
        if row["dataset"] == dataset and row["test_ndcg_10"] != "":
            out.setdefault(str(row["config"]), []).append(row)
    return out


def _mean(rows: list[dict[str, object]], column: str) -> float:
    return statistics.mean(float(r[column]) for r in rows)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| dataset | model | seeds | test HR@10 | test NDCG@10 | best val NDCG@10 | best epoch / epochs run | wall / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted({str(r["dataset"]) for r in rows}):
        for name, (hr, ndcg) in PUBLISHED.get(dataset, {}).items():
            lines.append(f"| {dataset} | {name} (published) | - | {hr:.4f} | {ndcg:.4f} | - | - | - |")
        for config, runs in _evaluated(rows, dataset).items():
            walls = [float(r["wall_seconds"]) for r in runs if r["wall_seconds"] != ""]
            wall = f"{statistics.mean(walls) / 60:.0f} min" if walls else "-"
            epochs = ", ".join(
                _epoch_text(r["best_epoch"], r["epochs_run"], r["status"] == "stopped") for r in runs
            )
            lines.append(
                f"| {dataset} | {config} | {len(runs)} | "
                + " | ".join(
                    mean_std([float(r[c]) for r in runs])
                    for c in ("test_hr_10", "test_ndcg_10", "val_ndcg_10")
                )
                + f" | {epochs} | {wall} |"
            )
    return "\n".join(lines)


def targets(rows: list[dict[str, object]]) -> str:
    """Met / not met against the published rows in BARS, per dataset and configuration, on the mean
    over the seeds run (popularity is compared with PopRec in the table, not here)."""
    lines = []
    for dataset, published in sorted(PUBLISHED.items()):
        configs = _evaluated(rows, dataset)
        for config, runs in configs.items():
            if config == "popularity":
                continue
            stopped = sum(r["status"] == "stopped" for r in runs)
            ours = [_mean(runs, c) for c in ("test_hr_10", "test_ndcg_10")]
            verdicts = []
            for name in BARS:
                parts = [
                    f"{label} {'met' if mine >= theirs else 'NOT met'} ({mine / theirs - 1:+.1%})"
                    for label, mine, theirs in zip(("HR@10", "NDCG@10"), ours, published[name], strict=True)
                ]
                verdicts.append(f"{name}: {', '.join(parts)}")
            sibling = config.replace("_attr", "")
            if sibling != config and sibling in configs:
                gain = ours[1] / _mean(configs[sibling], "test_ndcg_10") - 1
                verdict = "met" if gain >= CONTENT_GAIN else "NOT met"
                verdicts.append(
                    f"content over {sibling} NDCG@10 {gain:+.1%} ({verdict}: +{CONTENT_GAIN:.0%})"
                )
            note = f", {stopped} stopped for time" if stopped else ""
            lines.append(
                f"- {dataset} {config} ({len(runs)} seed(s){note}): {ours[0]:.4f} / {ours[1]:.4f}; "
                + "; ".join(verdicts)
            )
    return "\n".join(lines)


def _hyper(run: Path) -> str:
    """The tuned values of a run, read from its resolved config.yaml."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return (
        f"lr {cfg['model']['optimizer']['lr']:g}, dropout {cfg['user']['dropout']:g}, "
        f"batch {cfg['data']['batch_size']}"
    )


def tune_table(out: Path) -> tuple[str, dict[str, list[tuple[int, float]]]]:
    """Markdown table of the tuning arms (best validation NDCG@10 first) and their curves."""
    arms = {p.parents[1].name: p for p in sorted(out.glob("tune/*/Beauty/seed0"))}
    a_priori = out / "sasrec_amazon" / "Beauty" / "seed0"
    if a_priori.is_dir():
        arms["a priori (sasrec_amazon)"] = a_priori
    rows, curves = [], {}
    for arm, run in arms.items():
        curve = val_curve(run)
        if not curve or not (run / "config.yaml").is_file():
            continue
        curves[arm] = curve
        wall = run / "wall_seconds"
        minutes = f"{float(wall.read_text()) / 60:.0f} min" if wall.is_file() else "-"
        best = max(v for _, v in curve)
        rows.append((best, f"| {arm} | {_hyper(run)} | {best:.4f} | {_epochs(run)} | {minutes} |"))
    lines = [
        "| arm | values | best val NDCG@10 | best epoch / epochs run | wall |",
        "|---|---|---|---|---|",
    ] + [line for _, line in sorted(rows, reverse=True)]
    return "\n".join(lines), curves


def svg_plot(curves: dict[str, list[tuple[int, float]]], title: str) -> str:
    """A dependency-free line plot: epoch on x, validation NDCG@10 on y."""
    w, h, left, right, top, bottom = 760, 420, 60, 250, 30, 40
    points = [p for c in curves.values() for p in c]
    if not points:
        return ""
    x_max = max(1, max(e for e, _ in points))
    y_max = max(v for _, v in points) * 1.05 or 1.0

    def xy(epoch: float, value: float) -> tuple[float, float]:
        x = left + (w - left - right) * epoch / x_max
        return x, h - bottom - (h - top - bottom) * value / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{(w - right + left) / 2}" y="{h - 8}" text-anchor="middle">epoch</text>',
    ]
    for i in range(5):
        v = y_max * i / 4
        _, y = xy(0, v)
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{v:.3f}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{w - right}" y2="{y}" stroke="#ddd"/>')
    for i in range(5):
        e = x_max * i / 4
        x, _ = xy(e, 0)
        parts.append(f'<text x="{x}" y="{h - bottom + 14}" text-anchor="middle">{e:.0f}</text>')
    for i, (label, curve) in enumerate(sorted(curves.items())):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(e, v) for e, v in curve))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{w - right + 10}" y="{top + 14 * i + 10}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main(outs: tuple[Path, ...], keep: Path | None = None, path: Path | None = None) -> None:
    """Writes the rows of ``outs`` (and those of ``keep`` they do not replace) to ``path`` (default
    <first out>/results.csv), prints the table and the targets, and plots each dataset's curves."""
    rows = all_rows(outs, keep)
    print(f"rows per run: {write_results(rows, path or outs[0] / 'results.csv')}")
    print(table(rows))
    print("\nTargets (mean over seeds; published SASRec must be met, ICLRec is the bar to aim for):")
    print(targets(rows))
    out = outs[0]
    for dataset in sorted({p.parent.name for o in outs for p in o.glob("*/*/seed*")}):
        curves = {
            f"{run.parent.parent.name}/{run.name}": val_curve(run)
            for o in outs
            for run in sorted(o.glob(f"*/{dataset}/seed*"))
        }
        svg = svg_plot({k: v for k, v in curves.items() if v}, f"{dataset}: validation NDCG@10 per epoch")
        if svg:
            plot = out / f"val_ndcg10_{dataset}.svg"
            plot.write_text(svg)
            print(f"plot: {plot}")


def tune(out: Path) -> None:
    text, curves = tune_table(out)
    print(text)
    svg = svg_plot(curves, "Beauty tuning: validation NDCG@10 per epoch")
    if svg:
        path = out / "val_ndcg10_tune_Beauty.svg"
        path.write_text(svg)
        print(f"plot: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "out", nargs="*", type=Path, help="run folder(s) (default runs/reproduce_sasrec_amazon)"
    )
    parser.add_argument("--tune", action="store_true", help="rank the Beauty tuning arms of tune.sh")
    parser.add_argument("--csv", type=Path, help="write the rows here (default <first out>/results.csv)")
    parser.add_argument(
        "--keep", type=Path, help="an earlier results.csv whose rows the folders do not replace"
    )
    args = parser.parse_args()
    outs = tuple(args.out or [Path("runs/reproduce_sasrec_amazon")])
    if args.tune:
        tune(outs[0])
    else:
        main(outs, keep=args.keep, path=args.csv)
