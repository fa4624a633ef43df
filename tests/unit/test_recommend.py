"""Serving functions (vrs.serving) against brute-force references, on tiny untrained models."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vrs.data.batch import RecBatch
from vrs.data.datamodule import RecDataModule
from vrs.lit.module import RecModule
from vrs.serving import encode_text_queries, explain, recommend, search, similar, text_search_problem

MAX_LEN = 6  # shorter than most synthetic histories, so truncation matters
TOY = {"_target_": "vrs.encoders.toy.build_toy_towers", "image_dim": 8, "text_dim": 8, "image_size": 32}
USER = {"_target_": "vrs.user.sasrec.SASRecUserEncoder", "_partial_": True, "n_layers": 1, "n_heads": 2}


def _fusion(name: str, **kw) -> dict:
    targets = {
        "concat": "vrs.fusion.concat.ConcatFusion",
        "late": "vrs.fusion.late.LateFusion",
        "single": "vrs.fusion.single_modality.SingleModalityFusion",
    }
    return {"_target_": targets[name], "_partial_": True, **kw}


@pytest.fixture(scope="module")
def dm(small_data: Path) -> RecDataModule:
    dm = RecDataModule(str(small_data), image_size=32)
    dm.setup()
    return dm


def _model(dm: RecDataModule, fusion: dict, encoder: dict | None = TOY, dropout: float = 0.1) -> RecModule:
    torch.manual_seed(0)
    module = RecModule(
        dm.n_items, dm.n_events, MAX_LEN, dim=16, encoder=encoder, fusion=fusion, user=USER,
        modality_dropout=dropout,
    )  # fmt: skip
    module.attach_data(dm.content, dm.train_counts)
    return module.eval()


@pytest.fixture(scope="module")
def model(dm: RecDataModule) -> RecModule:
    return _model(dm, _fusion("concat"))


def _user_vector(module: RecModule, items: np.ndarray, events: np.ndarray) -> torch.Tensor:
    """One user's vector from a batch of one, built by hand (no padding)."""
    items, events = torch.as_tensor(items[-MAX_LEN:])[None], torch.as_tensor(events[-MAX_LEN:])[None]
    batch = RecBatch(
        items=items, events=events, mask=torch.ones_like(items, dtype=torch.bool), targets=items[:, -1]
    )
    with torch.no_grad():
        return module.net.encode_users(batch, module.net.encode_items())[0]  # (D,)


def _brute_force(
    module: RecModule, user: torch.Tensor, seen: np.ndarray | None, k: int
) -> tuple[list, np.ndarray]:
    with torch.no_grad():
        scores = module.net.encode_items() @ user  # (N,)
    if seen is not None:
        scores[torch.as_tensor(seen)] = -math.inf
    top = torch.argsort(scores, descending=True)[:k]
    return top.tolist(), scores[top].numpy()


def test_recommend_equals_brute_force_with_seen_items_excluded(model: RecModule, dm: RecDataModule) -> None:
    data, ids = dm.data, list(dm.data.item_index)
    users = [str(u) for u in data.user_ids[:12]]
    table = recommend(model.net, data, MAX_LEN, users=users, k=5, batch_size=5)  # several batches
    assert list(table.columns) == [
        "user_id",
        "rank",
        "item_id",
        "score",
        "because_item_ids",
        "because_weights",
    ]
    assert table["user_id"].unique().tolist() == users
    for name, rows in table.groupby("user_id", sort=False):
        u = data.user_index[name]
        seq = data.user_seqs[u]
        top, scores = _brute_force(model, _user_vector(model, seq, data.user_events[u]), seq, 5)
        assert rows["item_id"].tolist() == [ids[i] for i in top]
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(rows["score"], scores, rtol=1e-4, atol=1e-4)
        window = {ids[i] for i in seq[-MAX_LEN:]}
        for because, weights in zip(rows["because_item_ids"], rows["because_weights"], strict=True):
            assert 1 <= len(because) <= 3 and set(because) <= window
            assert len(set(because)) == len(because) and weights == sorted(weights, reverse=True)


