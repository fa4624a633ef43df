"""Next-item training losses with one call signature.

``loss(states, targets, encode_items, log_q=None)``: states (M, D) are user states at the positions
that have a target, targets (M,) item indices, ``encode_items(idx)`` returns (len(idx), D) item vectors
(``None`` = the whole catalogue), log_q (N,) the log sampling probability of every item (training
popularity) for logQ correction. Sampled and in-batch losses request only the items they need.

Items whose log_q is -inf are not candidates: never negatives. Training passes -inf for items absent
from the training split (cold items), so the model is not taught that "unseen at training time" means
"never relevant" — at training time those items did not exist yet.

Each loss derives from `Loss` and declares what it needs from the trainer (`vrs.lit.module.RecModule`
reads these, never the loss's type):

- ``needs_catalogue``: the loss scores every item each step (``encode_items(None)``); the trainer then
  encodes the catalogue once per step and reuses it for the history.
- ``while_encoders_train()``: the loss to train with while encoder weights train (with
  ``finetune.negatives=in_batch``). A loss that needs the whole catalogue returns an affordable
  stand-in (``FullSoftmaxLoss``: in-batch negatives); the others return themselves. A loss that does not
  derive from `Loss` counts as needing no catalogue and standing for itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.cross_entropy import linear_cross_entropy
from vrs.threads import take_rows

EncodeItems = Callable[[Tensor | None], Tensor]

__all__ = ["BPRLoss", "FullSoftmaxLoss", "InBatchLoss", "Loss", "SampledSoftmaxLoss", "linear_cross_entropy"]


def _check_targets(targets: Tensor, n_items: int) -> None:
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= n_items):
        raise ValueError(
            f"targets must be item indices in [0, {n_items}); got range [{int(targets.min())}, {int(targets.max())}]"
        )


def _catalogue_size(n_items: int | None, log_q: Tensor | None, loss: str) -> int:
    if log_q is not None:
        return log_q.shape[0]
    if n_items is None:
        raise ValueError(f"{loss} needs the catalogue size: pass log_q (N,) or construct it with n_items=N")
    return n_items


def _empty_loss(states: Tensor) -> Tensor:
    """Zero that keeps the graph connected when a batch has no targets."""
    return states.sum() * 0.0


def _candidates(log_q: Tensor | None) -> Tensor | None:
    """Indices of the items that may serve as negatives, or None when every item may."""
    if log_q is None:
        return None
    allowed = torch.isfinite(log_q)
    return None if bool(allowed.all()) else allowed.nonzero().squeeze(1)


def _uniform(n: int, size: int, candidates: Tensor | None, device: torch.device) -> Tensor:
    """`size` items drawn uniformly from `candidates` (all n items when None)."""
    if candidates is None:
        return torch.randint(0, n, (size,), device=device)
    return candidates.to(device)[torch.randint(0, candidates.numel(), (size,), device=device)]


# Per-target negatives: the (M, S, D) gather of negative vectors costs ~200x a matmul's multiply-add
# per element on CPU (measured: M 1,100, S 256, D 256, 12k distinct items: 3.4 s vs 0.8 s per step), so
# all distinct items are scored by matmul while they number at most 64 S; beyond that, the gather,
# unless it exceeds 128 Mi floats.
_MATMUL_ITEMS_PER_NEGATIVE = 64
_PER_TARGET_GATHER = 2**27


def encode_unique(encode_items: EncodeItems, ids: Tensor) -> Tensor:
    """Encode each distinct id once and return vectors in the order of `ids`."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    return take_rows(encode_items(uniq), inverse)


class Loss(nn.Module):
    """Base of the losses: the call signature above and what the loss needs (see the module docstring)."""

    needs_catalogue: ClassVar[bool] = False

    def while_encoders_train(self) -> nn.Module:
        """The loss to train with while encoder weights train; this one unless that is unaffordable."""
        return self


