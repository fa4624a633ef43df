"""Item tower: pixels, text and ID of an item -> one item vector."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vrs.data.content import ItemContent
from vrs.encoders.base import Towers
from vrs.encoders.cache import FeatureCache


def drop_modalities(
    present: dict[str, Tensor], p: float, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Modality dropout: hide each present modality of each item with probability `p`.

    An item never loses all of its present modalities: when every one is drawn for dropping, one of
    them (chosen uniformly) is kept, so the model never trains on an item that is "missing
    everything" when it actually has content.

    Args:
        present: modality -> (n,) bool.
        p: drop probability per (item, modality).
        generator: optional RNG for reproducibility.

    Returns:
        modality -> (n,) bool, a subset of `present`.
    """
    names = list(present)
    pres = torch.stack([present[m].bool() for m in names], dim=1)  # (n, M)
    if p <= 0 or not names:
        return dict(present)
    draw = torch.rand(pres.shape, device=pres.device, generator=generator)  # (n, M)
    keep = pres & (draw >= p)
    starved = pres.any(dim=1) & ~keep.any(dim=1)  # (n,) items that would lose everything
    pick = torch.rand(pres.shape, device=pres.device, generator=generator).masked_fill(~pres, -1.0)
    rescue = nn.functional.one_hot(pick.argmax(dim=1), len(names)).bool()  # (n, M)
    keep = keep | (starved[:, None] & rescue)
    return {m: keep[:, i] for i, m in enumerate(names)}


