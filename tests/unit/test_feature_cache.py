"""On-disk feature cache: encode once, exact keys, resumable and atomic extraction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vrs.data.content import ItemContent
from vrs.encoders import inference
from vrs.encoders.cache import FEATURES_FILE, FeatureCache, key_of
from vrs.encoders.toy import ToyImageEncoder, build_toy_towers
from vrs.fusion.concat import ConcatFusion
from vrs.models.item_tower import ItemTower

N = 50


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8)


def _encoder(seed: int = 0) -> ToyImageEncoder:
    torch.manual_seed(seed)
    return ToyImageEncoder(out_dim=8, image_size=16).eval()


class Calls:
    """Call counter shared by an encoder and the inference copy the cache encodes with (deepcopy)."""

    def __init__(self, fail_at: int) -> None:
        self.n, self.fail_at = 0, fail_at

    def __deepcopy__(self, memo: dict) -> Calls:
        return self


class Flaky(nn.Module):
    """Wraps an encoder and fails on call number `fail_at` (a crash mid-extraction). The counter is a
    private attribute: public plain attributes are settings, part of the cache key."""

    def __init__(self, inner: nn.Module, fail_at: int) -> None:
        super().__init__()
        self.inner, self._calls = inner, Calls(fail_at)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._calls.n += 1
        if self._calls.n == self._calls.fail_at:
            raise RuntimeError("killed")
        return self.inner(x)


def test_features_are_encoded_once_and_equal_direct_encoding(tmp_path: Path, images: torch.Tensor) -> None:
    enc = _encoder()
    first = FeatureCache(tmp_path, shard_size=16, batch_size=8)
    feats = first.features("image", enc, images)
    with torch.no_grad():
        assert torch.allclose(feats, enc(images), atol=1e-6)
    assert first.encoder_calls == 7  # 4 shards of <= 16 items, <= 2 calls each: 2 + 2 + 2 + 1
    again = FeatureCache(tmp_path, shard_size=16, batch_size=8)
    assert torch.equal(again.features("image", _encoder(), images), feats)
    assert again.encoder_calls == 0
    assert not list(tmp_path.glob("*.partial"))


def test_key_changes_with_weights_settings_and_every_input_byte(images: torch.Tensor, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    base = cache.key("image", _encoder(0), images)
    assert cache.key("image", _encoder(0), images.clone()) == base
    assert cache.key("image", _encoder(1), images) != base  # other weights
    other_size = ToyImageEncoder(out_dim=8, image_size=24)
    other_size.load_state_dict(_encoder(0).state_dict())
    assert cache.key("image", other_size, images) != base  # same weights, other preprocessing
    changed = images.clone()
    changed[N - 1, 2, 15, 15] ^= 1  # one bit of one pixel
    assert cache.key("image", _encoder(0), changed) != base
    assert cache.key("text", _encoder(0), images) != base
    assert cache.key("image", nn.BatchNorm2d(3), images)  # 0-dim buffers (num_batches_tracked) hash too


def test_interrupted_extraction_leaves_no_entry_and_resumes(tmp_path: Path, images: torch.Tensor) -> None:
    flaky = Flaky(_encoder(), fail_at=5)  # dies inside shard 2 (calls 5-6), after shards 0 and 1
    cache = FeatureCache(tmp_path, shard_size=16, batch_size=8)
    key = cache.key("image", flaky, images)
    with pytest.raises(RuntimeError, match="killed"):
        cache.features("image", flaky, images)
    assert cache.load(key) is None and not (tmp_path / key / FEATURES_FILE).exists()
    assert cache.missing_shards(key, N) == [2, 3]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no half-written file
    flaky._calls.n, flaky._calls.fail_at = 0, -1
    resumed = cache.features("image", flaky, images)
    assert flaky._calls.n == 3  # shards 2 and 3 only
    fresh = FeatureCache(tmp_path / "fresh", shard_size=16, batch_size=8).features(
        "image", _encoder(), images
    )
    assert torch.equal(resumed, fresh)


def test_merge_refuses_missing_shards(tmp_path: Path, images: torch.Tensor) -> None:
    cache = FeatureCache(tmp_path, shard_size=16)
    enc = _encoder()
    meta = cache.describe("image", enc, images)
    key = key_of(meta)
    cache.encode_shards(key, enc, images, shards=[0, 3])
    with pytest.raises(RuntimeError, match=r"shards \[1, 2\] of 4 are missing"):
        cache.merge(key, meta)


def test_frozen_item_tower_reads_the_cache_without_calling_encoders(tmp_path: Path) -> None:
    torch.manual_seed(0)
    content = ItemContent(
        images=torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8),
        has_image=torch.ones(N, dtype=torch.bool),
        texts=[f"item {i} red shirt" for i in range(N)],
        has_text=torch.ones(N, dtype=torch.bool),
    )

    def tower() -> tuple[ItemTower, list[int]]:
        torch.manual_seed(0)
        towers = build_toy_towers(image_dim=8, text_dim=8, image_size=16)
        t = ItemTower(N, 8, towers, lambda **kw: ConcatFusion(**kw), freeze_encoders=True)
        calls = [0]
        for enc in t.encoders():
            enc.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        return t, calls

    plain, plain_calls = tower()
    plain.set_content(content)
    first, first_calls = tower()
    first.set_content(content, feature_cache=FeatureCache(tmp_path))
    second, second_calls = tower()
    second.set_content(content, feature_cache=FeatureCache(tmp_path))
    assert plain_calls[0] > 0 and first_calls[0] > 0
    assert second_calls[0] == 0  # every item's features came from disk
    with torch.no_grad():
        assert torch.allclose(second.eval()(), plain.eval()(), atol=1e-6)


def test_bf16_precision_is_its_own_entry_close_to_fp32(
    tmp_path: Path, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bf16 units or not (without them bf16 falls back to fp32 with a warning, tested in
    # test_image_features): bf16 autocast runs, emulated, on any CPU.
    monkeypatch.setattr(inference, "bf16_units", lambda device: True)
    enc = _encoder()
    fp32 = FeatureCache(tmp_path)
    bf16 = FeatureCache(tmp_path, precision="bf16")
    assert fp32.key("image", enc, images) != bf16.key("image", enc, images)
    a, b = fp32.features("image", enc, images), bf16.features("image", enc, images)
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert torch.allclose(a, b, atol=0.05 * float(a.abs().max()))
    with pytest.raises(ValueError, match="precision"):
        FeatureCache(tmp_path, precision="fp8")
