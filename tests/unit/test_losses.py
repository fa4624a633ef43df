import math

import pytest
import torch
import torch.nn.functional as F

from vrs import losses
from vrs.losses import BPRLoss, FullSoftmaxLoss, InBatchLoss, SampledSoftmaxLoss, linear_cross_entropy


class Catalogue:
    """encode_items stand-in that records every request."""

    def __init__(self, n: int, d: int, seed: int = 0) -> None:
        self.weight = torch.nn.Parameter(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)))
        self.calls: list[torch.Tensor | None] = []

    def __call__(self, idx: torch.Tensor | None) -> torch.Tensor:
        self.calls.append(None if idx is None else idx.clone())
        return self.weight if idx is None else self.weight[idx]


def test_full_softmax_matches_cross_entropy():
    cat = Catalogue(30, 8)
    states = torch.randn(5, 8)
    targets = torch.tensor([0, 3, 3, 29, 7])
    loss = FullSoftmaxLoss(temperature=0.5)(states, targets, cat)
    ref = F.cross_entropy(states @ cat.weight.T / 0.5, targets)
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize("loss", [FullSoftmaxLoss(), SampledSoftmaxLoss(n_items=10), BPRLoss(n_items=10)])
def test_targets_out_of_range_raise(loss):
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        loss(torch.randn(2, 4), torch.tensor([1, 10]), Catalogue(10, 4))


def test_losses_declare_what_they_need():
    full = FullSoftmaxLoss(temperature=0.5)
    assert full.needs_catalogue
    stand_in = full.while_encoders_train()  # what trains while encoder weights do
    assert isinstance(stand_in, InBatchLoss) and stand_in.temperature == 0.5
    assert not stand_in.needs_catalogue and stand_in.while_encoders_train() is stand_in
    for loss in (SampledSoftmaxLoss(n_items=10), BPRLoss(n_items=10)):
        assert not loss.needs_catalogue and loss.while_encoders_train() is loss
    cat = Catalogue(10, 4)
    FullSoftmaxLoss()(torch.randn(2, 4), torch.tensor([1, 2]), cat)
    assert cat.calls == [None]  # the declaration holds: it asks for the whole catalogue


def test_sampled_softmax_requests_only_needed_items_and_masks_hits():
    torch.manual_seed(0)
    cat = Catalogue(1000, 8)
    targets = torch.tensor([1, 2, 2, 500])
    loss_fn = SampledSoftmaxLoss(n_negatives=64, n_items=1000)
    loss_fn(torch.randn(4, 8), targets, cat)
    (idx,) = cat.calls
    assert idx is not None and len(idx) <= 3 + 64 and len(idx) == len(idx.unique())
    assert set(targets.tolist()) <= set(idx.tolist())
    # a catalogue of 2 items: every negative collides with a target half the time; no inf/NaN
    torch.manual_seed(1)
    small = Catalogue(2, 4)
    loss = SampledSoftmaxLoss(n_negatives=50, n_items=2)(torch.randn(3, 4), torch.tensor([0, 1, 0]), small)
    assert torch.isfinite(loss)


def test_sampled_softmax_never_uses_target_as_negative():
    torch.manual_seed(0)
    n, d = 5, 4
    cat = Catalogue(n, d)
    states = torch.randn(3, d)
    targets = torch.tensor([0, 1, 2])
    fn = SampledSoftmaxLoss(n_negatives=20, n_items=n, logq_correction=False)
    torch.manual_seed(3)
    loss = fn(states, targets, cat)
    torch.manual_seed(3)
    negs, _ = fn.sample(n, None, states.device)
    scores = states @ cat.weight.T
    ref = []
    for i, t in enumerate(targets.tolist()):
        row = torch.cat([scores[i, t : t + 1], scores[i, negs[negs != t]]])
        ref.append(-torch.log_softmax(row, 0)[0])
    torch.testing.assert_close(loss, torch.stack(ref).mean())