class FullSoftmaxLoss(Loss):
    """Cross-entropy over the whole catalogue (exact, O(M * N * D)).

    Args:
        temperature: logits are ``states @ items.T / temperature``.
    """

    needs_catalogue = True

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def while_encoders_train(self) -> nn.Module:
        """In-batch negatives (gathered across ranks): the catalogue cannot be re-encoded every step."""
        return InBatchLoss(temperature=self.temperature)

    def forward(
        self, states: Tensor, targets: Tensor, encode_items: EncodeItems, log_q: Tensor | None = None
    ) -> Tensor:
        if targets.numel() == 0:
            return _empty_loss(states)
        items = encode_items(None)  # (N, D)
        _check_targets(targets, items.shape[0])
        candidates = _candidates(log_q)
        if candidates is not None:
            # Score only the candidates: cheaper than masking an (M, N) matrix.
            candidates = candidates.to(items.device)
            column = torch.full((items.shape[0],), -1, dtype=torch.long, device=items.device)
            column[candidates] = torch.arange(candidates.numel(), device=items.device)
            items, targets = take_rows(items, candidates), column[targets]  # (C, D), (M,)
            if bool((targets < 0).any()):
                raise ValueError("a training target has log_q = -inf: every target must be a candidate")
        # Scaling the (M, D) states is cheaper than dividing the (M, N) logits.
        return linear_cross_entropy(states / self.temperature, items, targets)


