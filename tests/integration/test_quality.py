"""On the synthetic catalogue, models that see images must beat what cannot see them.

A small run (800 users x 300 items, frozen pretrained image/text features, 25 epochs): the fused
model beats popularity on test/ndcg_10, and on cold items (never in training) an image-using
model beats the ID-only model, which cannot know them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_config, make_synthetic
from vrs.cli.evaluate import evaluate
from vrs.cli.train import train

MEDIUM = {
    "n_users": 800,
    "n_items": 300,
    "seed": 0,
    "image_size": 64,
    "cold_item_fraction": 0.1,
    "text_noise": 0.3,
}


@pytest.fixture(scope="module")
def medium_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic(tmp_path_factory, "synthetic_medium", MEDIUM)


def _train(tmp_path: Path, data: Path, overrides: list[str]) -> dict[str, float]:
    cfg = compose_config(
        "train", ["experiment=demo", "trainer.max_epochs=25", "logger=none", *overrides], tmp_path, data
    )
    return train(cfg)


@pytest.mark.slow
def test_fused_beats_popularity_and_images_beat_ids_on_cold_items(tmp_path: Path, medium_data: Path) -> None:
    fused = _train(tmp_path / "fused", medium_data, [])
    id_only = _train(tmp_path / "id_only", medium_data, ["fusion=id_only", "trainer.max_epochs=5"])
    popularity = evaluate(compose_config("eval", ["model=popularity"], tmp_path / "popularity", medium_data))

    # At 15 epochs the model was still improving and once reached only 1.12x popularity's NDCG@10
    # (when two-thread training still varied run to run, before vrs.threads.take_rows); at 25, 1.85x
    # and 1.95x in two runs. 1.3x leaves that spread room and still fails a model that learned little
    # beyond popularity.
    assert fused["test/ndcg_10"] > 1.3 * popularity["test/ndcg_10"], (fused, popularity)
    assert fused["test/recall_10"] > popularity["test/recall_10"]
    # Cold items have no trained ID: the ID-only model ranks them all alike (ties count against).
    assert id_only["test_cold/recall_10"] < 0.01
    assert fused["test_cold/recall_10"] > id_only["test_cold/recall_10"] + 0.05, (fused, id_only)
