"""open_clip image and text towers that share one CLIP model, loaded strictly offline.

Both wrappers hold only their own sub-modules of the CLIP model (the image wrapper holds
``model.visual``; the text wrapper holds the token embedding, transformer, final norm and
projection), so using both towers stores every CLIP parameter once, and the two state dicts never
overlap. CLIP's ``logit_scale`` belongs to neither tower and is dropped.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transformer import text_global_pool
from torch import Tensor, nn

from vrs.encoders.base import (
    EncoderWeightsError,
    ImageEncoder,
    TextEncoder,
    Towers,
    check_image_size,
    device_of,
    hf_offline,
)
from vrs.encoders.pixels import resize_normalize

_CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz", ".ckpt")
_HF_WEIGHTS = "open_clip_pytorch_model.bin"
_HF_SAFE_WEIGHTS = "open_clip_model.safetensors"


def _square_size(size: int | tuple[int, int] | list[int]) -> int:
    if isinstance(size, int):
        return size
    if size[0] != size[1]:
        raise ValueError(f"only square image towers are supported, got image_size={tuple(size)}")
    return int(size[0])


class OpenClipImageEncoder(ImageEncoder):
    """The image tower of an open_clip model.

    Args:
        model: An open_clip ``CLIP``/``CustomTextCLIP``; only ``model.visual`` is kept.
        mean: Per-channel normalisation mean; default: the one the model was built with.
        std: Per-channel normalisation std; default: the one the model was built with.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__()
        self.visual = model.visual
        pp = open_clip.get_model_preprocess_cfg(model)
        self.image_size = _square_size(pp.get("size", self.visual.image_size))
        self.mean = tuple(mean or pp.get("mean", OPENAI_DATASET_MEAN))
        self.std = tuple(std or pp.get("std", OPENAI_DATASET_STD))
        self.out_dim = getattr(self.visual, "output_dim", None) or self._probe_dim()

    @torch.no_grad()
    def _probe_dim(self) -> int:
        # timm-backed towers do not expose their projection size; one dummy image tells it.
        was_training = self.visual.training
        self.visual.eval()
        x = torch.zeros(1, 3, self.image_size, self.image_size, device=device_of(self.visual))
        dim = self.visual(x).shape[-1]
        self.visual.train(was_training)
        return int(dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)

    def forward(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or float in [0, 1] -> (n, out_dim) unnormalised CLIP embeddings."""
        x = resize_normalize(images, self.image_size, self.mean, self.std)  # (n, 3, S, S)
        return self.visual(x)  # (n, out_dim)


class OpenClipTextEncoder(TextEncoder):
    """The text tower of an open_clip model plus its tokenizer.

    Args:
        model: An open_clip ``CLIP`` (text modules are lifted off it) or ``CustomTextCLIP``
            (``model.text`` is kept).
        tokenizer: Callable ``(texts, context_length=...) -> (n, L) long`` (open_clip tokenizers).
        context_length: L; may be shorter than the model's, which then uses its first L positions.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, context_length: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.text: nn.Module | None = getattr(model, "text", None)
        if self.text is None:
            # Same objects as in `model`: nothing is copied, so nothing is duplicated.
            self.token_embedding = model.token_embedding
            self.positional_embedding = model.positional_embedding
            self.transformer = model.transformer
            self.ln_final = model.ln_final
            self.text_projection = model.text_projection
            self.pool_type = model.text_pool_type
            self.eos_id = getattr(model, "text_eos_id", None)
            self.register_buffer("attn_mask", model.attn_mask, persistent=False)
            max_len = model.context_length
        else:
            max_len = getattr(self.text, "context_length", context_length)
        if context_length > max_len:
            raise ValueError(f"context_length={context_length} exceeds the model's {max_len} positions")
        self.out_dim = _text_dim(model)

    def tokenize(self, texts: list[str]) -> Tensor:
        """Strings -> (n, L) long token ids (open_clip tokenizer, truncated to L)."""
        return self.tokenizer(list(texts), context_length=self.context_length)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if self.text is not None:
            self.text.set_grad_checkpointing(enable)
        else:
            self.transformer.grad_checkpointing = enable

    def forward(self, tokens: Tensor) -> Tensor:
        """(n, L) long -> (n, out_dim) unnormalised CLIP text embeddings."""
        if self.text is not None:
            return self.text(tokens)
        # Mirrors CLIP.encode_text, slicing positions and mask so L may be below the model's length.
        seq_len = tokens.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast_dtype)  # (n, L, W)
        x = x + self.positional_embedding[:seq_len].to(cast_dtype)  # (n, L, W)
        mask = None if self.attn_mask is None else self.attn_mask[:seq_len, :seq_len]
        x = self.ln_final(self.transformer(x, attn_mask=mask))  # (n, L, W)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return x  # (n, out_dim)


