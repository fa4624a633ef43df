"""ContentMatch: the content-profile term rides in the dot product, exactly as specified."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.lit.module import RecModule

N, D = 12, 8
TOY = {"_target_": "vrs.encoders.toy.build_toy_towers", "image_dim": 6, "text_dim": 5, "image_size": 16}


def _content() -> ItemContent:
    g = torch.Generator().manual_seed(0)
    has_image = torch.ones(N, dtype=torch.bool)
    has_image[3] = False  # one item without a picture: its image part of c is 0
    return ItemContent(
        images=torch.randint(0, 256, (N, 3, 16, 16), dtype=torch.uint8, generator=g),
        has_image=has_image,
        texts=[f"item {i} {'red' if i % 2 else 'blue'} striped" for i in range(N)],
        has_text=torch.ones(N, dtype=torch.bool),
    )


def _batch() -> RecBatch:
    items = torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])  # (B, T), left padded
    mask = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    return RecBatch(
        items=items, events=mask.long(), mask=mask, targets=torch.where(mask, items.roll(-1, 1), -1)
    )


def _module(window: int = 1, freeze: bool = True, dim: int | None = None) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(
        n_items=N,
        n_events=1,
        max_len=6,
        dim=D,
        encoder=TOY,
        finetune={"freeze": freeze},
        fusion={"_target_": "vrs.fusion.concat.ConcatFusion", "_partial_": True},
        content_match={
            "modalities": ["image", "text"],
            "window": window,
            "weight": 5.0,
            "dim": dim,
            "learn_weight": True,
        },
    )
    module.attach_data(_content(), torch.arange(1, N + 1).float())
    return module.eval()


def _c(module: RecModule) -> torch.Tensor:
    """c by its definition: per modality centred over the items that have it, unit length, / sqrt(2)."""
    catalogue = module.net.item_tower.catalogue
    parts = []
    for m in ("image", "text"):
        x, present = catalogue.inputs[m], catalogue.present[m]
        centred = F.normalize(x - x[present].mean(0), dim=-1)
        parts.append(torch.where(present[:, None], centred, 0.0))
    return torch.cat(parts, dim=1) / math.sqrt(2)


@pytest.mark.parametrize("window", [1, 2])
def test_score_is_the_learned_score_plus_w_times_the_content_profile(window: int) -> None:
    module = _module(window)
    net, batch = module.net, _batch()
    with torch.no_grad():
        items = net.encode_items()  # (N, D + F)
        users = net.encode_users(batch, items)  # (B, D + F)
        learned = net.item_tower()  # (N, D)
        state = net.user_encoder(learned[batch.items], batch.mask, batch.events)[:, -1]  # (B, D)
    c = _c(module)
    assert items.shape == (N, D + c.shape[1]) and torch.allclose(items[:, D:], c)
    recent = c[batch.items[:, -window:]].mean(dim=1)  # (B, F): the last `window` real items
    expected = state @ learned.T + 5.0 * recent @ c.T  # (B, N)
    torch.testing.assert_close(net.score(users, items), expected, atol=1e-5, rtol=1e-5)
    assert c[3, :6].abs().sum() == 0  # no picture: no image part


def test_training_reaches_the_weight_and_only_frozen_modalities_are_allowed() -> None:
    module = _module().train()
    loss = module.training_step(_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss) and module.net.content_match.log_weight.grad is not None
    with pytest.raises(
        ValueError, match=r"'image' must be a frozen modality .* encoder.finetune.freeze=true"
    ):
        _module(freeze=False)


def test_reloads_from_its_hyper_parameters() -> None:
    module = _module(window=2)
    rebuilt = RecModule(**module.hparams)
    rebuilt.load_state_dict(module.state_dict())
    rebuilt.attach_data(_content(), torch.arange(1, N + 1).float())
    rebuilt.eval()
    with torch.no_grad():
        a = module.net.encode_users(_batch(), module.net.encode_items())
        b = rebuilt.net.encode_users(_batch(), rebuilt.net.encode_items())
    torch.testing.assert_close(a, b)


def test_dim_keeps_the_best_low_rank_approximation_of_the_content_dot_products() -> None:
    module = _module(dim=4)
    with torch.no_grad():
        items = module.net.encode_items()
    assert items.shape == (N, D + 4)
    c = _c(module).double()
    values, vectors = torch.linalg.eigh(c @ c.T)  # (N,), (N, N): the Gram matrix's eigen-pairs
    best = vectors[:, -4:] @ torch.diag(values[-4:]) @ vectors[:, -4:].T  # its best rank-4 approximation
    kept = items[:, D:].double()
    torch.testing.assert_close(kept @ kept.T, best, atol=1e-5, rtol=1e-4)


def test_content_profile_baseline_is_the_same_term_without_the_model() -> None:
    from vrs.lit.baselines import BaselineModule

    baseline = BaselineModule(n_items=N, kind="content_profile", encoder=TOY, window=2)
    torch.manual_seed(0)  # the towers' random weights, drawn as _module draws them
    baseline.attach_data(_content(), torch.arange(1, N + 1).float())
    module, batch = _module(window=2), _batch()  # the content term of a model on the same features
    scorer = baseline.scorer()
    with torch.no_grad():
        profile = scorer.score(scorer.encode_users(batch), scorer.encode_items())  # (B, N)
        items = module.net.encode_items()
        term = module.net.encode_users(batch, items)[:, D:] @ items[:, D:].T / 5.0  # w = 5
    c = _c(module)
    torch.testing.assert_close(scorer.encode_items(), c)  # same towers, same seed: same features
    torch.testing.assert_close(profile, c[batch.items[:, -2:]].mean(dim=1) @ c.T)
    torch.testing.assert_close(profile, term, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"no \['audio'\] tower"):
        BaselineModule(n_items=N, kind="content_profile", encoder=TOY, modalities=["audio"]).attach_data(
            _content()
        )


def test_whitening_equalises_the_feature_directions_before_the_cosine() -> None:
    from vrs.models.content_match import content_vectors

    g = torch.Generator().manual_seed(1)
    # 200 items, 6 features: one direction 100x stronger than the rest, 20 items without the modality.
    x = torch.randn(200, 6, generator=g) * torch.tensor([100.0, 1, 1, 1, 1, 1]) + 3.0
    present = torch.ones(200, dtype=torch.bool)
    present[:20] = False
    x[:20] = 1e6  # never read: absent items' rows
    plain = content_vectors({"m": x}, {"m": present}, ["m"])
    tiny = content_vectors({"m": x}, {"m": present}, ["m"], whiten=1e-9)
    # Without whitening the strong direction decides the cosine; fully whitened, the items' centred
    # features have identity covariance before the unit-length step, so no direction dominates.
    assert float(plain[20:, 0].abs().mean()) > 0.95
    assert float(tiny[20:, 0].abs().mean()) < 0.6
    rows = x[20:] - x[20:].mean(0)
    values, vectors = torch.linalg.eigh(rows.double().T @ rows.double() / 180)
    zca = (rows.double() @ (vectors * values.rsqrt()) @ vectors.T).float()
    torch.testing.assert_close(tiny[20:], F.normalize(zca, dim=-1), atol=1e-4, rtol=1e-4)
    assert torch.equal(tiny[:20], torch.zeros(20, 6))
    # More shrinkage, less whitening: a large one is nearly the plain vectors.
    big = content_vectors({"m": x}, {"m": present}, ["m"], whiten=1e6)
    torch.testing.assert_close(big, plain, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="whiten must be >= 0"):
        content_vectors({"m": x}, {"m": present}, ["m"], whiten=-1.0)


def test_the_whitened_term_and_the_whitened_baseline_agree() -> None:
    from vrs.lit.baselines import BaselineModule
    from vrs.models.content_match import content_vectors

    baseline = BaselineModule(n_items=N, kind="content_profile", encoder=TOY, window=1, whiten=0.1)
    torch.manual_seed(0)
    baseline.attach_data(_content(), torch.arange(1, N + 1).float())
    module = _module()
    module.net.content_match.whiten = 0.1
    module.net.content_match._cache = None
    with torch.no_grad():
        items = module.net.encode_items()
    catalogue = module.net.item_tower.catalogue
    want = content_vectors(catalogue.inputs, catalogue.present, ["image", "text"], whiten=0.1)
    torch.testing.assert_close(items[:, D:], want)
    torch.testing.assert_close(baseline.scorer().encode_items(), want)
    assert not torch.allclose(want, _c(module), atol=1e-3)  # whitening changed c


def _recent_mean_by_hand(values, mask, window, times, gap):
    """Per position p: the mean of values at the last `window` real positions <= p whose time is at
    most `gap` before p's."""
    out = torch.zeros_like(values)
    for b in range(values.shape[0]):
        for p in range(values.shape[1]):
            if not mask[b, p]:
                continue
            real = [q for q in range(p + 1) if mask[b, q]][-window:]
            kept = [q for q in real if gap is None or times[b, p] - times[b, q] <= gap]
            out[b, p] = values[b, kept].mean(dim=0)
    return out


