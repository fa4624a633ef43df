"""What the item tower reads about every catalogue item, held apart from the model.

`CatalogueFeatures` holds, per modality, either the inputs of an encoder that trains (pixels, token
ids), the output of its frozen leading stages when only its top trains (`ModalityEncoder.run_trunk`), or
the features of a frozen one, and which items have the modality. It is built once from the
catalogue's `ItemContent` (`CatalogueFeatures.build`) and handed to the item tower, which keeps only
parameters: checkpoints, `module.to(device)` and DDP's parameter broadcast never see the catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vrs.data.content import ItemContent
from vrs.encoders.base import ModalityEncoder, device_of
from vrs.encoders.cache import FeatureCache

_PROGRESS_MIN_CHUNKS = 16  # 4,096 items at the default chunk size: a bar from the start
_PROGRESS_DELAY_S = 5.0  # fewer chunks: a bar once the encoding has taken this long (slow encoders)


def encode_in_chunks(
    encoder: Callable[[Tensor], Tensor], inputs: Tensor, chunk_size: int, name: str = "items"
) -> Tensor:
    """Run `encoder` over `inputs` in chunks of `chunk_size` rows: (n, ...) -> (n, F).

    Encoding the catalogue outside training (frozen features, a frozen trunk, or a trained encoder
    before an evaluation) can take minutes: a progress bar from _PROGRESS_MIN_CHUNKS chunks on, or
    after _PROGRESS_DELAY_S seconds; never inside a training step."""
    chunks = inputs.split(chunk_size)
    delay = 0.0 if len(chunks) >= _PROGRESS_MIN_CHUNKS else _PROGRESS_DELAY_S
    bar = tqdm(
        chunks,
        desc=f"encoding {name}",
        unit="chunk",
        leave=False,
        disable=torch.is_grad_enabled(),
        delay=delay,
    )
    return torch.cat([encoder(chunk) for chunk in bar], dim=0)


@dataclass(frozen=True)
class CatalogueFeatures:
    """Per-modality inputs or features of the N catalogue items, and which items have each modality.

    Attributes:
        inputs: tower modality -> (N, ...) inputs of an encoder that runs at every step, or (N, F)
            features of a frozen one (those named in `encoded`).
        present: modality -> (N,) bool, for every modality the tower fuses; "id" marks the IDs
            seen in training (an untrained embedding counts as absent: cold items are scored from
            their content).
        encoded: the modalities whose `inputs` are already features.
        trunks: modality -> depth d of a trained encoder whose `inputs` are the output of its first
            d (frozen) stages: the item tower runs `encoder.run_head(inputs, d)`.
    """

    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    encoded: frozenset[str] = frozenset()
    trunks: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {f"inputs[{m}]": len(t) for m, t in self.inputs.items()}
        sizes |= {f"present[{m}]": len(t) for m, t in self.present.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"catalogue features disagree on the number of items: {sizes}")
        if not set(self.encoded) <= set(self.inputs):
            raise ValueError(
                f"encoded modalities {sorted(self.encoded)} without inputs ({sorted(self.inputs)})"
            )
        if not set(self.trunks) <= set(self.inputs) - set(self.encoded):
            raise ValueError(
                f"trunk modalities {sorted(self.trunks)} must be inputs of trained encoders "
                f"({sorted(set(self.inputs) - set(self.encoded))})"
            )

    @property
    def n_items(self) -> int:
        for t in (*self.present.values(), *self.inputs.values()):
            return len(t)
        return 0

    @property
    def device(self) -> torch.device:
        for t in (*self.present.values(), *self.inputs.values()):
            return t.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> CatalogueFeatures:
        """A copy on `device` (self when already there)."""
        if torch.device(device) == self.device:
            return self
        return CatalogueFeatures(
            inputs={m: t.to(device) for m, t in self.inputs.items()},
            present={m: t.to(device) for m, t in self.present.items()},
            encoded=self.encoded,
            trunks=self.trunks,
        )

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        content: ItemContent,
        towers: Mapping[str, ModalityEncoder],
        frozen: Collection[str] = (),
        known_items: Tensor | None = None,
        use_id: bool = False,
        feature_cache: FeatureCache | None = None,
        chunk_size: int = 256,
    ) -> CatalogueFeatures:
        """Read each tower's inputs from `content`; run the `frozen` towers once over the catalogue,
        and the frozen leading stages (`ModalityEncoder.trunk_depth`) of the others.

        Args:
            content: the content of all N items, in catalogue order.
            towers: modality -> encoder, each reading its own inputs (`ModalityEncoder.read`).
            frozen: modalities whose encoders do not train: their features are computed here.
            known_items: (N,) bool, items seen in training (the "id" presence); None: all of them.
            use_id: the tower fuses the learned ID embedding ("id" presence wanted).
            feature_cache: read frozen features from this on-disk cache (encoding and storing only
                what it lacks) instead of encoding the catalogue in memory.
            chunk_size: items per encoder call.
        """
        n = len(content)
        inputs: dict[str, Tensor] = {}
        present: dict[str, Tensor] = {}
        if use_id:
            known = torch.ones(n, dtype=torch.bool) if known_items is None else known_items.bool().cpu()
            if known.shape != (n,):
                raise ValueError(f"known_items must have shape ({n},), got {tuple(known.shape)}")
            present["id"] = known
        trunks: dict[str, int] = {}
        for m, encoder in towers.items():
            inputs[m], has = _read(m, encoder, content, m in frozen, feature_cache, chunk_size)
            present[m] = has.bool().cpu()
            depth = 0 if m in frozen else encoder.trunk_depth()
            if depth:
                trunk = functools.partial(encoder.run_trunk, depth=depth)
                inputs[m] = encode_in_chunks(
                    trunk, inputs[m].to(device_of(encoder)), chunk_size, f"{m} trunk"
                ).cpu()
                trunks[m] = depth
        encoded = frozenset(m for m in towers if m in frozen)
        return cls(inputs=inputs, present=present, encoded=encoded, trunks=trunks)


def _read(
    modality: str,
    encoder: ModalityEncoder,
    content: ItemContent,
    frozen: bool,
    cache: FeatureCache | None,
    chunk_size: int,
) -> tuple[Tensor, Tensor]:
    """(N, ...) inputs of a trained encoder, or (N, F) features of a frozen one; (N,) presence."""
    source = encoder.source(content) if frozen and cache is not None else None
    if source is not None:
        # Keyed by the source (image files' bytes): features, and which items have a usable input,
        # come from the cache, and only items missing from it are loaded.
        return cache.features_and_usable(modality, encoder, source)
    raw, present = encoder.read(content)
    if not frozen:
        return raw, present
    device = device_of(encoder)
    if cache is None:
        return encode_in_chunks(encoder, raw.to(device), chunk_size, modality).cpu(), present
    return cache.features(modality, encoder, raw.to(device)).cpu(), present
