"""vrs-extract: fills the feature cache that frozen-encoder training then reads; DDP sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from tests.integration.test_ddp import ROOT, _cli
from vrs.cli.extract import extract
from vrs.cli.train import train
from vrs.encoders.cache import FeatureCache
from vrs.encoders.inference import bf16_units


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_with_frozen_encoders_reads_what_extract_wrote(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    cache = tmp_path / "cache"
    common = [f"feature_cache={cache}", "data.image_size=32", f"feature_precision={precision}"]
    paths = extract(compose_config("extract", [*common, "shard_size=64"], tmp_path / "x", small_data))
    assert set(paths) == {"image", "text"} and all(Path(p).is_file() for p in paths.values())
    computed = precision if bf16_units("cpu") else "fp32"  # bf16 needs bf16 units (else: warning)
    for path in paths.values():  # bf16 features are keyed apart from fp32 ones, as training keys them
        meta = json.loads((Path(path).parent / "meta.json").read_text())
        assert meta.get("precision", "fp32") == computed

    def no_decoding(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("an image was decoded although its features are cached")

    monkeypatch.setattr("vrs.data.images._decode_array", no_decoding)

    encoded: list[int] = []
    original = FeatureCache.encode_shards

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        encoded.append(original(self, *args, **kwargs))
        return encoded[-1]

    monkeypatch.setattr(FeatureCache, "encode_shards", counting)
    overrides = [*common, "encoder.finetune.freeze=true", "debug=fdr"]
    train(compose_config("train", overrides, tmp_path / "run", small_data))
    assert sum(encoded) == 0  # nothing re-encoded or decoded: every item came from the cache
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


# vrs-extract whose encoder sends the process SIGTERM while encoding its second shard, as a
# scheduler's time limit would: deterministic, unlike a kill timed from outside.
_SIGTERM_DURING_SECOND_SHARD = """
import os, signal, sys
from vrs.encoders.cache import FeatureCache
from vrs.encoders.inference import bf16_units
encode = FeatureCache.encode_shards
calls = []
def encode_and_stop(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return encode(self, *args, **kwargs)
FeatureCache.encode_shards = encode_and_stop
from vrs.cli.extract import main
sys.argv = ["vrs-extract", *sys.argv[1:]]
main()
"""


def test_sigterm_stops_after_the_current_shard_and_a_rerun_continues(
    tmp_path: Path, small_data: Path
) -> None:
    cache = tmp_path / "cache"
    common = ["data=canonical", f"data.root={small_data}", "data.image_size=32", "shard_size=40"]
    args = [*common, f"feature_cache={cache}", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _SIGTERM_DURING_SECOND_SHARD, *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 128 + signal.SIGTERM, result.stdout[-2000:] + result.stderr[-2000:]
    assert "stopped by SIGTERM" in result.stderr and "Traceback" not in result.stderr
    # The shard being encoded was finished; nothing after it was started, nothing merged.
    assert len(list(cache.glob("*.partial/*.pt"))) == 2
    assert not list(cache.glob("*/features.pt"))

    encoded = []
    original = FeatureCache.encode_shards

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        encoded.append(original(self, *args, **kwargs))
        return encoded[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FeatureCache, "encode_shards", counting)
        rerun = compose_config("extract", [*common, f"feature_cache={cache}"], tmp_path / "again", small_data)
        paths = extract(rerun)
    assert sum(encoded) == 2 * 150 - 80  # 150 items per modality, the 2 finished shards of 40 reused
    fresh = extract(
        compose_config(
            "extract", [*common, f"feature_cache={tmp_path / 'fresh'}"], tmp_path / "f", small_data
        )
    )
    for name in ("image", "text"):
        assert torch.equal(torch.load(paths[name]), torch.load(fresh[name]))
