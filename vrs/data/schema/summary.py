"""Headline statistics of a loaded dataset (`vrs-data validate`, `vrs-synth`, `vrs-prepare`)."""

from __future__ import annotations

from typing import Any

from vrs.data.schema.spec import Dataset


def summarize(ds: Dataset) -> dict[str, Any]:
    """Headline statistics of a dataset.

    Returns:
        users, items, interactions, density (interactions / (users * items)), events (event -> count),
        images_present (items whose image file exists), items_without_image, time_range (min, max),
        mean_history and median_history (events per user).
    """
    has_path = ds.items["image"].notna()
    images_present = int(sum((ds.root / p).is_file() for p in ds.items.loc[has_path, "image"]))
    lengths = ds.interactions.groupby("user_id", sort=False).size()
    ts = ds.interactions["timestamp"]
    events = ds.interactions["event"].value_counts()
    return {
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": ds.n_interactions,
        "density": ds.n_interactions / max(ds.n_users * ds.n_items, 1),
        "events": {str(k): int(v) for k, v in sorted(events.items())},
        "images_present": images_present,
        "items_without_image": ds.n_items - images_present,
        "time_range": (int(ts.min()), int(ts.max())),
        "mean_history": float(lengths.mean()),
        "median_history": float(lengths.median()),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize` output as aligned ``key : value`` lines."""
    width = max(len(k) for k in summary)
    lines = []
    for key, value in summary.items():
        if isinstance(value, float):
            text = f"{value:.3g}" if key == "density" else f"{value:.2f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v:,}" for k, v in value.items())
        elif isinstance(value, tuple):
            text = " .. ".join(str(v) for v in value)
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        lines.append(f"{key.ljust(width)} : {text}")
    return "\n".join(lines)
