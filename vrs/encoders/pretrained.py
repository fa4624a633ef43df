"""Pretrained towers that install offline from pip: EfficientNet-Lite0 (ImageNet) and all-MiniLM-L6-v2.

These are the best image / text pair available without network access. They are normally used with
``encoder.finetune.freeze=true``: features are computed once per catalogue and cached.
"""

from __future__ import annotations

from vrs.encoders.base import Towers
from vrs.encoders.hf import HFTextEncoder, minilm_path
from vrs.encoders.timm import REGISTRY_MODEL, TimmImageEncoder
from vrs.encoders.toy import ToyTextEncoder

_TEXT_TOWERS = ("toy", None)


def build_effnet_towers(
    image_size: int = 224,
    text: str | None = "toy",
    text_dim: int = 32,
    weights: str | None = "registry",
    trainable_layers: int | None = None,
) -> Towers:
    """EfficientNet-Lite0 image tower (1280-d) with a toy hashed-word text tower or none.

    Args:
        image_size: Side images are resized to (224 = the ImageNet training size).
        text: ``"toy"`` for the hashed bag-of-words text tower, ``None`` for no text tower.
        text_dim: Output size of the toy text tower.
        weights: ``"registry"`` (pip-packaged ImageNet weights), a local checkpoint path, or ``None``.
        trainable_layers: ``None`` trains every layer; K trains only the last K stages (see
            `TimmImageEncoder`).

    Returns:
        Towers with the image tower and the requested text tower.
    """
    if text not in _TEXT_TOWERS:
        raise ValueError(f"text must be one of {_TEXT_TOWERS}, got {text!r}")
    image = TimmImageEncoder(
        REGISTRY_MODEL, weights=weights, image_size=image_size, trainable_layers=trainable_layers
    )
    return Towers(image=image, text=ToyTextEncoder(out_dim=text_dim) if text == "toy" else None)


def build_minilm_towers(max_length: int = 64, normalize: bool = True) -> Towers:
    """all-MiniLM-L6-v2 text tower (384-d, mean pooling) and no image tower.

    Args:
        max_length: L, tokens per text, [CLS] and [SEP] included.
        normalize: L2-normalise embeddings, as the model was trained (its sentence-transformers
            pipeline ends with a Normalize layer).

    Returns:
        Towers with ``image=None``.
    """
    text = HFTextEncoder(minilm_path(), max_length=max_length, pooling="mean", normalize=normalize)
    return Towers(image=None, text=text)


def build_effnet_minilm_towers(
    image_size: int = 224, max_length: int = 64, weights: str | None = "registry", normalize: bool = True
) -> Towers:
    """EfficientNet-Lite0 image tower plus all-MiniLM-L6-v2 text tower.

    Args:
        image_size: Side images are resized to.
        max_length: L, tokens per text.
        weights: Image tower weights: ``"registry"``, a local checkpoint path, or ``None``.
        normalize: L2-normalise the text embeddings.

    Returns:
        Towers with both towers set.
    """
    image = TimmImageEncoder(REGISTRY_MODEL, weights=weights, image_size=image_size)
    return Towers(image=image, text=build_minilm_towers(max_length, normalize).text)