@pytest.mark.parametrize("gather", [True, False])
def test_per_target_negatives_match_hand_computation(gather, monkeypatch):
    # Each target row has its own negatives (RecTools' SASRec); both scoring routes agree with it.
    monkeypatch.setattr(losses, "_MATMUL_ITEMS_PER_NEGATIVE", 0 if gather else 10**9)
    n, d, s = 7, 4, 6
    cat = Catalogue(n, d)
    states = torch.randn(3, d)
    targets = torch.tensor([0, 1, 1])
    fn = SampledSoftmaxLoss(n_negatives=s, n_items=n, logq_correction=False, negatives="per_target")
    torch.manual_seed(3)
    loss = fn(states, targets, cat)
    torch.manual_seed(3)
    negs = fn.sample(n, None, states.device, size=3 * s)[0].view(3, s)
    assert not all(torch.equal(negs[0], row) for row in negs[1:])  # rows differ
    scores = states @ cat.weight.T
    ref = []
    for i, t in enumerate(targets.tolist()):
        row = torch.cat([scores[i, t : t + 1], scores[i, negs[i][negs[i] != t]]])
        ref.append(-torch.log_softmax(row, 0)[0])
    torch.testing.assert_close(loss, torch.stack(ref).mean())
    (idx,) = cat.calls  # each distinct item encoded once
    assert len(idx) == len(idx.unique())
    with pytest.raises(ValueError, match="per_target"):
        SampledSoftmaxLoss(negatives="per_row")


@pytest.mark.parametrize(
    "sampled",
    [{"n_negatives": 5000}, {"n_negatives": 2000, "negatives": "per_target"}],
    ids=["shared", "per_target"],
)
def test_sampled_softmax_approximates_full_softmax_gradient(sampled):
    torch.manual_seed(0)
    cat_full, cat_s = Catalogue(50, 8), Catalogue(50, 8)
    states = torch.randn(16, 8)
    targets = torch.randint(0, 50, (16,))
    FullSoftmaxLoss()(states, targets, cat_full).backward()
    SampledSoftmaxLoss(n_items=50, **sampled)(states, targets, cat_s).backward()
    cos = F.cosine_similarity(cat_full.weight.grad.flatten(), cat_s.weight.grad.flatten(), 0)
    assert cos > 0.9


def test_logq_correction_on_hand_example():
    # 3 items, popularity sampler q = (0.5, 0.25, 0.25); one row with target 0.
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    cat = Catalogue(3, 2)
    states = torch.randn(1, 2)
    fn = SampledSoftmaxLoss(n_negatives=4, sampler="popularity", logq_correction=True)
    torch.manual_seed(0)
    loss = fn(states, torch.tensor([0]), cat, log_q=log_q)
    torch.manual_seed(0)
    negs, _ = fn.sample(3, log_q, states.device)
    s = (states @ cat.weight.T)[0]
    corr = torch.log(4 * log_q.exp())  # log expected count of each item among 4 draws
    logits = [s[0] - corr[0]] + [s[j] - corr[j] for j in negs.tolist() if j != 0]
    ref = -torch.log_softmax(torch.stack(logits), 0)[0]
    torch.testing.assert_close(loss, ref)
    # uniform sampler: the correction is a constant shift, i.e. a no-op
    torch.manual_seed(0)
    a = SampledSoftmaxLoss(8, n_items=3, logq_correction=True)(states, torch.tensor([0]), cat)
    torch.manual_seed(0)
    b = SampledSoftmaxLoss(8, n_items=3, logq_correction=False)(states, torch.tensor([0]), cat)
    torch.testing.assert_close(a, b)


def test_in_batch_matches_hand_computation_with_collisions():
    cat = Catalogue(10, 4)
    states = torch.randn(4, 4)
    targets = torch.tensor([3, 5, 3, 7])
    log_q = torch.log_softmax(torch.randn(10), 0)
    loss = InBatchLoss(temperature=0.7)(states, targets, cat, log_q=log_q)
    (idx,) = cat.calls
    assert sorted(idx.tolist()) == [3, 5, 7]  # only the batch's distinct targets are encoded
    ref = []
    for i in range(4):
        logits = []
        for j in range(4):
            if j != i and targets[j] == targets[i]:
                continue  # the same item is not a negative
            logits.append(states[i] @ cat.weight[targets[j]] / 0.7 - log_q[targets[j]])
            if j == i:
                pos = len(logits) - 1
        ref.append(-torch.log_softmax(torch.stack(logits), 0)[pos])
    torch.testing.assert_close(loss, torch.stack(ref).mean())


