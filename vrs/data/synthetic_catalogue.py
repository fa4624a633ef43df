"""The procedural catalogue's vocabulary and the truth of its items (see `vrs.data.synthetic`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vrs.data.synthetic_render import COLOURS, FILLERS, PATTERNS, SHAPES, SIZES

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "pattern": PATTERNS,
    "size": SIZES,
}
CATEGORIES: dict[str, str] = {
    "circle": "Circles",
    "square": "Squares",
    "triangle": "Triangles",
    "star": "Stars",
    "diamond": "Diamonds",
    "cross": "Crosses",
}
EVENTS: tuple[str, ...] = ("view", "click", "cart", "purchase")
START_TIME = 1_577_836_800  # 2020-01-01 00:00:00 UTC
PERIOD_SECONDS = 14 * 86_400


def attribute_onehot(truth_items: pd.DataFrame) -> np.ndarray:
    """One-hot attribute matrix of the truth items table: (N, V) float32, V = 21.

    Columns are the values of ``ATTRIBUTES`` in order (colours, then shapes, patterns, sizes).
    """
    blocks = []
    for attr, values in ATTRIBUTES.items():
        idx = pd.Categorical(truth_items[attr], categories=values).codes
        blocks.append(np.eye(len(values), dtype=np.float32)[idx])
    return np.concatenate(blocks, axis=1)  # (N, V)


def ids(prefix: str, n: int) -> list[str]:
    """``n`` ids ``{prefix}00000``, ...: a fixed width keeps id order equal to catalogue order."""
    width = max(5, len(str(n - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def sample_items(rng: np.random.Generator, n: int, a: dict[str, Any]) -> pd.DataFrame:
    """Truth attributes, nuisance and text claims of n items (catalogue order).

    `a` holds `generate`'s parameters (popularity_sigma, cold_item_fraction, n_periods, text_noise).
    """
    codes = {attr: rng.integers(len(values), size=n) for attr, values in ATTRIBUTES.items()}
    df = pd.DataFrame({"item_id": ids("i", n)})
    for attr, values in ATTRIBUTES.items():
        df[attr] = np.asarray(values)[codes[attr]]
    df["popularity"] = rng.lognormal(0.0, a["popularity_sigma"], size=n)
    cold = np.zeros(n, dtype=bool)
    cold[rng.permutation(n)[: int(round(a["cold_item_fraction"] * n))]] = True
    df["is_cold"] = cold
    df["release_period"] = np.where(cold, a["n_periods"] - 1, 0)
    _add_text_claims(rng, df, codes, a["text_noise"])
    # Nuisance (no preference depends on it).
    df["background"] = list(np.clip(rng.uniform(150, 245, (n, 1)) + rng.normal(0, 8, (n, 3)), 0, 255))
    df["offset_x"], df["offset_y"] = rng.uniform(-0.05, 0.05, (2, n))
    df["rotation_deg"] = rng.uniform(-15, 15, n)
    df["noise_sigma"] = rng.uniform(2, 8, n)
    df["template"] = rng.integers(3, size=n)
    df["filler"] = rng.integers(len(FILLERS), size=n)
    return df


def _add_text_claims(
    rng: np.random.Generator, df: pd.DataFrame, codes: dict[str, np.ndarray], text_noise: float
) -> None:
    """Per mention of colour, pattern and size: correct, omitted ("") or contradicted by a wrong value."""
    n = len(df)
    consistent = np.ones(n, dtype=bool)
    for attr in ("colour", "pattern", "size"):
        values = np.asarray(ATTRIBUTES[attr])
        noisy = rng.random(n) < text_noise
        omit = rng.random(n) < 0.5
        wrong = (codes[attr] + rng.integers(1, len(values), size=n)) % len(values)
        claim = np.where(noisy, np.where(omit, "", values[wrong]), values[codes[attr]])
        df[f"text_{attr}"] = claim
        df[f"{attr}_in_text"] = ~noisy
        consistent &= ~noisy
    df["text_consistent"] = consistent
