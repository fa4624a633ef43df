"""The sequential recommender: item tower + user encoder, scored by dot product."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.data.batch import RecBatch
from vrs.models.item_tower import ItemTower


class Recommender(nn.Module):
    """Item tower + user encoder; score(user, item) = user · item.

    Args:
        item_tower: item indices -> (n, D) item vectors.
        user_encoder: (B, T, D) history vectors + mask + events -> (B, T, D) states.
    """

    def __init__(self, item_tower: ItemTower, user_encoder: nn.Module):
        super().__init__()
        self.item_tower = item_tower
        self.user_encoder = user_encoder

    @property
    def causal(self) -> bool:
        """Whether the state at position t depends only on events <= t."""
        return bool(self.user_encoder.causal)

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """Item vectors: idx (n,) -> (n, D); None -> (N, D)."""
        return self.item_tower(idx)

    def sequence_states(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """Per-position user states (B, T, D).

        Args:
            batch: left-padded histories.
            item_vectors: (N, D) precomputed catalogue vectors (evaluation); when None only the
                distinct history items are encoded, which equals indexing `encode_items()` but
                avoids encoding the whole catalogue for every training batch.
        """
        if item_vectors is None:
            uniq, inverse = torch.unique(batch.items, return_inverse=True)  # (U,), (B, T)
            h = self.encode_items(uniq)[inverse]  # (B, T, D)
        else:
            h = item_vectors[batch.items]  # (B, T, D)
        return self.user_encoder(h, batch.mask, batch.events)

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """User vectors (B, D): the state at the most recent event (position T-1; left padding)."""
        return self.sequence_states(batch, item_vectors)[:, -1]

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, D), items (N, D) -> (B, N)."""
        return users @ items.T  # (B, N)
