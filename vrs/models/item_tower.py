"""Item tower: an item's modalities (image, text, category, ..., ID), keyed by name -> one item vector."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping

import torch
from torch import Tensor, nn

from vrs.data.content import ItemContent
from vrs.encoders.base import ModalityEncoder, device_of
from vrs.encoders.cache import FeatureCache
from vrs.encoders.catalogue import CatalogueFeatures, encode_in_chunks


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


def _mul32(h: Tensor, c: int) -> Tensor:
    """(h * c) mod 2^32 for int64 h in [0, 2^32) without int64 overflow (16-bit halves)."""
    return ((h & 0xFFFF) * c + (((h >> 16) * c) & 0xFFFF) * 65536) & 0xFFFFFFFF


def _fmix32(h: Tensor) -> Tensor:
    """MurmurHash3's 32-bit finaliser: well-mixed bits from consecutive keys."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_dropout_mask(idx: Tensor, width: int, p: float, seed: int, chunk: int = 16384) -> Tensor:
    """(n, width) float keep mask (0 or 1 / (1 - p)) of rows `idx`, a pure function of (seed, item,
    column): every lookup of an item within one draw sees the same mask, whichever subset it is
    looked up in, without holding a mask for the whole catalogue."""
    out = torch.empty(len(idx), width, device=idx.device)
    cols = torch.arange(width, device=idx.device) * 0x9E3779B9 & 0xFFFFFFFF  # (width,)
    threshold = int(p * 2**32)
    for start in range(0, len(idx), chunk):
        rows = _fmix32((idx[start : start + chunk].long() & 0xFFFFFFFF) ^ (seed & 0xFFFFFFFF))
        h = _fmix32((rows[:, None] + cols[None, :]) & 0xFFFFFFFF)  # (c, width)
        out[start : start + chunk] = (h >= threshold).float()
    return out / (1.0 - p)


def _coalesced(grad: Tensor) -> Tensor:
    return grad.coalesce() if grad.is_sparse else grad


