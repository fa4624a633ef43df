"""Shared preprocessing: each step against a brute-force version, the report, and the source configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from vrs.cli.common import CONFIG_DIR
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, apply_preprocess, format_report


def _tables(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    inter = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.zipf(1.6, n) % 40],
            "item_id": [f"i{i}" for i in rng.zipf(1.4, n) % 60],
            "timestamp": rng.integers(0, 50, n),  # many ties: the row order breaks them
            "event": rng.choice(["view", "purchase"], n),
        }
    )
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(70)], "title": "t"})  # i60..i69 never used
    return items, inter


def _run(options: Preprocess, tables=None) -> tuple[pd.DataFrame, pd.DataFrame, PrepareReport]:
    items, inter = tables or _tables()
    report = PrepareReport(source="test")
    items, inter = apply_preprocess(items, inter, options, report)
    return items, inter, report


def _chronological(inter: pd.DataFrame) -> list[tuple]:
    """Rows as (user, item, ts, row) sorted by user then time then row: the brute-force order."""
    rows = [
        (u, i, t, r)
        for r, (u, i, t) in enumerate(inter[["user_id", "item_id", "timestamp"]].itertuples(index=False))
    ]
    return sorted(rows, key=lambda x: (x[0], x[2], x[3]))


def test_defaults_keep_every_interaction_and_drop_unused_items() -> None:
    items, inter = _tables()
    out_items, out_inter, report = _run(Preprocess())
    pd.testing.assert_frame_equal(out_inter, inter)
    assert set(out_items["item_id"]) == set(inter["item_id"])
    assert [d.step for d in report.drops] == ["unused_items"]
    assert report.drops[0].items == len(items) - inter["item_id"].nunique()
    kept_all, _, _ = _run(Preprocess(drop_unused_items=False))
    assert len(kept_all) == len(items)


def test_k_core_matches_brute_force_and_is_a_fixed_point() -> None:
    _, inter = _tables()
    for k in (2, 3, 5):
        rows = list(inter[["user_id", "item_id"]].itertuples(index=False, name=None))
        alive = set(range(len(rows)))
        while True:
            users = pd.Series([rows[r][0] for r in alive]).value_counts()
            items = pd.Series([rows[r][1] for r in alive]).value_counts()
            now = {r for r in alive if users[rows[r][0]] >= k and items[rows[r][1]] >= k}
            if now == alive:
                break
            alive = now
        _, out, report = _run(Preprocess(k_core=k))
        assert list(out.index) == list(range(len(out)))
        expected = inter.iloc[sorted(alive)].reset_index(drop=True)
        pd.testing.assert_frame_equal(out, expected)  # original order kept
        assert out["user_id"].value_counts().min() >= k and out["item_id"].value_counts().min() >= k
        step = next(d for d in report.drops if d.step == f"k_core={k}")
        assert step.interactions == len(inter) - len(out)
        assert step.users == inter["user_id"].nunique() - out["user_id"].nunique()


@pytest.mark.parametrize("policy", ["first", "last"])
def test_dedup_keeps_the_earliest_or_latest_event(policy: str) -> None:
    _, inter = _tables()
    seen: dict[tuple, int] = {}
    for u, i, _, r in _chronological(inter):
        if policy == "last" or (u, i) not in seen:
            seen[(u, i)] = r
    _, out, report = _run(Preprocess(dedup=policy))
    pd.testing.assert_frame_equal(out, inter.iloc[sorted(seen.values())].reset_index(drop=True))
    assert not out.duplicated(["user_id", "item_id"]).any()
    assert report.drops[0].step == f"dedup={policy}"
    assert report.drops[0].interactions == len(inter) - len(seen)


def test_dedup_same_time_collapses_only_rows_sharing_the_timestamp() -> None:
    _, inter = _tables()
    first: dict[tuple, int] = {}
    for u, i, t, r in _chronological(inter):
        first.setdefault((u, i, t), r)
    _, out, report = _run(Preprocess(dedup="same_time"))
    pd.testing.assert_frame_equal(out, inter.iloc[sorted(first.values())].reset_index(drop=True))
    assert out.duplicated(["user_id", "item_id"]).any()  # repeats on other timestamps stay
    assert report.drops[0].step == "dedup=same_time"
    assert report.drops[0].interactions == len(inter) - len(first) > 0


def test_max_history_keeps_each_users_last_n_events() -> None:
    _, inter = _tables()
    by_user: dict[str, list[int]] = {}
    for u, _, _, r in _chronological(inter):
        by_user.setdefault(u, []).append(r)
    keep = sorted(r for rows in by_user.values() for r in rows[-3:])
    _, out, _ = _run(Preprocess(max_history=3))
    pd.testing.assert_frame_equal(out, inter.iloc[keep].reset_index(drop=True))


def test_event_filter_and_min_user_events() -> None:
    _, inter = _tables()
    _, out, report = _run(Preprocess(event_types=["purchase"], min_user_events=4))
    purchases = inter[inter["event"] == "purchase"]
    sizes = purchases["user_id"].map(purchases["user_id"].value_counts())
    pd.testing.assert_frame_equal(out, purchases[sizes >= 4].reset_index(drop=True))
    assert [d.step for d in report.drops][:2] == ["event_types", "min_user_events=4"]
    assert report.drops[0].interactions == int((inter["event"] == "view").sum())


def test_bad_options_and_empty_results_raise() -> None:
    with pytest.raises(ValueError, match=r"dedup must be one of"):
        Preprocess(dedup="newest")
    with pytest.raises(ValueError, match=r"k_core must be >= 0"):
        Preprocess(k_core=-1)
    with pytest.raises(ValueError, match=r"max_history must be >= 1"):
        Preprocess(max_history=0)
    with pytest.raises(
        ValueError,
        match=r"event_types \['clik'\] not in the data; event types present: \['purchase', 'view'\]",
    ):
        _run(Preprocess(event_types=["clik"]))
    with pytest.raises(ValueError, match="left no interactions"):
        _run(Preprocess(k_core=1000))


def test_report_text_names_each_step_and_count() -> None:
    _, _, report = _run(Preprocess(dedup="first", k_core=3))
    report.notes.append("12 items without an image")
    report.read = {"interactions": 400, "users": 40, "items": 70}
    text = format_report(report.to_dict())
    assert "read    : 400 interactions, 40 users, 70 items" in text
    assert "dedup=first:" in text and "k_core=3:" in text and "catalogue items" in text
    assert "note    : 12 items without an image" in text
    assert "dropped : nothing" in format_report(PrepareReport(source="x").to_dict())


@pytest.mark.parametrize("source", sorted(p.stem for p in (Path(CONFIG_DIR) / "source").glob("*.yaml")))
def test_every_source_config_composes(source: str) -> None:
    GlobalHydra.instance().clear()
    overrides = [f"source={source}", "in_dir=/in", "out_dir=/out", "name=x", "preprocess.k_core=5"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="prepare", overrides=overrides)
    GlobalHydra.instance().clear()
    assert cfg.source._target_.startswith("vrs.data.adapters.")
    if "preprocess" in cfg.source:  # the shared options reach the adapter as a Preprocess
        options = instantiate(cfg.source.preprocess)
        assert isinstance(options, Preprocess) and options.k_core == 5
