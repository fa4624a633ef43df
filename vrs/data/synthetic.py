"""A procedural visual catalogue with simulated users, written in the canonical dataset format.

Every item is a picture of one shape with latent visual attributes -- colour (8 values), shape (6),
pattern (4) and size (3) -- drawn with nuisance that carries no preference signal (background tint
and brightness, pixel noise, position jitter, small rotation). Titles, descriptions and categories
are written from the attributes, but with probability ``text_noise`` per attribute mention the text
omits or contradicts the item's colour, pattern or size, so the images hold information the text
does not. The category always follows the shape ("Stars").

Each user has sparse preference weights over attribute values (1-2 favourite colours, shapes and
patterns, a weak size taste) that drift by a small random walk each period. A history is generated
step by step; the next item is drawn from a mixture of (a) a softmax over items of the user's
current affinity, (b) item popularity (lognormal latent) and (c) items sharing attributes with the
previous one. Immediate repeats never happen; older items repeat rarely. Events are view, click,
cart or purchase, with cart and purchase likelier for high-affinity items.

Time: histories span ``n_periods`` periods of ``PERIOD_SECONDS``. The final period is a test window:
a share ``final_period_share`` of the users (those with 3 or more events) has exactly its last two
events there, every other event happens at least a day before it.

Cold items: a ``cold_item_fraction`` of the catalogue is released at the start of the final period
(period ``n_periods - 1``). No interaction with a cold item happens before that time; from then on
they carry a novelty boost (``cold_boost``), so many users' last events hit cold items. As only
the last two events of a user fall in the final period, a cold item never occurs in the training
part of a leave-one-out split (last event = test, second-to-last = validation) nor of a temporal
split at the final period's start: test targets on cold items are genuine cold-start targets.

Besides the canonical tables the generator writes the ground truth: ``truth/items.parquet`` (attributes,
popularity, release period, cold flag, what the text claims and whether it is consistent) and
``truth/users.parquet`` (preference weights per attribute at the first and the last period, as lists
ordered like ``ATTRIBUTES``).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrs.data.schema import META_FILE, write_dataset
from vrs.data.synthetic_render import COLOURS, FILLERS, PATTERNS, SHAPES, SIZES, item_texts, render_catalogue
from vrs.io import atomic_write

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the output for the same arguments changes (invalidates reuse)
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
TRUTH_DIR = "truth"
# Present while a generation is under way: a folder holding it (and no dataset.json) is a run of
# this generator that died midway, safe to redo; any other non-empty folder is someone else's.
INCOMPLETE_MARKER = ".vrs-synthetic-incomplete"

_SIMILARITY_STRENGTH = 2.0  # log-weight per attribute shared with the previous item
_PROGRESS_MIN_ITEMS = 2000


def attribute_onehot(truth_items: pd.DataFrame) -> np.ndarray:
    """One-hot attribute matrix of the truth items table: (N, V) float32, V = 21.

    Columns are the values of ``ATTRIBUTES`` in order (colours, then shapes, patterns, sizes).
    """
    blocks = []
    for attr, values in ATTRIBUTES.items():
        idx = pd.Categorical(truth_items[attr], categories=values).codes
        blocks.append(np.eye(len(values), dtype=np.float32)[idx])
    return np.concatenate(blocks, axis=1)  # (N, V)


def _validate(a: dict[str, Any]) -> None:
    checks = [
        (a["n_users"] >= 1, "n_users must be >= 1"),
        (a["n_items"] >= 2, "n_items must be >= 2"),
        (a["seed"] >= 0, "seed must be >= 0"),
        (a["image_size"] >= 16, "image_size must be >= 16"),
        (0 <= a["cold_item_fraction"] < 1, "cold_item_fraction must be in [0, 1)"),
        (0 <= a["text_noise"] <= 1, "text_noise must be in [0, 1]"),
        (a["n_periods"] >= 2, "n_periods must be >= 2 (cold items are released in the final period)"),
        (1 <= a["min_history"] <= a["max_history"], "need 1 <= min_history <= max_history"),
        (len(a["mixture"]) == 3, "mixture must hold 3 weights (preference, popularity, similar)"),
        (
            all(w >= 0 for w in a["mixture"]) and sum(a["mixture"]) > 0,
            "mixture weights must be >= 0, sum > 0",
        ),
        (a["temperature"] > 0, "temperature must be > 0"),
        (a["preference_strength"] >= 0, "preference_strength must be >= 0"),
        (a["drift"] >= 0, "drift must be >= 0"),
        (a["popularity_sigma"] >= 0, "popularity_sigma must be >= 0"),
        (a["cold_boost"] > 0, "cold_boost must be > 0"),
        (0 <= a["final_period_share"] <= 1, "final_period_share must be in [0, 1]"),
        (0 <= a["repeat_penalty"] <= 1, "repeat_penalty must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{message}, got { ({k: a[k] for k in a if k in message} or a) }")
    if a["n_items"] - int(round(a["cold_item_fraction"] * a["n_items"])) < 2:
        raise ValueError("at least 2 items must be non-cold; lower cold_item_fraction or raise n_items")


def _ids(prefix: str, n: int) -> list[str]:
    width = max(5, len(str(n - 1)))  # fixed width keeps id order equal to catalogue order
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def _sample_items(rng: np.random.Generator, n: int, a: dict[str, Any]) -> pd.DataFrame:
    """Truth attributes, nuisance and text claims of n items (catalogue order)."""
    codes = {attr: rng.integers(len(values), size=n) for attr, values in ATTRIBUTES.items()}
    df = pd.DataFrame({"item_id": _ids("i", n)})
    for attr, values in ATTRIBUTES.items():
        df[attr] = np.asarray(values)[codes[attr]]
    df["popularity"] = rng.lognormal(0.0, a["popularity_sigma"], size=n)
    cold = np.zeros(n, dtype=bool)
    cold[rng.permutation(n)[: int(round(a["cold_item_fraction"] * n))]] = True
    df["is_cold"] = cold
    df["release_period"] = np.where(cold, a["n_periods"] - 1, 0)
    # Text claims: per mention, correct, omitted ("") or contradicted by a wrong value.
    consistent = np.ones(n, dtype=bool)
    for attr in ("colour", "pattern", "size"):
        values = np.asarray(ATTRIBUTES[attr])
        noisy = rng.random(n) < a["text_noise"]
        omit = rng.random(n) < 0.5
        wrong = (codes[attr] + rng.integers(1, len(values), size=n)) % len(values)
        claim = np.where(noisy, np.where(omit, "", values[wrong]), values[codes[attr]])
        df[f"text_{attr}"] = claim
        df[f"{attr}_in_text"] = ~noisy
        consistent &= ~noisy
    df["text_consistent"] = consistent
    # Nuisance (no preference depends on it).
    df["background"] = list(np.clip(rng.uniform(150, 245, (n, 1)) + rng.normal(0, 8, (n, 3)), 0, 255))
    df["offset_x"], df["offset_y"] = rng.uniform(-0.05, 0.05, (2, n))
    df["rotation_deg"] = rng.uniform(-15, 15, n)
    df["noise_sigma"] = rng.uniform(2, 8, n)
    df["template"] = rng.integers(3, size=n)
    df["filler"] = rng.integers(len(FILLERS), size=n)
    return df


def _user_weights(
    rng: np.random.Generator, n_users: int, n_periods: int, strength: float, drift: float
) -> np.ndarray:
    """Preference weights (U, P, V): sparse favourites at period 0, then a random walk per period."""
    blocks = []
    for attr, values in ATTRIBUTES.items():
        k = len(values)
        w = rng.normal(0.0, 0.3 if attr != "size" else 0.5, (n_users, k))
        if attr != "size":  # size is a weak taste: no favourites
            order = np.argsort(rng.random((n_users, k)), axis=1)  # a random permutation per user
            rows = np.arange(n_users)
            w[rows, order[:, 0]] += strength
            second = rng.random(n_users) < 0.5  # about half the users have two favourites
            w[rows[second], order[second, 1]] += strength * rng.uniform(0.6, 1.0, second.sum())
        blocks.append(w)
    w0 = np.concatenate(blocks, axis=1)  # (U, V)
    steps = rng.normal(0.0, drift, (n_users, n_periods - 1, w0.shape[1]))
    walk = np.concatenate([np.zeros_like(w0)[:, None], np.cumsum(steps, axis=1)], axis=1)  # (U, P, V)
    return w0[:, None] + walk


def _timestamps(
    rng: np.random.Generator, lengths: np.ndarray, n_periods: int, final_share: float
) -> np.ndarray:
    """(U, T) int64 seconds since START_TIME, strictly increasing in each row's first L entries.

    A share ``final_share`` of the users (those with at least 3 events) has exactly its last two
    events in the final period; every other event lies at least a day before it.
    """
    n_users, t_max = len(lengths), int(lengths.max())
    final_start, span = (n_periods - 1) * PERIOD_SECONDS, n_periods * PERIOD_SECONDS
    ends_final = (rng.random(n_users) < final_share) & (lengths >= 3)
    early_end = np.where(ends_final, final_start - 86_400, rng.uniform(0.3, 1.0, n_users) * final_start)
    start = early_end * rng.uniform(0.0, 0.9, n_users)
    n_early = lengths - 2 * ends_final
    pos = np.arange(t_max)[None]  # (1, T)
    u = rng.random((n_users, t_max))
    # Sort keys: early events in [0, 1), final-period events in [1, 2), padding last.
    key = np.where(pos < n_early[:, None], u, np.where(pos < lengths[:, None], 1.0 + u, 3.0))
    key = np.sort(key, axis=1)
    early = start[:, None] + key * (early_end - start)[:, None]
    final = final_start + (key - 1.0) * (span - final_start)
    ts = np.floor(np.where(key < 1.0, early, final)).astype(np.int64)  # (U, T)
    return np.maximum.accumulate(ts - pos, axis=1) + pos  # bump rare ties: strictly increasing


def _simulate(
    rng: np.random.Generator, truth: pd.DataFrame, weights: np.ndarray, a: dict[str, Any]
) -> pd.DataFrame:
    """Step-by-step histories of all users; returns the interactions table."""
    onehot = attribute_onehot(truth)  # (N, V)
    n_users, n_items = weights.shape[0], len(truth)
    cold = truth["is_cold"].to_numpy()
    pop = truth["popularity"].to_numpy()
    w_pref, w_pop, w_sim = a["mixture"]
    final_start = (a["n_periods"] - 1) * PERIOD_SECONDS

    lengths = rng.integers(a["min_history"], a["max_history"] + 1, size=n_users)
    ts = _timestamps(rng, lengths, a["n_periods"], a["final_period_share"])  # (U, T)
    t_max = ts.shape[1]
    # All randomness is drawn up front, so the result does not depend on the user chunk size.
    choice_u = 1.0 - rng.random((n_users, t_max))  # in (0, 1]: never picks a zero-probability item
    event_u = rng.random((n_users, t_max))
    items = np.full((n_users, t_max), -1, dtype=np.int64)
    quality = np.zeros((n_users, t_max))

    chunk = max(8, min(512, 4_000_000 // n_items))
    for lo in range(0, n_users, chunk):
        rows = np.arange(lo, min(lo + chunk, n_users))
        seen = np.zeros((len(rows), n_items), dtype=bool)
        last = np.full(len(rows), -1)
        for t in range(int(lengths[rows].max())):
            act = np.flatnonzero(t < lengths[rows])  # local rows still active
            r = rows[act]
            period = np.minimum(ts[r, t] // PERIOD_SECONDS, a["n_periods"] - 1)
            final = ts[r, t] >= final_start
            avail = ~cold[None] | final[:, None]  # (B, N)
            aff = weights[r, period] @ onehot.T  # (B, N)
            logits = np.where(avail, aff / a["temperature"], -np.inf)
            p_pref = np.exp(logits - logits.max(axis=1, keepdims=True))
            p_pref /= p_pref.sum(axis=1, keepdims=True)
            p_pop = avail * pop[None]
            p_pop /= p_pop.sum(axis=1, keepdims=True)
            p = w_pref * p_pref + w_pop * p_pop
            if t > 0:
                shared = onehot[last[act]] @ onehot.T  # (B, N) attributes shared with the last item
                p_sim = avail * np.exp(_SIMILARITY_STRENGTH * shared)
                p_sim[np.arange(len(act)), last[act]] = 0.0
                p = p + w_sim * p_sim / p_sim.sum(axis=1, keepdims=True)
            p = p * np.where(cold[None] & final[:, None], a["cold_boost"], 1.0)  # novelty boost
            p = p * np.where(seen[act], a["repeat_penalty"], 1.0)
            allowed = avail.copy()
            if t > 0:
                allowed[np.arange(len(act)), last[act]] = False
            p = np.where(allowed, p + 1e-12, 0.0)  # the epsilon keeps a row valid if all else is 0
            cdf = np.cumsum(p, axis=1)
            target = choice_u[r, t] * cdf[:, -1]
            pick = np.minimum((cdf < target[:, None]).sum(axis=1), n_items - 1)
            a_pick = aff[np.arange(len(act)), pick]
            quality[r, t] = (np.where(avail, aff, np.inf) < a_pick[:, None]).sum(1) / avail.sum(1)
            items[r, t] = pick
            seen[act, pick] = True
            last[act] = pick

    # Event type: cart and purchase grow with the affinity percentile q of the chosen item.
    q = quality
    thresholds = np.stack([0.01 + 0.08 * q**2, 0.04 + 0.15 * q**2, 0.26 + 0.15 * q**2], axis=-1)
    event = 3 - (event_u[..., None] >= thresholds).sum(-1)  # 3=purchase ... 0=view
    valid = np.arange(t_max)[None] < lengths[:, None]
    uid = np.broadcast_to(np.arange(n_users)[:, None], (n_users, t_max))[valid]
    return pd.DataFrame(
        {
            "user_id": np.asarray(_ids("u", n_users))[uid],
            "item_id": truth["item_id"].to_numpy()[items[valid]],
            "timestamp": START_TIME + ts[valid],
            "event": np.asarray(EVENTS)[event[valid]],
        }
    )


def _existing_params(root: Path) -> dict[str, Any] | None:
    """The generator record of a complete synthetic dataset in root, or None when there is none.

    Raises:
        FileExistsError: when root holds a dataset that this generator did not write, or other files.
    """
    meta_path = root / META_FILE
    if not meta_path.is_file():
        if root.is_dir() and any(root.iterdir()) and not (root / INCOMPLETE_MARKER).exists():
            raise FileExistsError(
                f"{root} holds files but no {META_FILE}, so not a dataset written by vrs.data.synthetic; "
                "choose another out_dir (or pass overwrite=True, which replaces its images/ folder)"
            )
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "generator" not in meta:
        raise FileExistsError(
            f"{root} holds a dataset not written by vrs.data.synthetic "
            f"({meta.get('name') if isinstance(meta, dict) else None!r}); "
            "pass overwrite=True or choose another out_dir"
        )
    files = ("items.parquet", "interactions.parquet", "truth/items.parquet", "truth/users.parquet")
    if not all((root / f).is_file() for f in files):
        return None
    return meta["generator"]


def _record(params: dict[str, Any]) -> dict[str, Any]:
    """The generator record stored in dataset.json (JSON round trip: tuples become lists)."""
    return json.loads(json.dumps({"version": GENERATOR_VERSION, "params": params}))


def generation_conflict(out_dir: str | Path, **params: Any) -> str | None:
    """Why generating with ``params`` into ``out_dir`` would replace something, or None when it would not.

    None means ``out_dir`` is absent or empty, holds an interrupted run of this generator, or holds
    the catalogue of exactly these parameters (which :func:`generate` reuses).

    Args:
        out_dir: the dataset folder.
        **params: keyword arguments of :func:`generate` (defaults filled in).

    Returns:
        A sentence naming the folder and what differs (a parameter, the generator version, or a
        dataset or files of other origin).
    """
    root = Path(out_dir)
    bound = inspect.signature(generate).bind(root, **params)
    bound.apply_defaults()
    wanted = _record(_params(bound.arguments))
    try:
        existing = _existing_params(root)
    except FileExistsError as err:
        return str(err).split(";")[0]
    if existing is None:
        return None
    if existing.get("version") != wanted["version"]:
        return f"{root} holds a catalogue of generator version {existing.get('version')} (this code writes {wanted['version']})"
    have = existing.get("params", {})
    diffs = [
        f"{k}={have.get(k)!r} (requested {v!r})" for k, v in wanted["params"].items() if have.get(k) != v
    ]
    return f"{root} holds a synthetic catalogue generated with {', '.join(diffs)}" if diffs else None


def _params(arguments: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in arguments.items() if k not in ("out_dir", "overwrite", "progress")}
    params["mixture"] = list(params["mixture"])
    return params


def generate(
    out_dir: str | Path,
    n_users: int = 2000,
    n_items: int = 1000,
    seed: int = 0,
    image_size: int = 64,
    cold_item_fraction: float = 0.1,
    text_noise: float = 0.3,
    n_periods: int = 10,
    min_history: int = 5,
    max_history: int = 40,
    mixture: tuple[float, float, float] = (0.6, 0.2, 0.2),
    temperature: float = 1.0,
    preference_strength: float = 3.0,
    drift: float = 0.1,
    popularity_sigma: float = 1.0,
    cold_boost: float = 4.0,
    final_period_share: float = 0.6,
    repeat_penalty: float = 0.2,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Generate the procedural catalogue and user histories into ``out_dir`` (deterministic per seed).

    Args:
        out_dir: dataset folder; receives the canonical tables, ``images/`` and ``truth/``.
        n_users: number of simulated users.
        n_items: catalogue size.
        seed: seed of every random draw; the same arguments give byte-identical tables and images.
        image_size: side of the square RGB PNG images.
        cold_item_fraction: share of items released at the start of the final period.
        text_noise: per attribute mention (colour, pattern, size), probability that the text omits
            (half the time) or contradicts (the other half) the item's true value.
        n_periods: number of periods of ``PERIOD_SECONDS`` the histories span.
        min_history: shortest history length.
        max_history: longest history length.
        mixture: weights of the (preference, popularity, similar-to-last) next-item components.
        temperature: softmax temperature of the preference component.
        preference_strength: weight added to each favourite attribute value.
        drift: standard deviation of the per-period random walk of preference weights.
        popularity_sigma: sigma of the lognormal item popularity.
        cold_boost: factor on the probability of cold items once released (novelty).
        final_period_share: share of users (of those with 3 or more events) whose last two events
            fall in the final period.
        repeat_penalty: factor on the probability of items the user has seen before.
        overwrite: regenerate even when ``out_dir`` already holds this exact dataset.
        progress: show a rendering progress bar; None = only for catalogues of 2,000 items or more.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: on an invalid argument.
        FileExistsError: when ``out_dir`` holds a dataset of another origin, or files but no
            ``dataset.json``, and overwrite is False (see :func:`generation_conflict`).
    """
    params = _params(locals())
    _validate(params)
    generator = _record(params)
    root = Path(out_dir)
    existing = None if overwrite else _existing_params(root)
    if existing is not None and {k: existing.get(k) for k in generator} == generator:
        log.info("Reusing the synthetic dataset in %s (generated with identical parameters)", root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / INCOMPLETE_MARKER).touch()  # a rerun may redo this folder if the run dies midway
    (root / META_FILE).unlink(missing_ok=True)  # no stale completion marker if this run dies midway

    item_ss, user_ss, sim_ss, render_ss = np.random.SeedSequence(seed).spawn(4)
    truth = _sample_items(np.random.default_rng(item_ss), n_items, params)
    weights = _user_weights(np.random.default_rng(user_ss), n_users, n_periods, preference_strength, drift)
    interactions = _simulate(np.random.default_rng(sim_ss), truth, weights, params)

    # Images go to a fresh folder that replaces images/ whole, so no stale file survives.
    tmp_images = Path(tempfile.mkdtemp(dir=root, prefix=".images."))
    try:
        show = n_items >= _PROGRESS_MIN_ITEMS if progress is None else progress
        render_catalogue(truth, tmp_images, image_size, np.random.default_rng(render_ss), show)
        if (root / "images").exists():
            shutil.rmtree(root / "images")
        os.replace(tmp_images, root / "images")
    finally:
        if tmp_images.exists():
            shutil.rmtree(tmp_images)

    titles, descriptions = item_texts(truth)
    items = pd.DataFrame(
        {
            "item_id": truth["item_id"],
            "title": titles,
            "description": descriptions,
            "category": truth["shape"].map(CATEGORIES),
            "image": "images/" + truth["item_id"] + ".png",
        }
    )
    (root / TRUTH_DIR).mkdir(exist_ok=True)
    truth_cols = ["item_id", *ATTRIBUTES, "popularity", "release_period", "is_cold"]
    truth_cols += [c for c in truth.columns if c.startswith("text_") or c.endswith("_in_text")]
    truth_cols += ["rotation_deg", "offset_x", "offset_y", "noise_sigma"]
    atomic_write(root / TRUTH_DIR / "items.parquet", lambda p: truth[truth_cols].to_parquet(p, index=False))
    atomic_write(
        root / TRUTH_DIR / "users.parquet", lambda p: _users_table(weights).to_parquet(p, index=False)
    )
    extra = {"generator": {**generator, "attribute_values": {k: list(v) for k, v in ATTRIBUTES.items()}}}
    write_dataset(
        root, items, interactions, name="synthetic", source="vrs.data.synthetic (procedural)",
        licence="CC0", extra_meta=extra,
    )  # fmt: skip
    (root / INCOMPLETE_MARKER).unlink()
    return root


def _users_table(weights: np.ndarray) -> pd.DataFrame:
    """Truth preference weights: one list column per attribute, at the first and the last period."""
    df = pd.DataFrame({"user_id": _ids("u", weights.shape[0])})
    lo = 0
    for attr, values in ATTRIBUTES.items():
        hi = lo + len(values)
        df[f"{attr}_start"] = list(weights[:, 0, lo:hi])
        df[f"{attr}_end"] = list(weights[:, -1, lo:hi])
        lo = hi
    return df
