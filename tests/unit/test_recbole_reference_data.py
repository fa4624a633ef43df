"""benchmarks/recbole_reference.py --data: the RecBole atomic files reproduce vrs's sequences and split.

Runs without RecBole: RecBole's leave-one-out is re-enacted here (its data augmentation for sequential
models, then `_split_index_by_leave_one_out` per user, as in RecBole 1.2.1); the script itself checks
the real RecBole datasets against vrs's split at run time (`split_check`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.scripts import load_script
from vrs.data.schema.files import write_dataset


def _script():
    return load_script("benchmarks/recbole_reference.py", "recbole_reference")


def _dataset(root: Path, short_users: bool) -> Path:
    """Users with ties in time, rows out of time order, a repeated item and items nobody touched;
    with `short_users`, also users of 1, 2 and 3 events."""
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(9)], "title": [f"t{k}" for k in range(9)]})
    rows = [
        # user, item, timestamp (file order matters for ties)
        ("ub", "i3", 20), ("ub", "i1", 10), ("ub", "i4", 10), ("ub", "i0", 30), ("ub", "i1", 40),
        ("ua", "i2", 5), ("ua", "i5", 5), ("ua", "i6", 5), ("ua", "i0", 1),
        ("uc", "i7", 3), ("uc", "i2", 2), ("uc", "i1", 1), ("uc", "i0", 4), ("uc", "i5", 5), ("uc", "i6", 6),
    ]  # fmt: skip
    if short_users:
        rows += [
            ("ud", "i4", 1),
            ("ue", "i2", 7),
            ("ue", "i3", 7),
            ("uf", "i5", 9),
            ("uf", "i1", 8),
            ("uf", "i0", 9),
        ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return write_dataset(root, items, inter, name="tiny", source="test", licence="CC0")


def _read_inter(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str)
    assert list(frame.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    frame.columns = ["user", "item", "ts"]
    return frame.astype({"user": int, "item": int, "ts": float})


def test_atomic_files_hold_vrs_sequences_in_vrs_order(tmp_path: Path) -> None:
    ref = _script()
    data, split, meta = ref.load_vrs(_dataset(tmp_path / "d", short_users=True))
    assert meta["counts"] == {"users": 6, "items": 9, "interactions": 21, "images": 0}
    counts = ref.write_vrs_atomic(data, tmp_path / "rb", "tiny")
    assert counts == {"users": 6, "interactions": 21, "items": 9}
    inter = _read_inter(tmp_path / "rb" / "tiny" / "tiny.inter")
    assert len(inter) == 21
    item_file = (tmp_path / "rb" / "tiny" / "tiny.item").read_text().split("\n")
    assert item_file[0] == "item_id:token" and item_file[1:] == [str(k) for k in range(9)] + [""]
    catalogue = [f"i{k}" for k in range(9)]
    # vrs's order by hand: time, ties by the row order of the file.
    expected = {
        "ua": ["i0", "i2", "i5", "i6"],
        "ub": ["i1", "i4", "i3", "i0", "i1"],
        "uc": ["i1", "i2", "i7", "i0", "i5", "i6"],
        "ud": ["i4"],
        "ue": ["i2", "i3"],
        "uf": ["i1", "i5", "i0"],
    }
    for user_id, items in expected.items():
        u = data.user_index[user_id]
        mine = inter[inter["user"] == u]
        # Timestamps strictly increase within a user, so RecBole's time sort keeps this order.
        assert np.all(np.diff(mine["ts"].to_numpy()) > 0)
        in_time = mine.sort_values("ts", kind="stable")["item"].tolist()
        assert [catalogue[i] for i in in_time] == items
        assert in_time == data.user_seqs[u].tolist()
    # The last two events of every evaluated user are vrs's validation and test targets.
    for part, targets in (("val", data.val_targets), ("test", data.test_targets)):
        frame = getattr(split, part)
        assert sorted(frame["user_id"]) == ["ua", "ub", "uc", "uf"]
        for u, p in targets.tolist():
            mine = inter[inter["user"] == u].sort_values("ts")["item"].tolist()
            assert p == len(mine) - (2 if part == "val" else 1)
            assert mine[p] == data.user_seqs[u][p]
            row = frame[frame["user_id"] == data.user_ids[u]]
            assert catalogue[mine[p]] == row["item_id"].item()
    # --max-users keeps vrs's first users only.
    counts = ref.write_vrs_atomic(data, tmp_path / "rb2", "tiny", max_users=2)
    assert counts["users"] == 2 and counts["interactions"] == 9
    assert set(_read_inter(tmp_path / "rb2" / "tiny" / "tiny.inter")["user"]) == {0, 1}


def _recbole_leave_one_out(inter: pd.DataFrame, sequential: bool, max_len: int):
    """RecBole 1.2.1's split of the atomic file, re-enacted: sort by (user, time); for sequential
    models every event after a user's first becomes (user, item, last max_len items before it); then
    per user the last example goes to test and the one before to validation, keeping at least one in
    training."""
    inter = inter.sort_values(["user", "ts"], kind="stable")
    parts = {"train": [], "valid": [], "test": []}
    for user, frame in inter.groupby("user", sort=True):
        seq = frame["item"].to_numpy()
        if sequential:
            examples = [(int(user), int(seq[p]), seq[max(0, p - max_len) : p]) for p in range(1, len(seq))]
        else:
            examples = [(int(user), int(i), None) for i in seq]
        keys = [(u, i, b"" if h is None else np.asarray(h, dtype=np.int32).tobytes()) for u, i, h in examples]
        held = min(2, len(keys) - 1)
        parts["train"] += keys[: len(keys) - held]
        if held == 2:
            parts["valid"].append(keys[-2])
        if held >= 1:
            parts["test"].append(keys[-1])
    return parts


@pytest.mark.parametrize("sequential", [True, False])
def test_recbole_leave_one_out_of_the_file_is_vrs_split(tmp_path: Path, sequential: bool) -> None:
    ref = _script()
    data, *_ = ref.load_vrs(_dataset(tmp_path / "d", short_users=False))
    ref.write_vrs_atomic(data, tmp_path / "rb", "tiny")
    inter = _read_inter(tmp_path / "rb" / "tiny" / "tiny.inter")
    for max_len in (2, 50):  # histories truncated alike
        got = _recbole_leave_one_out(inter, sequential, max_len)
        check = ref.compare_examples(ref.vrs_examples(data, sequential, max_len), got)
        assert all(c["missing"] == c["extra"] == 0 for c in check.values()), check
        assert check["valid"]["users_vrs"] == check["test"]["users_vrs"] == 3
        assert check["train"]["vrs"] == (15 - 6 - 3 if sequential else 15 - 6)


def test_split_check_reports_the_short_users(tmp_path: Path) -> None:
    """The known gaps: 3 events (sequential) and 2 events (general); 1 event matches either way."""
    ref = _script()
    data, *_ = ref.load_vrs(_dataset(tmp_path / "d", short_users=True))
    ref.write_vrs_atomic(data, tmp_path / "rb", "tiny")
    inter = _read_inter(tmp_path / "rb" / "tiny" / "tiny.inter")
    seq = ref.compare_examples(ref.vrs_examples(data, True, 50), _recbole_leave_one_out(inter, True, 50))
    # uf (3 events): vrs validates on its 2nd event, RecBole trains on it; its test target agrees.
    assert seq["valid"] == {
        "vrs": 4,
        "recbole": 3,
        "missing": 1,
        "extra": 0,
        "users_vrs": 4,
        "users_recbole": 3,
    }
    assert seq["train"]["extra"] == 1 and seq["train"]["missing"] == 0
    assert seq["test"]["missing"] == seq["test"]["extra"] == 0
    gen = ref.compare_examples(ref.vrs_examples(data, False, 50), _recbole_leave_one_out(inter, False, 50))
    # ue (2 events, not evaluated by vrs): RecBole's general split tests on its 2nd event.
    assert gen["test"] == {
        "vrs": 4,
        "recbole": 5,
        "missing": 0,
        "extra": 1,
        "users_vrs": 4,
        "users_recbole": 5,
    }
    assert gen["train"]["missing"] == 1 and gen["valid"]["missing"] == gen["valid"]["extra"] == 0
    # max_users limits vrs's side the same way as the file.
    assert {k[0] for k in ref.vrs_examples(data, True, 50, max_users=2)["train"]} == {0, 1}


def test_earlier_items_are_the_users_events_before_each_target_in_recbole_ids(tmp_path: Path) -> None:
    """The history mask put on RecBole's rankings: per part, the items before vrs's target, mapped
    through RecBole's own token -> id remapping (here shuffled, id 0 is padding)."""
    from types import SimpleNamespace

    ref = _script()
    data, *_ = ref.load_vrs(_dataset(tmp_path / "d", short_users=True))
    user_tokens = ["[PAD]"] + [str(u) for u in (4, 1, 0, 5, 2, 3)]
    item_tokens = ["[PAD]"] + [str(i) for i in (8, 3, 0, 6, 1, 7, 2, 5, 4)]
    dataset = SimpleNamespace(
        uid_field="user_id",
        iid_field="item_id",
        field2id_token={"user_id": np.array(user_tokens), "item_id": np.array(item_tokens)},
    )
    earlier = ref.earlier_items(data, dataset)
    catalogue = [f"i{k}" for k in range(9)]
    to_item = {rid: catalogue[int(t)] for rid, t in enumerate(item_tokens) if rid}
    for part, back in (("valid", 2), ("test", 1)):
        assert len(earlier[part]) == len(user_tokens) and len(earlier[part][0]) == 0
        for rid, token in enumerate(user_tokens[1:], start=1):
            u = int(token)
            seq = [catalogue[i] for i in data.user_seqs[u]]
            got = [to_item[int(i)] for i in earlier[part][rid]]
            # ua, ub, uc, uf are evaluated (3+ events); ud and ue have no targets.
            assert got == (seq[: len(seq) - back] if len(seq) >= 3 else []), (part, data.user_ids[u])
    # ub's test target (i1) repeats its first event: masked, so a miss as in vrs.
    ub = user_tokens.index(str(data.user_index["ub"]))
    assert "i1" in [to_item[int(i)] for i in earlier["test"][ub]]
