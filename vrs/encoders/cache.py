"""On-disk cache of frozen encoder features: every item is encoded once per (inputs, encoder).

A cache entry is keyed by a hash of what decides the encoder inputs and of the encoder's identity
(class, settings and weights). Inputs are either a tensor in memory (the token ids; hashed byte for
byte) or an `InputSource` that produces them on demand: the catalogue's image files
(`vrs.data.images.ImageFiles`) are keyed by every file's bytes plus the decoding settings (size,
decoder, Pillow and libjpeg versions), so a cache hit decodes no image and a miss decodes only the
items of the shards still missing. The precision features were computed in (fp32 or bf16) is part
of the key too. Any change to any of these gives a new key, so a stale entry is never read.

Layout under the cache root:
    <key>/features.pt      (N, F) float32, written atomically
    <key>/meta.json        what the key stands for (and, for a source, the items it could not
                           load: `unusable`); written last, it marks the entry complete
    <key>.partial/NNNNN.pt shards of an extraction in progress (each atomic); a restart skips the
                           shards already there, and the folder is removed once the entry is complete
    <key>.lock             held by the process extracting the entry through `features`: the other
                           processes asking for it (DDP ranks, jobs of a sweep) wait, then read it

Shard i holds items [i * shard_size, (i + 1) * shard_size). Extraction can be split across processes
(`shards=`): each writes its own shards and one process merges them with `merge`. Within a process,
per-core worker threads each load (decode) and encode their own batches (`vrs.encoders.inference`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vrs.encoders.base import device_of
from vrs.encoders.inference import (
    PRECISIONS,
    inference_copy,
    keep_freed_memory,
    map_workers,
    resolve_precision,
)
from vrs.io import atomic_write, file_lock, write_json

FEATURES_FILE = "features.pt"
META_FILE = "meta.json"
_SIMPLE = (bool, int, float, str)
_PROGRESS_MIN = 2000  # below this many items a progress bar is noise
CPU_BATCH_SIZE = 16  # items per call of one CPU worker (EfficientNet-Lite0 at 224 px: 16 fastest)
GPU_BATCH_SIZE = 256
__all__ = ["PRECISIONS", "FeatureCache", "InputSource", "Progress", "encoder_identity", "key_of"]


@runtime_checkable
class InputSource(Protocol):
    """Encoder inputs produced on demand, e.g. image files decoded only for the items encoded."""

    def __len__(self) -> int: ...

    def identity(self) -> dict[str, Any]:
        """JSON-able description that changes whenever any item's loaded input would (part of the
        cache key); computed without loading the inputs."""
        ...

    def load(self, rows: range) -> tuple[Tensor, Tensor]:
        """Inputs (n, ...) of items `rows` and (n,) bool: which items have a usable input (the
        others get a placeholder, e.g. a zero image)."""
        ...

    def check(self, usable: Tensor) -> None:
        """Reports the items without a usable input, (N,) bool over all items: raises or warns."""
        ...


def n_items(inputs: Tensor | InputSource) -> int:
    return int(inputs.shape[0]) if isinstance(inputs, Tensor) else len(inputs)


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


class Progress:
    """Item counts of an extraction as tqdm bars, "decode" (for an `InputSource`) and "encode",
    updated from worker threads; `seconds` is the wall time since it was created.

    Args:
        label: what is encoded, shown before each bar (e.g. "image").
        total: items to decode and encode.
        decode: show a decoding bar as well.
        enabled: show the bars at all.
    """

    def __init__(self, label: str, total: int, decode: bool, enabled: bool = True) -> None:
        self.start = time.perf_counter()
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._decode = tqdm(
            total=total, desc=f"{label} decode", unit="item", disable=not (enabled and decode)
        )
        self._encode = tqdm(total=total, desc=f"{label} encode", unit="item", disable=not enabled)

    def decoded(self, n: int) -> None:
        with self._lock:
            self._decode.update(n)

    def encoded(self, n: int) -> None:
        with self._lock:
            self._encode.update(n)
            self.done += n

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> None:
        self._decode.close()
        self._encode.close()


class FeatureCache:
    """Frozen-encoder features on disk under `root` (see the module docstring for the layout).

    Args:
        root: cache folder (created on first write).
        shard_size: items per shard of an extraction (the unit of resumption).
        batch_size: items per encoder call; None: 16 per CPU worker thread, 256 on a GPU.
        progress: show progress bars (decode, encode) for large extractions.
        precision: "fp32", or "bf16" to encode under bfloat16 autocast with bf16 weights (several
            times faster on CPUs and GPUs with bf16 units; features differ slightly, so the precision
            is part of the key). On a `device` without bf16 units, bf16 warns and means fp32.
        device: where the encoders will run (decides what "bf16" resolves to).
        workers: CPU worker threads that each load and encode their own batches; None: torch's
            intra-op thread count (the cores, or OMP_NUM_THREADS; under DDP the rank's share).
    """

    def __init__(
        self,
        root: str | Path,
        shard_size: int = 4096,
        batch_size: int | None = None,
        progress: bool = True,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
        workers: int | None = None,
    ) -> None:
        if shard_size < 1 or (batch_size is not None and batch_size < 1):
            raise ValueError(f"shard_size and batch_size must be positive, got {shard_size}, {batch_size}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        self.precision = resolve_precision(precision, device)
        self.root = Path(root)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.progress = progress
        self.workers = workers
        self.encoder_calls = 0  # encoder forward calls made by this object (tests count them)
        self._calls_lock = threading.Lock()
        self._fast: tuple[nn.Module, str, torch.device, nn.Module] | None = None

    def key(self, modality: str, encoder: nn.Module, inputs: Tensor | InputSource) -> str:
        """The cache key of `encoder` over `inputs` (a modality name keeps the folders readable)."""
        return key_of(self.describe(modality, encoder, inputs))

    def describe(self, modality: str, encoder: nn.Module, inputs: Tensor | InputSource) -> dict[str, Any]:
        """What an entry stands for (its key is `key_of` this): hashing the weights and every input
        byte (or file) is the expensive part of a cache hit, so callers compute it once and reuse it."""
        meta = {
            "modality": modality,
            "encoder": encoder_identity(encoder),
            "inputs": inputs_digest(inputs) if isinstance(inputs, Tensor) else inputs.identity(),
            "n_items": n_items(inputs),
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

    def usable(self, key: str, n: int) -> Tensor:
        """(N,) bool of a complete entry: the items whose input was usable (all, for tensor inputs)."""
        meta = json.loads((self.root / key / META_FILE).read_text())
        flags = torch.ones(n, dtype=torch.bool)
        flags[torch.as_tensor(meta.get("unusable", []), dtype=torch.long)] = False
        return flags

    def n_shards(self, n_items: int) -> int:
        return max(1, -(-n_items // self.shard_size))

    def shard_rows(self, shard: int, n_items: int) -> range:
        return range(shard * self.shard_size, min(n_items, (shard + 1) * self.shard_size))

    def missing_shards(self, key: str, n_items: int) -> list[int]:
        """Shards of `key` not yet written by an (interrupted or parallel) extraction."""
        part = self.root / f"{key}.partial"
        return [i for i in range(self.n_shards(n_items)) if not (part / f"{i:05d}.pt").is_file()]

    def _prepared(self, encoder: nn.Module, key: str, device: torch.device) -> nn.Module:
        # One inference copy per entry, reused by every shard of an extraction. The key holds the
        # hash of the weights: an encoder changed since its copy was made gets a new one.
        if self._fast is None or self._fast[:3] != (encoder, key, device):
            keep_freed_memory()
            self._fast = (encoder, key, device, inference_copy(encoder, self.precision, device))
        return self._fast[3]

    @torch.inference_mode()
    def encode_shards(
        self,
        key: str,
        encoder: nn.Module,
        inputs: Tensor | InputSource,
        shards: Iterable[int] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Encodes the given shards (default: all missing ones) and writes each atomically.

        Args:
            progress: bars to update (an extraction over several calls shares one); None: bars of
                this call, shown when it has many items.

        Returns:
            The number of items encoded.
        """
        n = n_items(inputs)
        todo = self.missing_shards(key, n) if shards is None else list(shards)
        total = sum(len(self.shard_rows(i, n)) for i in todo)
        source = not isinstance(inputs, Tensor)
        own = progress is None
        if progress is None:
            enabled = self.progress and total >= _PROGRESS_MIN
            progress = Progress(key.split("-")[0], total, decode=source, enabled=enabled)
        if todo:
            device = device_of(encoder)
            fast = self._prepared(encoder, key, device)
            for i in todo:
                feats, usable = self._encode_rows(fast, device, inputs, self.shard_rows(i, n), progress)
                shard = {"features": feats, "usable": usable} if source else feats
                part = self.root / f"{key}.partial"
                atomic_write(part / f"{i:05d}.pt", lambda tmp, shard=shard: torch.save(shard, tmp))
        if own:
            progress.close()
            if total and self.progress and total >= _PROGRESS_MIN:
                rate = total / max(progress.seconds, 1e-9)
                print(f"encoded {total} items in {progress.seconds:.1f} s ({rate:.0f} items/s)")
        return total

    def _encode_rows(
        self,
        fast: nn.Module,
        device: torch.device,
        inputs: Tensor | InputSource,
        rows: range,
        progress: Progress,
    ) -> tuple[Tensor, Tensor]:
        """(n, F) float32 features and (n,) usable flags of items `rows`, batch by batch on the workers."""
        cpu = device.type == "cpu"
        size = self.batch_size or (CPU_BATCH_SIZE if cpu else GPU_BATCH_SIZE)
        batches = [rows[j : j + size] for j in range(0, len(rows), size)]
        channels_last = any(p.dim() == 4 for p in fast.parameters())
        autocast = self.precision == "bf16"

        def run(b: int) -> tuple[Tensor, Tensor]:
            batch = batches[b]
            if isinstance(inputs, Tensor):
                x, usable = inputs[batch.start : batch.stop], torch.ones(len(batch), dtype=torch.bool)
            else:
                x, usable = inputs.load(batch)
                progress.decoded(len(batch))
            x = x.to(device)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._calls_lock:
                self.encoder_calls += 1
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = fast(x).float().cpu()
            progress.encoded(len(batch))
            return out, usable

        workers = self.workers or torch.get_num_threads()
        done = map_workers(run, len(batches), workers, cpu=cpu)
        if not done:
            return torch.empty(0), torch.empty(0, dtype=torch.bool)
        return torch.cat([f for f, _ in done]), torch.cat([u for _, u in done])

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
        done = self.load(key) if missing else None
        if done is not None:  # another process merged (and removed) these shards: file system without locks
            return done
        if missing:
            raise RuntimeError(f"cannot merge {key}: shards {missing[:5]} of {self.n_shards(n)} are missing")
        part = self.root / f"{key}.partial"
        shards = [torch.load(part / f"{i:05d}.pt", weights_only=True) for i in range(self.n_shards(n))]
        source = isinstance(shards[0], dict)  # an InputSource's shards carry the usable flags
        feats = torch.cat([s["features"] for s in shards] if source else shards)
        if feats.shape[0] != n:
            raise RuntimeError(f"{part}: shards hold {feats.shape[0]} items, expected {n}")
        entry = self.root / key
        atomic_write(entry / FEATURES_FILE, lambda tmp: torch.save(feats, tmp))
        meta = meta | {"dim": int(feats.shape[1]) if feats.ndim == 2 else 0}
        if source:
            usable = torch.cat([s["usable"] for s in shards])  # (N,)
            meta["unusable"] = torch.nonzero(~usable).flatten().tolist()
        write_json(entry / META_FILE, meta)  # last: the entry is complete from here on
        shutil.rmtree(part, ignore_errors=True)
        return feats

    def features(self, modality: str, encoder: nn.Module, inputs: Tensor | InputSource) -> Tensor:
        """(N, F) features of `encoder` over `inputs`: read from the cache, or encoded (only the
        shards an earlier run did not finish), stored, then returned."""
        return self.features_and_usable(modality, encoder, inputs)[0]

    def features_and_usable(
        self, modality: str, encoder: nn.Module, inputs: Tensor | InputSource
    ) -> tuple[Tensor, Tensor]:
        """`features`, and (N,) bool: which items had a usable input. A source's unusable items are
        reported (`InputSource.check`: an error or a warning) whether they were loaded now or are
        known from the entry."""
        meta = self.describe(modality, encoder, inputs)
        key = key_of(meta)
        feats = self.load(key)
        if feats is None:
            # The ranks of a cluster job (and the jobs of a sweep) all start here at once: the first
            # to take the lock extracts, the others wait and then read the complete entry.
            with file_lock(self.root / f"{key}.lock", f"the extraction of {modality} features {key}"):
                feats = self.load(key)
                if feats is None:
                    self.encode_shards(key, encoder, inputs)
                    feats = self.merge(key, meta)
        usable = self.usable(key, meta["n_items"])
        if not isinstance(inputs, Tensor):
            inputs.check(usable)
        return feats, usable