def _text_dim(model: nn.Module) -> int:
    text = getattr(model, "text", None)
    if text is not None:
        return int(text.output_dim)
    proj = model.text_projection
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if proj is not None:
        return int(proj.shape[1])
    return int(model.transformer.width)


def _looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or "/" in pretrained or pretrained.endswith(_CHECKPOINT_SUFFIXES)


def _how_to_provide(model_name: str, tag: str, hf_hub: str) -> str:
    repo = hf_hub.rstrip("/").rsplit("/", 1)[0] if hf_hub and not hf_hub.endswith("/") else hf_hub.rstrip("/")
    where = f" (Hugging Face repo '{repo}')" if repo else ""
    fetch = f"`hf download {repo}`" if repo else "open_clip"
    return (
        f"open_clip weights for model '{model_name}' with pretrained tag '{tag}'{where} are not available "
        "offline, and this framework never downloads. Provide them either as a local checkpoint path, "
        "e.g. encoder.pretrained=/path/to/open_clip_pytorch_model.bin, or by pre-populating the Hugging "
        f"Face cache (HF_HOME / HF_HUB_CACHE, or the cache_dir argument) with {fetch} on a machine with "
        "network access and copying the cache here."
    )


def _resolve_tag(model_name: str, tag: str, cache_dir: str | None) -> tuple[str, dict[str, Any]]:
    """Local file of an open_clip pretrained tag, looked up without any network access."""
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(model_name)
        raise EncoderWeightsError(
            f"'{tag}' is neither an existing checkpoint file nor a known open_clip pretrained tag for "
            f"model '{model_name}' (known tags: {known})."
        )
    if cfg.get("file"):
        return cfg["file"], cfg
    hf_hub = cfg.get("hf_hub", "")
    tried: list[str] = []
    if hf_hub:
        from huggingface_hub import hf_hub_download

        # open_clip's convention: 'org/repo/' means the default weights file, 'org/repo/file' names one.
        if hf_hub.endswith("/"):
            repo_id, filename = hf_hub.rstrip("/"), _HF_WEIGHTS
        else:
            repo_id, filename = os.path.split(hf_hub)
        candidates = [filename]
        if filename == _HF_WEIGHTS:
            candidates.insert(0, _HF_SAFE_WEIGHTS)
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
        for name in candidates:
            try:
                # local_files_only guarantees no HTTP call whatever HF_HUB_OFFLINE said at import.
                path = hf_hub_download(repo_id, name, cache_dir=cache_dir, local_files_only=True)
                return path, cfg
            except Exception as err:  # LocalEntryNotFoundError, EntryNotFoundError, ...
                tried.append(f"hf://{repo_id}/{name} ({type(err).__name__})")
    url = cfg.get("url", "")
    if url:
        # Where open_clip's own URL download would have cached it.
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local), cfg
        tried.append(str(local))
    raise EncoderWeightsError(_how_to_provide(model_name, tag, hf_hub) + f" Looked for: {tried}.")


