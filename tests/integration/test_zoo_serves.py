"""Every trained baseline of the zoo (experiments/baselines) trains, evaluates, serves top-K lists and
gets a report: one epoch each on the small synthetic catalogue, toy towers where a model reads images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_config
from vrs.cli.evaluate import evaluate
from vrs.cli.recommend import recommend
from vrs.cli.report import report
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
