"""Hugging Face transformers CLIP / SigLIP image and text towers that share one model, loaded offline.

As with the open_clip towers, each wrapper holds only its own sub-models of the ``CLIPModel`` /
``SiglipModel`` (the image wrapper ``vision_model`` and CLIP's ``visual_projection``; the text wrapper
``text_model`` and CLIP's ``text_projection``), so the two state dicts never overlap and fine-tuning
settings of one tower leave the other alone. ``logit_scale`` (and SigLIP's ``logit_bias``) belong to
neither tower and are dropped. Both towers output what ``get_image_features`` / ``get_text_features``
return: projected, unnormalised embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from vrs.encoders.base import (
    EncoderWeightsError,
    ImageEncoder,
    TextEncoder,
    Towers,
    check_image_size,
    hf_offline,
)
from vrs.encoders.hf import hf_tokenize, resolve_hf_folder, set_hf_grad_checkpointing
from vrs.encoders.pixels import resize_normalize

# Normalisation each family was trained with, used when a folder has no preprocessor_config.json.
_DEFAULT_NORM: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
SUPPORTED_MODEL_TYPES = tuple(_DEFAULT_NORM)
# One of these must exist: transformers 5 otherwise builds an empty tokenizer without complaint.
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model", "vocab.txt")


def _check_model_type(model_type: str) -> None:
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type '{model_type}' is not supported; expected one of {SUPPORTED_MODEL_TYPES} "
            "(transformers CLIPModel / SiglipModel)"
        )


def _pooled(output: Any) -> Tensor:
    # transformers 5 returns a model output object where 4.x code expected a tensor.
    return output if isinstance(output, Tensor) else output.pooler_output


class HFClipImageEncoder(ImageEncoder):
    """The image tower of a transformers ``CLIPModel`` or ``SiglipModel``.

    Args:
        model: The full model; only ``vision_model`` (and ``visual_projection`` if any) are kept.
        mean: Per-channel normalisation mean; default: the one the model family was trained with.
        std: Per-channel normalisation std; default: as for ``mean``.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__()
        model_type = model.config.model_type
        _check_model_type(model_type)
        self.vision_model = model.vision_model
        self.projection: nn.Module | None = getattr(model, "visual_projection", None)
        vision_cfg = model.config.vision_config
        self.image_size = int(vision_cfg.image_size)
        default_mean, default_std = _DEFAULT_NORM[model_type]
        self.mean = tuple(mean or default_mean)
        self.std = tuple(std or default_std)
        self.out_dim = self.projection.out_features if self.projection is not None else vision_cfg.hidden_size

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        set_hf_grad_checkpointing(self.vision_model, enable)

    def forward(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or float in [0, 1] -> (n, out_dim) unnormalised embeddings."""
        x = resize_normalize(images, self.image_size, self.mean, self.std)  # (n, 3, S, S)
        pooled = _pooled(self.vision_model(pixel_values=x))  # (n, W)
        return self.projection(pooled) if self.projection is not None else pooled  # (n, out_dim)


class HFClipTextEncoder(TextEncoder):
    """The text tower of a transformers ``CLIPModel`` or ``SiglipModel`` plus its tokenizer.

    Texts are right-padded to L = ``max_length`` and run without an attention mask, as both families
    were trained: CLIP's text transformer is causal and pools the first end-of-text token, so padding
    after it changes nothing; SigLIP pools the last position of text padded to 64 tokens, so keep
    ``max_length`` at the model's length for SigLIP.

    Args:
        model: The full model; only ``text_model`` (and ``text_projection`` if any) are kept.
        tokenizer: A transformers tokenizer for the model.
        max_length: L; default: the model's number of positions (77 for CLIP, 64 for SigLIP).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Any, max_length: int | None = None) -> None:
        super().__init__()
        _check_model_type(model.config.model_type)
        self.text_model = model.text_model
        self.projection: nn.Module | None = getattr(model, "text_projection", None)
        text_cfg = model.config.text_config
        n_positions = int(text_cfg.max_position_embeddings)
        if max_length is not None and max_length > n_positions:
            raise ValueError(f"max_length={max_length} exceeds the model's {n_positions} positions")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no padding token; texts could not be batched")
        if len(tokenizer) > text_cfg.vocab_size:
            raise ValueError(f"the tokenizer's {len(tokenizer)} ids exceed the model's {text_cfg.vocab_size}")
        self.tokenizer = tokenizer
        self.max_length = max_length or n_positions
        self.pad_token_id = int(tokenizer.pad_token_id)
        if self.projection is not None:
            self.out_dim = self.projection.out_features
        else:
            self.out_dim = int(getattr(text_cfg, "projection_size", None) or text_cfg.hidden_size)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        set_hf_grad_checkpointing(self.text_model, enable)

    def tokenize(self, texts: list[str]) -> Tensor:
        """Strings -> (n, L) long ids, truncated and right-padded to L = max_length."""
        return hf_tokenize(self.tokenizer, texts, self.max_length, self.pad_token_id)

    def forward(self, tokens: Tensor) -> Tensor:
        """(n, L) long ids -> (n, out_dim) unnormalised embeddings."""
        pooled = _pooled(self.text_model(input_ids=tokens))  # (n, W)
        return self.projection(pooled) if self.projection is not None else pooled  # (n, out_dim)


def _image_norm(folder: Path | None) -> tuple[Any, Any]:
    """(mean, std) from the folder's preprocessor_config.json; (None, None) when it has none."""
    file = folder / "preprocessor_config.json" if folder is not None else None
    if file is None or not file.is_file():
        return None, None
    pp = json.loads(file.read_text())
    return pp.get("image_mean"), pp.get("image_std")


def _load_model(folder: Path, what: str) -> PreTrainedModel:
    try:
        _check_model_type(AutoConfig.from_pretrained(folder, local_files_only=True).model_type)
        model, info = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except OSError as err:  # no config.json or no weights file
        raise EncoderWeightsError(f"could not load the {what} from {folder}: {err}") from err
    missing = [k for k in info.get("missing_keys", ()) if "position_ids" not in k]
    if missing or info.get("mismatched_keys"):
        raise EncoderWeightsError(
            f"the weights in {folder} do not fit the {what}: missing {sorted(missing)[:5]}, "
            f"mismatched {list(info.get('mismatched_keys', ()))[:5]}"
        )
    return model


def _load_tokenizer(folder: Path) -> Any:
    try:
        if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            raise OSError(f"none of {_TOKENIZER_FILES} found")
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise EncoderWeightsError(f"no usable tokenizer files in {folder}: {err}") from err


def build_hf_clip_towers(
    path: str | None = None,
    image: bool = True,
    text: bool = True,
    max_length: int | None = None,
    config: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    image_size: int | None = None,
) -> Towers:
    """Image and/or text towers sharing one transformers ``CLIPModel`` / ``SiglipModel``, built offline.

    Args:
        path: Local model folder, or a hub name (``"openai/clip-vit-base-patch32"``) found in the local
            Hugging Face cache; supplies the weights, the tokenizer and the image mean/std. With
            ``config`` it supplies only the tokenizer (and mean/std), and may be ``None`` when
            ``text=False``.
        image: Build the image tower.
        text: Build the text tower.
        max_length: L of the text tower; default: the model's number of positions.
        config: A ``CLIPConfig`` / ``SiglipConfig`` dict with a ``"model_type"`` key; builds the model
            with random weights instead of loading it (tiny test models).
        cache_dir: Hugging Face hub cache to look names up in; default: the hub's own (``HF_HOME``).
        image_size: the image side the model reads, as the config declares it (images are loaded
            at that size); checked against the model's. None: not checked.

    Returns:
        Towers whose absent members are ``None``.

    Raises:
        EncoderWeightsError: The model, its weights or its tokenizer are not available offline.
    """
    if not (image or text):
        raise ValueError("build_hf_clip_towers needs image=True or text=True")
    if config is None and path is None:
        raise ValueError("build_hf_clip_towers needs path= (a model folder or hub name) or config=")
    if config is not None and path is None and text:
        raise ValueError("the text tower of a config-built model needs path= a folder with tokenizer files")
    what = "Hugging Face CLIP/SigLIP model"
    with hf_offline():
        folder = resolve_hf_folder(path, what, cache_dir) if path is not None else None
        if config is None:
            model = _load_model(folder, what)
        else:
            cfg = dict(config)
            model_type = cfg.pop("model_type", None)
            _check_model_type(str(model_type))
            model = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
        mean, std = _image_norm(folder)
        image_tower = HFClipImageEncoder(model, mean, std) if image else None
        text_tower = None
        if text:
            text_tower = HFClipTextEncoder(model, _load_tokenizer(folder), max_length)
    for tower in (image_tower, text_tower):
        if tower is not None:
            tower.fixed_weights = config is None  # loaded from a folder
    check_image_size(image_tower, image_size, f"Hugging Face model {path or 'from config'}")
    return Towers(image=image_tower, text=text_tower)
