"""Image features cached by the image files' bytes: exact keys, decoding only what is missing,
resumable extraction, bad files, and the fast inference copy (folded, fused, bf16) of the encoders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from torch import nn

from tests.unit.test_feature_cache import Flaky
from vrs.data.content import ItemContent
from vrs.data.images import ImageFiles
from vrs.data.schema import DatasetError
from vrs.encoders import inference
from vrs.encoders.cache import FeatureCache
from vrs.encoders.inference import ConvPointwise, bf16_units, inference_copy, map_workers
from vrs.encoders.timm import TimmImageEncoder
from vrs.encoders.toy import ToyImageEncoder, build_toy_towers
from vrs.fusion.concat import ConcatFusion
from vrs.models.item_tower import ItemTower

N = 40  # shards of 16: 16 + 16 + 8
SIZE = 16


def _write(root: Path, i: int, shade: int = 0) -> str:
    rel = f"images/{i:03d}.png"
    gen = torch.Generator().manual_seed(i)
    pixels = torch.randint(0, 256, (12, 10, 3), dtype=torch.uint8, generator=gen)
    pixels[0, 0, 0] = shade
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.numpy()).save(root / rel)
    return rel


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for i in range(N):
        _write(root, i)
    return root


def _files(root: Path, size: int = SIZE, on_bad_image: str = "error", missing: tuple[int, ...] = ()):
    paths = [None if i in missing else f"images/{i:03d}.png" for i in range(N)]
    return ImageFiles(root, paths, size, on_bad_image)


def _encoder(seed: int = 0) -> ToyImageEncoder:
    torch.manual_seed(seed)
    return ToyImageEncoder(out_dim=8, image_size=SIZE).eval()


def test_key_changes_with_file_bytes_resize_decoder_precision_and_weights(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "bf16_units", lambda device: True)  # any CPU: the key alone
    cache = FeatureCache(tmp_path / "cache")
    base = cache.key("image", _encoder(), _files(root))
    assert cache.key("image", _encoder(), _files(root)) == base
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)
    assert cache.key("image", _encoder(), _files(copy)) == base  # the same bytes in another folder
    assert cache.key("image", _encoder(), _files(root, size=24)) != base  # resize setting
    assert cache.key("image", _encoder(1), _files(root)) != base  # encoder weights
    assert FeatureCache(tmp_path / "cache", precision="bf16").key("image", _encoder(), _files(root)) != base
    assert cache.key("image", _encoder(), _files(root, missing=(3,))) != base  # an item without image
    # The bad-image policy decides what is reported, not the pixels: same entry.
    assert cache.key("image", _encoder(), _files(root, on_bad_image="skip")) == base
    with monkeypatch.context() as m:
        m.setattr("vrs.data.images.DECODER", "another decoder")
        assert cache.key("image", _encoder(), _files(root)) != base
    _write(root, N - 1, shade=1)  # one byte of one pixel of the last file
    assert cache.key("image", _encoder(), _files(root)) != base


def test_only_missing_shards_are_decoded_and_a_resumed_extraction_equals_one_run(
    root: Path, tmp_path: Path
) -> None:
    flaky = Flaky(_encoder(), fail_at=5)  # 2 calls per shard of 16: dies on shard 2's only call
    cache = FeatureCache(tmp_path / "cache", shard_size=16, batch_size=8)
    first = _files(root)
    with pytest.raises(RuntimeError, match="killed"):
        cache.features("image", flaky, first)
    assert first.decoded == N  # shards 0 and 1, and shard 2, whose encoding failed
    key = cache.key("image", flaky, first)
    assert cache.missing_shards(key, N) == [2]

    flaky._calls.n, flaky._calls.fail_at = 0, -1
    again = _files(root)  # as a new process would
    resumed, usable = cache.features_and_usable("image", flaky, again)
    assert again.decoded == N - 32  # shard 2's 8 files only
    assert usable.all() and resumed.shape == (N, 8)

    hit = _files(root)
    assert torch.equal(cache.features("image", flaky, hit), resumed)
    assert hit.decoded == 0  # a complete entry decodes nothing

    at_once = FeatureCache(tmp_path / "fresh", shard_size=16, batch_size=8).features(
        "image", _encoder(), _files(root)
    )
    assert torch.equal(resumed, at_once)
    pixels, _ = _files(root).load(range(N))
    with torch.no_grad():
        torch.testing.assert_close(resumed, _encoder()(pixels), atol=1e-5, rtol=1e-4)


def test_unusable_files_are_recorded_and_reported_from_the_cache(root: Path, tmp_path: Path) -> None:
    (root / "images" / "005.png").write_bytes(b"not an image")
    cache = FeatureCache(tmp_path / "cache", shard_size=16)
    with pytest.warns(UserWarning, match=r"1 of 40 images .*005\.png"):
        _, usable = cache.features_and_usable("image", _encoder(), _files(root, on_bad_image="skip"))
    assert usable.tolist() == [i != 5 for i in range(N)]
    # The same entry read under on_bad_image=error: refused by name, nothing decoded.
    strict = _files(root, on_bad_image="error")
    with pytest.raises(DatasetError, match=r"005\.png"):
        cache.features_and_usable("image", _encoder(), strict)
    assert strict.decoded == 0
    # A fresh extraction under error stops at the shard with the bad file, before any entry exists.
    fresh = FeatureCache(tmp_path / "fresh", shard_size=16)
    with pytest.raises(DatasetError, match=r"1 missing or unreadable image file.*005\.png"):
        fresh.features("image", _encoder(), _files(root, on_bad_image="error"))
    assert not list((tmp_path / "fresh").glob("*/features.pt"))


def test_a_file_changed_after_the_key_was_computed_is_refused(root: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache", shard_size=16)
    files = _files(root)
    meta = cache.describe("image", _encoder(), files)  # hashes every file
    _write(root, 20, shade=7)
    key = cache.key("image", _encoder(), _files(root))
    with pytest.raises(DatasetError, match=r"020\.png changed after the feature-cache key"):
        cache.encode_shards(key, _encoder(), files)
    assert cache.load(key) is None and meta["inputs"]["files"] != _files(root).identity()["files"]


def test_frozen_tower_reads_cached_features_without_decoding(root: Path, tmp_path: Path) -> None:
    texts = [f"item {i}" for i in range(N)]

    def content() -> ItemContent:
        return ItemContent.from_files(_files(root, missing=(7,)), texts, torch.ones(N, dtype=torch.bool))

    def tower() -> ItemTower:
        torch.manual_seed(0)
        towers = build_toy_towers(image_dim=8, text_dim=8, image_size=SIZE)
        return ItemTower(N, 8, towers, lambda **kw: ConcatFusion(**kw), freeze_encoders=True)

    plain = tower()
    plain.set_content(content())  # no cache: decodes everything
    first, second = content(), content()
    tower().set_content(first, feature_cache=FeatureCache(tmp_path))
    cached = tower()
    cached.set_content(second, feature_cache=FeatureCache(tmp_path))
    assert first.image_files.decoded == N - 1 and second.image_files.decoded == 0
    assert not second.decoded  # the pixels were never read
    assert cached.present["image"].tolist() == [i != 7 for i in range(N)] == plain.present["image"].tolist()
    torch.testing.assert_close(
        cached.catalogue.inputs["image"], plain.catalogue.inputs["image"], atol=1e-5, rtol=1e-4
    )
    assert torch.equal(second.pixels([3, 7])[1], torch.zeros(3, SIZE, SIZE, dtype=torch.uint8))


def _effnet() -> TimmImageEncoder:
    """EfficientNet-Lite0 with random weights and random BatchNorm statistics, at a small size."""
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random weights"):
        enc = TimmImageEncoder(weights=None, image_size=64)
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return enc.eval()


def test_inference_copy_folds_and_fuses_without_changing_fp32_features() -> None:
    enc = _effnet()
    fast = inference_copy(enc, "fp32", torch.device("cpu"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, ConvPointwise) for m in fast.modules()) == sum(
        isinstance(m, nn.Conv2d) for m in enc.modules()
    )
    assert any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())  # the original is untouched
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        want = enc(images)
        torch.testing.assert_close(fast(images.contiguous(memory_format=torch.channels_last)), want)


class _Misregistered(nn.Module):
    """A BatchNorm registered right after a conv that it does not follow: folding would be wrong."""

    image_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.norm.running_mean.fill_(3.0)
        self.norm.running_var.fill_(4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.conv(x).mean(dim=(2, 3)) + self.norm(x.repeat(1, 2, 1, 1)[:, :4]).mean(dim=(2, 3))


def test_inference_copy_keeps_the_original_structure_when_folding_would_change_features() -> None:
    model = _Misregistered().eval()
    fast = inference_copy(model, "fp32", torch.device("cpu"))
    assert isinstance(fast.norm, nn.BatchNorm2d)  # the probe batch caught it
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x))


@pytest.mark.skipif(not bf16_units("cpu"), reason="this CPU has no bf16 units: bf16 means fp32 here")
def test_bf16_features_are_close_to_fp32(tmp_path: Path) -> None:
    enc = _effnet()
    images = torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8)
    fp32 = FeatureCache(tmp_path, shard_size=16).features("image", enc, images)
    bf16 = FeatureCache(tmp_path, shard_size=16, precision="bf16").features("image", enc, images)
    assert not torch.equal(fp32, bf16)
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.99


def test_bf16_on_a_device_without_bf16_units_warns_and_computes_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "bf16_units", lambda device: False)
    with pytest.warns(UserWarning, match="no bfloat16 units.*computed and cached as fp32"):
        cache = FeatureCache(tmp_path, precision="bf16")
    assert cache.precision == "fp32"
    images = torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8)
    assert cache.key("image", _encoder(), images) == FeatureCache(tmp_path).key("image", _encoder(), images)


def test_map_workers_order_errors_and_thread_settings() -> None:
    threads = torch.get_num_threads()
    assert map_workers(lambda i: i * i, 7, workers=3) == [i * i for i in range(7)]
    assert map_workers(lambda i: torch.get_num_threads(), 4, workers=2) == [1] * 4
    assert torch.get_num_threads() == threads  # the caller's setting is its own

    def fail(i: int) -> int:
        if i == 2:
            raise ValueError("batch 2")
        return i

    with pytest.raises(ValueError, match="batch 2"):
        map_workers(fail, 6, workers=2)


@pytest.mark.slow
def test_bf16_pretrained_effnet_features_are_close_to_fp32(tmp_path: Path) -> None:
    if not bf16_units("cpu"):
        pytest.skip("this CPU has no bf16 units")
    enc = TimmImageEncoder(weights="registry", image_size=224).eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 224, 224), dtype=torch.uint8, generator=gen)
    fp32 = FeatureCache(tmp_path).features("image", enc, images)
    bf16 = FeatureCache(tmp_path, precision="bf16").features("image", enc, images)
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.99
    assert timm.__version__  # the architecture comes from the installed timm


def test_visual_diversity_decodes_the_files_at_the_side_its_encoder_reads(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vrs.lit import baselines

    encoder = ToyImageEncoder(out_dim=8, image_size=24).eval()
    sides: list[int] = []
    encoder.register_forward_pre_hook(lambda module, args: sides.append(args[0].shape[-1]))
    monkeypatch.setattr(baselines, "build_towers", lambda cfg: {"image": encoder})
    content = ItemContent.from_files(_files(root), [""] * N, torch.zeros(N, dtype=torch.bool))
    features, present = baselines.image_features({}, content)
    assert sides and set(sides) == {24}  # not the run's SIZE, enlarged by the encoder
    assert present.all() and features.shape == (N, 8)
    assert content.image_files is not None and content.image_files.size == SIZE and not content.decoded
    pixels, _ = _files(root, size=24).load(range(N))
    with torch.no_grad():
        torch.testing.assert_close(features, encoder(pixels), atol=1e-5, rtol=1e-4)