def test_bpr_finite_and_decreases_with_positive_score():
    torch.manual_seed(0)
    cat = Catalogue(20, 4)
    targets = torch.tensor([0, 1, 2])
    states = cat.weight.detach()[targets].clone()
    torch.manual_seed(1)
    a = BPRLoss(n_items=20)(states, targets, cat)
    (idx,) = cat.calls
    assert len(idx) <= 6
    torch.manual_seed(1)
    b = BPRLoss(n_items=20)(states * 3, targets, cat)  # scales pos - neg up where it is positive
    assert torch.isfinite(a) and torch.isfinite(b)
    # direct check: raising the positive item's score lowers the loss, negatives fixed by the seed
    cat2 = Catalogue(20, 4)
    with torch.no_grad():
        cat2.weight[targets] += 2 * states / states.norm(dim=1, keepdim=True)
    torch.manual_seed(1)
    c = BPRLoss(n_items=20)(states, targets, cat2)
    assert c < a


def test_bpr_l2_adds_the_penalty_on_each_pair_s_vectors():
    cat = Catalogue(20, 4)
    targets = torch.tensor([0, 1, 1, 5])  # item 1 twice: its row counts once per pair
    states = torch.randn(4, 4)
    torch.manual_seed(3)
    plain = BPRLoss(n_items=20)(states, targets, cat)
    torch.manual_seed(3)
    negs = torch.randint(0, 20, (4,))
    shift = torch.randint(1, 20, (4,))
    negs = torch.where(negs == targets, (targets + shift) % 20, negs)
    w = cat.weight.detach()
    squares = states.pow(2).sum(-1) + w[targets].pow(2).sum(-1) + w[negs].pow(2).sum(-1)
    torch.manual_seed(3)
    reg = BPRLoss(n_items=20, l2=0.3)(states, targets, cat)
    assert torch.allclose(reg, plain + 0.15 * squares.mean())
    diff = (states * (w[targets] - w[negs])).sum(-1)
    assert torch.allclose(plain, -torch.nn.functional.logsigmoid(diff).mean())  # same negatives
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        BPRLoss(l2=-1.0)


def test_bpr_negative_never_target():
    torch.manual_seed(0)
    seen = []
    cat = Catalogue(2, 2)
    cat_calls = cat.calls
    for _ in range(20):
        BPRLoss(n_items=2)(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), cat)
        seen.append(cat_calls[-1])
    assert all(set(c.tolist()) == {0, 1} for c in seen)


def test_bpr_skip_positives_draws_no_item_of_the_user_and_drops_pairs_without_one():
    w = torch.randn(6, 3)
    states = torch.randn(3, 3)
    targets = torch.tensor([0, 1, 2])
    # Row 0's user holds items 1-4 (item 5 is its only negative); row 1's every item (its pair is left
    # out); row 2's nothing but its target.
    positives = torch.tensor([[1, 2, 3, 4, -1, -1], [0, 2, 3, 4, 5, 1], [-1] * 6])

    def encode(idx):
        return w if idx is None else w[idx]

    def term(row: int, neg: int) -> torch.Tensor:
        return -torch.nn.functional.logsigmoid((states[row] * (w[targets[row]] - w[neg])).sum())

    loss = BPRLoss(n_items=6, skip_positives=True)
    for seed in range(30):
        torch.manual_seed(seed)
        value = loss(states, targets, encode, positives=positives)
        assert any(torch.isclose(value, (term(0, 5) + term(2, j)) / 2) for j in (0, 1, 3, 4, 5))
    with pytest.raises(ValueError, match="one row per target"):
        loss(states, targets, encode, positives=positives[:2])
    # Without the option the positives are ignored: the negatives are the plain draw's.
    torch.manual_seed(0)
    plain = BPRLoss(n_items=6)(states, targets, encode, positives=positives)
    torch.manual_seed(0)
    assert torch.equal(plain, BPRLoss(n_items=6)(states, targets, encode))


