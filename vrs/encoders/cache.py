"""On-disk cache of frozen encoder features: every item is encoded once per (inputs, encoder).

A cache entry is keyed by a hash of the exact encoder inputs (decoded pixels at the configured size
with the bad-image policy applied, or the token ids: this covers the dataset content and all
preprocessing) and of the encoder's identity (class, settings and weights). Any change to either
gives a new key, so a stale entry is never read.

Layout under the cache root:
    <key>/features.pt      (N, F) float32, written atomically
    <key>/meta.json        what the key stands for; written last, it marks the entry complete
    <key>.partial/NNNNN.pt shards of an extraction in progress (each atomic); a restart skips the
                           shards already there, and the folder is removed once the entry is complete

Shard i holds items [i * shard_size, (i + 1) * shard_size). Extraction can be split across processes
(`shards=`): each writes its own shards and one process merges them with `merge`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vrs.io import atomic_write, write_json

FEATURES_FILE = "features.pt"
META_FILE = "meta.json"
_SIMPLE = (bool, int, float, str)
_PROGRESS_MIN = 2000  # below this many items a progress bar is noise
PRECISIONS = ("fp32", "bf16")


def encoder_identity(encoder: nn.Module) -> dict[str, Any]:
    """Class, plain settings (sizes, normalisation constants, ...) and a hash of every parameter and
    buffer of an encoder: what decides its output for given inputs."""
    sha = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(encoder.state_dict().items()):
        sha.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        sha.update(str((t.dtype, tuple(t.shape))).encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    settings: dict[str, Any] = {}
    for module_name, module in encoder.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr == "training":
                continue
            if isinstance(value, _SIMPLE) or (
                isinstance(value, (tuple, list)) and all(isinstance(v, _SIMPLE) for v in value)
            ):
                settings[f"{module_name}.{attr}" if module_name else attr] = (
                    list(value) if isinstance(value, tuple) else value
                )
    cls = type(encoder)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "settings": settings, "weights": sha.hexdigest()}


def key_of(meta: dict[str, Any]) -> str:
    """The cache key of an entry description (`FeatureCache.describe`)."""
    digest = hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=12).hexdigest()
    return f"{meta['modality']}-{digest}"


def inputs_digest(inputs: Tensor) -> str:
    """Hash of the exact tensor an encoder will read (shape, dtype and bytes)."""
    t = inputs.detach().cpu().contiguous()
    sha = hashlib.blake2b(digest_size=16)
    sha.update(str((t.dtype, tuple(t.shape))).encode())
    sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return sha.hexdigest()


class FeatureCache:
    """Frozen-encoder features on disk under `root` (see the module docstring for the layout).

    Args:
        root: cache folder (created on first write).
        shard_size: items per shard of an extraction (the unit of resumption).
        batch_size: items per encoder call.
        progress: show a progress bar for large extractions.
        precision: "fp32", or "bf16" to encode under bfloat16 autocast (faster on CPUs and GPUs with
            bf16 units; features differ slightly, so the precision is part of the key).
    """

    def __init__(
        self,
        root: str | Path,
        shard_size: int = 4096,
        batch_size: int = 256,
        progress: bool = True,
        precision: str = "fp32",
    ) -> None:
        if shard_size < 1 or batch_size < 1:
            raise ValueError(f"shard_size and batch_size must be positive, got {shard_size}, {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.root = Path(root)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.progress = progress
        self.encoder_calls = 0  # encoder forward calls made by this object (tests count them)

    def key(self, modality: str, encoder: nn.Module, inputs: Tensor) -> str:
        """The cache key of `encoder` over `inputs` (a modality name keeps the folders readable)."""
        return key_of(self.describe(modality, encoder, inputs))

    def describe(self, modality: str, encoder: nn.Module, inputs: Tensor) -> dict[str, Any]:
        """What an entry stands for (its key is `key_of` this): hashing the weights and every input
        byte is the expensive part of a cache hit, so callers compute it once and reuse it."""
        meta = {
            "modality": modality,
            "encoder": encoder_identity(encoder),
            "inputs": inputs_digest(inputs),
            "n_items": int(inputs.shape[0]),
        }
        if self.precision != "fp32":  # fp32 keys stay as they were before precisions existed
            meta["precision"] = self.precision
        return meta

    def path(self, key: str) -> Path:
        return self.root / key / FEATURES_FILE

    def load(self, key: str) -> Tensor | None:
        """The features of a complete entry, or None when there is none."""
        path = self.path(key)
        if not (path.parent / META_FILE).is_file() or not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def n_shards(self, n_items: int) -> int:
        return max(1, -(-n_items // self.shard_size))

    def missing_shards(self, key: str, n_items: int) -> list[int]:
        """Shards of `key` not yet written by an (interrupted or parallel) extraction."""
        part = self.root / f"{key}.partial"
        return [i for i in range(self.n_shards(n_items)) if not (part / f"{i:05d}.pt").is_file()]

    @torch.inference_mode()
    def encode_shards(
        self, key: str, encoder: nn.Module, inputs: Tensor, shards: Iterable[int] | None = None
    ) -> int:
        """Encodes the given shards (default: all missing ones) and writes each atomically.

        Returns the number of items encoded.
        """
        n = inputs.shape[0]
        todo = self.missing_shards(key, n) if shards is None else list(shards)
        part = self.root / f"{key}.partial"
        total = sum(min(n, (i + 1) * self.shard_size) - i * self.shard_size for i in todo)
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
        bf16 = self.precision == "bf16"
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        if bf16 and todo:
            # bf16 weights as well as autocast: no weight cast per call, and CPU matmuls then run on
            # the bf16 units (ViT-B/32 on this CPU: 82 images/s vs 26 with autocast alone).
            encoder = copy.deepcopy(encoder).to(torch.bfloat16)
        bar = tqdm(
            total=total,
            desc=f"encoding {key}",
            unit="item",
            disable=not self.progress or total < _PROGRESS_MIN,
        )
        start = time.perf_counter()
        for i in todo:
            chunk = inputs[i * self.shard_size : (i + 1) * self.shard_size]
            outs = []
            for batch in chunk.split(self.batch_size):
                self.encoder_calls += 1
                with autocast:
                    outs.append(encoder(batch.to(device)).float().cpu())
                bar.update(batch.shape[0])
            feats = torch.cat(outs) if outs else torch.empty(0)
            atomic_write(part / f"{i:05d}.pt", lambda tmp, feats=feats: torch.save(feats, tmp))
        bar.close()
        if total and self.progress and total >= _PROGRESS_MIN:
            seconds = time.perf_counter() - start
            print(f"encoded {total} items in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} items/s)")
        return total

    def merge(self, key: str, meta: dict[str, Any]) -> Tensor:
        """Joins the shards of a finished extraction into the entry's features and marks it complete.

        Args:
            key: the entry, `key_of(meta)`.
            meta: `describe(...)` of the extraction.

        Raises:
            RuntimeError: when shards are missing (an extraction is still running or was cut short).
        """
        n = meta["n_items"]
        missing = self.missing_shards(key, n)
        if missing:
            raise RuntimeError(f"cannot merge {key}: shards {missing[:5]} of {self.n_shards(n)} are missing")
        part = self.root / f"{key}.partial"
        feats = torch.cat(
            [torch.load(part / f"{i:05d}.pt", weights_only=True) for i in range(self.n_shards(n))]
        )
        if feats.shape[0] != n:
            raise RuntimeError(f"{part}: shards hold {feats.shape[0]} items, expected {n}")
        entry = self.root / key
        atomic_write(entry / FEATURES_FILE, lambda tmp: torch.save(feats, tmp))
        meta = meta | {"dim": int(feats.shape[1]) if feats.ndim == 2 else 0}
        write_json(entry / META_FILE, meta)  # last: the entry is complete from here on
        shutil.rmtree(part, ignore_errors=True)
        return feats

    def features(self, modality: str, encoder: nn.Module, inputs: Tensor) -> Tensor:
        """(N, F) features of `encoder` over `inputs`: read from the cache, or encoded (only the
        shards an earlier run did not finish), stored, then returned."""
        meta = self.describe(modality, encoder, inputs)
        key = key_of(meta)
        cached = self.load(key)
        if cached is not None:
            return cached
        self.encode_shards(key, encoder, inputs)
        return self.merge(key, meta)
