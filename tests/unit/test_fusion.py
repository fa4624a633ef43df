"""Fusion modules: shapes, absent modalities, gradients, late-fusion score decomposition."""

from __future__ import annotations

import functools

import pytest
import torch

from vrs.fusion import (
    ConcatFusion,
    CrossAttentionFusion,
    GatedFusion,
    LateFusion,
    SingleModalityFusion,
    SumFusion,
)

IN_DIMS = {"text": 6, "category": 7, "id": 12, "image": 5}  # any names, in any order
OUT = 12
N = 16

VARIANTS = {
    "concat": functools.partial(ConcatFusion, hidden=10, dropout=0.1),
    "sum": SumFusion,
    "gated": functools.partial(GatedFusion, dropout=0.1),
    "cross_attention": functools.partial(CrossAttentionFusion, n_heads=2, n_layers=2, dropout=0.1),
    "late": LateFusion,
    "image_only": functools.partial(SingleModalityFusion, modality="image"),
    "text_only": functools.partial(SingleModalityFusion, modality="text"),
    "id_only": functools.partial(SingleModalityFusion, modality="id"),
}


def _inputs(in_dims: dict[str, int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(N, d, generator=g, requires_grad=True) for m, d in in_dims.items()}
    present = {m: torch.rand(N, generator=g) < 0.5 for m in in_dims}
    for m in in_dims:  # rows 0-1 have nothing, row 2 has everything
        present[m][:2] = False
        present[m][2] = True
    return feats, present


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fusion_shapes_finite_and_gradients(name):
    torch.manual_seed(0)
    fusion = VARIANTS[name](in_dims=IN_DIMS, out_dim=OUT)
    feats, present = _inputs(IN_DIMS)
    feats["image"].data[~present["image"]] = float("nan")  # garbage in absent slots must not leak
    for train in (True, False):
        fusion.train(train)
        out = fusion(feats, present)
        assert out.shape == (N, OUT)
        assert torch.isfinite(out).all()
    fusion.train()
    fusion(feats, present).square().sum().backward()
    grads = [p.grad for p in fusion.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    used = fusion.modalities
    assert any(feats[m].grad is not None and feats[m].grad.abs().sum() > 0 for m in used)
    for m in used:
        if feats[m].grad is not None:
            assert torch.isfinite(feats[m].grad).all()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_all_absent_rows_get_one_learned_vector(name):
    fusion = VARIANTS[name](in_dims=IN_DIMS, out_dim=OUT).eval()
    feats, present = _inputs(IN_DIMS)
    out = fusion(feats, present)
    # rows 0 and 1 have no modality: same output whatever their features are
    torch.testing.assert_close(out[0], out[1])
    feats2 = {m: f.detach().clone() for m, f in feats.items()}
    for f in feats2.values():
        f[:2] = torch.randn_like(f[:2]) * 10
    torch.testing.assert_close(fusion(feats2, present)[:2], out[:2])


@pytest.mark.parametrize("name", ["sum", "gated", "cross_attention", "late", "concat"])
def test_absent_modality_features_are_ignored(name):
    fusion = VARIANTS[name](in_dims=IN_DIMS, out_dim=OUT).eval()
    feats, present = _inputs(IN_DIMS)
    out = fusion(feats, present)
    changed = {m: f.detach().clone() for m, f in feats.items()}
    for m, f in changed.items():
        f[~present[m]] = torch.randn_like(f[~present[m]])
    torch.testing.assert_close(fusion(changed, present), out)


def test_modalities_keep_the_declared_order():
    for name, cls in VARIANTS.items():
        fusion = cls(in_dims=IN_DIMS, out_dim=OUT)
        if name.endswith("_only"):
            assert fusion.modalities == (name.removesuffix("_only"),)
        else:
            assert fusion.modalities == ("text", "category", "id", "image")
    assert SumFusion(in_dims={"id": 4, "text": 3}, out_dim=4).modalities == ("id", "text")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_new_modality_needs_no_fusion_change(name: str) -> None:
    """A dict entry under any name is fused like the others, and moves the output where present."""
    in_dims = {"image": 5, "brand": 3, "id": 12}
    cls = functools.partial(SingleModalityFusion, modality="brand") if name == "text_only" else VARIANTS[name]
    fusion = cls(in_dims=in_dims, out_dim=OUT).eval()
    feats, present = _inputs(in_dims)
    out = fusion(feats, present)  # (N, D)
    assert out.shape == (N, OUT) and torch.isfinite(out).all()
    if "brand" in fusion.modalities:
        moved = fusion({**feats, "brand": feats["brand"] + 1.0}, present)
        rows = present["brand"]
        assert not torch.allclose(moved[rows], out[rows])
        torch.testing.assert_close(moved[~rows], out[~rows])


def test_single_modality_missing_input_raises():
    with pytest.raises(ValueError, match="image"):
        SingleModalityFusion(in_dims={"text": 4, "id": 8}, out_dim=8, modality="image")
    with pytest.raises(ValueError):
        SingleModalityFusion(in_dims={"text": 4}, out_dim=8, modality="audio")


def test_no_modality_and_bad_sizes_raise():
    with pytest.raises(ValueError):
        SumFusion(in_dims={}, out_dim=4)
    with pytest.raises(ValueError):
        LateFusion(in_dims=IN_DIMS, out_dim=2)  # fewer dims than modalities
    with pytest.raises(ValueError):
        CrossAttentionFusion(in_dims=IN_DIMS, out_dim=9, n_heads=2)


def test_late_fusion_uneven_blocks_cover_the_vector():
    fusion = LateFusion(in_dims=IN_DIMS, out_dim=64)
    widths = [s.stop - s.start for s in fusion.slices.values()]
    assert widths == [16, 16, 16, 16]
    assert fusion.slices["text"].start == 0 and max(s.stop for s in fusion.slices.values()) == 64
    feats, present = _inputs(IN_DIMS)
    assert fusion(feats, present).shape[-1] == 64


def test_late_fusion_score_is_sum_of_block_scores():
    fusion = LateFusion(in_dims=IN_DIMS, out_dim=OUT)
    feats, present = _inputs(IN_DIMS)
    items = fusion(feats, present).detach()  # (N, D)
    users = torch.randn(3, OUT)
    assert set(fusion.slices) == {"image", "text", "category", "id"}
    assert sum(s.stop - s.start for s in fusion.slices.values()) == OUT
    blockwise = sum(users[:, s] @ items[:, s].T for s in fusion.slices.values())
    torch.testing.assert_close(users @ items.T, blockwise)
    # each block depends only on its own modality
    changed = {m: f.detach().clone() for m, f in feats.items()}
    changed["text"] += 1.0
    out2 = fusion(changed, present).detach()
    for m, s in fusion.slices.items():
        same = torch.allclose(out2[:, s], items[:, s])
        assert same == (m != "text" or not present["text"].any())


def test_gated_weights_only_present_modalities():
    fusion = GatedFusion(in_dims={"image": 4, "text": 4}, out_dim=4, dropout=0.0)
    feats = {"image": torch.randn(3, 4), "text": torch.randn(3, 4)}
    present = {"image": torch.tensor([True, False, True]), "text": torch.tensor([False, True, True])}
    out = fusion(feats, present)
    # with a single present modality the gate is 1 on it: the output is that modality's projection
    torch.testing.assert_close(out[0], fusion.proj["image"](feats["image"][0]))
    torch.testing.assert_close(out[1], fusion.proj["text"](feats["text"][1]))


def test_id_only_without_projection_is_the_embedding_itself():
    from vrs.fusion.single_modality import SingleModalityFusion

    fusion = SingleModalityFusion({"id": 8}, 8, "id", project=False)
    x = torch.randn(5, 8)
    present = torch.tensor([True, True, False, True, True])
    out = fusion({"id": x}, {"id": present})
    torch.testing.assert_close(out[present], x[present])
    with pytest.raises(ValueError, match="project=false needs the id input to be 16 wide"):
        SingleModalityFusion({"id": 8}, 16, "id", project=False)