def _all_fixed(encoder: nn.Module) -> bool:
    """The encoder has weights and none of them trains."""
    params = list(encoder.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


class ItemTower(nn.Module):
    """Encodes catalogue items from their modalities, keyed by name, fused into one D-wide vector.

    The modalities are the towers' (in the order given: the order the config declares them) and the
    learned ID embedding "id", last. Only those the fusion consumes (`fusion.modalities`) are kept
    and computed. The catalogue is attached once (`attach`, or `set_content` to build it from the
    content): a data-side `CatalogueFeatures` holding each tower's inputs, which the tower only
    references (the module holds parameters alone; the catalogue follows the module's device lazily).
    With `freeze_encoders` the towers not listed in `trained` are frozen (so is any tower none of
    whose weights train), kept in eval mode, and run once over the whole catalogue when it is built;
    `forward` then only reads their features. Of a tower whose top stages alone train, the frozen
    leading stages run once too (`ModalityEncoder.trunk_depth`), and `forward` runs the rest.

    Args:
        n_items: catalogue size N.
        dim: item vector width D.
        towers: modality name -> encoder (`Towers`, a plain dict works too).
        fusion: partial building the fusion module as `fusion(in_dims=..., out_dim=dim)`.
        use_id: offer a learned ID embedding nn.Embedding(N, D) as the "id" modality.
        freeze_encoders: freeze the encoders and cache their features.
        modality_dropout: per-item, per-modality drop probability during training.
        chunk_size: items per encoder call when encoding many items.
        feature_norm: LayerNorm on each encoder's features before fusion. Pretrained features
            (e.g. non-negative CNN activations with a large shared mean) otherwise leave nonlinear
            fusions (concat MLP, gates) to learn the scaling first, and they train far slower.
        id_init_std: standard deviation of the ID embedding's normal initialisation.
        trained: modalities whose encoders train whatever `freeze_encoders` says, and which the
            encoder fine-tuning settings leave alone (embeddings learned with the model, such as
            `configs/modalities/category.yaml`).
        sparse_id: the ID embedding's gradient is sparse when a subset of items is encoded (rows
            touched only; `vrs.lit.optim.LazyAdamW` updates those rows alone).
        embedding_dropout: dropout on the learned embeddings (the ID embedding and `trained`
            modalities) during training, one mask per item and draw (`new_dropout_draw`, once per
            training step): an item's history input and its candidate vector share it, as when
            the whole dropped embedding table is used for both (RecTools <= 0.15's item net).
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        towers: Mapping[str, ModalityEncoder],
        fusion: Callable[..., nn.Module],
        use_id: bool = True,
        freeze_encoders: bool = False,
        modality_dropout: float = 0.0,
        chunk_size: int = 256,
        feature_norm: bool = True,
        id_init_std: float = 0.02,
        trained: Collection[str] = (),
        sparse_id: bool = False,
        embedding_dropout: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= embedding_dropout < 1.0:
            raise ValueError(f"model.embedding_dropout must be in [0, 1), got {embedding_dropout}")
        for name in [*towers, *trained]:
            if not name.isidentifier() or name == "id":
                raise ValueError(f"modality name {name!r}: expected a Python identifier other than 'id'")
        self.n_items = n_items
        self.dim = dim
        self.freeze_encoders = freeze_encoders
        self.modality_dropout = modality_dropout
        self.chunk_size = chunk_size
        in_dims = {m: enc.out_dim for m, enc in towers.items()} | ({"id": dim} if use_id else {})
        self.fusion = fusion(in_dims=in_dims, out_dim=dim)
        self.modalities: tuple[str, ...] = tuple(self.fusion.modalities)
        self.in_dims = {m: in_dims[m] for m in self.modalities}
        # Unused encoders are not registered: no dead weights in checkpoints, no unused-parameter
        # errors under DDP.
        self.towers = nn.ModuleDict({m: enc for m, enc in towers.items() if m in self.modalities})
        # A tower none of whose weights train (e.g. finetune.trainable_layers 0 for it) is frozen too.
        self.frozen: tuple[str, ...] = tuple(
            m for m, enc in self.towers.items() if m not in trained and (freeze_encoders or _all_fixed(enc))
        )
        self.id_emb = nn.Embedding(n_items, dim, sparse=sparse_id) if "id" in self.modalities else None
        if self.id_emb is not None and sparse_id:
            # Rows looked up several times in a step are summed once, before clipping measures the norm.
            self.id_emb.weight.register_hook(_coalesced)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(in_dims[m]) for m in self.towers if feature_norm})
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=id_init_std)
        for m in self.frozen:
            self.towers[m].requires_grad_(False)
            self.towers[m].eval()
        self._trained = tuple(m for m in self.towers if m in trained)
        self._catalogue: CatalogueFeatures | None = None
        self.embedding_dropout = embedding_dropout
        self._dropout_seed = 0
        self._masks: dict[str, tuple[int, Tensor]] = {}  # modality -> (seed, (N, F) mask) this draw

    # Up to this many (item, column) entries, one draw's masks are drawn for the whole catalogue and
    # looked up (a few ms per step); beyond, each lookup hashes its own rows (O(rows touched)).
    _WHOLE_MASK_ENTRIES = 2**24

    def _embedding_mask(self, modality: str, idx: Tensor | None, width: int) -> Tensor:
        """The current draw's (n, width) embedding-dropout mask of rows `idx` (all N when None)."""
        p, seed, device = self.embedding_dropout, self._dropout_seed, device_of(self)
        if self.n_items * width > self._WHOLE_MASK_ENTRIES:
            rows = torch.arange(self.n_items, device=device) if idx is None else idx.to(device)
            return hashed_dropout_mask(rows, width, p, seed)
        cached = self._masks.get(modality)
        if cached is None or cached[0] != seed or cached[1].device != device:
            offset = (("id", *self._trained).index(modality) + 1) * 0x9E3779B9
            g = torch.Generator(device=device).manual_seed((seed + offset) % 2**63)
            keep = torch.rand(self.n_items, width, device=device, generator=g) >= p
            cached = (seed, keep)
            self._masks[modality] = cached
        keep = cached[1] if idx is None else cached[1][idx.to(device)]
        return keep.float() / (1.0 - p)

    def new_dropout_draw(self) -> None:
        """Draws the next embedding-dropout masks (from torch's global generator, so a seeded run
        repeats them); nothing is drawn when embedding dropout is off."""
        if self.embedding_dropout > 0:
            self._dropout_seed = int(torch.randint(0, 2**31 - 1, (1,)))

    def encoders(self) -> list[nn.Module]:
        """The encoders `freeze_encoders` and the fine-tuning settings apply to (not `trained`)."""
        return [enc for m, enc in self.towers.items() if m not in self._trained]

    def train(self, mode: bool = True) -> ItemTower:
        super().train(mode)
        for m in self.frozen:  # frozen encoders stay in eval mode (dropout / BN statistics off)
            self.towers[m].eval()
        return self

    @property
    def catalogue(self) -> CatalogueFeatures:
        """The attached catalogue, on the module's device (moved there once, on first use)."""
        if self._catalogue is None:
            raise RuntimeError("ItemTower.set_content(content) must be called before encoding items")
        device = device_of(self)
        if self._catalogue.device != device:
            self._catalogue = self._catalogue.to(device)
        return self._catalogue

    @property
    def present(self) -> dict[str, Tensor]:
        """Modality -> (N,) bool: which items have it (before modality dropout); "id": trained IDs."""
        return {m: self.catalogue.present[m] for m in self.modalities}

    def attach(self, catalogue: CatalogueFeatures) -> None:
        """Use `catalogue` (built for this tower: its modalities, frozen ones as features)."""
        if catalogue.n_items != self.n_items:
            raise ValueError(f"content has {catalogue.n_items} items, the tower was built for {self.n_items}")
        missing = [m for m in self.modalities if m not in catalogue.present] + [
            m for m in self.towers if m not in catalogue.inputs
        ]
        if missing or set(self.frozen) != set(catalogue.encoded):
            raise ValueError(
                f"the catalogue features hold {sorted(catalogue.inputs)} (encoded: {sorted(catalogue.encoded)}), "
                f"the tower needs {list(self.modalities)} (frozen: {list(self.frozen)})"
            )
        trunks = {m: d for m, enc in self.towers.items() if m not in self.frozen and (d := enc.trunk_depth())}
        if dict(catalogue.trunks) != trunks:
            raise ValueError(
                f"the catalogue features hold the frozen trunks {dict(catalogue.trunks)}, the tower's "
                f"encoders have {trunks} (modality: frozen leading stages)"
            )
        self._catalogue = catalogue

    def set_content(
        self,
        content: ItemContent,
        known_items: Tensor | None = None,
        feature_cache: FeatureCache | None = None,
    ) -> None:
        """Build the catalogue's features from its content (`CatalogueFeatures.build`) and attach them.

        Args:
            content: the content of all N items, in catalogue order; each tower reads its own inputs.
            known_items: (N,) bool, items seen in training. The ID embedding of any other item was
                never trained, so its "id" modality counts as absent (cold items are scored from
                their content). None: every ID is present.
            feature_cache: with frozen encoders, read features from this on-disk cache (encoding
                and storing only what it lacks) instead of encoding the catalogue in memory.
        """
        if len(content) != self.n_items:
            raise ValueError(f"content has {len(content)} items, the tower was built for {self.n_items}")
        catalogue = CatalogueFeatures.build(
            content,
            self.towers,
            frozen=self.frozen,
            known_items=known_items,
            use_id="id" in self.modalities,
            feature_cache=feature_cache,
            chunk_size=self.chunk_size,
        )
        self.attach(catalogue)

    def modality_features(
        self, idx: Tensor | None = None, only: tuple[str, ...] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-modality features and presence flags of items `idx` (all N when None), of the
        modalities in `only` (all when None; the others are not encoded).

        Returns:
            feats: modality -> (n, F_m); present: modality -> (n,) bool (before modality dropout).
        """
        catalogue = self.catalogue
        wanted = self.modalities if only is None else tuple(m for m in self.modalities if m in only)
        present_all = {m: catalogue.present[m] for m in wanted}
        every = idx is None  # the whole catalogue: cached tensors are used as they are, not copied
        device = next(iter(present_all.values())).device
        idx = torch.arange(self.n_items, device=device) if every else idx.to(device)

        def rows(t: Tensor) -> Tensor:
            return t if every else t[idx]

        feats: dict[str, Tensor] = {}
        for m, encoder in self.towers.items():
            if m not in wanted:
                continue
            inputs = rows(catalogue.inputs[m])
            if m in self.frozen:
                feats[m] = inputs
            elif m in catalogue.trunks:
                feats[m] = encode_in_chunks(self._head(m, catalogue.trunks[m]), inputs, self.chunk_size, m)
            else:
                feats[m] = encode_in_chunks(encoder, inputs, self.chunk_size, m)
        if self.id_emb is not None and "id" in wanted:
            feats["id"] = self.id_emb.weight if every else self.id_emb(idx)
        present = {m: rows(p) for m, p in present_all.items()}
        return {m: feats[m] for m in wanted}, present

    def _head(self, modality: str, depth: int) -> Callable[[Tensor], Tensor]:
        """The encoder's stages after its cached trunk; an error once a trunk weight trains."""
        encoder = self.towers[modality]
        if encoder.trunk_depth() < depth:
            raise RuntimeError(
                f"the {modality} encoder's first {depth} stages were frozen when the catalogue was built "
                f"and are trained now (frozen stages: {encoder.trunk_depth()}); call set_content again"
            )
        return functools.partial(encoder.run_head, depth=depth)

    def forward(self, idx: Tensor | None = None) -> Tensor:
        """Item vectors: idx (n,) long -> (n, D); idx None -> the whole catalogue (N, D)."""
        feats, present = self.modality_features(idx)
        if self.training and self.embedding_dropout > 0:
            for m in ("id", *self._trained):
                if m in feats:
                    feats[m] = feats[m] * self._embedding_mask(m, idx, feats[m].shape[1]).to(feats[m].dtype)
        feats = {m: self.norms[m](x) if m in self.norms else x for m, x in feats.items()}
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return self.fusion(feats, present)

    def side_vector(self, modality: str, idx: Tensor) -> Tensor:
        """(n, D) projection of items `idx` (n,) by `modality`'s side projection, which an auxiliary
        loss reads (`fusion=side`)."""
        feats, present = self.modality_features(idx, only=(modality,))
        x = feats[modality]
        return self.fusion.side_vector(
            modality, self.norms[modality](x) if modality in self.norms else x, present[modality]
        )