class ItemTower(nn.Module):
    """Encodes catalogue items from their image, text and ID, fused into one D-wide vector.

    Only the modalities the fusion consumes (`fusion.modalities`) are kept and computed. Content is
    attached once with `set_content`; it lives in non-persistent buffers (not in checkpoints, which
    hold only weights). With `freeze_encoders` the encoders are frozen, kept in eval mode, and run
    once over the whole catalogue at `set_content` time; `forward` then only reads the cache.

    Args:
        n_items: catalogue size N.
        dim: item vector width D.
        towers: image / text encoders (either may be None).
        fusion: partial building the fusion module as `fusion(in_dims=..., out_dim=dim)`.
        use_id: offer a learned ID embedding nn.Embedding(N, D) as the "id" modality.
        freeze_encoders: freeze the encoders and cache their features.
        modality_dropout: per-item, per-modality drop probability during training.
        chunk_size: items per encoder call when encoding many items.
        feature_norm: LayerNorm on each encoder's features before fusion. Pretrained features
            (e.g. non-negative CNN activations with a large shared mean) otherwise leave nonlinear
            fusions (concat MLP, gates) to learn the scaling first, and they train far slower.
        id_init_std: standard deviation of the ID embedding's normal initialisation.
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        towers: Towers,
        fusion: Callable[..., nn.Module],
        use_id: bool = True,
        freeze_encoders: bool = False,
        modality_dropout: float = 0.0,
        chunk_size: int = 256,
        feature_norm: bool = True,
        id_init_std: float = 0.02,
    ):
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.freeze_encoders = freeze_encoders
        self.modality_dropout = modality_dropout
        self.chunk_size = chunk_size
        in_dims: dict[str, int] = {}
        if towers.image is not None:
            in_dims["image"] = towers.image.out_dim
        if towers.text is not None:
            in_dims["text"] = towers.text.out_dim
        if use_id:
            in_dims["id"] = dim
        self.fusion = fusion(in_dims=in_dims, out_dim=dim)
        self.modalities: tuple[str, ...] = tuple(self.fusion.modalities)
        # Unused encoders are not registered: no dead weights in checkpoints, no unused-parameter
        # errors under DDP.
        self.image_encoder = towers.image if "image" in self.modalities else None
        self.text_encoder = towers.text if "text" in self.modalities else None
        self.id_emb = nn.Embedding(n_items, dim) if "id" in self.modalities else None
        self.norms = nn.ModuleDict(
            {m: nn.LayerNorm(in_dims[m]) for m in ("image", "text") if feature_norm and m in self.modalities}
        )
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=id_init_std)
        if freeze_encoders:
            for enc in self.encoders():
                enc.requires_grad_(False)
                enc.eval()
        for name in ("has_image", "has_text", "has_id", "images", "tokens", "image_feats", "text_feats"):
            self.register_buffer(name, None, persistent=False)
        self._has_content = False

    def encoders(self) -> list[nn.Module]:
        """The encoders this tower actually uses."""
        return [e for e in (self.image_encoder, self.text_encoder) if e is not None]

    def train(self, mode: bool = True) -> ItemTower:
        super().train(mode)
        if self.freeze_encoders:  # frozen encoders stay in eval mode (dropout / BN statistics off)
            for enc in self.encoders():
                enc.eval()
        return self

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        return torch.device("cpu")

    def _encode(self, encoder: nn.Module, inputs: Tensor) -> Tensor:
        """Run `encoder` over `inputs` in chunks of `chunk_size` rows: (n, ...) -> (n, F)."""
        return torch.cat([encoder(chunk) for chunk in inputs.split(self.chunk_size)], dim=0)

    @torch.no_grad()
    def set_content(
        self,
        content: ItemContent,
        known_items: Tensor | None = None,
        feature_cache: FeatureCache | None = None,
    ) -> None:
        """Attach the catalogue's content (and, with frozen encoders, cache its features).

        Args:
            content: images and texts of all N items, in catalogue order.
            known_items: (N,) bool, items seen in training. The ID embedding of any other item was
                never trained, so its "id" modality counts as absent (cold items are scored from
                their content). None: every ID is present.
            feature_cache: with frozen encoders, read features from this on-disk cache (encoding
                and storing only what it lacks) instead of encoding the catalogue in memory.
        """
        if len(content) != self.n_items:
            raise ValueError(f"content has {len(content)} items, the tower was built for {self.n_items}")
        device = self._device()
        self.has_text = content.has_text.bool().to(device)
        known = torch.ones(self.n_items, dtype=torch.bool) if known_items is None else known_items.bool()
        if known.shape != (self.n_items,):
            raise ValueError(f"known_items must have shape ({self.n_items},), got {tuple(known.shape)}")
        self.has_id = known.to(device)
        self.images = self.tokens = self.image_feats = self.text_feats = None
        if self.image_encoder is None:  # never read: no decoding for a tower without images
            self.has_image = torch.zeros(self.n_items, dtype=torch.bool, device=device)
        elif self.freeze_encoders and feature_cache is not None and content.image_files is not None:
            # Keyed by the image files' bytes: features (and which items decoded) come from the
            # cache, and only items missing from it are decoded.
            feats, usable = feature_cache.features_and_usable(
                "image", self.image_encoder, content.image_files
            )
            self.image_feats, self.has_image = feats.to(device), usable.to(device)
        else:
            self.has_image = content.has_image.bool().to(device)
            if content.images is None:  # no item has an image: every image is absent
                self.has_image = torch.zeros_like(self.has_image)
                images = torch.zeros(self.n_items, 3, 1, 1, dtype=torch.uint8, device=device)
            else:
                images = content.images.to(device)
            if self.freeze_encoders:
                self.image_feats = self._frozen_features("image", self.image_encoder, images, feature_cache)
            else:
                self.images = images
        if self.text_encoder is not None:
            tokens = self.text_encoder.tokenize(list(content.texts)).to(device)  # (N, L)
            if self.freeze_encoders:
                self.text_feats = self._frozen_features("text", self.text_encoder, tokens, feature_cache)
            else:
                self.tokens = tokens
        self._has_content = True

    def _frozen_features(
        self, modality: str, encoder: nn.Module, inputs: Tensor, cache: FeatureCache | None
    ) -> Tensor:
        """(N, F) features of a frozen encoder, from the on-disk cache when there is one."""
        if cache is None:
            return self._encode(encoder, inputs)
        return cache.features(modality, encoder, inputs).to(inputs.device)

    def modality_features(self, idx: Tensor | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-modality features and presence flags of items `idx` (all N when None).

        Returns:
            feats: modality -> (n, F_m); present: modality -> (n,) bool (before modality dropout).
        """
        if not self._has_content:
            raise RuntimeError("ItemTower.set_content(content) must be called before encoding items")
        device = self.has_image.device
        every = idx is None  # the whole catalogue: cached tensors are used as they are, not copied
        idx = torch.arange(self.n_items, device=device) if every else idx.to(device)

        def rows(t: Tensor) -> Tensor:
            return t if every else t[idx]

        feats: dict[str, Tensor] = {}
        present: dict[str, Tensor] = {}
        if self.image_encoder is not None:
            feats["image"] = (
                rows(self.image_feats)
                if self.freeze_encoders
                else self._encode(self.image_encoder, rows(self.images))
            )
            present["image"] = rows(self.has_image)
        if self.text_encoder is not None:
            feats["text"] = (
                rows(self.text_feats)
                if self.freeze_encoders
                else self._encode(self.text_encoder, rows(self.tokens))
            )
            present["text"] = rows(self.has_text)
        if self.id_emb is not None:
            feats["id"] = self.id_emb.weight if every else self.id_emb(idx)
            present["id"] = rows(self.has_id)
        return feats, present

    def forward(self, idx: Tensor | None = None) -> Tensor:
        """Item vectors: idx (n,) long -> (n, D); idx None -> the whole catalogue (N, D)."""
        feats, present = self.modality_features(idx)
        feats = {m: self.norms[m](x) if m in self.norms else x for m, x in feats.items()}
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return self.fusion(feats, present)
