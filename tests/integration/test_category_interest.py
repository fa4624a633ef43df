"""model=category_interest, the classic pipeline: classifier -> interest over categories -> ranking."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from vrs.cli.evaluate import evaluate
from vrs.data.batch import RecBatch
from vrs.lit.category_interest import event_weights
from vrs.models.category_interest import CategoryInterestRecommender


def test_classifier_learns_the_shapes_and_interest_beats_popularity(tmp_path: Path, small_data: Path) -> None:
    common = ["data.image_size=32", "model.classifier.epochs=40", "model.classifier.batch_size=16"]
    got = evaluate(
        compose_config(
            "eval", ["model=category_interest", "encoder=lenet", *common], tmp_path / "ci", small_data
        )
    )
    pop = evaluate(
        compose_config("eval", ["model=popularity", "data.image_size=32"], tmp_path / "pop", small_data)
    )
    print(
        {k: v for k, v in got.items() if k.startswith("classifier/")},
        got["test/ndcg_10"],
        pop["test/ndcg_10"],
    )
    assert got["classifier/n_heldout"] > 0 and got["classifier/n_classes"] >= 2
    assert got["classifier/accuracy"] > got["classifier/majority"] + 0.2
    # Users here choose by shape (the category) and by colour and size, which the category ignores.
    assert got["test/ndcg_10"] > pop["test/ndcg_10"]


def test_interest_weights_event_types_and_recency() -> None:
    probs = torch.eye(3)  # item i is category i for sure
    weights = event_weights({"click": 1, "purchase": 2}, {"purchase": 3.0})
    assert weights.tolist() == [1.0, 1.0, 3.0]
    model = CategoryInterestRecommender(probs, weights, half_life=1.0)
    # Left-padded history: [pad, item 0 (purchase), item 1 (click), item 2 (click)], oldest first.
    batch = RecBatch(
        items=torch.tensor([[0, 0, 1, 2]]),
        events=torch.tensor([[0, 2, 1, 1]]),
        mask=torch.tensor([[False, True, True, True]]),
        targets=torch.tensor([0]),
    )
    interest = model.encode_users(batch)[0]
    raw = torch.tensor([3.0 * 0.25, 1.0 * 0.5, 1.0])  # weight x 0.5 ** (later events / half_life)
    torch.testing.assert_close(interest, raw / raw.sum())
    scores = model.score(model.encode_users(batch), model.encode_items())
    assert scores.argmax().item() == 2  # the latest click outweighs the older purchase at half-life 1


def test_visual_term_needs_features() -> None:
    with pytest.raises(ValueError, match="visual_weight > 0 needs image features"):
        CategoryInterestRecommender(torch.eye(2), torch.ones(2), visual_weight=0.5)
