"""A training-free content profile inside the model's dot product (mostly-cold catalogues)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.models.item_tower import ItemTower


def content_vectors(
    inputs: dict[str, Tensor], present: dict[str, Tensor], modalities: Sequence[str], whiten: float = 0.0
) -> Tensor:
    """(N, F) c: per modality the features minus their mean over the items that have them, unit
    length, 0 when absent; side by side, divided by sqrt(M) (c . c' = the mean per-modality cosine).

    whiten > 0: each modality's centred features are first whitened (ZCA) with shrinkage, x @ V
    diag((lambda + whiten * mean(lambda))^-1/2) V^T over its covariance's eigenpairs (items that have
    it), so that a few dominant directions (photo lighting, a shared text template) stop deciding
    the cosine; smaller values whiten more."""
    if whiten < 0:
        raise ValueError(f"whiten must be >= 0 (0: off), got {whiten}")
    parts = []
    for m in modalities:
        x, has = inputs[m].float(), present[m].bool()  # (N, F_m), (N,)
        mean = x[has].mean(dim=0) if bool(has.any()) else torch.zeros_like(x[0])
        x = x - mean
        if whiten > 0 and int(has.sum()) > 1:
            rows = x[has].double()
            values, vectors = torch.linalg.eigh(rows.T @ rows / len(rows))  # ascending
            values = values.clamp(min=0.0)
            scale = (values + whiten * values.mean()).rsqrt()
            x = (x.double() @ (vectors * scale) @ vectors.T).float()
        parts.append(torch.where(has[:, None], F.normalize(x, dim=-1), 0.0))
    return torch.cat(parts, dim=1) / math.sqrt(len(parts))


def check_session_gap(session_gap: int | None, setting: str = "session_gap") -> int | None:
    """`session_gap` as an int (None: off); a negative gap is refused, naming `setting`."""
    if session_gap is not None and session_gap < 0:
        raise ValueError(f"{setting} must be >= 0 time units (or null: off), got {session_gap}")
    return None if session_gap is None else int(session_gap)


def recent_mean(
    values: Tensor, mask: Tensor, window: int, times: Tensor | None = None, session_gap: int | None = None
) -> Tensor:
    """values (B, T, F) + mask (B, T) -> (B, T, F): the mean over the last `window` real positions up
    to each position (0 at padding).

    With `session_gap`, only those of them at most `session_gap` time units older than the position
    itself count (times (B, T); 0: the same timestamp, e.g. one day's basket when times are days):
    an item bought long before the latest one says little about the next."""
    mask = mask.bool()
    if session_gap is not None:
        if times is None:
            raise ValueError(
                "session_gap needs the history's event times, and this batch has none (a history given "
                "without timestamps): set session_gap to null for it"
            )
        gap = check_session_gap(session_gap)
        T = mask.shape[1]

        def back(x: Tensor, k: int) -> Tensor:  # x at position p - k, for each position p (padded)
            return F.pad(x, (0, 0, k, 0) if x.dim() == 3 else (k, 0))[:, :T]

        total = torch.zeros_like(values)
        count = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
        for k in range(min(window, T)):
            keep = back(mask, k) & mask & (times - back(times, k) <= gap)  # (B, T)
            total = total + torch.where(keep[..., None], back(values, k), 0.0)
            count = count + keep.to(values.dtype)
        return torch.where(mask[..., None], total / count.clamp(min=1.0)[..., None], 0.0)
    total = torch.where(mask[..., None], values, 0.0).cumsum(dim=1)  # (B, T, F)
    count = mask.to(values.dtype).cumsum(dim=1)  # (B, T)
    if window < mask.shape[1]:  # minus the running sums `window` positions earlier
        total = total - F.pad(total, (0, 0, window, 0))[:, : mask.shape[1]]
        count = count - F.pad(count, (window, 0))[:, : mask.shape[1]]
    return torch.where(mask[..., None], total / count.clamp(min=1.0)[..., None], 0.0)


class ContentMatch(nn.Module):
    """score(u, i) gains w · c_i · mean(c of u's last `window` items): the content-profile baseline
    (cosine of centred content features to the recent history) as one term of the model.

    c is, per frozen modality, the item's feature minus the catalogue's mean (over items that have
    it), L2-normalised (0 when absent); the modalities side by side, divided by sqrt(M), so c · c' is
    the mean of the per-modality cosines. It is appended to the item vectors (c) and to the user states
    (w times the recent mean), so losses, full ranking and indexes stay one dot product over wider
    vectors. Items seen in training keep their learned part; an item never seen still has its content
    match, which a model trained on warm items alone otherwise loses. With `dim`, c is projected on
    the `dim` leading principal directions of the catalogue's c (the best rank-`dim` approximation
    of all the items' dot products): the scoring cost of the term then no longer grows with F.

    Args:
        modalities: frozen modalities whose cached features form c (e.g. [image, text]).
        window: how many of the most recent history items the user side averages.
        weight: w, or its initial value (a softmax logit scale: cosines lie in [-1, 1]).
        learn_weight: train w (as log w) with the model. Off by default: on H&M validation (one
            seed) a learned w fell from 10 to 8.5 while the learned part grew, and the best
            validation NDCG@10 was 0.0295 against 0.0361 with w fixed at 20 (0.0357 at 40).
        dim: columns of c kept (None: all F; more than F keeps F).
        whiten: whitening of each modality's features before c (`content_vectors`; 0: off). Whitened
            c has no few dominant directions to keep: use it with dim None.
        session_gap: only recent items at most this many time units older than the latest count
            (`recent_mean`; null: the last `window` items whatever their age).
    """

    def __init__(
        self,
        modalities: Sequence[str],
        window: int = 1,
        weight: float = 20.0,
        learn_weight: bool = False,
        dim: int | None = 128,
        whiten: float = 0.0,
        session_gap: int | None = None,
    ) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("content_match.modalities: name at least one frozen modality, e.g. [image]")
        if window < 1 or weight <= 0 or (dim is not None and dim < 1):
            raise ValueError(
                f"content_match: window >= 1, weight > 0 and dim >= 1 (or null) expected, got {window}, {weight}, {dim}"
            )
        if whiten < 0:
            raise ValueError(f"content_match.whiten must be >= 0 (0: off), got {whiten}")
        self.session_gap = check_session_gap(session_gap, "content_match.session_gap")
        self.dim = dim
        self.whiten = float(whiten)
        self.modalities = tuple(modalities)
        self.window = int(window)
        self.log_weight = nn.Parameter(torch.tensor(math.log(weight)), requires_grad=learn_weight)
        self._cache: tuple[object, Tensor] | None = None  # (the catalogue, its (N, F) c)

    def check(self, tower: ItemTower) -> None:
        """The modalities must be frozen towers of `tower` (their features are fixed and cached)."""
        for m in self.modalities:
            if m not in tower.frozen:
                why = "has no such tower" if m not in tower.towers else "trains its encoder"
                raise ValueError(
                    f"content_match.modalities: {m!r} must be a frozen modality of the item tower "
                    f"(frozen: {list(tower.frozen)}); the tower {why}: set encoder.finetune.freeze=true"
                )

    @torch.no_grad()
    def _catalogue_features(self, tower: ItemTower) -> Tensor:
        catalogue = tower.catalogue  # on the module's device
        if self._cache is None or self._cache[0] is not catalogue:
            c = content_vectors(catalogue.inputs, catalogue.present, self.modalities, self.whiten)  # (N, F)
            if self.dim is not None and self.dim < c.shape[1]:
                # Leading eigenvectors of c^T c (F x F, deterministic), strongest first.
                _, vectors = torch.linalg.eigh(c.double().T @ c.double())  # ascending eigenvalues
                c = c @ vectors[:, -self.dim :].flip(1).to(c.dtype)  # (N, dim)
            self._cache = (catalogue, c)
        return self._cache[1]

    def item_features(self, tower: ItemTower, idx: Tensor | None = None) -> Tensor:
        """c of items `idx` (n, F); None: the whole catalogue (N, F)."""
        c = self._catalogue_features(tower)
        return c if idx is None else c[idx.to(c.device)]

    def user_features(self, c_history: Tensor, mask: Tensor, times: Tensor | None = None) -> Tensor:
        """c of the history (B, T, F) + mask (B, T) (+ times (B, T) for `session_gap`) -> (B, T, F): w x
        the mean c of the last `window` real items up to each position (0 at padding)."""
        recent = recent_mean(c_history, mask, self.window, times, self.session_gap)
        return self.log_weight.exp() * recent
