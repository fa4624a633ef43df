"""vrs-compare: runs side by side, seeds of one configuration grouped (mean ± std), and paired
significance tests over users between a baseline group and every other group.

vrs-compare runs/demo/train runs/demo/popularity runs/demo/visual_profile
vrs-compare runs/sweep/multirun_X --baseline 'fusion=concat' --format markdown --plot k.svg

Each argument is a run folder (metrics.json) or a folder holding runs (a multirun). Runs whose
config.yaml differ only in the seed form one group; a group is labelled by the settings that
differ between groups, or by its folder when they differ in more than LABEL_SETTINGS settings. Runs
on different datasets are refused unless --mixed-datasets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrs.cli.common import USER_RESULTS, is_debug_run

KEYS = [
    "test/recall_10", "test/ndcg_10", "test/mrr_10", "test/recall_20", "test/ndcg_20",
    "test/coverage_10", "test_cold/recall_10", "test_cold/ndcg_10", "val/ndcg_10",
]  # fmt: skip
# Groups that differ in more settings than this are labelled by their folders.
LABEL_SETTINGS = 3
# Settings that say where or how a run was written, not what was trained: these prefixes, and any
# setting ending in one of _WHERE (a saved config is resolved, so every folder setting names the run's).
_NOT_WHAT = ("seed", "paths.", "hydra.", "resume", "logger.", "task_name", "feature_cache", "run_dir",
             "ckpt_path")  # fmt: skip
_WHERE = (".dirpath", ".default_root_dir")


class CompareError(ValueError):
    """A comparison that cannot be made as asked (missing run, mixed datasets, no per-user results)."""


@dataclass
class Run:
    path: Path
    metrics: dict[str, float]
    config: dict[str, Any]  # flattened "a.b" -> value; empty for a run without config.yaml

    @property
    def dataset(self) -> str:
        return str(self.config.get("data.root", "?"))


@dataclass
class Group:
    key: tuple
    runs: list[Run] = field(default_factory=list)
    label: str = ""


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def find_runs(args: list[str]) -> list[Run]:
    """The runs named or found under the arguments (folders holding metrics.json), in order."""
    import yaml

    runs = []
    for arg in args:
        path = Path(arg)
        if path.is_file() and path.name == "metrics.json":
            path = path.parent
        if not path.is_dir():
            raise CompareError(f"{path} not found (run vrs-train / vrs-eval first)")
        found = [path] if (path / "metrics.json").is_file() else sorted(
            p.parent for p in path.rglob("metrics.json") if ".hydra" not in p.parts
        )  # fmt: skip
        if not found:
            raise CompareError(f"{path}: no metrics.json in it or below it (run vrs-train / vrs-eval first)")
        for run in found:
            if is_debug_run(run):
                raise CompareError(f"{run} is a debug run (fast_dev_run): not a result")
            cfg_path = run / "config.yaml"
            cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
            runs.append(Run(run, json.loads((run / "metrics.json").read_text()), _flatten(cfg or {})))
    return runs


def group_runs(runs: list[Run], mixed_datasets: bool = False) -> list[Group]:
    """Runs grouped by their config minus the seed (a run without config.yaml is its own group),
    labelled by the settings that differ between groups."""
    datasets = sorted({r.dataset for r in runs if r.config})
    if len(datasets) > 1 and not mixed_datasets:
        raise CompareError(
            f"runs on {len(datasets)} datasets ({', '.join(datasets)}): their numbers do not compare; "
            "compare one dataset at a time, or pass --mixed-datasets to show them anyway"
        )
    groups: dict[tuple, Group] = {}
    for run in runs:
        what = {k: v for k, v in run.config.items() if not (k.startswith(_NOT_WHAT) or k.endswith(_WHERE))}
        key = (
            tuple(sorted((k, repr(v)) for k, v in what.items())) if run.config else (("run", str(run.path)),)
        )
        groups.setdefault(key, Group(key)).runs.append(run)
    out = list(groups.values())
    differing = _differing_keys([dict(g.key) for g in out])
    # Too many differing settings for a label (different models, say): folders name the groups.
    top = None
    if len(differing) > LABEL_SETTINGS:
        top = Path(os.path.commonpath([str(r.path.resolve()) for r in runs]))
    for g in out:
        if not g.runs[0].config:
            g.label = g.runs[0].path.name
        elif top is not None:
            folder = Path(os.path.commonpath([str(r.path.resolve()) for r in g.runs]))
            g.label = str(folder.relative_to(top)) if folder != top else folder.name
        else:
            settings = dict(g.key)
            g.label = ", ".join(f"{k}={_plain(settings.get(k))}" for k in differing) or "all runs"
    _disambiguate(out)
    return out


def _differing_keys(settings: list[dict[str, str]]) -> list[str]:
    keys = sorted({k for s in settings for k in s if k != "run"})
    return [k for k in keys if len({s.get(k) for s in settings}) > 1]


def _plain(value: str | None) -> str:
    if value is None:
        return "-"
    text = value.strip("'\"")
    return Path(text).name if "/" in text else text


def _disambiguate(groups: list[Group]) -> None:
    """Two groups with one label (same folder names, say) get their paths' parents added."""
    seen: dict[str, int] = {}
    for g in groups:
        seen[g.label] = seen.get(g.label, 0) + 1
    for g in groups:
        if seen[g.label] > 1:
            g.label = f"{g.label} ({g.runs[0].path.parent.name}/{g.runs[0].path.name})"


