"""Encoder towers: shapes, dtypes, tokenisation, gradients, parameter sharing, offline weights."""

from __future__ import annotations

import os
import time
import zlib

import pytest
import torch

from vrs.encoders.base import EncoderWeightsError, ImageEncoder, TextEncoder, Towers
from vrs.encoders.lenet import LeNetImageEncoder, build_lenet_towers
from vrs.encoders.open_clip import OpenClipImageEncoder, OpenClipTextEncoder, build_open_clip_towers
from vrs.encoders.pixels import resize_normalize, to_float_image
from vrs.encoders.toy import ToyImageEncoder, ToyTextEncoder, build_toy_towers

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(n: int, h: int, w: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


# preprocess


def test_to_float_image_scales_uint8_and_passes_float() -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.equal(to_float_image(x)[0, 0, 0], torch.tensor([0.0, 1.0]))
    f = torch.rand(2, 3, 4, 4)
    assert to_float_image(f) is f
    with pytest.raises(TypeError):
        to_float_image(torch.zeros(1, 3, 2, 2, dtype=torch.long))


def test_resize_normalize_shape_and_uint8_float_agree() -> None:
    x = _images(2, 40, 24)
    a = resize_normalize(x, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    b = resize_normalize(x.float() / 255, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert a.shape == (2, 3, 16, 16)
    torch.testing.assert_close(a, b)
    same = resize_normalize(torch.ones(1, 3, 8, 8), 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    torch.testing.assert_close(same, torch.full((1, 3, 8, 8), 2.0))


# image towers


@pytest.mark.parametrize("cls", [ToyImageEncoder, LeNetImageEncoder])
@pytest.mark.parametrize("size", [(32, 32), (64, 48), (20, 20)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_image_encoder_shapes(cls: type, size: tuple[int, int], dtype: torch.dtype) -> None:
    enc = cls()
    out = enc(_images(3, *size, dtype=dtype))
    assert isinstance(enc, ImageEncoder)
    assert out.shape == (3, enc.out_dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_image_encoder_uint8_equals_float() -> None:
    enc = ToyImageEncoder().eval()
    x = _images(2, 32, 32)
    torch.testing.assert_close(enc(x), enc(x.float() / 255))


def test_image_encoder_independent_of_batch() -> None:
    # GroupNorm, not BatchNorm: an item's vector must not depend on its chunk.
    enc = ToyImageEncoder().train()
    x = _images(4, 32, 32)
    torch.testing.assert_close(enc(x)[:1], enc(x[:1]))


def test_lenet_dims() -> None:
    assert LeNetImageEncoder()(_images(2, 32, 32)).shape == (2, 84)
    assert LeNetImageEncoder(out_dim=10)(_images(2, 100, 80)).shape == (2, 10)
    towers = build_lenet_towers(image_dim=20, text_dim=12)
    assert towers.image.out_dim == 20 and towers.text.out_dim == 12


@pytest.mark.parametrize("cls", [ToyImageEncoder, LeNetImageEncoder])
def test_image_gradients_flow(cls: type) -> None:
    enc = cls()
    enc(_images(2, 32, 32, torch.float32)).sum().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# toy text tower


def test_toy_tokenize_deterministic_and_padded() -> None:
    enc = ToyTextEncoder(vocab_size=100, max_tokens=6)
    tok = enc.tokenize(["Red Shoe, red-shoe!", "", "a b c d e f g h"])
    assert tok.shape == (3, 6) and tok.dtype == torch.long
    assert torch.equal(
        tok,
        ToyTextEncoder(vocab_size=100, max_tokens=6).tokenize(["Red Shoe, red-shoe!", "", "a b c d e f g h"]),
    )
    red, shoe = tok[0, 0].item(), tok[0, 1].item()
    assert tok[0].tolist() == [red, shoe, red, shoe, 0, 0]  # case and punctuation ignored, right-padded
    assert tok[1].tolist() == [0] * 6
    assert (tok[2] > 0).all()  # truncated to max_tokens
    assert ((tok >= 0) & (tok < 100)).all()
    assert enc.word_id("red") == 1 + zlib.crc32(b"red") % 99


def test_toy_text_forward_finite_and_pad_invariant() -> None:
    enc = ToyTextEncoder(out_dim=8, max_tokens=5)
    tok = enc.tokenize(["blue dress", ""])
    out = enc(tok)
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    longer = torch.cat([tok, torch.zeros(2, 3, dtype=torch.long)], dim=1)  # more padding, same text
    torch.testing.assert_close(enc(longer), out)


def test_toy_text_gradients_flow() -> None:
    enc = ToyTextEncoder()
    enc(enc.tokenize(["a small test", ""])).sum().backward()
    assert enc.embedding.weight.grad is not None and enc.embedding.weight.grad.abs().sum() > 0
    assert enc.embedding.weight.grad[0].abs().sum() == 0  # padding row never learns


def test_build_toy_towers() -> None:
    towers = build_toy_towers(image_dim=12, text_dim=10, image_size=16, vocab_size=64)
    assert isinstance(towers, Towers)
    assert isinstance(towers.image, ImageEncoder) and isinstance(towers.text, TextEncoder)
    assert towers.image(_images(2, 50, 50)).shape == (2, 12)
    assert towers.text(towers.text.tokenize(["x", "y z"])).shape == (2, 10)


# open_clip towers


@pytest.fixture(scope="module")
def tiny_clip() -> Towers:
    return build_open_clip_towers(model_cfg=TINY_CLIP)


def test_open_clip_shapes(tiny_clip: Towers) -> None:
    img, txt = tiny_clip.image, tiny_clip.text
    assert isinstance(img, OpenClipImageEncoder) and isinstance(txt, OpenClipTextEncoder)
    assert img.out_dim == txt.out_dim == 16 and img.image_size == 32
    for x in (_images(3, 32, 32), _images(3, 48, 40, torch.float32)):
        out = img(x)
        assert out.shape == (3, 16) and torch.isfinite(out).all()
    tok = txt.tokenize(["a red shoe", "", "word " * 50])
    assert tok.shape == (3, 16) and tok.dtype == torch.long
    assert torch.equal(tok, txt.tokenize(["a red shoe", "", "word " * 50]))
    assert torch.isfinite(txt(tok)).all() and txt(tok).shape == (3, 16)


def test_open_clip_matches_clip_encode(tiny_clip: Towers) -> None:
    import open_clip

    model = open_clip.CLIP(**TINY_CLIP).eval()
    towers = build_open_clip_towers(model_cfg=TINY_CLIP)
    # Wrapper state-dict keys are CLIP's own keys, so CLIP weights load into the towers unchanged.
    state = model.state_dict()
    towers.image.load_state_dict({k: v for k, v in state.items() if k.startswith("visual.")})
    towers.text.load_state_dict({k: v for k, v in state.items() if not k.startswith(("visual.", "logit"))})
    towers.image.eval(), towers.text.eval()
    tok = towers.text.tokenize(["hello world", "another caption"])
    torch.testing.assert_close(towers.text(tok), model.encode_text(tok))
    x = _images(2, 32, 32)
    torch.testing.assert_close(
        towers.image(x), model.encode_image(resize_normalize(x, 32, towers.image.mean, towers.image.std))
    )


def test_open_clip_shorter_context(tiny_clip: Towers) -> None:
    towers = build_open_clip_towers(model_cfg=TINY_CLIP, context_length=8)
    tok = towers.text.tokenize(["a long caption " * 5])
    assert tok.shape == (1, 8)
    assert towers.text(tok).shape == (1, 16)
    with pytest.raises(ValueError, match="context_length"):
        build_open_clip_towers(model_cfg=TINY_CLIP, context_length=32)


def test_open_clip_towers_share_no_parameters() -> None:
    # Both wrappers are cut from one CLIP: together they hold every tower parameter exactly once.
    towers = build_open_clip_towers(model_cfg=TINY_CLIP)
    img = {id(p) for p in towers.image.parameters()}
    txt = {id(p) for p in towers.text.parameters()}
    assert img and txt and not img & txt
    joint = torch.nn.ModuleDict({"image": towers.image, "text": towers.text})
    n_joint = sum(p.numel() for p in joint.parameters())
    import open_clip

    n_clip = sum(p.numel() for n, p in open_clip.CLIP(**TINY_CLIP).named_parameters() if n != "logit_scale")
    assert n_joint == n_clip
    assert not set(towers.image.state_dict()) & set(towers.text.state_dict())


def test_open_clip_single_tower() -> None:
    only_text = build_open_clip_towers(model_cfg=TINY_CLIP, image=False)
    assert only_text.image is None and only_text.text is not None
    only_image = build_open_clip_towers(model_cfg=TINY_CLIP, text=False)
    assert only_image.text is None and only_image.image is not None
    with pytest.raises(ValueError):
        build_open_clip_towers(model_cfg=TINY_CLIP, image=False, text=False)


def test_open_clip_gradients_flow(tiny_clip: Towers) -> None:
    tiny_clip.image(_images(2, 32, 32)).sum().backward()
    tiny_clip.text(tiny_clip.text.tokenize(["a", "b c"])).sum().backward()
    assert tiny_clip.image.visual.conv1.weight.grad is not None
    assert tiny_clip.text.token_embedding.weight.grad is not None


def test_open_clip_tag_offline_fails_fast(tmp_path) -> None:
    before = os.environ.get("HF_HUB_OFFLINE")
    start = time.monotonic()
    with pytest.raises(EncoderWeightsError) as err:
        build_open_clip_towers("ViT-B-32", pretrained="openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 20
    msg = str(err.value)
    for part in ("ViT-B-32", "'openai'", "not available offline", "encoder.pretrained=", "HF_HOME"):
        assert part in msg
    assert os.environ.get("HF_HUB_OFFLINE") == before  # restored


def test_open_clip_unknown_tag() -> None:
    with pytest.raises(EncoderWeightsError, match="known open_clip pretrained tag"):
        build_open_clip_towers(model_cfg=TINY_CLIP, pretrained="no_such_tag")


def test_open_clip_missing_checkpoint(tmp_path) -> None:
    path = tmp_path / "nope" / "open_clip_pytorch_model.bin"
    with pytest.raises(EncoderWeightsError, match=str(path)):
        build_open_clip_towers(model_cfg=TINY_CLIP, pretrained=str(path))


def test_open_clip_loads_local_checkpoint(tmp_path) -> None:
    import open_clip

    src = open_clip.CLIP(**TINY_CLIP)
    path = tmp_path / "tiny.bin"
    torch.save(src.state_dict(), path)
    towers = build_open_clip_towers(model_cfg=TINY_CLIP, pretrained=str(path))
    expected = src.state_dict()
    loaded = {**towers.image.state_dict(), **towers.text.state_dict()}
    assert set(loaded) == set(expected) - {"logit_scale"}
    for key, value in loaded.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_open_clip_bad_checkpoint(tmp_path) -> None:
    path = tmp_path / "bad.bin"
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(EncoderWeightsError, match="could not load"):
        build_open_clip_towers(model_cfg=TINY_CLIP, pretrained=str(path))


def test_open_clip_named_architecture_random_init_warns() -> None:
    with pytest.warns(UserWarning, match="random weights"):
        towers = build_open_clip_towers("ViT-B-32", text=False)
    assert towers.image.out_dim == 512 and towers.image.image_size == 224
    assert towers.image(_images(1, 64, 64)).shape == (1, 512)
