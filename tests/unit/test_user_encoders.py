"""User encoders: causality, padding invariance, no NaN, running mean."""

from __future__ import annotations

import pytest
import torch

from vrs.user import BidirectionalUserEncoder, GRUUserEncoder, MeanUserEncoder, SASRecUserEncoder

B, T, D, E = 3, 7, 8, 3


def _batch(seed: int = 0, t: int = T):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, t, D, generator=g)
    lengths = torch.tensor([t, 3, 0])  # full, partial, fully padded
    mask = torch.arange(t)[None, :] >= (t - lengths)[:, None]  # left padding
    events = torch.randint(1, E + 1, (B, t), generator=g) * mask
    return h, mask, events


def _build(cls, **kw):
    torch.manual_seed(0)
    if cls is MeanUserEncoder:
        return cls(D, 16, E)
    if cls is GRUUserEncoder:
        return cls(D, 16, E, hidden=6, n_layers=2, dropout=0.1, **kw).eval()
    return cls(D, 16, E, n_layers=2, n_heads=2, dropout=0.1, **kw).eval()


ALL = [SASRecUserEncoder, BidirectionalUserEncoder, MeanUserEncoder, GRUUserEncoder]


@pytest.mark.parametrize("cls", ALL)
def test_shapes_no_nan_zero_padding(cls):
    enc = _build(cls)
    h, mask, events = _batch()
    h[~mask] = 1e4  # whatever the padding row holds must not matter
    for train in (True, False):
        enc.train(train)
        out = enc(h, mask, events)
        assert out.shape == (B, T, D)
        assert torch.isfinite(out).all()
        assert (out[~mask] == 0).all()
    enc.train()
    h = h.clone().requires_grad_(True)
    enc(h, mask, events).square().sum().backward()
    assert torch.isfinite(h.grad).all()
    assert (h.grad[~mask] == 0).all()


@pytest.mark.parametrize("cls", [SASRecUserEncoder, MeanUserEncoder, GRUUserEncoder])
def test_causal_encoders_ignore_the_future(cls):
    enc = _build(cls)
    assert enc.causal is True
    h, mask, events = _batch()
    out = enc(h, mask, events)
    for t in range(T - 1):
        h2, ev2 = h.clone(), events.clone()
        h2[:, t + 1 :] = torch.randn_like(h2[:, t + 1 :])
        ev2[:, t + 1 :] = torch.randint(1, E + 1, ev2[:, t + 1 :].shape) * mask[:, t + 1 :]
        out2 = enc(h2, mask, ev2)
        torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1])


@pytest.mark.parametrize("cls", ALL)
def test_more_left_padding_changes_nothing(cls):
    enc = _build(cls)
    h, mask, events = _batch()
    out = enc(h, mask, events)
    pad = 5
    h_p = torch.cat([torch.randn(B, pad, D), h], dim=1)
    mask_p = torch.cat([torch.zeros(B, pad, dtype=torch.bool), mask], dim=1)
    events_p = torch.cat([torch.zeros(B, pad, dtype=torch.long), events], dim=1)
    out_p = enc(h_p, mask_p, events_p)
    torch.testing.assert_close(out_p[:, pad:][mask], out[mask], atol=1e-5, rtol=1e-5)
    assert (out_p[:, :pad] == 0).all()


def test_bidirectional_is_not_causal():
    enc = _build(BidirectionalUserEncoder)
    assert enc.causal is False
    h, mask, events = _batch()
    out = enc(h, mask, events)
    h2 = h.clone()
    h2[0, -1] = torch.randn(D)  # change only the last event of the full-length row
    out2 = enc(h2, mask, events)
    assert not torch.allclose(out2[0, 0], out[0, 0])
    torch.testing.assert_close(out2[1:], out[1:])


def test_event_types_matter_for_transformers():
    enc = _build(SASRecUserEncoder)
    h, mask, events = _batch()
    events2 = torch.where(mask, events % E + 1, 0)
    assert not torch.allclose(enc(h, mask, events), enc(h, mask, events2))


