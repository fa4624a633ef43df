"""End-to-end fine-tuning: trainable blocks, encoder learning rate, checkpointing, in-batch negatives,
the `finetune` settings and checkpoints written before them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.encoders.base import layer_blocks, set_trainable_layers
from vrs.encoders.open_clip import build_open_clip_towers
from vrs.encoders.toy import ToyTextEncoder
from vrs.lit.finetune import FineTuning
from vrs.lit.module import RecModule
from vrs.lit.targets import trusted_config
from vrs.losses import BPRLoss, FullSoftmaxLoss, InBatchLoss, SampledSoftmaxLoss

N = 12
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
TOY = {"_target_": "vrs.encoders.toy.build_toy_towers", "image_dim": 8, "text_dim": 8, "image_size": 16}


def _trainable(module: torch.nn.Module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_trainable_layers_keeps_the_last_blocks_and_the_head() -> None:
    torch.manual_seed(0)
    image = build_open_clip_towers("tiny", None, TINY_CLIP).image
    set_trainable_layers(image, 1)
    names = _trainable(image)
    assert names and all(
        n.startswith(("visual.transformer.resblocks.1.", "visual.ln_post", "visual.proj")) for n in names
    )
    assert any(n.startswith("visual.ln_post") for n in names)
    set_trainable_layers(image, 0)
    assert not _trainable(image)
    set_trainable_layers(image, None)
    assert _trainable(image) == {n for n, _ in image.named_parameters()}
    with pytest.raises(ValueError, match=r"trainable_layers=3: .* 2 trainable blocks"):
        set_trainable_layers(image, 3)
    text = ToyTextEncoder(out_dim=8)  # no numbered blocks: one block
    assert layer_blocks(text)[1] == []
    set_trainable_layers(text, 1)
    assert _trainable(text) == {n for n, _ in text.named_parameters()}


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        towers = build_open_clip_towers("tiny", None, TINY_CLIP)
        image, text = towers.image.train(), towers.text.train()
        if checkpointing:
            image.set_grad_checkpointing(True)
            text.set_grad_checkpointing(True)
        torch.manual_seed(1)
        pixels = torch.rand(3, 3, 16, 16)
        loss = (
            image(pixels).square().sum() + text(text.tokenize(["a red shirt", "blue", "x y"])).square().sum()
        )
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in [*image.parameters(), *text.parameters()]]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with pytest.raises(ValueError, match="ToyTextEncoder does not support gradient checkpointing"):
        ToyTextEncoder().set_grad_checkpointing(True)


def _content() -> ItemContent:
    torch.manual_seed(0)
    return ItemContent(
        images=torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8),
        has_image=torch.ones(N, dtype=torch.bool),
        texts=[f"item {i} shirt" for i in range(N)],
        has_text=torch.ones(N, dtype=torch.bool),
    )


def _batch() -> RecBatch:
    items = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])  # (B, T)
    mask = torch.ones_like(items, dtype=torch.bool)
    targets = torch.where(torch.arange(4) < 3, items.roll(-1, 1), -1)  # (B, T)
    return RecBatch(items=items, events=mask.long(), mask=mask, targets=targets)


def _module(**kwargs) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(N, 1, 4, dim=8, **{"encoder": TOY} | kwargs)
    module.attach_data(_content(), torch.ones(N))
    return module


def _step(module: RecModule) -> dict[str, torch.Tensor]:
    """One optimiser step; returns the state before it."""
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = module.configure_optimizers()
    module.train()
    module.training_step(_batch(), 0).backward()
    optimizer.step()
    return before


def test_trainable_blocks_change_and_frozen_ones_do_not() -> None:
    module = _module(finetune={"trainable_layers": 1, "lr": 0.05, "negatives": "catalogue"})
    image = module.net.item_tower.towers["image"]
    before = _step(module)
    after = module.state_dict()
    prefix = "net.item_tower.towers.image."
    trained = {prefix + n for n, p in image.named_parameters() if p.requires_grad}
    frozen = {prefix + n for n, p in image.named_parameters() if not p.requires_grad}
    assert trained and frozen
    assert all(not torch.equal(before[k], after[k]) for k in trained)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    groups = module.configure_optimizers().param_groups
    assert groups[1]["lr"] == 0.05 and groups[0]["lr"] == 0.001  # encoders get their own rate
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in module.parameters())


def test_frozen_encoders_do_not_change() -> None:
    module = _module(finetune={"freeze": True})
    before = _step(module)
    after = module.state_dict()
    enc = [k for k in after if k.startswith(("net.item_tower.towers.image.", "net.item_tower.towers.text."))]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("net.item_tower.fusion."))


def test_training_encoders_switch_full_softmax_to_in_batch_negatives() -> None:
    assert isinstance(_module(finetune={"negatives": "in_batch"}).loss_fn, InBatchLoss)
    assert isinstance(_module(finetune={"negatives": "catalogue"}).loss_fn, FullSoftmaxLoss)
    assert isinstance(_module(finetune={"freeze": True}).loss_fn, FullSoftmaxLoss)  # nothing trains
    assert isinstance(_module(finetune={"trainable_layers": 0}).loss_fn, FullSoftmaxLoss)
    sampled = {"_target_": "vrs.losses.SampledSoftmaxLoss", "n_negatives": 4}
    assert isinstance(_module(loss=sampled).loss_fn, SampledSoftmaxLoss)  # affordable as it is


class WholeCatalogueBPR(BPRLoss):
    """A loss that declares it needs the catalogue: RecModule acts on the declaration, not the type."""

    needs_catalogue = True

    def while_encoders_train(self) -> torch.nn.Module:
        return SampledSoftmaxLoss(n_negatives=4)


def test_module_follows_what_the_loss_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = {"_target_": f"{__name__}.WholeCatalogueBPR"}
    with trusted_config():  # a loss defined outside vrs, as on the user's own command line
        assert isinstance(_module(loss=loss).loss_fn, SampledSoftmaxLoss)
        module = _module(loss=loss, finetune={"negatives": "catalogue"})
    assert type(module.loss_fn) is WholeCatalogueBPR
    calls = []
    encode = module.net.encode_items
    monkeypatch.setattr(module.net, "encode_items", lambda idx=None: calls.append(idx) or encode(idx))
    module.training_step(_batch(), 0)
    assert calls == [None]  # the whole catalogue once, reused for the history and the loss


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"freeze": "yes"}, r"finetune\.freeze='yes': expected true or false"),
        ({"trainable_layers": -1}, r"finetune\.trainable_layers=-1: expected null or an integer >= 0"),
        ({"lr": 0}, r"finetune\.lr=0: expected null or a number > 0"),
        ({"lr": float("nan")}, r"finetune\.lr=nan"),
        ({"negatives": "sometimes"}, r"finetune\.negatives='sometimes': expected one of in_batch, catalogue"),
        ({"learning_rate": 0.1}, r"finetune: unknown settings \['learning_rate'\]"),
        ({"_target_": "pathlib.Path.write_text"}, r"finetune: unknown settings \['_target_'\]"),
        ({"lr": {"_target_": "builtins.eval"}}, r"finetune\.lr=\{'_target_'"),
        ([("freeze", True)], r"finetune must be a dict"),
    ],
)
def test_finetune_settings_are_checked_on_construction(node: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FineTuning.from_dict(node)
    with pytest.raises(ValueError, match=message):
        _module(finetune=node)


def test_old_and_new_arguments_do_not_mix() -> None:
    with pytest.raises(TypeError, match="not both"):
        _module(finetune={"freeze": True}, freeze_encoders=True)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['freez'\]"):
        _module(freez=True)


@pytest.mark.parametrize(
    "old",
    [
        {
            "freeze_encoders": False,
            "trainable_layers": 1,
            "encoder_lr": 0.05,
            "gradient_checkpointing": False,
            "finetune_negatives": "catalogue",
        },
        {
            "freeze_encoders": True,
            "trainable_layers": None,
            "encoder_lr": None,
            "gradient_checkpointing": False,
            "finetune_negatives": "in_batch",
        },
    ],
)
def test_a_checkpoint_in_the_old_layout_builds_the_same_model(tmp_path: Path, old: dict) -> None:
    new = {
        "freeze": old["freeze_encoders"],
        "trainable_layers": old["trainable_layers"],
        "lr": old["encoder_lr"],
        "negatives": old["finetune_negatives"],
        "gradient_checkpointing": old["gradient_checkpointing"],
    }
    module = _module(finetune=new)
    # Before the `finetune` node: flat RecModule arguments, repeated by the encoder node.
    hparams = {k: v for k, v in module.hparams.items() if k != "finetune"} | old
    hparams["encoder"] = TOY | {
        "freeze": old["freeze_encoders"],
        "trainable_layers": old["trainable_layers"],
        "lr": old["encoder_lr"],
        "gradient_checkpointing": old["gradient_checkpointing"],
        "finetune_negatives": old["finetune_negatives"],
    }
    path = tmp_path / "old.ckpt"
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": hparams,
        "pytorch-lightning_version": "2.5.0",
    }
    torch.save(ckpt, path)
    loaded = RecModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert loaded.finetune == FineTuning(**new)
    assert _trainable(loaded) == _trainable(module)
    assert type(loaded.loss_fn) is type(module.loss_fn)
    lrs = [[g["lr"] for g in m.configure_optimizers().param_groups] for m in (module, loaded)]
    assert lrs[0] == lrs[1]
    # Saved again, it is in the new layout.
    assert dict(loaded.hparams) == dict(module.hparams)
    loaded.attach_data(_content())
    module.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(module.net.encode_items(), loaded.net.encode_items())
        assert torch.equal(module.net.sequence_states(_batch()), loaded.net.sequence_states(_batch()))


def test_checkpoints_naming_towers_by_attribute_still_load() -> None:
    """Before modalities were keyed by name, the towers were `image_encoder` / `text_encoder`."""
    saved = _module().state_dict()
    renames = {"towers.image.": "image_encoder.", "towers.text.": "text_encoder."}
    old = {}
    for key, value in saved.items():
        for new, legacy in renames.items():
            key = key.replace(f"item_tower.{new}", f"item_tower.{legacy}")
        old[key] = value + 1.0 if value.is_floating_point() else value
    assert set(old) != set(saved)
    checkpoint = {"state_dict": old, "vrs_rebuilt_prefixes": ["net.item_tower.image_encoder."]}
    module = _module()
    module.on_load_checkpoint(checkpoint)
    assert checkpoint["vrs_rebuilt_prefixes"] == ["net.item_tower.towers.image."]
    module.load_state_dict(checkpoint["state_dict"])
    loaded = module.state_dict()
    assert all(
        torch.equal(loaded[k], v + 1.0)
        for k, v in saved.items()
        if k.startswith("net.item_tower.towers.text.")
    )


def test_a_timm_tower_splits_into_a_cached_trunk_and_a_trained_head() -> None:
    from vrs.encoders.timm import TimmImageEncoder

    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random weights"):
        image = TimmImageEncoder(weights=None, image_size=32)
    assert image.trunk_depth() == 0  # everything trains: nothing to cache
    set_trainable_layers(image, 1)
    assert image.trunk_depth() == 7  # the stem and the first 6 of 7 blocks
    image.train()
    pixels = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    whole = image(pixels)
    for depth in range(9):  # any split composes to the whole encoder, in training mode too
        assert torch.allclose(image.run_head(image.run_trunk(pixels, depth), depth), whole, atol=1e-6)
    image.freeze_bn_stats = False  # batch statistics: a trunk's output would depend on its chunk
    assert image.trunk_depth() == 0


def test_per_tower_trainable_layers_cache_the_image_trunk_and_freeze_the_text() -> None:
    effnet = {"_target_": "vrs.encoders.pretrained.build_effnet_towers", "image_size": 32, "text_dim": 8,
              "weights": None}  # fmt: skip
    layers = {"trainable_layers": {"image": 1, "text": 0}, "lr": 0.05, "negatives": "catalogue"}
    with pytest.warns(UserWarning, match="random weights"):
        module = _module(encoder=effnet, finetune=layers)
    tower = module.net.item_tower
    catalogue = tower.catalogue
    assert tower.frozen == ("text",) and catalogue.encoded == {"text"}
    assert dict(catalogue.trunks) == {"image": 7} and catalogue.inputs["image"].shape[:2] == (N, 192)
    idx = torch.tensor([3, 0, 7])
    image = tower.towers["image"]
    feats, _ = tower.modality_features(idx)
    assert torch.allclose(feats["image"], image(_content().images[idx]), atol=1e-5)
    before = _step(module)
    after = module.state_dict()
    prefix = "net.item_tower.towers."
    top = [prefix + "image." + n for n, p in image.named_parameters() if p.requires_grad]
    fixed = [k for k in after if k.startswith(prefix) and k not in top and after[k].is_floating_point()]
    assert top and all(
        k.removeprefix(prefix + "image.").startswith(("model.blocks.6.", "model.conv_head", "model.bn2"))
        for k in top
    )
    assert all(not torch.equal(before[k], after[k]) for k in top if "running" not in k)
    assert fixed and all(torch.equal(before[k], after[k]) for k in fixed)
    image.model.blocks[5].requires_grad_(True)  # a cached stage would now train: stale features
    with pytest.raises(RuntimeError, match="first 7 stages were frozen .* call set_content again"):
        tower(idx)
    with (
        pytest.raises(
            ValueError, match=r"names the towers \['image'\]; this encoder's towers are \['image', 'text'\]"
        ),
        pytest.warns(UserWarning, match="random weights"),
    ):
        _module(encoder=effnet, finetune={"trainable_layers": {"image": 1}})
    with pytest.raises(ValueError, match=r"trainable_layers=\{'image': -1\}: expected null or an integer"):
        FineTuning.from_dict({"trainable_layers": {"image": -1}})


def test_a_cached_trunk_head_recomputes_its_blocks_under_gradient_checkpointing() -> None:
    from vrs.encoders.timm import TimmImageEncoder

    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        with pytest.warns(UserWarning, match="random weights"):
            image = TimmImageEncoder(weights=None, image_size=32)
        set_trainable_layers(image, 2)
        image.set_grad_checkpointing(checkpointing)
        hidden = image.run_trunk(torch.rand(2, 3, 32, 32), image.trunk_depth())
        image.run_head(hidden, image.trunk_depth()).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in image.parameters() if p.requires_grad]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
