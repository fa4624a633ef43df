"""transformers CLIP / SigLIP towers from tiny random configs, and the new encoder configs."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTokenizer

from tests.conftest import compose_config
from vrs.encoders.base import EncoderWeightsError, Towers, layer_blocks, set_trainable_layers
from vrs.encoders.hf import build_hf_text_towers
from vrs.encoders.hf_clip import build_hf_clip_towers
from vrs.encoders.pixels import resize_normalize
from vrs.lit.module import build_towers

# A 54-token BPE vocabulary without merges: one token per letter, plus start / end of text.
VOCAB = {c: i for i, c in enumerate(string.ascii_lowercase)}
VOCAB |= {c + "</w>": 26 + i for i, c in enumerate(string.ascii_lowercase)}
VOCAB |= {"<|startoftext|>": 52, "<|endoftext|>": 53}
VISION = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
TEXT = {
    "vocab_size": 54,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 16,
    "bos_token_id": 52,
    "eos_token_id": 53,
    "pad_token_id": 53,
}
CONFIGS = {
    "clip": {"model_type": "clip", "projection_dim": 24, "text_config": TEXT, "vision_config": VISION},
    "siglip": {
        "model_type": "siglip",
        "text_config": TEXT | {"projection_size": 32},
        "vision_config": VISION,
    },
}
OUT_DIM = {"clip": 24, "siglip": 32}
TEXTS = ["red striped shirt", "a blue shoe", "", "long " * 20]
MEAN = [0.25, 0.5, 0.75]
NEW_CONFIGS = ["hf_clip", "hf_text", "clip_b16", "siglip_b16", "mobileclip_s1"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    CLIPTokenizer(vocab=VOCAB, merges=[]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random model with its tokenizer: what a downloaded model folder looks like."""
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(**CONFIGS[request.param])).save_pretrained(folder)
    CLIPTokenizer(vocab=VOCAB, merges=[]).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": MEAN, "image_std": [0.5] * 3}))
    return folder


def _images(n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 40, 48), dtype=torch.uint8, generator=g)  # not the model's size


def _towers(kind: str, tokenizer_dir: Path, **kwargs) -> Towers:
    torch.manual_seed(0)
    return build_hf_clip_towers(str(tokenizer_dir), config=CONFIGS[kind], max_length=12, **kwargs)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_shapes_dtypes_and_uint8_float_agree(kind: str, tokenizer_dir: Path) -> None:
    towers = _towers(kind, tokenizer_dir)
    image, text = towers.image.eval(), towers.text.eval()
    assert image.out_dim == text.out_dim == OUT_DIM[kind]
    assert not image.fixed_weights and not text.fixed_weights  # random weights from a config
    images = _images()
    with torch.no_grad():
        a = image(images)
        b = image(images.float() / 255)
        tokens = text.tokenize(TEXTS)
        t = text(tokens)
    assert a.shape == (3, OUT_DIM[kind]) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert tokens.shape == (len(TEXTS), 12) and tokens.dtype == torch.long
    assert t.shape == (len(TEXTS), OUT_DIM[kind]) and torch.isfinite(t).all()
    assert text.tokenize([]).shape == (0, 12)


def test_towers_split_the_model_without_overlap(tokenizer_dir: Path) -> None:
    towers = _towers("clip", tokenizer_dir)
    image = {id(p) for p in towers.image.parameters()}
    text = {id(p) for p in towers.text.parameters()}
    assert image and text and not image & text


def test_folder_matches_get_features(model_dir: Path) -> None:
    """Towers loaded from a saved folder equal the full model's get_image/text_features."""
    towers = build_hf_clip_towers(str(model_dir))
    assert towers.image.fixed_weights and towers.text.fixed_weights
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    image, text = towers.image.eval(), towers.text.eval()
    assert image.mean == tuple(MEAN) and text.max_length == TEXT["max_position_embeddings"]
    images = _images()
    pixels = resize_normalize(images, image.image_size, image.mean, image.std)
    # CLIP is causal and pools the first end-of-text token, so shorter padding with a mask agrees.
    # SigLIP was trained on text padded to its full length without a mask (its tokenizer returns none).
    clip = model.config.model_type == "clip"
    enc = tokenizer(
        TEXTS, padding="longest" if clip else "max_length", truncation=True, max_length=text.max_length
    )
    enc = {k: torch.tensor(v) for k, v in enc.items() if clip or k == "input_ids"}
    with torch.no_grad():
        want_img = model.get_image_features(pixel_values=pixels)
        want_txt = model.get_text_features(**enc)
        want_img = getattr(want_img, "pooler_output", want_img)
        want_txt = getattr(want_txt, "pooler_output", want_txt)
        torch.testing.assert_close(image(images), want_img)
        torch.testing.assert_close(text(text.tokenize(TEXTS)), want_txt)


