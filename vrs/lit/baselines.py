"""Training-free baselines, evaluated through the same full-ranking path as trained models."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from vrs.data.content import ItemContent
from vrs.encoders.cache import FeatureCache
from vrs.encoders.catalogue import CatalogueFeatures
from vrs.lit.module import build_towers
from vrs.lit.ranking import RankingModule, Scorer
from vrs.models.baselines import ContentProfileRecommender, PopularityRecommender, VisualProfileRecommender
from vrs.models.content_match import content_vectors

KINDS = ("popularity", "visual_profile", "content_profile")


class BaselineModule(RankingModule):
    """Evaluates a baseline built from the training split.

    Args:
        n_items: catalogue size N.
        kind: "popularity" (training counts), "visual_profile" (mean image embedding of the
            history against each item's image embedding, from the frozen `encoder` image tower) or
            "content_profile" (centred, unit-length frozen features of `modalities` against the mean
            of the last `window` history items': `ContentProfileRecommender`).
        encoder: `_target_` dict building a `Towers` (the profiles only).
        modalities: content_profile's modalities, towers of `encoder` (default image and text).
        window: content_profile's number of recent history items.
        whiten: content_profile's feature whitening (`content_vectors`; 0: off).
        session_gap: content_profile's age limit of the recent items, in time units (`recent_mean`;
            None: off).
        evaluation: {"ks", "exclude_seen", "chunk_size"}.
    """

    def __init__(
        self,
        n_items: int,
        kind: str = "popularity",
        encoder: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        modalities: list[str] | None = None,
        window: int = 1,
        whiten: float = 0.0,
        session_gap: int | None = None,
        **unused: Any,
    ) -> None:
        super().__init__(n_items, evaluation)
        if kind not in KINDS:
            raise ValueError(f"unknown baseline kind {kind!r}; expected one of {KINDS}")
        if kind != "popularity" and not encoder:
            raise ValueError(f"model={kind} needs an encoder with content towers (e.g. encoder=toy)")
        self.kind = kind
        self.encoder_cfg = encoder
        self.modalities = list(modalities or ["image", "text"])
        self.window = int(window)
        self.whiten = float(whiten)
        self.session_gap = session_gap
        self._scorer: Scorer | None = None

    def scorer(self) -> Scorer:
        if self._scorer is None:
            raise RuntimeError("call attach_data(content, train_counts) before evaluating a baseline")
        return self._scorer

    @torch.no_grad()
    def attach_data(
        self,
        content: ItemContent,
        train_counts: Tensor | None = None,
        feature_cache: FeatureCache | None = None,
    ) -> None:
        self.content = content
        if self.kind == "popularity":
            if train_counts is None:
                raise ValueError("the popularity baseline needs the training-split item counts")
            self._scorer = PopularityRecommender(train_counts.float())
            return
        if self.kind == "content_profile":
            self._scorer = ContentProfileRecommender(
                self._content_vectors(content, feature_cache), self.window, self.session_gap
            )
            return
        features, has_image = image_features(self.encoder_cfg, content, feature_cache)
        features = features.clone()  # (N, F), not the cache's tensor
        features[~has_image] = 0.0
        self._scorer = VisualProfileRecommender(features)

    def _content_vectors(self, content: ItemContent, feature_cache: FeatureCache | None) -> Tensor:
        catalogue = frozen_catalogue(self.encoder_cfg, content, self.modalities, feature_cache)
        return content_vectors(catalogue.inputs, catalogue.present, self.modalities, self.whiten)  # (N, F)


@torch.no_grad()
def frozen_catalogue(
    encoder_cfg: dict[str, Any],
    content: ItemContent,
    modalities: list[str],
    feature_cache: FeatureCache | None = None,
    image_side: bool = False,
) -> CatalogueFeatures:
    """The catalogue's features from `encoder_cfg`'s towers named in `modalities`, all frozen; read
    from `feature_cache` when given. `image_side`: image files decode at the side the image tower
    reads instead of the content's own size."""
    towers = build_towers(encoder_cfg)
    missing = [m for m in modalities if m not in towers]
    if missing:
        raise ValueError(f"the encoder has no {missing} tower (it has {sorted(towers)})")
    chosen = {m: towers[m].eval() for m in modalities}
    if image_side and "image" in chosen:
        content = at_side(content, getattr(chosen["image"], "image_size", None))
    return CatalogueFeatures.build(content, chosen, frozen=list(chosen), feature_cache=feature_cache)


@torch.no_grad()
def image_features(
    encoder_cfg: dict[str, Any], content: ItemContent, feature_cache: FeatureCache | None = None
) -> tuple[Tensor, Tensor]:
    """(N, F) frozen image features of the catalogue from `encoder_cfg`'s image tower and the (N,)
    bool mask of items that have an image; read from `feature_cache` when given (keyed by the image
    files: no decoding on a hit).

    Image files are decoded at the side the tower reads, whatever size the run loads its own images
    at: the features of one encoder (visual ILD) are then the same for every model of a dataset."""
    if content.image_files is None and content.images is None:
        raise ValueError("image features need item images and an encoder with an image tower")
    catalogue = frozen_catalogue(encoder_cfg, content, ["image"], feature_cache, image_side=True)
    return catalogue.inputs["image"], catalogue.present["image"]  # (N, F), (N,)


def at_side(content: ItemContent, side: int | None) -> ItemContent:
    """`content` whose image files decode at `side` pixels (unchanged without files or side)."""
    files = content.image_files
    if files is None or not isinstance(side, int) or files.size == side:
        return content
    return ItemContent.from_files(replace(files, size=side), content.texts, content.has_text, content.columns)
