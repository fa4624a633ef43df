"""Training-free baselines with the Recommender's encode/score interface."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.data.batch import RecBatch


class PopularityRecommender(nn.Module):
    """Score every item by its training interaction count, identically for every user.

    Item vectors are (N, 1) counts and user vectors (B, 1) ones, so `score` is the count.

    Args:
        counts: (N,) training interaction count of each item.
    """

    causal: bool = True

    def __init__(self, counts: Tensor):
        super().__init__()
        self.register_buffer("counts", counts.detach().float().reshape(-1))

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """(n,) -> (n, 1) counts; None -> (N, 1)."""
        counts = self.counts if idx is None else self.counts[idx]
        return counts[:, None]

    def sequence_states(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, T, 1) ones: the history does not matter."""
        return torch.ones(*batch.items.shape, 1, device=self.counts.device)

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, 1) ones."""
        return torch.ones(batch.items.shape[0], 1, device=self.counts.device)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, 1), items (N, 1) -> (B, N)."""
        return users @ items.T  # (B, N)


class VisualProfileRecommender(nn.Module):
    """Cosine between a user's mean (normalised) history image embedding and each item's.

    Items without an image should carry zero features; they score 0 for everyone. Users with an
    empty history get a zero vector (every score 0).

    Args:
        image_features: (N, F) image embedding of each item.
    """

    causal: bool = True

    def __init__(self, image_features: Tensor):
        super().__init__()
        self.register_buffer("features", F.normalize(image_features.detach().float(), dim=-1))  # (N, F)

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """(n,) -> (n, F) unit-norm image embeddings; None -> (N, F)."""
        return self.features if idx is None else self.features[idx]

    def sequence_states(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, T, F) unit-norm running mean profile up to each position (zeros at padding)."""
        mask = batch.mask.bool()[..., None]  # (B, T, 1)
        h = torch.where(mask, self.features[batch.items], 0.0)  # (B, T, F)
        return torch.where(mask, F.normalize(h.cumsum(dim=1), dim=-1), 0.0)

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, F) normalised mean of the history's normalised image embeddings."""
        mask = batch.mask.bool()[..., None]  # (B, T, 1)
        h = torch.where(mask, self.features[batch.items], 0.0)  # (B, T, F)
        # The mean and the sum point the same way, so normalising the sum is enough.
        return F.normalize(h.sum(dim=1), dim=-1)  # (B, F); zero history -> zero vector

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, F), items (N, F) -> (B, N) cosine similarities."""
        return users @ items.T  # (B, N)
