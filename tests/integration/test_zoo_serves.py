"""Every trained baseline of the zoo (experiments/baselines) trains, evaluates, serves top-K lists and
gets a report: one epoch each on the small synthetic catalogue, toy towers where a model reads images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose_config
from vrs.cli.evaluate import evaluate
from vrs.cli.recommend import recommend
from vrs.cli.report import report
from vrs.cli.runs import fit_baseline
from vrs.cli.train import train
from vrs.data.schema import load_dataset

FAST = ["trainer.max_epochs=1", "logger=none", "data=synthetic", "data.image_size=32"]
ZOO = {
    "bpr_mf": [],
    "vbpr_paper": ["encoder=toy"],
    "lightgcn": ["user.n_layers=2"],
    "lightgcn_recbole": [],
    "freedom_paper": ["encoder=toy"],
    "gru4rec_amazon": [],
    "bert4rec_amazon": [],
}


@pytest.mark.parametrize("experiment", sorted(ZOO))
def test_each_zoo_model_trains_evaluates_serves_and_reports(
    tmp_path: Path, small_data: Path, experiment: str
) -> None:
    run = tmp_path / "run"
    overrides = [f"experiment={experiment}", *FAST, *ZOO[experiment]]
    metrics = train(compose_config("train", overrides, run, small_data))
    ckpt = run / "checkpoints" / "last.ckpt"
    evaluated = evaluate(
        compose_config("eval", [f"ckpt_path={ckpt}", "data.image_size=32"], tmp_path / "eval", small_data)
    )
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])
    out = tmp_path / "recs.parquet"
    table = recommend(
        compose_config(
            "recommend",
            [f"ckpt_path={ckpt}", "users=all", "k=4", f"out={out}", "data.image_size=32"],
            tmp_path / "recommend",
            small_data,
        )
    )
    dataset = load_dataset(small_data)
    seen = dataset.interactions.groupby("user_id")["item_id"].agg(set)
    assert len(table) == 4 * len(seen) and set(table["item_id"]) <= set(dataset.items["item_id"])
    assert not any(item in seen[u] for u, item in zip(table["user_id"], table["item_id"], strict=True))
    page = report(
        compose_config(
            "report",
            [f"run_dir={run}", "data.image_size=32", "users=2", "k=3", "thumb_size=32"],
            tmp_path / "report",
            small_data,
        )
    )
    html = page.read_text()
    assert page == run / "report.html" and "<img" in html and f"{metrics['test/ndcg_10']:.4f}" in html


CATEGORY_INTEREST = [
    "model=category_interest",
    "encoder=lenet",
    "data.image_size=32",
    "model.classifier.epochs=5",
    "model.interest.half_life=null",  # no recency: the interest below does not depend on event order
]


def test_category_interest_serves_the_classifier_vrs_eval_fits(tmp_path: Path, small_data: Path) -> None:
    evaluated = evaluate(
        compose_config("eval", CATEGORY_INTEREST, tmp_path / "category_interest", small_data)
    )
    config = compose_config(
        "recommend", [*CATEGORY_INTEREST, "k=4", f"out={tmp_path / 'r.parquet'}"], tmp_path, small_data
    )
    run = fit_baseline(config)
    # The same seed and data fit the same classifier as vrs-eval's.
    assert run.results["classifier/accuracy"] == evaluated["classifier/accuracy"]
    table = recommend(config)
    # Each list, recomputed by hand: interest = event-weighted mean of the history's predicted
    # category distributions, score = interest . p(category | item), the user's items left out.
    probs = run.net.encode_items().double().numpy()  # (N, C): visual_weight 0 adds no columns
    weights = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 4.0}
    index = run.data.item_index
    ids = list(index)
    events = load_dataset(small_data).interactions
    assert events.groupby("user_id").size().max() <= run.max_len  # the whole history is read
    for user, rows in table.groupby("user_id"):
        mine = events[events["user_id"] == user]
        w = mine["event"].map(weights).to_numpy()[:, None]
        interest = (w * probs[[index[i] for i in mine["item_id"]]]).sum(0) / w.sum()
        scores = probs @ interest
        seen = set(mine["item_id"])
        order = [i for i in np.argsort(-scores, kind="stable") if ids[i] not in seen][:4]
        assert list(rows["item_id"]) == [ids[i] for i in order]
        assert list(rows["score"]) == pytest.approx(scores[order], rel=1e-5)
        assert all(set(because) <= seen for because in rows["because_item_ids"])
    # Its evaluation is a column of a trained run's report.
    run_dir = tmp_path / "bpr_mf"
    train(compose_config("train", ["experiment=bpr_mf", *FAST], run_dir, small_data))
    page = report(
        compose_config(
            "report",
            [
                f"run_dir={run_dir}",
                f"baselines=[{tmp_path / 'category_interest'}]",
                "users=2",
                "thumb_size=32",
            ],
            tmp_path / "report",
            small_data,
        )
    )
    html = page.read_text()
    assert "category_interest" in html and f"{evaluated['test/ndcg_10']:.4f}" in html


def test_popularity_serves_the_most_frequent_unseen_training_items(tmp_path: Path, small_data: Path) -> None:
    config = compose_config(
        "recommend", ["model=popularity", "k=3", f"out={tmp_path / 'r.parquet'}"], tmp_path, small_data
    )
    run = fit_baseline(config)
    table = recommend(config)
    counts = run.train_counts.double().numpy()
    ids = list(run.data.item_index)
    history = load_dataset(small_data).interactions.groupby("user_id")["item_id"].agg(set)
    for user, rows in table.groupby("user_id"):
        order = [
            i for i in sorted(range(len(ids)), key=lambda i: (-counts[i], i)) if ids[i] not in history[user]
        ]
        assert list(rows["item_id"]) == [ids[i] for i in order[:3]]
        assert list(rows["score"]) == [counts[i] for i in order[:3]]
    assert all(len(b) == 0 for b in table["because_item_ids"])  # counts say nothing about likeness


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=visual_profile"], "add encoder=NAME"),
        (["model=fused", "encoder=toy"], "for a trained model"),
        (["model=popularity", "run_dir=somewhere"], "give one of them"),
    ],
)
def test_serving_a_baseline_refuses_what_it_cannot_fit(
    tmp_path: Path, small_data: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        recommend(
            compose_config("recommend", [*overrides, f"out={tmp_path / 'r.parquet'}"], tmp_path, small_data)
        )