def mean_std(values: list[float]) -> str:
    """Mean ± sample std of per-seed values (``"0.1234 ± 0.0056"``); a single value as is, ``"-"`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def metric_rows(groups: list[Group], keys: list[str]) -> list[list[str]]:
    """Header row, then one row per metric: mean ± std over each group's seeds."""
    rows = [["metric", *[f"{g.label} (n={len(g.runs)})" for g in groups]]]
    for key in keys:
        rows.append([key, *[mean_std([r.metrics[key] for r in g.runs if key in r.metrics]) for g in groups]])
    return rows


def _user_metric(run: Run, metric: str) -> Any:
    """Per-target values of ndcg_K / recall_K from the run's test_users.parquet, keyed by (user, target)."""
    import numpy as np
    import pandas as pd

    path = run.path / USER_RESULTS
    if not path.is_file():
        raise CompareError(
            f"{run.path}: no {USER_RESULTS} (per-user test results; written by vrs-train / vrs-eval "
            "since they were added): significance needs them for every run"
        )
    frame = pd.read_parquet(path)
    name, _, k = metric.rpartition("_")
    rank = frame["rank"].to_numpy()
    hit = rank < int(k)
    if "seen" in frame.columns:  # a seen target's rank is N: a miss, even when N <= K
        hit &= ~frame["seen"].to_numpy(dtype=bool)
    values = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0) if name == "ndcg" else hit.astype(float)
    return pd.Series(values, index=pd.MultiIndex.from_frame(frame[["user", "target"]]))


def _group_user_values(group: Group, metric: str) -> Any:
    """Per-target values averaged over the group's seeds."""
    import pandas as pd

    return pd.concat([_user_metric(r, metric) for r in group.runs], axis=1).mean(axis=1)


def significance_rows(groups: list[Group], baseline: Group, metric: str, seed: int = 0) -> list[list[str]]:
    """Paired tests of each group against the baseline over the targets both scored: mean difference,
    its bootstrap 95% CI, the paired t-test and the Wilcoxon signed-rank p-values."""
    import numpy as np
    from scipy import stats

    base = _group_user_values(baseline, metric)
    rows = [["group", f"Δ test/{metric}", "95% CI (bootstrap)", "paired t p", "Wilcoxon p", "targets"]]
    rng = np.random.default_rng(seed)
    for g in groups:
        if g is baseline:
            continue
        other = _group_user_values(g, metric)
        common = base.index.intersection(other.index)
        if not len(common):
            raise CompareError(f"{g.label} and {baseline.label} share no test target: different datasets?")
        diff = other.loc[common].to_numpy() - base.loc[common].to_numpy()
        boot = rng.choice(diff, size=(1000, diff.size)).mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        t_p = stats.ttest_rel(other.loc[common], base.loc[common]).pvalue if diff.any() else 1.0
        w_p = stats.wilcoxon(diff).pvalue if diff.any() else 1.0
        rows.append(
            [g.label, f"{diff.mean():+.4f}", f"[{lo:+.4f}, {hi:+.4f}]", _p(t_p), _p(w_p), str(diff.size)]
        )
    return rows


def _p(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2g}"