def test_empty_batch_and_missing_n_items():
    cat = Catalogue(5, 3)
    states = torch.randn(0, 3, requires_grad=True)
    for fn in (FullSoftmaxLoss(), SampledSoftmaxLoss(n_items=5), InBatchLoss(), BPRLoss(n_items=5)):
        loss = fn(states, torch.zeros(0, dtype=torch.long), cat)
        assert loss.item() == 0.0
    with pytest.raises(ValueError, match="n_items"):
        SampledSoftmaxLoss()(torch.randn(1, 3), torch.tensor([0]), cat)
    assert not math.isnan(InBatchLoss()(torch.randn(1, 3), torch.tensor([0]), cat).item())


def _recording_encoder(items: torch.Tensor, calls: list[torch.Tensor]):
    def encode(idx: torch.Tensor | None) -> torch.Tensor:
        if idx is None:
            return items
        calls.append(idx.clone())
        return items[idx]

    return encode


def test_items_with_minus_inf_log_q_are_never_candidates():
    g = torch.Generator().manual_seed(3)
    n, d, m = 20, 8, 16
    items, states = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    targets = torch.randint(0, 10, (m,), generator=g)  # only items 0..9 are known
    log_q = torch.full((n,), -math.log(10.0))
    log_q[10:] = -math.inf

    full = FullSoftmaxLoss()(states, targets, _recording_encoder(items, []), log_q)
    expected = F.cross_entropy(states @ items[:10].T, targets)
    assert torch.allclose(full, expected, atol=1e-6)

    for loss in (
        SampledSoftmaxLoss(n_negatives=64),
        SampledSoftmaxLoss(n_negatives=64, sampler="popularity"),
        BPRLoss(),
    ):
        calls: list[torch.Tensor] = []
        value = loss(states, targets, _recording_encoder(items, calls), log_q)
        assert torch.isfinite(value)
        requested = torch.cat(calls)
        assert int(requested.max()) < 10, type(loss).__name__


@pytest.mark.parametrize(
    ("rows", "scale", "tile"),
    [(1, 3.0, None), (7, 3.0, None), (600, 3.0, None), (600, 30.0, None), (600, 3.0, 1000)],
)
def test_linear_cross_entropy_matches_cross_entropy_and_its_gradients(
    rows: int, scale: float, tile: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 600 rows x 3,000 items spans several tiles and both CPU threads; 1 row is a single tile. Scale 30
    # spreads a row's logits over hundreds (softmax terms far below fp32's range, clamped in the loss).
    # tile=1000 logits: fewer rows than _MIN_ROWS fit, as with a very large catalogue: 32-row tiles.
    if tile is not None:
        import vrs.cross_entropy

        monkeypatch.setattr(vrs.cross_entropy, "_CPU_TILE", tile)
    g = torch.Generator().manual_seed(rows)
    states = torch.randn(rows, 16, generator=g, requires_grad=True)
    items = torch.randn(3000, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 3000, (rows,), generator=g)
    targets[0] = 2999
    loss = linear_cross_entropy(states * scale, items, targets)
    loss.backward()
    got = states.grad.clone(), items.grad.clone()
    states.grad = items.grad = None
    ref = F.cross_entropy((states * scale) @ items.T, targets)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(got[0], states.grad)
    torch.testing.assert_close(got[1], items.grad)


def test_linear_cross_entropy_without_grad_and_under_autocast() -> None:
    states, items = torch.randn(40, 8), torch.randn(50, 8)
    targets = torch.arange(40)
    ref = F.cross_entropy(states @ items.T, targets)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(states, items, targets), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = linear_cross_entropy(states.bfloat16(), items.bfloat16(), targets)
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, F.cross_entropy(states.bfloat16().float() @ items.bfloat16().float().T, targets)
    )
