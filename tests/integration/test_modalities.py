"""docs/architecture.md's "Add a modality" recipe with the shipped `category` modality: a model with
image + text + category + ID trains, evaluates, serves, reports and reloads from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vrs
from tests.conftest import compose_config
from vrs.cli.evaluate import evaluate
from vrs.cli.report import report
from vrs.cli.train import train
from vrs.encoders.category import CategoryEncoder
from vrs.lit.module import RecModule
from vrs.run import find_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    run = tmp_path_factory.mktemp("four_modalities")
    overrides = ["modalities=[category]", "trainer.max_epochs=1", "data.image_size=32", "logger=none"]
    train(compose_config("train", overrides, run, small_data))
    return run


def test_image_text_category_and_id_train_evaluate_serve_report_and_reload(
    run_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test/ndcg_10"] <= 1.0
    run = vrs.load_run(run_dir)
    tower = run.module.net.item_tower
    assert tower.modalities == ("image", "text", "category", "id")
    assert isinstance(tower.towers["category"], CategoryEncoder) and tower.present["category"].all()

    evaluated = evaluate(compose_config("eval", [f"run_dir={run_dir}"], tmp_path / "eval"))
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"], abs=1e-6)

    users = list(run.datamodule.data.user_ids[:2])
    assert len(run.recommend(users, k=5)) == 10
    assert len(run.similar(["i00003"], k=5)) == 5
    assert run.search(["red star"], k=3)["query"].tolist() == ["red star"] * 3  # modality dropout 0.1

    overrides = [f"run_dir={run_dir}", "data.image_size=32", "users=2", "k=5", "thumb_size=32"]
    page = report(compose_config("report", overrides, tmp_path / "report", small_data)).read_text()
    assert "modalities=image+text+category+id" in page

    # The checkpoint alone rebuilds the category modality (no Hydra) and scores the same.
    module = RecModule.load_from_checkpoint(find_checkpoint(run_dir), map_location="cpu", weights_only=True)
    module.attach_data(run.datamodule.content)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.net.encode_items(), run.module.net.encode_items())