def _plain(obj: Any) -> Any:
    """Deep copy into plain dicts/lists (open_clip tests ``isinstance(cfg, dict)``; Hydra may pass
    DictConfig when a caller forgets ``_convert_: all``)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple) or type(obj).__name__ == "ListConfig":
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


def _build_model(
    model_name: str, model_cfg: dict[str, Any] | None, checkpoint: str | None, tag_cfg: dict[str, Any]
) -> nn.Module:
    if model_cfg is not None:
        cfg = _plain(model_cfg)
        custom = cfg.pop("custom_text", False) or bool(cfg.get("text_cfg", {}).get("hf_model_name"))
        model = (open_clip.CustomTextCLIP if custom else open_clip.CLIP)(**cfg)
        if checkpoint is not None:
            # open_clip's loader, not load_state_dict: it unwraps 'state_dict'/'module.' checkpoints.
            open_clip.load_checkpoint(model, checkpoint, strict=True)
        return model
    pp = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    return open_clip.create_model(
        model_name,
        pretrained=checkpoint,  # a resolved local file by now, never a tag
        # No base-tower weights: those would be fetched from the network.
        pretrained_image=False,
        pretrained_text=False,
        force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        force_preprocess_cfg=pp or None,
    )


def _tokenizer(model_name: str, model_cfg: dict[str, Any] | None, context_length: int) -> Any:
    if model_cfg is not None and not model_cfg.get("text_cfg", {}).get("hf_tokenizer_name"):
        # The BPE vocabulary ships inside the open_clip wheel; nothing is fetched.
        return open_clip.SimpleTokenizer(context_length=context_length)
    return open_clip.get_tokenizer(model_name, context_length=context_length)


def build_open_clip_towers(
    model_name: str = "ViT-B-32",
    pretrained: str | None = None,
    model_cfg: dict[str, Any] | None = None,
    context_length: int | None = None,
    image: bool = True,
    text: bool = True,
    cache_dir: str | None = None,
    image_size: int | None = None,
) -> Towers:
    """Build open_clip image and/or text towers sharing one CLIP model, without network access.

    Args:
        model_name: open_clip architecture name (``open_clip.list_models()``), e.g. ``"ViT-B-32"``.
        pretrained: ``None`` (random weights), a local checkpoint file, or an open_clip pretrained
            tag (``"openai"``, ``"laion2b_s34b_b79k"``) resolved from the local Hugging Face cache only.
        model_cfg: Architecture dict (``embed_dim``, ``vision_cfg``, ``text_cfg``) that replaces the
            named one; used for tiny test models. Weights are random unless ``pretrained`` is given.
        context_length: L of the text tokenizer; default: the model's context length.
        image: Build the image tower.
        text: Build the text tower.
        cache_dir: Hugging Face hub cache to look tags up in; default: the hub's own (``HF_HOME``).
        image_size: the image side the model reads, as the config declares it (images are loaded
            at that size); checked against the model's preprocessing. None: not checked.

    Returns:
        Towers whose absent members are ``None``.

    Raises:
        EncoderWeightsError: ``pretrained`` is set but its weights are not available locally.
        ValueError: ``image_size`` is not the model's.
    """
    if not (image or text):
        raise ValueError("build_open_clip_towers needs image=True or text=True")
    with hf_offline():
        checkpoint: str | None = None
        tag_cfg: dict[str, Any] = {}
        if pretrained:
            if os.path.isfile(pretrained):
                checkpoint = pretrained
            elif _looks_like_path(pretrained):
                raise EncoderWeightsError(
                    f"checkpoint file for open_clip model '{model_name}' not found: {pretrained}"
                )
            else:
                checkpoint, tag_cfg = _resolve_tag(model_name, pretrained, cache_dir)
        elif model_cfg is None:
            warnings.warn(
                f"open_clip model '{model_name}' built with random weights (pretrained=None)", stacklevel=2
            )
        if checkpoint is None:
            model = _build_model(model_name, model_cfg, None, tag_cfg)
        else:
            try:
                model = _build_model(model_name, model_cfg, checkpoint, tag_cfg)
            except Exception as err:
                raise EncoderWeightsError(
                    f"could not load checkpoint {checkpoint} into open_clip model '{model_name}': {err}"
                ) from err
        max_len = getattr(getattr(model, "text", model), "context_length", None) or 77
        length = context_length or max_len
        image_tower = OpenClipImageEncoder(model) if image else None
        text_tower = (
            OpenClipTextEncoder(model, _tokenizer(model_name, model_cfg, length), length) if text else None
        )
        for tower in (image_tower, text_tower):
            if tower is not None:
                tower.fixed_weights = checkpoint is not None
    check_image_size(image_tower, image_size, f"open_clip model '{model_name}'")
    return Towers(image=image_tower, text=text_tower)
