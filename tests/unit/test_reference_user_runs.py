"""benchmarks/vrs_side.py: a reference's per-target ranks and the run folder that vrs-compare's paired
tests read (runs without the reference libraries)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tests.scripts import load_script
from vrs.cli import compare
from vrs.data.schema.files import write_dataset


def _side():
    return load_script("benchmarks/vrs_side.py", "vrs_side")


def _data(tmp_path: Path):
    side = _side()
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(7)], "title": [f"t{k}" for k in range(7)]})
    rows = [  # ux's test target i5 never occurs in training (cold); uy's repeats a training item (seen)
        ("ux", "i2", 1), ("ux", "i3", 2), ("ux", "i0", 3), ("ux", "i4", 4), ("ux", "i5", 5),
        ("uy", "i1", 1), ("uy", "i0", 2), ("uy", "i3", 3), ("uy", "i6", 4), ("uy", "i1", 5),
        ("uz", "i6", 1), ("uz", "i4", 2), ("uz", "i2", 3), ("uz", "i0", 4), ("uz", "i3", 5),
    ]  # fmt: skip
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    root = write_dataset(tmp_path / "d", items, inter, name="tiny", source="test", licence="CC0")
    data, _, ds = side.load_split(root)
    data.item_table = ds.items
    return side, data, root


def test_per_target_ranks_match_the_aggregate_and_name_users_and_items(tmp_path: Path) -> None:
    side, data, root = _data(tmp_path)
    items = np.array([[k, 1.0] for k in range(7)], dtype=np.float32)  # item k scores k
    users = np.array([[1.0, 0.0]] * data.n_users, dtype=np.float32)
    per: dict = {}
    scores = side.score_vectors(data, data.test_targets, users, items, per_target=per)
    assert len(per["rank"]) == scores["n_users"] == 3
    hit = (per["rank"] < 10) & ~per["seen"]  # a seen target is a miss
    ndcg = np.where(hit, 1.0 / np.log2(per["rank"] + 2.0), 0.0).mean()
    assert math.isclose(ndcg, scores["ndcg_10"], rel_tol=1e-6)
    assert math.isclose(hit.mean(), scores["hr_10"], rel_tol=1e-6)
    metrics = side.run_metrics({"val": scores, "test": scores})
    assert metrics["test/recall_10"] == scores["hr_10"] and "test/n_users" not in metrics
    recbole = {"hit@10": 0.5, "ndcg@10": 0.25}  # RecBole's names
    assert side.run_metrics({"val": recbole, "test": recbole}) == {
        "val/recall_10": 0.5,
        "val/ndcg_10": 0.25,
        "test/recall_10": 0.5,
        "test/ndcg_10": 0.25,
    }

    side.write_user_run(
        tmp_path / "ref" / "seed0", data, per, metrics, {"data": {"root": str(root)}, "seed": 0}
    )
    frame = pd.read_parquet(tmp_path / "ref" / "seed0" / "test_users.parquet")
    got = {u: row for u, row in zip(frame["user"], frame.itertuples(), strict=True)}
    assert {u: got[u].target for u in got} == {"ux": "i5", "uy": "i1", "uz": "i3"}
    # ux: earlier items i0 i2 i3 i4 excluded, i6 alone scores above i5 -> rank 1; uy: i1 was seen -> a
    # miss, rank N (7 < 10: the seen flag, not the rank, makes it a miss); uz: i5 above i3 (i0 i2 i4 i6
    # excluded) -> rank 1.
    assert got["ux"].rank == 1 and got["uz"].rank == 1 and got["uy"].rank == data.n_items
    assert scores["hr_10"] == 2 / 3
    assert bool(got["uy"].seen) and not bool(got["ux"].seen)
    assert bool(got["ux"].cold) and not bool(got["uy"].cold) and not bool(got["uz"].cold)  # i5: test only


def test_reference_runs_group_by_seed_and_take_paired_tests(tmp_path: Path) -> None:
    side, data, root = _data(tmp_path)
    users = np.array([[1.0, 0.0]] * data.n_users, dtype=np.float32)
    up = np.array([[k, 1.0] for k in range(7)], dtype=np.float32)  # scores rising with k
    best = np.zeros((7, 2), dtype=np.float32)
    best[3, 0], best[5, 0] = 2.0, 1.0  # i3 first, i5 next: both test targets first among unseen items
    for name, items in (("up", up), ("best", best)):
        for seed in (0, 1):
            per: dict = {}
            scores = side.score_vectors(data, data.test_targets, users, items, per_target=per)
            config = {"reference": name, "seed": seed, "data": {"root": str(root)}}
            side.write_user_run(tmp_path / name / f"seed{seed}", data, per, side.run_metrics(
                {"val": scores, "test": scores}), config)  # fmt: skip
    groups = compare.group_runs(compare.find_runs([str(tmp_path / "up"), str(tmp_path / "best")]))
    assert [len(g.runs) for g in groups] == [2, 2]
    rows = compare.significance_rows(groups, groups[0], "recall_10")
    assert rows[1][-1] == "3"  # three test targets, paired
    # ux's and uz's targets move from rank 1 to 0, uy's stays seen: the same hits, so recall@10 equal,
    # and NDCG@10 up by 2 x (1 - 1 / log2 3) / 3.
    assert float(rows[1][1]) == 0.0
    ndcg = compare.significance_rows(groups, groups[0], "ndcg_10")
    assert math.isclose(float(ndcg[1][1]), 2 * (1 - 1 / math.log2(3)) / 3, abs_tol=1e-4)
