"""Assembles the report of a trained model into one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vrs.data.sequences import SequenceData
from vrs.io import atomic_write_text
from vrs.report import html
from vrs.report.evaluation import metrics_at_k, pick_users, rank_targets, user_cards
from vrs.report.plots import OTHER, PALETTE, Series, line_chart_svg, pca_2d, scatter_png
from vrs.serving.base import item_vectors, require_known

if TYPE_CHECKING:
    from vrs.run import Run

NO_CATEGORY = "(no category)"


@dataclass
class ReportSettings:
    """What the report shows.

    Attributes:
        ks: cut-offs K of the metric curves.
        k: recommendations per user card.
        users: how many test users get a card (about half hits, half misses), or their user ids.
        n_explain: history items listed under each recommendation.
        n_history: history items shown per card (the most recent ones).
        thumb_size: longest side of an inlined item image, in pixels.
        map_items: at most this many items are drawn on the embedding map (a seeded sample).
        batch_size: test users scored at once.
        seed: picks the card users and the map sample.
    """

    ks: Sequence[int] = (1, 5, 10, 20, 50)
    k: int = 10
    users: int | Sequence[str] = 6
    n_explain: int = 3
    n_history: int = 10
    thumb_size: int = 96
    map_items: int = 20000
    batch_size: int = 256
    seed: int = 0


def build_report(
    out: str | Path,
    run: Run,
    run_metrics: Mapping[str, float] | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    settings: ReportSettings | None = None,
    facts: Mapping[str, str] | None = None,
) -> Path:
    """Evaluates the run's network on the test split and writes the report to `out` (atomically).

    Users are ranked as the run was evaluated (its history length and `exclude_seen`); items absent
    from the run's training split are drawn as rings on the map.

    Args:
        out: the HTML file to write.
        run: the loaded run (`vrs.load_run`): network, data, items table and image folder.
        run_metrics: the run's metrics.json, or None.
        baselines: other runs' metrics.json by name, shown beside the run's.
        settings: what to show (defaults: `ReportSettings()`).
        facts: lines for the report's header (checkpoint, dataset, ...).

    Returns:
        The path written.
    """
    settings = settings or ReportSettings()
    baselines = dict(baselines or {})
    net, data, items, max_len, exclude_seen = run.net, run.data, run.items, run.max_len, run.exclude_seen
    run_name = run.name
    ks = sorted({int(k) for k in settings.ks})
    if not ks or ks[0] < 1 or settings.k < 1:
        raise ValueError(f"ks and k must be positive cut-offs, got ks={list(settings.ks)}, k={settings.k}")
    stages = {"test": data.test_targets, "test_cold": data.test_cold_targets}
    stages = {name: t for name, t in stages.items() if len(t)}
    if "test" not in stages:
        raise ValueError("the split has no test targets: nothing to evaluate")

    vectors = item_vectors(net)  # (N, D) once: encoding the catalogue can be the costly part
    curves, ranks = {}, {}
    for stage, targets in stages.items():
        ranks[stage], seen = rank_targets(
            net, data, targets, max_len, exclude_seen, settings.batch_size, item_vecs=vectors
        )
        curves[stage] = metrics_at_k(ranks[stage], seen, data.n_items, ks)

    rows = _card_rows(data, ranks["test"], settings)
    cards = user_cards(
        net, data, data.test_targets[rows], max_len, settings.k, settings.n_explain, exclude_seen, vectors
    )
    thumbs = html.Thumbnails(run.image_root, items["image"].tolist(), settings.thumb_size)
    card_html = "".join(html.user_card(c, items, thumbs, settings.n_history) for c in cards)

    columns = ({run_name: dict(run_metrics)} if run_metrics else {}) | {
        n: dict(m) for n, m in baselines.items()
    }
    n_hits = sum(c.hit for c in cards)
    sections = [
        ("Metrics", html.metrics_table(columns) + _metrics_note(run_metrics, baselines)),
        (
            "Metrics vs K",
            _curves_html(run_name, curves, baselines, ks)
            + "<p>Recomputed from the checkpoint on the test splits (full ranking, seen items excluded);"
            " baselines are the values of their metrics.json.</p>" + html.curve_table(curves, ks),
        ),
        ("Item embedding map", _map_html(vectors, items, run.train_counts, settings)),
        (
            "User cards",
            f"<p>{len(cards)} test users ({n_hits} hits at K={settings.k}). Recommendations exclude items"
            " the user had before the held-out one (dashed frame); a recommended held-out item is"
            " framed in green. Under each recommendation: the history items closest to it (cosine of"
            " item vectors).</p>" + card_html,
        ),
    ]
    document = html.page(f"vrs report: {run_name}", dict(facts or {}), sections)
    return atomic_write_text(out, document)


def _card_rows(data: SequenceData, test_ranks: Tensor, settings: ReportSettings) -> np.ndarray:
    """Rows of `data.test_targets` that get a card."""
    if isinstance(settings.users, int):
        return np.asarray(pick_users(test_ranks, settings.k, settings.users, settings.seed), dtype=np.int64)
    users = require_known(data.user_index, list(settings.users), "user id(s)")
    row_of = {int(u): r for r, u in reversed(list(enumerate(data.test_targets[:, 0])))}  # first target
    missing = [str(data.user_ids[u]) for u in users if u not in row_of]
    if missing:
        raise ValueError(f"user(s) {missing[:5]} have no test target to show")
    return np.asarray([row_of[u] for u in users], dtype=np.int64)


def _metrics_note(run_metrics: Mapping[str, float] | None, baselines: Mapping[str, object]) -> str:
    notes = []
    if not run_metrics:
        notes.append("the run has no metrics.json (trained with test=false?)")
    if not baselines:
        notes.append("no baseline runs given or found beside the run")
    return f"<p>Note: {'; '.join(notes)}.</p>" if notes else ""


def _curves_html(
    run_name: str,
    curves: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    ks: Sequence[int],
) -> str:
    charts = []
    for metric, label in (("recall", "Recall@K"), ("ndcg", "NDCG@K")):
        series = [
            Series(f"{run_name} {stage}", [(k, v[f"{metric}_{k}"]) for k in ks], PALETTE[0], dashed=i > 0)
            for i, (stage, v) in enumerate(curves.items())
        ]
        for j, (name, m) in enumerate(baselines.items()):
            pts = [(k, m[f"test/{metric}_{k}"]) for k in ks if f"test/{metric}_{k}" in m]
            series.append(Series(f"{name} test", pts, PALETTE[(j + 1) % len(PALETTE)], line=False))
        charts.append(line_chart_svg(series, f"{label} (test)"))
    entries = [(f"{run_name} {stage}", PALETTE[0], "dash" if i else "") for i, stage in enumerate(curves)]
    entries += [
        (f"{name} test", PALETTE[(j + 1) % len(PALETTE)], "square") for j, name in enumerate(baselines)
    ]
    return f'<div class="charts">{"".join(charts)}</div>' + html.legend(entries)


def _map_html(
    vectors: Tensor, items: pd.DataFrame, train_counts: Tensor | None, settings: ReportSettings
) -> str:
    points, share = pca_2d(vectors)  # (N, 2), (2,)
    n = len(points)
    keep = torch.arange(n)
    if n > settings.map_items:
        gen = torch.Generator().manual_seed(settings.seed)
        keep = torch.randperm(n, generator=gen)[: settings.map_items].sort().values
    categories = items["category"].fillna("").astype(str).replace("", NO_CATEGORY).to_numpy()
    counts = pd.Series(categories).value_counts()
    named = list(counts.index[: len(PALETTE) - 1]) if len(counts) > len(PALETTE) else list(counts.index)
    colour_of = {c: PALETTE[i] for i, c in enumerate(named)}
    colours = [colour_of.get(c, OTHER) for c in categories[keep.numpy()]]
    cold = None
    if train_counts is not None and bool(train_counts.any()):
        cold = (train_counts.cpu() == 0)[keep]  # (n,)
    png = scatter_png(points[keep], colours, cold)
    entries = [(c, colour_of[c], "") for c in named]
    if len(counts) > len(named):
        entries.append((f"other ({len(counts) - len(named)} categories)", OTHER, ""))
    ring = "absent from training (cold)" if cold is not None and bool(cold.any()) else None
    return (
        f'<div class="map"><img src="{html.data_uri(png, "image/png")}" width="560" height="560" '
        f'alt="item embedding map"></div>'
        + html.legend(entries, ring)
        + f"<p>{len(keep)} of {n} items, their item vectors projected on the first two principal components"
        f" ({share[0]:.0%} and {share[1]:.0%} of the variance), coloured by category.</p>"
    )