def _counted(forward: Callable, calls: list[int]) -> Callable:
    def wrapper(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_gradients_flow_and_checkpointing_gives_the_same(kind: str, tokenizer_dir: Path) -> None:
    towers = _towers(kind, tokenizer_dir)
    images, tokens = _images(2), towers.text.tokenize(TEXTS[:2])
    calls = []
    for tower in (towers.image, towers.text):
        # Count runs of a module inside the layer; the recompute in the backward pass skips forward hooks.
        mlp = next(m for name, m in tower.named_modules() if name.endswith("layers.0.mlp"))
        mlp.forward = _counted(mlp.forward, calls)

    def grads() -> list[torch.Tensor]:
        towers.image.zero_grad(), towers.text.zero_grad()
        calls.clear()
        loss = towers.image(images).square().sum() + towers.text(tokens).square().sum()
        loss.backward()
        params = [*towers.image.parameters(), *towers.text.parameters()]
        assert all(p.grad is not None for p in params)
        return [p.grad.clone() for p in params]

    towers.image.train(), towers.text.train()
    plain = grads()
    assert len(calls) == 2  # layer 0 of each tower ran once
    for tower in (towers.image, towers.text):
        tower.set_grad_checkpointing(True)
    checkpointed = grads()
    assert len(calls) == 4  # ... and again in the backward pass
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)
    for tower in (towers.image, towers.text):
        tower.set_grad_checkpointing(False)
    grads()
    assert len(calls) == 2


def test_trainable_layers_find_the_hf_blocks(tokenizer_dir: Path) -> None:
    towers = _towers("clip", tokenizer_dir)
    for tower in (towers.image, towers.text):
        stem, blocks, head = layer_blocks(tower)
        assert len(blocks) == VISION["num_hidden_layers"] and stem and head
        set_trainable_layers(tower, 1)
        trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
        assert any(".layers.1." in n for n in trainable) and "projection.weight" in trainable
        assert not any(".layers.0." in n or "embedding" in n for n in trainable)
    # The towers hold disjoint sub-models: freezing the text tower left the image tower alone.
    set_trainable_layers(towers.text, 0)
    assert any(p.requires_grad for p in towers.image.parameters())


def test_missing_model_raises_a_helpful_error(tmp_path: Path) -> None:
    for path in [str(tmp_path / "no_such_folder"), "nobody/no-such-clip"]:
        with pytest.raises(EncoderWeightsError) as info:
            build_hf_clip_towers(path, cache_dir=str(tmp_path / "empty_cache"))
        message = str(info.value)
        assert path in message and "encoder.path" in message and "Hugging Face cache" in message
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(EncoderWeightsError, match="no_weights"):
        build_hf_clip_towers(str(tmp_path / "no_weights"))
    with pytest.raises(EncoderWeightsError, match="tokenizer"):
        build_hf_clip_towers(str(tmp_path / "no_weights"), config=CONFIGS["clip"])
    with pytest.raises(EncoderWeightsError, match="nobody/no-such-bert"):
        build_hf_text_towers("nobody/no-such-bert", cache_dir=str(tmp_path / "empty_cache"))


def test_unsupported_model_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="not supported"):
        build_hf_clip_towers(config={"model_type": "bert"}, text=False)


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_new_encoder_configs_build_or_fail_clearly(tmp_path: Path, name: str) -> None:
    cfg = compose_config("train", [f"encoder={name}"], tmp_path)
    try:
        towers = build_towers(OmegaConf.to_container(cfg.encoder, resolve=True))
    except (EncoderWeightsError, InstantiationException) as raised:
        err = raised if isinstance(raised, EncoderWeightsError) else raised.__cause__
        assert isinstance(err, EncoderWeightsError), repr(raised)
        assert "encoder.path" in str(err) or "encoder.pretrained" in str(err)
        return
    assert isinstance(towers, Towers) and (towers.image is not None or towers.text is not None)
