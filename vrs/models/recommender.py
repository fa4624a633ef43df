"""The sequential recommender: item tower + user encoder, scored by dot product."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vrs.data.batch import RecBatch
from vrs.losses import encode_unique
from vrs.models.content_match import ContentMatch
from vrs.models.item_tower import ItemTower
from vrs.threads import take_rows


class Recommender(nn.Module):
    """Item tower + user encoder; score(user, item) = user · item.

    Args:
        item_tower: item indices -> (n, D) item vectors.
        user_encoder: (B, T, D) history vectors + mask + events -> (B, T, D) states.
        content_match: optional content-profile term: item vectors and user states then carry F
            more columns after their D (`ContentMatch`), and the score is still their dot product.
    """

    def __init__(
        self, item_tower: ItemTower, user_encoder: nn.Module, content_match: ContentMatch | None = None
    ):
        super().__init__()
        self.item_tower = item_tower
        self.user_encoder = user_encoder
        self.content_match = content_match
        # A graph encoder's propagation, reused while nothing it depends on has changed.
        self._propagated: tuple[tuple, tuple[Tensor, Tensor]] | None = None
        if content_match is not None:
            content_match.check(item_tower)
            if getattr(user_encoder, "cloze", False):
                # The profile would read the hidden items' content at the masked positions.
                raise ValueError("content_match cannot be combined with cloze training (user.mask_prob > 0)")
            if self.graph:
                raise ValueError("content_match cannot be combined with a graph user encoder (user=lightgcn)")

    @property
    def graph(self) -> bool:
        """Whether item vectors are propagated over the training graph by the user encoder
        (user=lightgcn): item vectors then depend on the whole catalogue and the users."""
        return bool(getattr(self.user_encoder, "graph", False))

    @property
    def causal(self) -> bool:
        """Whether the state at position t depends only on events <= t."""
        return bool(self.user_encoder.causal)

    @property
    def dim(self) -> int:
        """Width of the learned part of item vectors and user states (the fused item width D)."""
        return self.item_tower.dim

    def propagated(self) -> tuple[Tensor, Tensor]:
        """A graph encoder's final (U, D) user and (N, D) item vectors, computed once per training
        step (the weights change with every optimiser step) and once per evaluation.

        The cache is keyed by every parameter's version counter (bumped by in-place updates such as
        the optimiser's), the train/eval mode, the graph tensors and the user encoder's `graph_key`
        (per-epoch resampling), so it is never read after any of them changed.
        """
        encoder = self.user_encoder
        key = (
            self.training,
            torch.is_grad_enabled(),
            tuple(p._version for p in self.parameters()),
            tuple(id(b) for b in encoder.buffers()),
            getattr(encoder, "graph_key", None),
        )
        if self._propagated is not None and self._propagated[0] == key:
            return self._propagated[1]
        result = encoder.propagate(self.item_tower())
        self._propagated = (key, result)
        return result

    def encode_items(self, idx: Tensor | None = None) -> Tensor:
        """Item vectors: idx (n,) -> (n, D [+ F]); None -> (N, D [+ F])."""
        if self.graph:
            vectors = self.propagated()[1]  # (N, D)
            return vectors if idx is None else take_rows(vectors, idx)
        vectors = self.item_tower(idx)
        if self.content_match is None:
            return vectors
        return torch.cat(
            [vectors, self.content_match.item_features(self.item_tower, idx).to(vectors.dtype)], dim=1
        )

    def sequence_states(
        self, batch: RecBatch, item_vectors: Tensor | None = None, cloze: Tensor | None = None
    ) -> Tensor:
        """Per-position user states (B, T, D [+ F]).

        Args:
            batch: left-padded histories.
            item_vectors: (N, D) precomputed catalogue vectors (evaluation); when None only the
                distinct history items are encoded, which equals indexing `encode_items()` but
                avoids encoding the whole catalogue for every training batch.
            cloze: (B, T) bool positions whose item a cloze-trained encoder hides (training only;
                see `vrs.user.BidirectionalUserEncoder`).
        """
        if self.graph:
            # The graph propagates from the layer-0 item vectors; the history's are not read.
            return self.user_encoder.user_states(batch.users, batch.mask, self.propagated()[0])
        if item_vectors is None:
            h = encode_unique(self.encode_items, batch.items)  # (B, T, D)
        else:
            h = take_rows(item_vectors, batch.items)  # (B, T, D)
        # Encoders with a vector per user (user=mf) also take the batch's user indices.
        extra = {"users": batch.users} if getattr(self.user_encoder, "uses_users", False) else {}
        if cloze is not None:
            extra["cloze"] = cloze
        if self.content_match is None:
            return self.user_encoder(h, batch.mask, batch.events, **extra)
        d = self.dim  # the learned part feeds the user encoder; the content part, the profile
        states = self.user_encoder(h[..., :d], batch.mask, batch.events, **extra)
        return torch.cat(
            [states, self.content_match.user_features(h[..., d:], batch.mask, batch.times)], dim=-1
        )

    def encode_users(self, batch: RecBatch, item_vectors: Tensor | None = None) -> Tensor:
        """User vectors (B, D): the state at the most recent event (position T-1; left padding)."""
        return self.sequence_states(batch, item_vectors)[:, -1]

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B, D), items (N, D) -> (B, N)."""
        return users @ items.T  # (B, N)