def render(rows: list[list[str]], fmt: str) -> str:
    """rows (header first) as an aligned table, Markdown, LaTeX tabular or CSV."""
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])
    if fmt == "latex":
        esc = [[c.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%") for c in r] for r in rows]
        body = [" & ".join(r) + r" \\" for r in esc]
        spec = "l" + "r" * (len(rows[0]) - 1)
        return "\n".join([rf"\begin{{tabular}}{{{spec}}}", r"\toprule", body[0], r"\midrule", *body[1:],
                          r"\bottomrule", r"\end{tabular}"])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def plot_k(groups: list[Group], name: str, path: Path) -> None:
    """SVG of test/<name>_K against K for each group, with ±1 std error bars over seeds."""
    ks = sorted({int(k.rpartition("_")[2]) for g in groups for r in g.runs for k in r.metrics
                 if k.startswith(f"test/{name}_")})  # fmt: skip
    if not ks:
        raise CompareError(f"no test/{name}_K metric in these runs")
    series = []
    for g in groups:
        points = []
        for k in ks:
            vals = [r.metrics[f"test/{name}_{k}"] for r in g.runs if f"test/{name}_{k}" in r.metrics]
            if vals:
                points.append((k, statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0))
        series.append((g.label, points))
    path.write_text(_svg(series, f"test {name}@K (mean ± std over seeds)", ks))


def _svg(series: list[tuple[str, list[tuple[int, float, float]]]], title: str, ks: list[int]) -> str:
    w, h, left, right, top, bottom = 640, 360, 60, 220, 30, 40
    y_max = max((m + s for _, pts in series for _, m, s in pts), default=1.0) * 1.1 or 1.0
    k_min, k_max = min(ks), max(ks)

    def xy(k: float, v: float) -> tuple[float, float]:
        x = left + (w - left - right) * ((k - k_min) / (k_max - k_min) if k_max > k_min else 0.5)
        return x, h - bottom - (h - top - bottom) * v / y_max

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             f'font-size="11"><rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13">{title}</text>']  # fmt: skip
    for k in ks:
        x, _ = xy(k, 0)
        parts.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{k}</text>')
    for i in range(5):
        _, y = xy(k_min, y_max * i / 4)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{y_max * i / 4:.3f}</text>')
    for i, (label, pts) in enumerate(series):
        c = colours[i % len(colours)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(k, m) for k, m, _ in pts))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        for k, m, s in pts:
            (x, y0), (_, y1) = xy(k, m - s), xy(k, m + s)
            parts.append(f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="{c}"/>')
        parts.append(f'<text x="{w - right + 10}" y="{top + 14 * i + 10}" fill="{c}">{label}</text>')
    return "\n".join([*parts, "</svg>"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vrs-compare", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders, or folders holding runs (a multirun)")
    p.add_argument("--baseline", help="the group the others are tested against: a label or part of it "
                   "(default: the first group)")  # fmt: skip
    p.add_argument("--format", choices=["table", "markdown", "latex", "csv"], default="table")
    p.add_argument(
        "--metric", default="ndcg_10", help="per-user metric of the paired tests (ndcg_K or recall_K)"
    )
    p.add_argument("--no-tests", action="store_true", help="metrics only, no significance tests")
    p.add_argument("--plot", type=Path, help="write an SVG of test recall@K against K with error bars")
    p.add_argument("--mixed-datasets", action="store_true", help="allow runs on different datasets")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        groups = group_runs(find_runs(args.runs), args.mixed_datasets)
        keys = [k for k in KEYS if any(k in r.metrics for g in groups for r in g.runs)]
        keys += sorted({k for g in groups for r in g.runs for k in r.metrics} - set(KEYS))
        print(render(metric_rows(groups, keys), args.format))
        if len(groups) > 1 and not args.no_tests and _has_user_results(groups):
            baseline = _baseline(groups, args.baseline)
            print(f"\npaired tests over test targets against {baseline.label} (per-user {args.metric}):")
            print(render(significance_rows(groups, baseline, args.metric), args.format))
        if args.plot:
            plot_k(groups, "recall", args.plot)
            print(f"plot: {args.plot}")
    except CompareError as err:
        print(f"vrs-compare: {err}", file=sys.stderr)
        return 1
    return 0


def _has_user_results(groups: list[Group]) -> bool:
    missing = [r.path for g in groups for r in g.runs if not (r.path / USER_RESULTS).is_file()]
    if missing:
        print(f"\nno paired tests: {len(missing)} run(s) without {USER_RESULTS}, e.g. {missing[0]}")
    return not missing


def _baseline(groups: list[Group], wanted: str | None) -> Group:
    if wanted is None:
        return groups[0]
    matches = [g for g in groups if wanted in g.label]
    if len(matches) != 1:
        labels = "; ".join(g.label for g in groups)
        raise CompareError(f"--baseline {wanted!r} matches {len(matches)} groups (groups: {labels})")
    return matches[0]


if __name__ == "__main__":
    sys.exit(main())