def test_recommend_shows_progress_for_many_users_only(
    model: RecModule, dm: RecDataModule, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = importlib.import_module("vrs.serving.recommend")  # the module, not the function
    users = [str(u) for u in dm.data.user_ids[:12]]
    quiet = recommend(model.net, dm.data, MAX_LEN, users=users, k=5, batch_size=5)
    assert "recommend" not in capsys.readouterr().err
    monkeypatch.setattr(serving, "_PROGRESS_MIN_USERS", len(users))
    shown = recommend(model.net, dm.data, MAX_LEN, users=users, k=5, batch_size=5)
    err = capsys.readouterr().err
    assert "recommend: 100%" in err and "3/3" in err  # 12 users in batches of 5
    assert quiet.equals(shown)  # the bar changes nothing


def test_exclude_seen_false_ranks_the_whole_catalogue(model: RecModule, dm: RecDataModule) -> None:
    data = dm.data
    u = 3
    table = recommend(model.net, data, MAX_LEN, users=[data.user_ids[u]], k=8, exclude_seen=False)
    top, _ = _brute_force(model, _user_vector(model, data.user_seqs[u], data.user_events[u]), None, 8)
    assert table["item_id"].tolist() == [list(data.item_index)[i] for i in top]


def test_explain_picks_the_most_similar_history_items() -> None:
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [2.0, 0.1]])  # (N=5, D=2)
    history = torch.tensor([[0, 0, 1, 3, 1]])  # (B=1, T=5): pad, then 0, 1, 3, 1 (1 repeats)
    mask = torch.tensor([[False, True, True, True, True]])
    idx, w = explain(items, history, mask, torch.tensor([[4, -1]]), n=3)  # (1, 2, 3)
    assert idx[0, 0].tolist() == [0, 1, 3]  # item 1 once, padding never
    unit = F.normalize(items, dim=-1)
    assert w[0, 0].tolist() == pytest.approx([float(unit[4] @ unit[i]) for i in (0, 1, 3)])
    assert idx[0, 1].tolist() == [-1, -1, -1]  # no recommended item, no explanation


def test_unknown_users_error_popular_or_skip(model: RecModule, dm: RecDataModule) -> None:
    data = dm.data
    users = [data.user_ids[0], "ghost-1", "ghost-2"]
    with pytest.raises(ValueError, match=r"2 unknown user id\(s\): 'ghost-1', 'ghost-2'"):
        recommend(model.net, data, MAX_LEN, users=users, k=4)
    many = [f"ghost-{i}" for i in range(9)]
    with pytest.raises(ValueError, match=r"'ghost-4', \.\.\. \(9 in all\)"):
        recommend(model.net, data, MAX_LEN, users=many, k=4)

    popular = recommend(model.net, data, MAX_LEN, users=users, k=4, cold_users="popular")
    assert popular["user_id"].unique().tolist() == users  # request order kept
    cold = popular[popular["user_id"] == "ghost-2"]
    expected = np.argsort(-data.train_counts, kind="stable")[:4]
    assert cold["item_id"].tolist() == [list(data.item_index)[i] for i in expected]
    assert cold["score"].isna().all() and all(len(b) == 0 for b in cold["because_item_ids"])

    skipped = recommend(model.net, data, MAX_LEN, users=users, k=4, cold_users="skip")
    assert skipped["user_id"].unique().tolist() == [data.user_ids[0]]
    assert skipped.attrs["skipped_users"] == ["ghost-1", "ghost-2"]


def test_new_histories_are_scored_without_retraining(model: RecModule, dm: RecDataModule) -> None:
    data, ids = dm.data, list(dm.data.item_index)
    history = [ids[i] for i in (5, 9, 5, 40, 77, 12, 3, 101)]  # longer than MAX_LEN, with a repeat
    table = recommend(model.net, data, MAX_LEN, users=[], k=5, histories={"alice": history})
    assert set(table["user_id"]) == {"alice"} and len(table) == 5
    positions = np.array([data.item_index[i] for i in history])
    event = int(np.bincount(data.events_flat).argmax())
    top, scores = _brute_force(
        model, _user_vector(model, positions, np.full(len(positions), event)), positions, 5
    )
    assert table["item_id"].tolist() == [ids[i] for i in top]
    np.testing.assert_allclose(table["score"], scores, rtol=1e-4, atol=1e-4)
    assert all(set(b) <= set(history[-MAX_LEN:]) for b in table["because_item_ids"])

    with pytest.raises(ValueError, match=r"1 unknown item id\(s\) in history 'bob': 'nope'"):
        recommend(model.net, data, MAX_LEN, users=[], histories={"bob": [ids[0], "nope"]})
    with pytest.raises(ValueError, match="also requested dataset users"):
        recommend(model.net, data, MAX_LEN, users=[data.user_ids[0]], histories={data.user_ids[0]: [ids[0]]})


def test_similar_matches_brute_force_cosine_and_serves_cold_items(
    model: RecModule, dm: RecDataModule
) -> None:
    ids = list(dm.data.item_index)
    cold = int(np.flatnonzero(dm.data.train_counts == 0)[0])  # never in training: ID absent
    assert not bool(model.net.item_tower.present["id"][cold])
    queries = [ids[0], ids[cold]]
    table = similar(model.net, ids, queries, k=6)
    with torch.no_grad():
        unit = F.normalize(model.net.encode_items(), dim=-1)  # (N, D)
    for q, rows in table.groupby("query_item_id", sort=False):
        i = ids.index(q)
        cos = unit @ unit[i]  # (N,)
        cos[i] = -math.inf
        top = torch.argsort(cos, descending=True)[:6]
        assert rows["item_id"].tolist() == [ids[j] for j in top] and q not in rows["item_id"].tolist()
        np.testing.assert_allclose(rows["score"], cos[top].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"unknown item id\(s\): 'zzz'"):
        similar(model.net, ids, ["zzz"])