def test_mean_encoder_equals_running_mean():
    enc = _build(MeanUserEncoder)
    h, mask, events = _batch()
    out = enc(h, mask, events)
    expected = torch.zeros(B, T, D)
    for b in range(B):
        seen = []
        for t in range(T):
            if mask[b, t]:
                seen.append(h[b, t])
                expected[b, t] = torch.stack(seen).mean(0)
    torch.testing.assert_close(out, expected)
    assert list(enc.parameters()) == []


RECTOOLS_LIKE = {"positions": "inverse", "block": "sasrec", "ff_mult": 1, "activation": "relu"}


def test_inverse_positions_count_from_the_most_recent_event():
    from vrs.user.sasrec import history_positions

    mask = torch.tensor([[False, False, True, True, True], [True, True, True, True, True]])
    assert history_positions(mask, 16, "inverse")[0, 2:].tolist() == [2, 1, 0]
    assert history_positions(mask, 16, "inverse")[1].tolist() == [4, 3, 2, 1, 0]
    assert history_positions(mask, 3, "inverse")[1].tolist() == [2, 2, 2, 1, 0]  # clamped
    assert history_positions(mask, 16)[0, 2:].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "kw",
    [
        {"positions": "inverse"},
        {"block": "sasrec"},
        RECTOOLS_LIKE,
        {**RECTOOLS_LIKE, "event_embedding": False},
    ],
)
def test_sasrec_variants_are_causal_padding_invariant_and_finite(kw):
    enc = _build(SASRecUserEncoder, **kw)
    h, mask, events = _batch()
    out = enc(h, mask, events)
    assert torch.isfinite(out).all() and (out[~mask] == 0).all()
    for t in range(T - 1):  # the future's items never reach the past
        h2 = h.clone()
        h2[:, t + 1 :] = torch.randn_like(h2[:, t + 1 :])
        torch.testing.assert_close(enc(h2, mask, events)[:, : t + 1], out[:, : t + 1])
    pad = 4
    h_p = torch.cat([torch.randn(B, pad, D), h], dim=1)
    mask_p = torch.cat([torch.zeros(B, pad, dtype=torch.bool), mask], dim=1)
    events_p = torch.cat([torch.zeros(B, pad, dtype=torch.long), events], dim=1)
    torch.testing.assert_close(enc(h_p, mask_p, events_p)[:, pad:][mask], out[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [SASRecUserEncoder, BidirectionalUserEncoder])
def test_each_history_encodes_as_it_would_alone(cls):
    """Packing a batch's real positions (the padded ones skip the projections and MLP) gives every
    history the states it gets in a batch of its own without padding."""
    enc = _build(cls, **RECTOOLS_LIKE)
    h, mask, events = _batch()
    out = enc(h, mask, events)
    for row in range(B):
        real = mask[row]
        if not real.any():
            continue
        alone = enc(h[row : row + 1, real], real[real][None], events[row : row + 1, real])
        torch.testing.assert_close(alone[0], out[row, real], atol=1e-5, rtol=1e-5)


def test_sasrec_block_takes_keys_from_the_unnormalised_input():
    enc = _build(SASRecUserEncoder, block="sasrec")
    block = enc.blocks[0]
    x = torch.randn(1, T, D)
    allowed = torch.ones(1, 1, T, T, dtype=torch.bool)
    q = block.norm1(x)
    w, b = block.qkv.weight, block.qkv.bias
    qq = (q @ w[:D].T + b[:D]).view(1, T, 2, D // 2).transpose(1, 2)
    k, v = (x @ w[D:].T + b[D:]).split(D, dim=-1)
    k, v = (z.view(1, T, 2, D // 2).transpose(1, 2) for z in (k, v))
    att = torch.softmax(qq @ k.transpose(-1, -2) / (D // 2) ** 0.5, dim=-1) @ v
    mid = q + block.out(att.transpose(1, 2).reshape(1, T, D))
    f = block.norm2(mid)
    packed = block(x.view(T, D), torch.arange(T), (1, T), allowed)  # every position real
    torch.testing.assert_close(packed.view(1, T, D), f + block.mlp(f), atol=1e-5, rtol=1e-5)


def test_bad_variant_names_raise():
    with pytest.raises(ValueError, match="positions"):
        SASRecUserEncoder(D, 16, E, positions="backward")
    with pytest.raises(ValueError, match="block"):
        SASRecUserEncoder(D, 16, E, block="postnorm")


@pytest.mark.parametrize("bias", [True, False])
def test_gru_equals_a_step_by_step_recurrence_over_the_real_events(bias):
    enc = _build(GRUUserEncoder, event_embedding=False, bias=bias)
    assert hasattr(enc.gru, "bias_ih_l0") == bias  # RecBole's GRU4Rec: no biases
    h, mask, events = _batch()
    out = enc(h, mask, events)
    cells = [torch.nn.GRUCell(D if i == 0 else 6, 6, bias=bias) for i in range(2)]
    for i, cell in enumerate(cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if bias else 2]:
            getattr(cell, name).data.copy_(getattr(enc.gru, f"{name}_l{i}"))
    for b in range(B):
        state = [torch.zeros(1, 6), torch.zeros(1, 6)]
        for t in mask[b].nonzero().flatten().tolist():  # the real events, oldest first
            x = h[b, t][None]
            for i, cell in enumerate(cells):
                state[i] = x = cell(x, state[i])
            torch.testing.assert_close(out[b, t], enc.out(x)[0], atol=1e-5, rtol=1e-5)


def test_user_embedding_is_the_users_vector_at_every_real_position():
    from vrs.user import UserEmbedding

    torch.manual_seed(0)
    h, mask, events = _batch()
    users = torch.tensor([4, 0, 2])
    for bias in (False, True):
        enc = UserEmbedding(D, 16, E, n_users=5, item_bias=bias)
        out = enc(h, mask, events, users=users)
        for row, u in enumerate(users.tolist()):
            expected = torch.cat([enc.weight[u], torch.ones(1)]) if bias else enc.weight[u]
            assert (out[row, mask[row]] == expected).all() and (out[row, ~mask[row]] == 0).all()
    with pytest.raises(ValueError, match="no user indices"):
        enc(h, mask, events)
    with pytest.raises(ValueError, match="new history"):
        enc(h, mask, events, users=torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match="trained on 5 users"):
        enc(h, mask, events, users=torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match="n_users"):
        UserEmbedding(D, 16, E, n_users=0)


def test_cloze_encoder_hides_items_and_predicts_after_the_history():
    """BERT4Rec: hidden positions carry the mask vector (their items never reach any state), and
    prediction appends the mask after the history, dropping the oldest item of a full one."""
    torch.manual_seed(0)
    enc = BidirectionalUserEncoder(D, 16, E, mask_prob=0.2).eval()
    h, mask, events = _batch()
    hidden = mask & (torch.arange(T)[None, :] % 3 == 0)
    out = enc(h, mask, events, cloze=hidden)
    h2 = torch.where(hidden[..., None], torch.randn_like(h), h)  # other items at the hidden positions
    torch.testing.assert_close(enc(h2, mask, events, cloze=hidden), out)
    appended = torch.cat([h[:, 1:], enc.mask_vector.expand(B, 1, D)], dim=1)
    mask_a = torch.cat([mask[:, 1:], torch.ones(B, 1, dtype=torch.bool)], dim=1)
    events_a = torch.cat([events[:, 1:], events[:, -1:]], dim=1)
    plain = SASRecUserEncoder.forward(enc, appended, mask_a, events_a)
    torch.testing.assert_close(enc(h, mask, events), plain)
    with pytest.raises(ValueError, match="mask_prob=0"):
        _build(BidirectionalUserEncoder)(h, mask, events, cloze=hidden)
    with pytest.raises(ValueError, match="mask_prob"):
        BidirectionalUserEncoder(D, 16, E, mask_prob=1.0)
