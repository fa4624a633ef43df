"""Every config composes and instantiates; every research axis is one word."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrs.cli.checks import check_config
from vrs.cli.common import CONFIG_DIR
from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.encoders.base import EncoderWeightsError
from vrs.lit.module import RecModule, build_towers

CONFIGS = Path(CONFIG_DIR)
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
N_ITEMS, N_EVENTS, MAX_LEN = 12, 3, 6


def _content(n: int = N_ITEMS) -> ItemContent:
    g = torch.Generator().manual_seed(0)
    return ItemContent(
        images=torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        has_image=torch.ones(n, dtype=torch.bool),
        texts=[f"item {i} red striped" for i in range(n)],
        has_text=torch.ones(n, dtype=torch.bool),
        columns={
            "category": [["Tops", "Shoes", ""][i % 3] for i in range(n)],
            "description": [f"attr{i % 4} attr{i % 5}" for i in range(n)],  # Amazon attribute tokens
        },
    )


def _batch() -> RecBatch:
    items = torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])  # (B, T)
    mask = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    return RecBatch(
        items=items,
        events=mask.long(),
        mask=mask,
        targets=torch.where(mask, items.roll(-1, 1), -1),
        users=torch.tensor([0, 1]),  # user=mf keeps a vector per user
    )


def _build(cfg) -> RecModule:
    module = instantiate(cfg.model, n_items=N_ITEMS, n_events=N_EVENTS, max_len=MAX_LEN, n_users=2)
    module.attach_data(_content(), torch.arange(1, N_ITEMS + 1).float())
    # Graph models (user=lightgcn) take the training pairs from the datamodule: _batch()'s.
    module.fit_catalogue(
        SimpleNamespace(train_pairs=(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 2, 5, 6])))
    )
    return module


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(tmp_path: Path, experiment: str) -> None:
    cfg = compose_config("train", [f"experiment={experiment}", "encoder=toy"], tmp_path)
    assert instantiate(cfg.data).max_len == cfg.data.max_len
    module = _build(cfg)
    loss = module.training_step(_batch(), 0)
    assert torch.isfinite(loss)
    assert instantiate(cfg.trainer, logger=False).max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize(
    "override",
    [f"fusion={p.stem}" for p in sorted((CONFIGS / "fusion").glob("*.yaml"))]
    + [f"user={p.stem}" for p in sorted((CONFIGS / "user").glob("*.yaml"))]
    + [f"loss={p.stem}" for p in sorted((CONFIGS / "loss").glob("*.yaml"))]
    + [f"modalities=[{p.stem}]" for p in sorted((CONFIGS / "modalities").glob("*.yaml"))]
    + ["encoder=tiny_clip", "encoder=lenet", "encoder.finetune.freeze=true", "~encoder"],
)
def test_each_axis_is_one_word(tmp_path: Path, override: str) -> None:
    extra = {"sampled": ["loss.n_negatives=4"], "freedom": ["encoder.finetune.freeze=true"]}
    more = [o for key, values in extra.items() if key in override for o in values]
    # user=freedom builds its item graph from frozen features (refused otherwise, with the reason).
    cfg = compose_config("train", [override, *more], tmp_path)
    module = _build(cfg)
    loss = module.training_step(_batch(), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_no_plain_key_shadows_a_config_group(name: str) -> None:
    """A top-level key named like a config folder cannot be set from the command line (Hydra reads
    `key=...` as choosing from that group): `vrs-extract modalities=[text]` used to fail that way."""
    raw = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"))
    chosen = set()
    for entry in raw.get("defaults", []):
        keys = entry if isinstance(entry, dict) else {entry: None}
        chosen |= {k.replace("override ", "").lstrip("/").split("@")[0] for k in keys}
    groups = {p.name for p in CONFIGS.iterdir() if p.is_dir()}
    assert not (set(raw) - {"defaults"} - chosen) & groups


def test_extract_towers_is_a_command_line_setting(tmp_path: Path) -> None:
    assert list(compose_config("extract", ["towers=[text]"], tmp_path).towers) == ["text"]


@pytest.mark.parametrize(("encoder", "negatives"), [("toy", "catalogue"), ("effnet", "in_batch")])
def test_finetune_is_one_node_with_per_encoder_defaults(tmp_path: Path, encoder: str, negatives: str) -> None:
    cfg = compose_config("train", [f"encoder={encoder}", "encoder.finetune.lr=0.0001"], tmp_path)
    finetune = OmegaConf.to_container(cfg.model.finetune, resolve=True)
    assert finetune == {
        "freeze": False,
        "trainable_layers": None,
        "lr": 0.0001,
        "gradient_checkpointing": False,
        "negatives": negatives,
    }


def test_bad_finetune_settings_are_named(tmp_path: Path) -> None:
    overrides = ["encoder.finetune.lr=0", "encoder.finetune.negatives=sometimes"]
    with pytest.raises(ValueError) as err:
        check_config(compose_config("train", overrides, tmp_path))
    assert "encoder.finetune.lr=0: expected null or a number > 0" in str(err.value)
    assert "encoder.finetune.negatives='sometimes': expected one of in_batch, catalogue" in str(err.value)


def test_checkpoint_hparams_rebuild_without_hydra(tmp_path: Path) -> None:
    cfg = compose_config("train", ["fusion=gated", "user=sasrec"], tmp_path)
    module = _build(cfg)
    rebuilt = RecModule(**module.hparams)
    rebuilt.load_state_dict(module.state_dict())
    rebuilt.attach_data(_content())
    module.eval(), rebuilt.eval()
    with torch.no_grad():
        a = module.net.encode_users(_batch(), module.net.encode_items())
        b = rebuilt.net.encode_users(_batch(), rebuilt.net.encode_items())
    assert torch.equal(a, b)


def test_clip_b32_without_offline_weights_fails_clearly(tmp_path: Path) -> None:
    cfg = compose_config("train", ["encoder=clip_b32"], tmp_path)
    with pytest.raises((EncoderWeightsError, InstantiationException)) as info:
        build_towers(OmegaConf.to_container(cfg.encoder, resolve=True))
    err = info.value if isinstance(info.value, EncoderWeightsError) else info.value.__cause__
    assert isinstance(err, EncoderWeightsError)
    assert "ViT-B-32" in str(err) and "encoder.pretrained" in str(err)


@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        (["encoder=effnet"], 224),
        (["encoder=tiny_clip"], 32),
        (["encoder=minilm"], 64),  # no image tower: the data default
        (["encoder=effnet", "data.image_size=96"], 96),  # set by hand: kept
        (["experiment=demo"], 128),  # the demo reads EfficientNet at 128 pixels
    ],
)
def test_images_load_at_the_encoders_input_size(tmp_path: Path, overrides: list[str], size: int) -> None:
    for data in ("synthetic", "canonical"):
        cfg = compose_config("train", [f"data={data}", *overrides], tmp_path)
        assert cfg.data.image_size == size


def test_a_declared_image_size_is_checked_and_enlarging_warns(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from vrs.cli.common import warn_if_upsampled

    cfg = compose_config("train", ["encoder=tiny_clip", "encoder.image_size=48"], tmp_path)
    with pytest.raises(InstantiationException, match=r"reads 32-pixel images .* set encoder.image_size=32"):
        build_towers(OmegaConf.to_container(cfg.encoder, resolve=True), trusted=True)
    towers = build_towers(OmegaConf.to_container(compose_config("train", ["encoder=toy"], tmp_path).encoder))
    with pytest.warns(UserWarning, match=r"data.image_size=16 and enlarged to the 32 pixels"):
        warn_if_upsampled(SimpleNamespace(image_size=16, load_images=True), towers["image"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_upsampled(SimpleNamespace(image_size=64, load_images=True), towers["image"])  # shrinking
        warn_if_upsampled(SimpleNamespace(image_size=16, load_images=False), towers["image"])  # no images


def test_cloze_training_hides_at_least_one_item_per_history_and_refuses_content_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _build(compose_config("train", ["user=bert4rec"], tmp_path))
    seen = {}
    real_loss = module.loss_fn.forward

    def record(states, targets, encode_items, log_q):
        seen["targets"] = targets
        return real_loss(states, targets, encode_items, log_q)

    monkeypatch.setattr(module.loss_fn, "forward", record)
    monkeypatch.setattr(module.net.user_encoder, "mask_prob", 0.0)  # the draw hides nothing
    module.training_step(_batch(), 0)
    batch = _batch()  # each history's most recent item is then the one hidden
    assert seen["targets"].tolist() == batch.targets[:, -1].tolist()
    cfg = compose_config(
        "train",
        [
            "user=bert4rec",
            "encoder.finetune.freeze=true",
            "model.content_match={modalities:[image],window:1}",
        ],
        tmp_path / "cm",
    )
    with pytest.raises(Exception, match="cloze"):
        _build(cfg)
