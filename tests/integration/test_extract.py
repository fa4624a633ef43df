"""vrs-extract: fills the feature cache that frozen-encoder training then reads; DDP sharding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from tests.integration.test_ddp import _cli
from vrs.cli.extract import extract
from vrs.cli.train import train
from vrs.encoders.cache import FeatureCache


def test_training_with_frozen_encoders_reads_what_extract_wrote(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    common = [f"feature_cache={cache}", "data.image_size=32"]
    paths = extract(compose_config("extract", [*common, "shard_size=64"], tmp_path / "x", small_data))
    assert set(paths) == {"image", "text"} and all(Path(p).is_file() for p in paths.values())

    encoded: list[int] = []
    original = FeatureCache.encode_shards

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        encoded.append(original(self, *args, **kwargs))
        return encoded[-1]

    monkeypatch.setattr(FeatureCache, "encode_shards", counting)
    overrides = [*common, "model.freeze_encoders=true", "debug=fdr"]
    train(compose_config("train", overrides, tmp_path / "run", small_data))
    assert sum(encoded) == 0  # nothing re-encoded: every item came from the cache
    # A second extraction finds everything there.
    extract(compose_config("extract", common, tmp_path / "y", small_data))
    assert sum(encoded) == 0


def test_ddp_extraction_equals_one_process(tmp_path: Path, small_data: Path) -> None:
    common = ["data=canonical", f"data.root={small_data}", "data.image_size=32", "shard_size=40"]
    one = _cli("vrs.cli.extract", [*common, f"feature_cache={tmp_path / 'one'}"], tmp_path)
    two = _cli(
        "vrs.cli.extract",
        [*common, f"feature_cache={tmp_path / 'two'}", "trainer=ddp_cpu", "trainer.devices=2"],
        tmp_path,
    )
    assert "Starting with 2 processes" in two.stdout + two.stderr
    assert "image:" in one.stdout and "text:" in two.stdout
    for name in ("image", "text"):
        [a] = (tmp_path / "one").glob(f"{name}-*/features.pt")
        [b] = (tmp_path / "two").glob(f"{name}-*/features.pt")
        assert a.parent.name == b.parent.name  # same key
        assert torch.equal(torch.load(a), torch.load(b))  # 150 items in 4 shards, split over 2 ranks
    assert not list((tmp_path / "two").glob("*.partial"))
