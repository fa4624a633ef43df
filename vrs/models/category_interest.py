"""The classic visual recommender's scoring: each user's interest over item categories, weighted by
event type and recency, against each item's predicted category distribution (plus, optionally, the
cosine between the user's visual profile and the item's image features)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.data.batch import RecBatch


class CategoryInterestRecommender(nn.Module):
    """score(u, i) = interest(u) . p(category | i) + visual_weight * cos(profile(u), image(i)).

    interest(u) is the weighted mean of p(category | item) over the history, each event weighted by
    its type's weight times 0.5 ** (events after it / half_life); profile(u) is the normalised sum of
    the history's normalised image features. Item and user vectors are concatenations, so the score
    is one dot product and the whole-catalogue ranking path applies unchanged.

    Args:
        item_probs: (N, C) predicted category distribution of each item.
        event_weights: (E + 1,) weight of each event id (index 0 = padding, unused).
        half_life: recency half-life in events (None: no decay).
        image_features: (N, F) image features (zeros for items without an image), or None.
        visual_weight: weight of the visual-similarity term (0: none).
    """

    causal: bool = True

    def __init__(
        self,
        item_probs: Tensor,
        event_weights: Tensor,
        half_life: float | None = None,
        image_features: Tensor | None = None,
        visual_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if visual_weight and image_features is None:
            raise ValueError("visual_weight > 0 needs image features")
        self.half_life = half_life
        self.register_buffer("event_weights", event_weights.detach().float())
        scale = math.sqrt(visual_weight) if visual_weight else 0.0
        self.scale = scale
        self.register_buffer("probs", item_probs.detach().float())  # (N, C)
        feats = (
            F.normalize(image_features.detach().float(), dim=-1) * scale
            if scale
            else torch.zeros(item_probs.shape[0], 0)
        )
        self.register_buffer("features", feats)  # (N, F) or (N, 0)

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """(n,) -> (n, C + F) [p(category | item), sqrt(w) image]; None -> the whole catalogue."""
        vectors = torch.cat([self.probs, self.features], dim=1)
        return vectors if idx is None else vectors[idx]

    def _weights(self, batch: RecBatch) -> Tensor:
        """(B, T) weight of each history event (0 at padding)."""
        mask = batch.mask.bool()
        w = self.event_weights[batch.events.clamp(min=0, max=self.event_weights.numel() - 1)]
        if self.half_life:
            # Left-padded histories: events after position t = real events at positions > t.
            after = mask.flip(1).cumsum(1).flip(1) - mask.long()  # (B, T)
            w = w * torch.pow(0.5, after.float() / self.half_life)
        return torch.where(mask, w, 0.0)

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, C + F): [interest over categories (sums to 1), sqrt(w) visual profile]."""
        w = self._weights(batch)[..., None]  # (B, T, 1)
        interest = (w * self.probs[batch.items]).sum(1)  # (B, C)
        interest = interest / interest.sum(1, keepdim=True).clamp(min=1e-12)
        profile = (w.gt(0) * self.features[batch.items]).sum(1)  # (B, F)
        if profile.shape[1]:
            profile = F.normalize(profile, dim=-1) * self.scale
        return torch.cat([interest, profile], dim=1)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, D), items (N, D) -> (B, N)."""
        return users @ items.T
