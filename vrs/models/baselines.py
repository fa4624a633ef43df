"""Training-free baselines with the Recommender's encode/score interface."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.data.batch import RecBatch
from vrs.models.content_match import check_session_gap, recent_mean


class PopularityRecommender(nn.Module):
    """Score every item by its training interaction count, identically for every user.

    Item vectors are (N, 1) counts and user vectors (B, 1) ones, so `score` is the count; their
    cosine is 1 for every pair, so served lists carry no "because" items (`explains`).

    Args:
        counts: (N,) training interaction count of each item.
    """

    causal: bool = True
    explains: bool = False

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


class ContentProfileRecommender(nn.Module):
    """Dot product of each item's content vector c with the mean c of the user's last `window`
    history items (`vrs.models.content_match.content_vectors`: centred, unit-length features per
    modality), the training-free content profile.

    Args:
        content: (N, F) content vectors c (0 for items without content).
        window: history items averaged, the most recent ones.
        session_gap: of those, only the ones at most this many time units older than the latest
            (`recent_mean`); None: all `window`.
    """

    causal: bool = True

    def __init__(self, content: Tensor, window: int = 1, session_gap: int | None = None):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self.session_gap = check_session_gap(session_gap)
        self.register_buffer("content", content.detach().float())  # (N, F)

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """(n,) -> (n, F); None -> (N, F)."""
        return self.content if idx is None else self.content[idx]

    def sequence_states(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, T, F): the mean c of the last `window` items up to each position (0 at padding)."""
        return recent_mean(self.content[batch.items], batch.mask, self.window, batch.times, self.session_gap)

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """(B, F): the state at the most recent event (left padding)."""
        return self.sequence_states(batch)[:, -1]

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, F), items (N, F) -> (B, N)."""
        return users @ items.T  # (B, N)
