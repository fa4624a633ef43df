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

import contextlib
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
from vrs.data.synthetic_catalogue import (
    ATTRIBUTES,
    CATEGORIES,
    EVENTS,
    PERIOD_SECONDS,
    START_TIME,
    attribute_onehot,
    sample_items,
)
from vrs.data.synthetic_render import item_texts, render_catalogue
from vrs.data.synthetic_users import simulate, user_weights, users_table
from vrs.io import atomic_write, file_lock

__all__ = [
    "ATTRIBUTES",
    "CATEGORIES",
    "EVENTS",
    "GENERATOR_VERSION",
    "INCOMPLETE_MARKER",
    "PERIOD_SECONDS",
    "START_TIME",
    "TRUTH_DIR",
    "attribute_onehot",
    "generate",
    "generation_conflict",
    "generation_lock",
]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the output for the same arguments changes (invalidates reuse)
TRUTH_DIR = "truth"
# Present while a generation is under way: a folder holding it (and no dataset.json) is a run of
# this generator that died midway, safe to redo; any other non-empty folder is someone else's.
INCOMPLETE_MARKER = ".vrs-synthetic-incomplete"

_PROGRESS_MIN_ITEMS = 2000
_PROGRESS_MIN_PAIRS = 1_000_000  # users x items simulated


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
        progress: show progress bars (simulation, rendering); None = the simulation's for 1,000,000
            users x items or more, the rendering's for catalogues of 2,000 items or more.

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
    if not overwrite and _holds(root, generator):
        log.info("Reusing the synthetic dataset in %s (generated with identical parameters)", root)
        return root
    with generation_lock(root):
        # Another process (a DDP rank, a job of a sweep) may have generated it while this one waited.
        if not overwrite and _holds(root, generator):
            return root
        _mark_incomplete(root)
        _write_all(root, params, generator, progress)
        (root / INCOMPLETE_MARKER).unlink()
    return root


def _write_all(root: Path, params: dict[str, Any], generator: dict[str, Any], progress: bool | None) -> None:
    """Samples the catalogue and users, simulates the histories, writes images, truth and tables."""
    n_users, n_items = params["n_users"], params["n_items"]
    item_ss, user_ss, sim_ss, render_ss = np.random.SeedSequence(params["seed"]).spawn(4)
    truth = sample_items(np.random.default_rng(item_ss), n_items, params)
    weights = user_weights(
        np.random.default_rng(user_ss),
        n_users,
        params["n_periods"],
        params["preference_strength"],
        params["drift"],
    )
    # The simulation's work grows with users x items: a minute at a few thousand of each.
    show = n_users * n_items >= _PROGRESS_MIN_PAIRS if progress is None else progress
    interactions = simulate(np.random.default_rng(sim_ss), truth, weights, params, progress=show)
    show = n_items >= _PROGRESS_MIN_ITEMS if progress is None else progress
    _write_images(root, truth, params["image_size"], np.random.default_rng(render_ss), show)
    _write_truth(root, truth, weights)
    extra = {"generator": {**generator, "attribute_values": {k: list(v) for k, v in ATTRIBUTES.items()}}}
    write_dataset(
        root, _items_table(truth), interactions, name="synthetic", source="vrs.data.synthetic (procedural)",
        licence="CC0", extra_meta=extra,
    )  # fmt: skip


def generation_lock(out_dir: str | Path) -> contextlib.AbstractContextManager[None]:
    """Held while a process generates into ``out_dir`` (a lock file beside it): processes that start
    together (the ranks of a cluster job, the jobs of a sweep) generate the catalogue once; the others
    wait, then reuse it. Hold it around deciding to replace a folder and replacing it."""
    root = Path(out_dir)
    return file_lock(root.parent / f".{root.name}.lock", f"the synthetic catalogue in {root}")


def _mark_incomplete(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / INCOMPLETE_MARKER).touch()  # a rerun may redo this folder if the run dies midway
    (root / META_FILE).unlink(missing_ok=True)  # no stale completion marker if this run dies midway


def _holds(root: Path, generator: dict[str, Any]) -> bool:
    """True when root holds the complete dataset of exactly this generator record."""
    existing = _existing_params(root)
    return existing is not None and {k: existing.get(k) for k in generator} == generator


def _write_images(
    root: Path, truth: pd.DataFrame, image_size: int, rng: np.random.Generator, progress: bool
) -> None:
    # Images go to a fresh folder that replaces images/ whole, so no stale file survives.
    tmp_images = Path(tempfile.mkdtemp(dir=root, prefix=".images."))
    try:
        render_catalogue(truth, tmp_images, image_size, rng, progress)
        if (root / "images").exists():
            shutil.rmtree(root / "images")
        os.replace(tmp_images, root / "images")
    finally:
        if tmp_images.exists():
            shutil.rmtree(tmp_images)


def _write_truth(root: Path, truth: pd.DataFrame, weights: np.ndarray) -> None:
    (root / TRUTH_DIR).mkdir(exist_ok=True)
    columns = ["item_id", *ATTRIBUTES, "popularity", "release_period", "is_cold"]
    columns += [c for c in truth.columns if c.startswith("text_") or c.endswith("_in_text")]
    columns += ["rotation_deg", "offset_x", "offset_y", "noise_sigma"]
    atomic_write(root / TRUTH_DIR / "items.parquet", lambda p: truth[columns].to_parquet(p, index=False))
    atomic_write(
        root / TRUTH_DIR / "users.parquet", lambda p: users_table(weights).to_parquet(p, index=False)
    )


def _items_table(truth: pd.DataFrame) -> pd.DataFrame:
    """The canonical items table: texts written from the text claims, the category from the shape."""
    titles, descriptions = item_texts(truth)
    return pd.DataFrame(
        {
            "item_id": truth["item_id"],
            "title": titles,
            "description": descriptions,
            "category": truth["shape"].map(CATEGORIES),
            "image": "images/" + truth["item_id"] + ".png",
        }
    )
