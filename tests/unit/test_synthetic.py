"""Tests of the procedural catalogue + simulated users (vrs.data.synthetic)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vrs.data.schema import load_dataset
from vrs.data.synthetic import (
    ATTRIBUTES,
    CATEGORIES,
    PERIOD_SECONDS,
    START_TIME,
    attribute_onehot,
    generate,
)
from vrs.data.synthetic_render import COLOURS

SMALL = dict(n_users=200, n_items=120, image_size=32)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "a", seed=0, **SMALL)


def _truth(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "truth" / "items.parquet")


def _files(root: Path) -> dict[str, bytes]:
    paths = [root / "items.parquet", root / "interactions.parquet", *sorted((root / "images").iterdir())]
    paths += sorted((root / "truth").iterdir())
    return {str(p.relative_to(root)): p.read_bytes() for p in paths}


def test_output_loads_and_matches_counts(small: Path) -> None:
    ds = load_dataset(small)
    assert ds.n_items == SMALL["n_items"] and ds.n_users == SMALL["n_users"]
    assert list(ds.items.columns[:5]) == ["item_id", "title", "description", "category", "image"]
    assert set(ds.interactions["event"]) <= {"view", "click", "cart", "purchase"}
    counts = ds.interactions["event"].value_counts()
    assert counts["view"] == counts.max()  # views dominate
    lengths = ds.interactions.groupby("user_id").size()
    assert lengths.min() >= 5 and lengths.max() <= 40
    ts = ds.interactions.groupby("user_id")["timestamp"].diff().dropna()
    assert (ts > 0).all()  # strictly increasing per user
    items = ds.interactions.groupby("user_id")["item_id"]
    assert not (items.shift() == ds.interactions["item_id"]).any()  # no immediate repeats
    with Image.open(small / ds.items["image"].iloc[0]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    meta = ds.meta
    assert meta["name"] == "synthetic" and meta["licence"] == "CC0"
    assert meta["generator"]["params"]["n_items"] == SMALL["n_items"]
    users = pd.read_parquet(small / "truth" / "users.parquet")
    assert len(users) == SMALL["n_users"] and len(users["colour_start"].iloc[0]) == len(ATTRIBUTES["colour"])


def test_determinism(small: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "b", seed=0, **SMALL)
    assert _files(again) == _files(small)
    other = _files(generate(tmp_path / "c", seed=1, **SMALL))
    ref = _files(small)
    assert other["interactions.parquet"] != ref["interactions.parquet"]
    assert other["images/i00000.png"] != ref["images/i00000.png"]


def test_reuse_and_overwrite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kw = dict(n_users=20, n_items=30, image_size=16)
    root = generate(tmp_path / "d", **kw)
    marker = root / "images" / "i00000.png"
    mtime = marker.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="vrs.data.synthetic"):
        generate(root, **kw)
    assert "Reusing" in caplog.text and marker.stat().st_mtime_ns == mtime
    generate(root, **{**kw, "n_items": 25})  # other parameters: regenerated, stale images removed
    assert len(list((root / "images").iterdir())) == 25
    assert json.loads((root / "dataset.json").read_text())["generator"]["params"]["n_items"] == 25
    mtime = marker.stat().st_mtime_ns
    generate(root, **{**kw, "n_items": 25}, overwrite=True)
    assert marker.stat().st_mtime_ns != mtime


def test_refuses_foreign_dataset(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "movielens"}))
    with pytest.raises(FileExistsError):
        generate(tmp_path, n_users=5, n_items=10, image_size=16)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_users": 0},
        {"n_items": 1},
        {"image_size": 8},
        {"cold_item_fraction": 1.0},
        {"cold_item_fraction": -0.1},
        {"text_noise": 1.5},
        {"n_periods": 1},
        {"min_history": 10, "max_history": 5},
        {"mixture": (0.5, 0.5)},
        {"temperature": 0.0},
    ],
)
def test_invalid_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **{"n_users": 5, "n_items": 10, "image_size": 16, **bad})
    assert not (tmp_path / "dataset.json").exists()


def test_cold_items(small: Path) -> None:
    truth = _truth(small)
    inter = load_dataset(small).interactions
    final_start = START_TIME + 9 * PERIOD_SECONDS  # n_periods = 10
    cold_ids = set(truth.loc[truth["is_cold"], "item_id"])
    assert len(cold_ids) == 12 and (truth.loc[truth["is_cold"], "release_period"] == 9).all()
    cold_rows = inter["item_id"].isin(cold_ids)
    assert cold_rows.any() and (inter.loc[cold_rows, "timestamp"] >= final_start).all()
    # Leave-one-out: no cold item in any training event (all but each user's last two) ...
    pos_from_end = inter.groupby("user_id").cumcount(ascending=False)
    assert not cold_rows[pos_from_end >= 2].any()
    # ... and enough test targets on cold items.
    share = cold_rows[pos_from_end == 0].mean()
    assert share >= 0.05, share


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _mismatches(root: Path) -> tuple[int, int]:
    """(# items whose text omits or contradicts colour, pattern or size, # items with a wrong category)."""
    truth, items = _truth(root), load_dataset(root).items
    bad = 0
    for (_, t), title, desc in zip(truth.iterrows(), items["title"], items["description"], strict=True):
        assert t["shape"] in _words(title) and t["shape"] in _words(desc)  # the shape is never noisy
        bad += any(
            t[attr] not in _words(text) or _words(text) & (set(values) - {t[attr]})
            for attr, values in ATTRIBUTES.items()
            if attr != "shape"
            for text in (title, desc)
        )
    wrong_cat = int((items["category"] != truth["shape"].map(CATEGORIES)).sum())
    return bad, wrong_cat


def test_text_noise(tmp_path: Path) -> None:
    kw = dict(n_users=10, n_items=120, image_size=16)
    clean = generate(tmp_path / "clean", text_noise=0.0, **kw)
    assert _mismatches(clean) == (0, 0)
    assert _truth(clean)["text_consistent"].all()
    noisy = generate(tmp_path / "noisy", text_noise=0.9, **kw)
    bad, wrong_cat = _mismatches(noisy)
    assert bad >= 0.8 * kw["n_items"] and wrong_cat == 0
    truth = _truth(noisy)
    assert int((~truth["text_consistent"]).sum()) == bad  # the flag tells exactly which items


def test_images_reflect_attributes(small: Path) -> None:
    truth = _truth(small)
    checked = 0
    for _, t in truth[(truth["pattern"] == "solid") & (truth["size"] == "large")].iterrows():
        img = np.asarray(Image.open(small / "images" / f"{t['item_id']}.png"), dtype=np.float64)
        target = np.asarray(COLOURS[t["colour"]], dtype=np.float64)
        # Pixels near the named colour must form a blob the size of a large shape, at the centre.
        close = np.linalg.norm(img - target, axis=-1) < 40
        assert close.mean() > 0.1, t["item_id"]
        assert close[12:20, 12:20].mean() > 0.5
        assert np.abs(img[close].mean(0) - target).max() < 15
        checked += 1
    assert checked >= 3
    # Sizes are visible: large shapes cover more pixels than small ones of the same shape kind.
    area = {}
    for size in ("small", "large"):
        ids = truth.loc[(truth["size"] == size) & (truth["shape"] == "circle"), "item_id"]
        bgs = []
        for i in ids:
            img = np.asarray(Image.open(small / "images" / f"{i}.png"), dtype=np.float64)
            corner = img[:3, :3].reshape(-1, 3).mean(0)
            bgs.append((np.linalg.norm(img - corner, axis=-1) > 40).mean())
        area[size] = np.mean(bgs)
    assert area["large"] > 2 * area["small"]


def test_visual_profile_beats_popularity(tmp_path: Path) -> None:
    # More users and items than the shared fixture: with 120 items a top-10 list is a twelfth of the
    # catalogue and 200 users give recall a standard error of ~0.02, which would blur the comparison.
    root = generate(tmp_path / "v", n_users=600, n_items=200, image_size=16)
    truth = _truth(root)
    inter = load_dataset(root).interactions
    onehot = attribute_onehot(truth)  # (N, V)
    index = pd.Series(np.arange(len(truth)), index=truth["item_id"])
    seqs = [index[g].to_numpy() for _, g in inter.groupby("user_id", sort=False)["item_id"]]
    counts = np.bincount(np.concatenate([s[:-1] for s in seqs]), minlength=len(truth)).astype(float)

    def hit(scores: np.ndarray, target: int) -> bool:  # ties count against the target
        return int((scores >= scores[target]).sum()) - 1 < 10

    visual = np.mean([hit(onehot @ onehot[s[:-1]].mean(0), s[-1]) for s in seqs])
    popular = np.mean([hit(counts, s[-1]) for s in seqs])
    assert visual > 1.5 * popular and visual > 0.1, (visual, popular)


def test_generation_shows_progress_for_large_sizes_only(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vrs.data.synthetic as synthetic

    small = {"n_users": 20, "n_items": 15, "image_size": 16}
    generate(tmp_path / "quiet", **small)
    assert "simulate" not in capsys.readouterr().err  # a tiny dataset: no bar
    monkeypatch.setattr(synthetic, "_PROGRESS_MIN_PAIRS", 20 * 15)  # as large as counts
    generate(tmp_path / "shown", **small)
    assert "simulate: 100%" in capsys.readouterr().err
    # The bar changes nothing generated.
    for name in ("interactions.parquet", "items.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "quiet" / name), pd.read_parquet(tmp_path / "shown" / name)
        )
