"""model=category_interest: the classic visual recommender vrs descends from, in three stages.

(a) an image classifier trained with cross-entropy on the items' categories (held-out accuracy
    reported as ``classifier/accuracy``); (b) each user's interest over categories from the history,
    weighted by event type and recency; (c) score = interest . predicted category distribution
    (+ a visual-similarity term), ranked over the whole catalogue like every other model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from vrs.encoders.cache import FeatureCache
from vrs.lit.ranking import RankingModule, Scorer
from vrs.models.category_interest import CategoryInterestRecommender

DEFAULT_CLASSIFIER: dict[str, Any] = {
    "train_encoder": True,
    "epochs": 30,
    "lr": 1e-3,
    "batch_size": 32,
    "holdout": 0.2,
    "seed": 0,
}
DEFAULT_INTEREST: dict[str, Any] = {
    "event_weights": {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 4.0},
    "half_life": 10.0,
}


class CategoryInterestModule(RankingModule):
    """Fits the classifier on the catalogue (`fit_catalogue`), then evaluates like a baseline.

    Args:
        n_items: catalogue size N.
        encoder: `_target_` dict building the `Towers` whose image tower is the classifier's backbone.
        classifier: train_encoder (false: frozen, cached features and a new linear head only),
            epochs, lr, batch_size, holdout (share of labelled items held out for accuracy), seed.
        interest: event_weights (event type -> weight; unlisted types 1.0), half_life (events; null:
            no recency decay).
        visual_weight: weight of the cosine between the user's visual profile and the item's image
            features (the classifier backbone's).
        evaluation: {"ks", "exclude_seen", "chunk_size"}.
    """

    def __init__(
        self,
        n_items: int,
        encoder: dict[str, Any],
        classifier: dict[str, Any] | None = None,
        interest: dict[str, Any] | None = None,
        visual_weight: float = 0.0,
        evaluation: dict[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        super().__init__(n_items, evaluation)
        self.encoder_cfg = encoder
        self.classifier_cfg = {**DEFAULT_CLASSIFIER, **(classifier or {})}
        self.interest_cfg = {**DEFAULT_INTEREST, **(interest or {})}
        self.visual_weight = float(visual_weight)
        self._scorer: Scorer | None = None

    def scorer(self) -> Scorer:
        if self._scorer is None:
            raise RuntimeError("call fit_catalogue(datamodule) before evaluating model=category_interest")
        return self._scorer

    def fit_catalogue(self, datamodule: Any, feature_cache: FeatureCache | None = None) -> None:
        """Trains the classifier on the items' categories and builds the recommender."""
        from vrs.lit.module import build_towers

        categories = datamodule.item_categories
        if categories is None or not bool((categories >= 0).any()):
            raise ValueError(
                f"model=category_interest needs item categories: {datamodule.root}/items.parquet has "
                "no non-empty 'category' column"
            )
        content = datamodule.content
        encoder = build_towers(self.encoder_cfg).image
        if encoder is None:
            raise ValueError(
                "model=category_interest needs an encoder with an image tower (e.g. encoder=lenet)"
            )
        has_image = content.has_image
        if self.classifier_cfg["train_encoder"]:
            if content.images is None:
                raise ValueError(
                    "model=category_interest with classifier.train_encoder=true needs item images"
                )
            inputs = content.images  # (N, 3, H, W) uint8, encoded on the fly
        else:
            from vrs.lit.baselines import image_features

            inputs, has_image = image_features(self.encoder_cfg, content, feature_cache)  # (N, F)
            encoder = nn.Identity()
        probs, features, accuracy = fit_classifier(
            encoder, inputs, categories, has_image, self.classifier_cfg
        )
        self.results.update({f"classifier/{k}": v for k, v in accuracy.items()})
        self._scorer = CategoryInterestRecommender(
            probs,
            event_weights(datamodule.data.event_index, self.interest_cfg["event_weights"]),
            self.interest_cfg["half_life"],
            features * has_image[:, None],
            self.visual_weight,
        )


def event_weights(event_index: dict[str, int], weights: dict[str, float]) -> Tensor:
    """(E + 1,) weight per event id (0 = padding); types not in `weights` weigh 1."""
    out = torch.ones(len(event_index) + 1)
    for name, i in event_index.items():
        out[i] = float(weights.get(name, 1.0))
    return out


def fit_classifier(
    encoder: nn.Module, inputs: Tensor, categories: Tensor, has_image: Tensor, cfg: dict[str, Any]
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Trains encoder + a linear head with cross-entropy on the labelled items with an image.

    Args:
        encoder: maps rows of `inputs` to (n, F) features (trained when cfg["train_encoder"]).
        inputs: (N, ...) pixels or precomputed features of every item.
        categories: (N,) category code (-1: none).
        has_image: (N,) bool.
        cfg: see `CategoryInterestModule`.

    Returns:
        (N, C) predicted category distribution (the labelled items' prior for items without an image),
        (N, F) features, and {"accuracy" (when items are held out), "majority" (the largest class's
        share: chance for a constant guess), "n_heldout", "n_classes"}.
    """
    n_classes = int(categories.max()) + 1
    labelled = torch.nonzero((categories >= 0) & has_image).squeeze(1)
    g = torch.Generator().manual_seed(int(cfg["seed"]))
    order = labelled[torch.randperm(labelled.numel(), generator=g)]
    n_held = int(round(order.numel() * float(cfg["holdout"])))
    held, train = order[:n_held], order[n_held:]
    if train.numel() == 0:
        raise ValueError(
            f"no labelled item with an image left to train the classifier (holdout={cfg['holdout']})"
        )
    with torch.no_grad():
        width = encoder(inputs[:1]).shape[1]
    head = nn.Linear(width, n_classes)
    params = list(head.parameters()) + (list(encoder.parameters()) if cfg["train_encoder"] else [])
    optimizer = torch.optim.Adam(params, lr=float(cfg["lr"]))
    batch = int(cfg["batch_size"])
    encoder.train(bool(cfg["train_encoder"]))
    for _ in tqdm(range(int(cfg["epochs"])), desc="classifier", unit="epoch", disable=train.numel() < 2000):
        for rows in train[torch.randperm(train.numel(), generator=g)].split(batch):
            loss = F.cross_entropy(head(encoder(inputs[rows])), categories[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    encoder.eval()
    with torch.no_grad():
        features = torch.cat([encoder(chunk) for chunk in inputs.split(256)])  # (N, F)
        probs = head(features).softmax(dim=1)  # (N, C)
    prior = torch.bincount(categories[labelled], minlength=n_classes).float()
    probs[~has_image] = prior / prior.sum()
    held_labels = categories[held]
    accuracy = {
        "majority": float(prior.max() / prior.sum()),
        "n_heldout": float(n_held),
        "n_classes": float(n_classes),
    }
    if n_held:
        accuracy["accuracy"] = float((probs[held].argmax(1) == held_labels).float().mean())
    return probs, features, accuracy
