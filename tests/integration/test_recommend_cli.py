"""vrs-recommend, vrs-similar and vrs-search on a checkpoint trained for one epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import compose_config, run_module
from vrs.cli.recommend import recommend
from vrs.cli.search import search
from vrs.cli.similar import similar
from vrs.cli.train import train
from vrs.data.schema import load_dataset

ROOT = Path(__file__).resolve().parents[2]
COLOURS = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    run = tmp_path_factory.mktemp("train")
    # The default model trains with modality dropout, so it can also embed text alone.
    overrides = ["trainer.max_epochs=1", "data.image_size=32", "test=false", "logger=none"]
    train(compose_config("train", overrides, run, small_data))
    return run / "checkpoints" / "last.ckpt"


def _cfg(name: str, checkpoint: Path, tmp_path: Path, data: Path, overrides: list[str]):
    return compose_config(name, [f"ckpt_path={checkpoint}", "data.image_size=32", *overrides], tmp_path, data)


def test_recommend_writes_parquet_and_prints_a_preview(
    checkpoint: Path, small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "recs.parquet"
    cfg = _cfg("recommend", checkpoint, tmp_path, small_data, ["users=all", "k=4", f"out={out}", "preview=3"])
    table = recommend(cfg)
    written = pd.read_parquet(out)
    assert len(written) == 300 * 4 and written["user_id"].nunique() == 300
    pd.testing.assert_frame_equal(written.drop(columns=["because_item_ids", "because_weights"]),
                                  table.drop(columns=["because_item_ids", "because_weights"]))  # fmt: skip
    assert [list(b) for b in written["because_item_ids"]] == table["because_item_ids"].tolist()
    printed = capsys.readouterr().out
    assert "because" in printed and "300 users, 1200 rows written to" in printed
    assert not list(tmp_path.glob(".recs.parquet.*"))  # the atomic write left no temp file


def test_recommend_for_new_histories_and_cold_users(
    checkpoint: Path, small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = f"out={tmp_path / 'new.parquet'}"
    cfg = _cfg("recommend", checkpoint, tmp_path, small_data,
               ["users=[u00001,ghost]", "cold_users=popular", "histories={alice:[i00003,i00017]}", "k=3", out])  # fmt: skip
    table = recommend(cfg)
    assert table["user_id"].unique().tolist() == ["u00001", "ghost", "alice"]
    alice = table[table["user_id"] == "alice"]
    assert not {"i00003", "i00017"} & set(alice["item_id"])
    assert all(set(b) <= {"i00003", "i00017"} and b for b in alice["because_item_ids"])
    assert table[table["user_id"] == "ghost"]["score"].isna().all()

    cfg = _cfg(
        "recommend", checkpoint, tmp_path, small_data, ["users=[u00001,ghost]", "cold_users=skip", out]
    )
    assert recommend(cfg)["user_id"].unique().tolist() == ["u00001"]
    assert "skipped 1 unknown user id(s)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="ckpt_path=PATH"):
        recommend(compose_config("recommend", [out], tmp_path, small_data))


def test_similar_prints_neighbours_of_a_cold_item(
    checkpoint: Path, small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    truth = pd.read_parquet(small_data / "truth" / "items.parquet")
    cold = str(truth.loc[truth["is_cold"], "item_id"].iloc[0])
    out = tmp_path / "similar.csv"
    cfg = _cfg(
        "similar", checkpoint, tmp_path, small_data, [f"item_ids=[i00003,{cold}]", "k=5", f"out={out}"]
    )
    table = similar(cfg)
    assert table.groupby("query_item_id").size().to_dict() == {"i00003": 5, cold: 5}
    assert not (table["query_item_id"] == table["item_id"]).any()
    assert pd.read_csv(out)["item_id"].tolist() == table["item_id"].tolist()
    assert "title" in capsys.readouterr().out


def test_search_ranks_items_of_the_queried_colour_first(
    checkpoint: Path, small_data: Path, tmp_path: Path
) -> None:
    cfg = _cfg("search", checkpoint, tmp_path, small_data, [f"query=[{','.join(COLOURS)}]", "k=10"])
    table = search(cfg)
    titles = load_dataset(small_data, check_images=False).items.set_index("item_id")["title"].str.lower()
    hits = [table.loc[table["query"] == c, "item_id"].map(titles).str.contains(c).mean() for c in COLOURS]
    chance = [titles.str.contains(c).mean() for c in COLOURS]
    assert np.mean(hits) > 3 * np.mean(chance), (hits, chance)  # ~0.75 vs ~0.11

    # The README's form: one quoted text with spaces.
    cfg = _cfg("search", checkpoint, tmp_path, small_data, ['query="red striped star"', "k=3"])
    assert search(cfg)["query"].tolist() == ["red striped star"] * 3


def test_bad_input_ends_with_a_message_not_a_traceback(
    checkpoint: Path, small_data: Path, tmp_path: Path
) -> None:
    args = [f"ckpt_path={checkpoint}", "data=canonical", f"data.root={small_data}", "data.image_size=32",
            "users=[u00001,ghost]", "out=recs.parquet"]  # fmt: skip
    result = run_module("vrs.cli.recommend", args, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: 1 unknown user id(s): 'ghost'; cold_users=popular" in result.stderr
    assert not (tmp_path / "recs.parquet").exists() and not (tmp_path / "outputs").exists()


def test_index_build_saves_indexes_that_serving_loads(
    checkpoint: Path, small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from vrs.cli.index import build
    from vrs.retrieval import ann

    ckpt = tmp_path / "run" / "last.ckpt"  # a private copy: the index folder goes beside it
    ckpt.parent.mkdir()
    shutil.copy(checkpoint, ckpt)
    written = build(_cfg("index", ckpt, tmp_path, small_data, ["backend=hnsw"]))
    assert len(written) == 2 and all(p.parent == ckpt.parent / "index" and p.is_file() for p in written)

    built: list[str] = []
    original = ann.build_hnsw
    monkeypatch.setattr(ann, "build_hnsw", lambda *a, **kw: built.append("built") or original(*a, **kw))
    similar_out = tmp_path / "similar.csv"
    similar(
        _cfg("similar", ckpt, tmp_path, small_data, ["item_ids=[i00003]", "index=hnsw", f"out={similar_out}"])
    )
    recs = tmp_path / "recs.parquet"
    recommend(_cfg("recommend", ckpt, tmp_path, small_data, ["users=[u00001]", "index=hnsw", f"out={recs}"]))
    assert built == []  # both came from the saved files
    assert len(pd.read_csv(similar_out)) == 10 and len(pd.read_parquet(recs)) == 10
    other = tmp_path / "other" / "last.ckpt"  # no saved index there: built on the fly
    other.parent.mkdir()
    shutil.copy(checkpoint, other)
    similar(_cfg("similar", other, tmp_path, small_data, ["item_ids=[i00003]", "index=hnsw"]))
    assert built == ["built"]


def test_index_command_needs_build(tmp_path: Path) -> None:
    result = run_module("vrs.cli.index", ["ckpt_path=x"], tmp_path)
    assert result.returncode == 2 and "usage: vrs-index build" in result.stderr