def test_similar_refuses_items_an_id_only_model_cannot_embed(dm: RecDataModule) -> None:
    module = _model(dm, _fusion("single", modality="id"), encoder=None)
    ids = list(dm.data.item_index)
    cold = int(np.flatnonzero(dm.data.train_counts == 0)[0])
    assert len(similar(module.net, ids, [ids[int(np.argmax(dm.data.train_counts))]], k=3)) == 3
    with pytest.raises(ValueError, match="shared 'missing' vector"):
        similar(module.net, ids, [ids[cold]])


def test_search_refuses_models_that_cannot_embed_text_alone(dm: RecDataModule) -> None:
    ids = list(dm.data.item_index)
    for module, reason in (
        (_model(dm, _fusion("single", modality="id"), encoder=None), "no text input"),
        (_model(dm, _fusion("single", modality="image")), "no text input"),
        (_model(dm, _fusion("concat"), dropout=0.0), "without modality dropout"),
    ):
        assert reason in text_search_problem(module.net.item_tower)
        with pytest.raises(ValueError, match=reason):
            search(module.net, ids, ["red star"])
    assert text_search_problem(_model(dm, _fusion("late"), dropout=0.0).net.item_tower) is None


def test_search_ranks_by_cosine_with_the_text_only_query(model: RecModule, dm: RecDataModule) -> None:
    ids = list(dm.data.item_index)
    table = search(model.net, ids, ["red star", "blue"], k=7)
    with torch.no_grad():
        q = F.normalize(encode_text_queries(model.net.item_tower, ["red star", "blue"]), dim=-1)  # (2, D)
        cos = q @ F.normalize(model.net.encode_items(), dim=-1).T  # (2, N)
    for row, query in enumerate(["red star", "blue"]):
        rows = table[table["query"] == query]
        top = torch.argsort(cos[row], descending=True)[:7]
        assert rows["item_id"].tolist() == [ids[j] for j in top]
        np.testing.assert_allclose(rows["score"], cos[row, top].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="non-empty query"):
        search(model.net, ids, ["  "])


def test_search_with_an_items_own_text_finds_it(dm: RecDataModule) -> None:
    ids, texts = list(dm.data.item_index), dm.content.texts
    for fusion in (_fusion("single", modality="text"), _fusion("late")):
        module = _model(dm, fusion, dropout=0.0)
        table = search(module.net, ids, [texts[7]], k=3)
        same = {ids[i] for i, t in enumerate(texts) if t == texts[7]}
        assert table["item_id"].iloc[0] in same and table["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_faiss_flat_index_gives_the_exact_lists(model: RecModule, dm: RecDataModule) -> None:
    users = list(dm.data.user_ids[:6])
    exact = recommend(model.net, dm.data, MAX_LEN, users=users, k=5)
    flat = recommend(model.net, dm.data, MAX_LEN, users=users, k=5, index="flat")
    assert flat["item_id"].tolist() == exact["item_id"].tolist()
    with pytest.raises(ValueError, match="index='annoy'"):
        recommend(model.net, dm.data, MAX_LEN, users=users, index="annoy")


def test_a_session_gap_model_serves_dataset_users_with_their_times(dm: RecDataModule) -> None:
    torch.manual_seed(0)
    module = RecModule(
        dm.n_items, dm.n_events, MAX_LEN, dim=16, encoder=TOY, fusion=_fusion("concat"), user=USER,
        finetune={"freeze": True},
        content_match={"modalities": ["image", "text"], "window": 3, "dim": None, "session_gap": 0},
    )  # fmt: skip
    module.attach_data(dm.content, dm.train_counts)
    module.eval()
    data, ids = dm.data, list(dm.data.item_index)
    name = str(data.user_ids[0])
    u = data.user_index[name]
    seq, events = data.user_seqs[u][-MAX_LEN:], data.user_events[u][-MAX_LEN:]
    times = data.times_flat[data.offsets[u] : data.offsets[u + 1]][-MAX_LEN:]
    batch = RecBatch(
        items=torch.as_tensor(seq)[None], events=torch.as_tensor(events)[None],
        mask=torch.ones(1, len(seq), dtype=torch.bool), targets=torch.zeros(1, dtype=torch.long),
        times=torch.as_tensor(times)[None],
    )  # fmt: skip
    with torch.no_grad():
        user = module.net.encode_users(batch, module.net.encode_items())[0]
    top, _ = _brute_force(module, user, data.user_seqs[u], 5)
    table = recommend(module.net, data, MAX_LEN, users=[name], k=5)
    assert table["item_id"].tolist() == [ids[i] for i in top]
    with pytest.raises(ValueError, match="session_gap needs the history's event times"):
        recommend(module.net, data, MAX_LEN, users=[], histories={"new": [ids[0], ids[1]]})