@pytest.mark.parametrize("window", [1, 3, 7])
@pytest.mark.parametrize("gap", [None, 0, 2])
def test_recent_mean_keeps_the_last_window_items_within_the_session_gap(window: int, gap: int | None) -> None:
    from vrs.models.content_match import recent_mean

    g = torch.Generator().manual_seed(1)
    values = torch.randn(3, 7, 4, generator=g)
    mask = torch.arange(7) >= torch.tensor([[0], [3], [6]])  # left padded, one history of one item
    times = torch.randint(0, 3, (3, 7), generator=g).cumsum(dim=1) * mask  # non-decreasing, 0 at padding
    got = recent_mean(values, mask, window, times if gap is not None else None, gap)
    torch.testing.assert_close(got, _recent_mean_by_hand(values, mask, window, times, gap))


def test_session_gap_in_the_model_and_the_baseline_needs_times() -> None:
    from vrs.models.baselines import ContentProfileRecommender
    from vrs.models.content_match import recent_mean

    module, batch = _module(window=3), _batch()
    module.net.content_match.session_gap = 0
    batch.times = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 4, 4]])
    c = _c(module)
    with torch.no_grad():
        items = module.net.encode_items()
        term = module.net.encode_users(batch, items)[:, D:] @ items[:, D:].T / 5.0  # w = 5
    # Only the latest timestamp's items: 3 and 4 (user 0), 9 and 10 (user 1).
    expected = torch.stack([c[[3, 4]].mean(0), c[[9, 10]].mean(0)]) @ c.T
    torch.testing.assert_close(term, expected, atol=1e-5, rtol=1e-5)
    scorer = ContentProfileRecommender(c, window=3, session_gap=0)
    torch.testing.assert_close(scorer.score(scorer.encode_users(batch), c), expected, atol=1e-5, rtol=1e-5)
    batch.times = None
    with pytest.raises(ValueError, match="session_gap needs the history's event times"):
        scorer.encode_users(batch)
    with pytest.raises(ValueError, match="session_gap must be >= 0"):
        recent_mean(c[None], torch.ones(1, N, dtype=torch.bool), 2, torch.zeros(1, N), -1)
    with pytest.raises(ValueError, match="session_gap must be >= 0"):
        ContentProfileRecommender(c, session_gap=-1)