class SampledSoftmaxLoss(Loss):
    """Softmax over the target and ``n_negatives`` negatives, shared by the whole batch
    (``negatives="shared"``) or drawn afresh for each target (``"per_target"``, as RecTools' SASRec:
    every position of every history sees its own negatives).

    Negatives are drawn with replacement, uniformly or by popularity (q = softmax(log_q)). With
    ``logq_correction`` every logit (positive and negatives) is reduced by ``log(n_negatives * q_i)``,
    the log expected count of item i in the sample (Yi et al., 2019), which makes the sampled softmax
    a consistent estimate of the full one; for the uniform sampler this is a constant and a no-op.
    Negatives equal to a row's target (accidental hits) are masked out.

    Args:
        n_negatives: negatives per batch (shared) or per target (per_target).
        sampler: "uniform" or "popularity" (needs log_q at call time).
        negatives: "shared" or "per_target".
        logq_correction: subtract the sampler's log expected counts.
        temperature: divides the scores before the correction.
        n_items: catalogue size; only needed when log_q is not passed.
    """

    def __init__(
        self,
        n_negatives: int = 256,
        sampler: str = "uniform",
        logq_correction: bool = True,
        temperature: float = 1.0,
        n_items: int | None = None,
        negatives: str = "shared",
    ) -> None:
        super().__init__()
        if sampler not in ("uniform", "popularity"):
            raise ValueError(f"sampler must be 'uniform' or 'popularity', got {sampler!r}")
        if negatives not in ("shared", "per_target"):
            raise ValueError(f"negatives must be 'shared' or 'per_target', got {negatives!r}")
        self.negatives = negatives
        self.n_negatives = n_negatives
        self.sampler = sampler
        self.logq_correction = logq_correction
        self.temperature = temperature
        self.n_items = n_items

    def sample(
        self, n: int, log_q: Tensor | None, device: torch.device, size: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``size`` negatives (default n_negatives); return them and the sampler's log q of
        every item (N,)."""
        size = self.n_negatives if size is None else size
        if self.sampler == "popularity":
            if log_q is None:
                raise ValueError("sampler='popularity' needs log_q")
            log_p = torch.log_softmax(log_q.detach().float().to(device), 0)  # normalise whatever is given
            cdf = torch.cumsum(log_p.exp(), 0)
            u = torch.rand(size, device=device) * cdf[-1]
            negs = torch.searchsorted(cdf, u).clamp_(max=n - 1)  # inverse CDF: no 2**24 category limit
            return negs, log_p
        candidates = _candidates(log_q)
        negs = _uniform(n, size, candidates, device)
        n_cand = n if candidates is None else candidates.numel()
        return negs, torch.full((n,), -math.log(n_cand), device=device)

    def forward(
        self, states: Tensor, targets: Tensor, encode_items: EncodeItems, log_q: Tensor | None = None
    ) -> Tensor:
        if targets.numel() == 0:
            return _empty_loss(states)
        n = _catalogue_size(self.n_items, log_q, "SampledSoftmaxLoss")
        _check_targets(targets, n)
        m = targets.shape[0]
        if self.negatives == "per_target":
            return self._per_target(states, targets, encode_items, log_q, n)
        negs, log_p = self.sample(n, log_q, states.device)
        vecs = encode_unique(encode_items, torch.cat([targets, negs]))  # (M + S, D)
        pos = (states * vecs[:m]).sum(-1, keepdim=True) / self.temperature  # (M, 1)
        neg = states @ vecs[m:].T / self.temperature  # (M, S)
        if self.logq_correction:
            log_count = log_p + math.log(self.n_negatives)  # (N,) log expected count in the sample
            pos = pos - log_count[targets][:, None]
            neg = neg - log_count[negs][None, :]
        neg = neg.masked_fill(negs[None, :] == targets[:, None], -math.inf)  # accidental hits
        logits = torch.cat([pos, neg], 1)  # (M, 1 + S); the target is class 0
        return F.cross_entropy(logits, torch.zeros(m, dtype=torch.long, device=states.device))

    def _per_target(
        self, states: Tensor, targets: Tensor, encode_items: EncodeItems, log_q: Tensor | None, n: int
    ) -> Tensor:
        m, s = targets.shape[0], self.n_negatives
        negs, log_p = self.sample(n, log_q, states.device, size=m * s)
        negs = negs.view(m, s)
        uniq, inverse = torch.unique(torch.cat([targets, negs.flatten()]), return_inverse=True)
        vecs = encode_items(uniq)  # (U, D): each distinct item encoded once
        pos = (states * vecs[inverse[:m]]).sum(-1, keepdim=True) / self.temperature  # (M, 1)
        neg_idx = inverse[m:].view(m, s)
        if vecs.shape[0] <= _MATMUL_ITEMS_PER_NEGATIVE * s or m * s * vecs.shape[1] > _PER_TARGET_GATHER:
            # Score every distinct item with one matmul, then pick each row's negatives: far faster
            # than gathering (M, S, D) vectors unless the distinct items vastly outnumber S.
            neg = (states @ vecs.T).gather(1, neg_idx)
        else:
            neg = torch.einsum("md,msd->ms", states, vecs[neg_idx])  # only the M x S pairs
        neg = neg / self.temperature
        if self.logq_correction:
            log_count = log_p + math.log(s)
            pos = pos - log_count[targets][:, None]
            neg = neg - log_count[negs]
        neg = neg.masked_fill(negs == targets[:, None], -math.inf)  # accidental hits
        logits = torch.cat([pos, neg], 1)
        return F.cross_entropy(logits, torch.zeros(m, dtype=torch.long, device=states.device))


def _gather_rows(x: Tensor, sizes: list[int], rank: int) -> Tensor:
    """Concatenate every rank's rows of `x` in rank order; gradient flows to the local rows."""
    pad = max(sizes) - x.shape[0]
    xp = torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) if pad else x
    if x.requires_grad:
        # Differentiable: each rank's loss also sends gradient to the other ranks' item vectors. It is
        # marked deprecated in favour of functional collectives that do not support autograd on gloo.
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parts = list(all_gather(xp))
    else:
        parts = [torch.empty_like(xp) for _ in sizes]
        dist.all_gather(parts, xp.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


class InBatchLoss(Loss):
    """Softmax over the targets of the (global) batch: each row's negatives are the other targets.

    Under torch.distributed (with ``gather``) the target vectors and ids of all ranks are gathered, the
    local part with gradient. Columns holding the row's own target item, other than its correct
    column, are masked (same-item collisions). With ``logq_correction`` and log_q given, ``log_q`` of
    each column's item is subtracted, since popular items appear as negatives more often (Yi et al.).

    Args:
        temperature: divides the scores.
        logq_correction: subtract log_q[item] from every column (needs log_q at call time).
        gather: use the targets of all ranks as negatives.
    """

    def __init__(self, temperature: float = 1.0, logq_correction: bool = True, gather: bool = True) -> None:
        super().__init__()
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.gather = gather

    def forward(
        self, states: Tensor, targets: Tensor, encode_items: EncodeItems, log_q: Tensor | None = None
    ) -> Tensor:
        if targets.numel() == 0:
            return _empty_loss(states)
        if log_q is not None:
            _check_targets(targets, log_q.shape[0])
        elif targets.numel() and int(targets.min()) < 0:
            raise ValueError(f"targets must be non-negative item indices; got min {int(targets.min())}")
        m = targets.shape[0]
        vecs = encode_unique(encode_items, targets)  # (M, D)
        all_vecs, all_ids, offset = vecs, targets, 0
        if self.gather and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank = dist.get_rank()
            size = torch.tensor([m], device=states.device)
            sizes_t = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
            dist.all_gather(sizes_t, size)
            sizes = [int(s) for s in sizes_t]
            all_vecs = _gather_rows(vecs, sizes, rank)  # (M_total, D)
            all_ids = _gather_rows(targets, sizes, rank)  # (M_total,)
            offset = sum(sizes[:rank])
        logits = states @ all_vecs.T / self.temperature  # (M, M_total)
        if self.logq_correction and log_q is not None:
            logits = logits - log_q.to(logits.dtype)[all_ids][None, :]
        labels = torch.arange(m, device=states.device) + offset
        collide = all_ids[None, :] == targets[:, None]  # (M, M_total)
        collide[torch.arange(m, device=states.device), labels] = False
        logits = logits.masked_fill(collide, -math.inf)
        return F.cross_entropy(logits, labels)


class BPRLoss(Loss):
    """Bayesian personalised ranking: ``-log sigmoid(s_pos - s_neg)`` with one uniform negative per
    target (never the target itself).

    Args:
        n_items: catalogue size; only needed when log_q is not passed.
        l2: weight of an L2 penalty on the vectors each pair scores, ``l2 / 2 x (|u|^2 + |i|^2 + |j|^2)``
            averaged over the pairs as the loss is (Cornac's VBPR and BPR, RecBole's ``reg_weight``).
            Unlike weight decay it counts a row once per pair it takes part in, so frequent users and
            items are held back most and a row no batch touches is left alone.
        skip_positives: negatives are never the user's other training items in the batch (Cornac's
            BPR skips such triples): the trainer passes each target's `positives`; a negative that
            is one is drawn again, and after 32 draws its pair is left out of the mean.
    """

    def __init__(self, n_items: int | None = None, l2: float = 0.0, skip_positives: bool = False) -> None:
        super().__init__()
        if l2 < 0:
            raise ValueError(f"BPRLoss l2 must be >= 0, got {l2}")
        self.n_items = n_items
        self.l2 = float(l2)
        self.skip_positives = bool(skip_positives)

    def forward(
        self,
        states: Tensor,
        targets: Tensor,
        encode_items: EncodeItems,
        log_q: Tensor | None = None,
        positives: Tensor | None = None,
    ) -> Tensor:
        """positives: (M, P) the items each target's user holds (-1 padded), read when skip_positives."""
        if targets.numel() == 0:
            return _empty_loss(states)
        n = _catalogue_size(self.n_items, log_q, "BPRLoss")
        if n < 2:
            raise ValueError("BPRLoss needs at least 2 items")
        _check_targets(targets, n)
        m = targets.shape[0]
        candidates = _candidates(log_q)
        if candidates is None:
            negs = torch.randint(0, n, (m,), device=targets.device)
            # Redraw hits among the other N - 1 items: the result is uniform over items != target.
            shift = torch.randint(1, n, (m,), device=targets.device)
            negs = torch.where(negs == targets, (targets + shift) % n, negs)
        else:
            negs = _uniform(n, m, candidates, targets.device)
            for _ in range(8):  # rejection: hits are rare unless the candidate set is tiny
                hit = negs == targets
                if not bool(hit.any()):
                    break
                negs[hit] = _uniform(n, int(hit.sum()), candidates, targets.device)
        weight = None
        if self.skip_positives and positives is not None:
            if positives.shape[0] != m:
                raise ValueError(
                    f"BPRLoss positives must have one row per target ({m}), got {tuple(positives.shape)}"
                )

            def collides() -> Tensor:
                return (negs[:, None] == positives).any(1) | (negs == targets)

            hit = collides()
            for _ in range(32):
                if not bool(hit.any()):
                    break
                negs[hit] = _uniform(n, int(hit.sum()), candidates, targets.device)
                hit = collides()
            weight = (~hit).float()
        vecs = encode_unique(encode_items, torch.cat([targets, negs]))  # (2M, D)
        diff = (states * (vecs[:m] - vecs[m:])).sum(-1)  # (M,) s_pos - s_neg
        terms = -F.logsigmoid(diff)
        if self.l2:
            squares = states.pow(2).sum(-1) + vecs[:m].pow(2).sum(-1) + vecs[m:].pow(2).sum(-1)
            terms = terms + self.l2 / 2 * squares
        if weight is None:
            return terms.mean()
        return (terms * weight).sum() / weight.sum().clamp(min=1.0)
