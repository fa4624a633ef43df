"""End to end: compose -> train -> test -> metrics.json -> reload -> same scores."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException

from tests.conftest import compose_config
from tests.wandb_records import run_view
from vrs.cli.evaluate import evaluate
from vrs.cli.train import TrainingStopped, train
from vrs.lit.module import RecModule

FAST = ["trainer.max_epochs=2", "data.image_size=32", "data.batch_size=64"]
METRIC_KEYS = [
    f"test/{m}_{k}"
    for m in (
        "recall",
        "ndcg",
        "mrr",
        "precision",
        "map",
        "coverage",
        "gini",
        "novelty",
        "arp",
        "ild_category",
    )
    for k in (10, 20)
]


def run_train(tmp_path: Path, data: Path, overrides: list[str]) -> dict[str, float]:
    cfg = compose_config("train", FAST + overrides, tmp_path, data_root=data)
    return train(cfg)


def test_train_writes_run_files_and_reloads(tmp_path: Path, small_data: Path) -> None:
    metrics = run_train(tmp_path, small_data, [])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == pytest.approx(metrics)
    for key in METRIC_KEYS + [k.replace("test/", "test_cold/") for k in METRIC_KEYS] + ["val/ndcg_10"]:
        assert key in written, key
    assert (tmp_path / "config.yaml").is_file()
    # Per-target test results (vrs-compare's paired tests) agree with the aggregate metrics.
    import numpy as np
    import pandas as pd

    users = pd.read_parquet(tmp_path / "test_users.parquet")
    ranks = users["rank"].to_numpy()
    assert len(users) == int(written["test/n_users"]) and users["user"].is_unique
    assert np.mean(ranks < 10) == pytest.approx(written["test/recall_10"])
    assert np.mean(np.where(ranks < 10, 1 / np.log2(ranks + 2.0), 0)) == pytest.approx(
        written["test/ndcg_10"]
    )
    cold = users[users["cold"]]["rank"].to_numpy()
    assert len(cold) == int(written["test_cold/n_users"])
    assert np.mean(cold < 10) == pytest.approx(written["test_cold/recall_10"])
    ckpts = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert any(p.name == "last.ckpt" for p in ckpts) and len(ckpts) >= 2

    # Reload with no Hydra: identical scores on the same batch.
    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), image_size=32, eval_batch_size=32)
    dm.setup()
    batch = next(iter(dm.eval_dataloader("test")))
    scores = []
    for _ in range(2):
        module = RecModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu")
        module.attach_data(dm.content, dm.train_counts)
        module.eval()
        with torch.no_grad():
            items = module.net.encode_items()
            scores.append(module.net.score(module.net.encode_users(batch, items), items))
    assert torch.equal(scores[0], scores[1])
    assert scores[0].shape == (32, dm.n_items)

    # vrs-eval on the last checkpoint writes the same metric keys.
    eval_dir = tmp_path / "eval"
    cfg = compose_config(
        "eval",
        [
            f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
            "data.image_size=32",
            "encoder@diversity_encoder=toy",
        ],
        eval_dir,
        small_data,
    )
    evaluated = evaluate(cfg)
    assert set(METRIC_KEYS) <= set(evaluated)
    for k in (10, 20):  # mean cosine distance between the listed items' image features
        assert 0.0 < evaluated[f"test/ild_visual_{k}"] <= 2.0
        assert 0.0 < evaluated[f"test/ild_category_{k}"] <= 1.0 and 0.0 < evaluated[f"test/gini_{k}"] < 1.0


def test_unknown_baseline_and_missing_checkpoint_errors(tmp_path: Path, small_data: Path) -> None:
    cfg = compose_config("eval", ["ckpt_path=/nonexistent/x.ckpt"], tmp_path, small_data)
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        evaluate(cfg)
    cfg = compose_config("eval", [], tmp_path, small_data)
    with pytest.raises(ValueError, match="ckpt_path"):
        evaluate(cfg)


@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_loggers_write_offline(
    tmp_path: Path, small_data: Path, logger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    metrics = run_train(tmp_path, small_data, [f"logger={logger}", "trainer.max_epochs=1", "seed=3"])
    if logger == "wandb":
        runs = list((tmp_path / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
        # What a W&B user sees: named by the overrides, grouped without the seed, the whole config,
        # the best validation and the test metrics in the summary.
        view = run_view(next(runs[0].glob("*.wandb")), wait_for_summary="best/val/ndcg_10")
        assert "seed=3" in view["name"] and "trainer.max_epochs=1" in view["name"]
        assert "seed=3" not in view["group"] and "trainer.max_epochs=1" in view["group"]
        assert f"data.root={small_data.name}" in view["group"]  # a path is cut to its last part
        assert view["job_type"] == "train" and "train" in view["tags"]
        assert view["config"]["seed"] == 3 and view["config"]["trainer"]["max_epochs"] == 1
        assert {"data", "encoder", "user", "loss"} <= set(view["config"])
        assert view["summary"]["best/val/ndcg_10"] == pytest.approx(metrics["val/ndcg_10"])
        assert view["summary"]["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])
        # Every evaluation logs a table of sample users with pictures.
        tables = {p.parent.name: p for p in runs[0].rglob("*.table.json")}
        assert {"val", "test"} <= set(tables)
        table = json.loads(tables["test"].read_text())
        assert table["columns"][:4] == ["row", "history", "recommended", "target"]
        assert len(table["data"]) == 8
        cards = list(runs[0].rglob("media/images/test/sample_users_*.png"))
        assert len(cards) == 8  # one picture per sample user (history | top-5 | held-out)
    else:
        assert any((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_frozen_pretrained_weights_rebuild_instead_of_filling_checkpoints(
    tmp_path: Path, small_data: Path
) -> None:
    overrides = [
        "encoder=effnet",
        "encoder.image_size=64",
        "encoder.finetune.freeze=true",
        "trainer.max_epochs=1",
    ]
    trained_metrics = run_train(tmp_path, small_data, overrides)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.stat().st_size < 5_000_000  # EfficientNet-Lite0 alone is ~14 MB of fp32 weights

    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), image_size=32, eval_batch_size=16)
    dm.setup()
    batch = next(iter(dm.eval_dataloader("test")))
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)
    module = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    assert set(trained["state_dict"]) < set(module.state_dict())  # encoder weights were left out
    module.attach_data(dm.content)
    module.eval()
    again = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    again.attach_data(dm.content)
    again.eval()
    with torch.no_grad():
        a = module.net.encode_users(batch, module.net.encode_items())
        b = again.net.encode_users(batch, again.net.encode_items())
    assert torch.equal(a, b)

    # The rebuilt model scores exactly like the one that was trained (one epoch: best == last).
    cfg = compose_config(
        "eval", [f"ckpt_path={ckpt}", *overrides[:3], "data.image_size=32"], tmp_path / "eval", small_data
    )
    assert evaluate(cfg)["test/ndcg_10"] == trained_metrics["test/ndcg_10"]


def _sends_sigterm(step):
    """``step`` that first sends this process SIGTERM, as a scheduler's time limit or `kill` does."""

    def sigterm(self, *a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return step(self, *a, **k)

    return sigterm


def test_resume_continues_the_run_and_keeps_its_log(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Best" = the earliest epoch, so the best checkpoint (and last.ckpt, its copy) is not the latest.
    best_first = ["callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min"]
    run_train(tmp_path, small_data, best_first)  # epochs 0-1
    (tmp_path / "metrics.json").unlink()
    log = tmp_path / "csv" / "metrics.csv"
    before = [r for r in log.read_text().splitlines()[1:] if r]
    step = RecModule.training_step
    monkeypatch.setattr(RecModule, "training_step", _sends_sigterm(step))
    # A resumed run stopped again: it says so (not a silent exit 0), tests nothing, keeps the rows.
    with pytest.raises(TrainingStopped, match="resume=last"):
        run_train(tmp_path, small_data, [*best_first, "resume=last", "trainer.max_epochs=3"])
    assert not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "csv" / "metrics.before_resume.csv").read_text().splitlines()[1:] == before
    steps = []
    monkeypatch.setattr(
        RecModule, "training_step", lambda self, *a, **k: steps.append(1) or step(self, *a, **k)
    )

    run_train(tmp_path, small_data, [*best_first, "resume=last", "trainer.max_epochs=3"])
    ckpt = torch.load(tmp_path / "checkpoints" / "resume.ckpt", map_location="cpu", weights_only=False)
    assert steps and len(steps) * 3 == ckpt["global_step"]  # 3 epochs in all, only the third trained now
    assert ckpt["epoch"] == 2 and [p.name for p in (tmp_path / "checkpoints").glob("epoch_*")] == [
        "epoch_000.ckpt"
    ]
    rows = list(csv.DictReader(log.open()))
    assert sorted(int(r["epoch"]) for r in rows if r.get("val/ndcg_10")) == [0, 1, 2]
    assert len(rows) > len(before)  # the rows of epochs 0-1 are still there
    assert not (tmp_path / "csv" / "metrics.before_resume.csv").exists()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_train(tmp_path / "other", small_data, ["resume=last"])


def test_sigterm_while_testing_is_not_a_finished_run(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RecModule, "test_step", _sends_sigterm(RecModule.test_step))
    with pytest.raises(TrainingStopped, match="vrs-eval ckpt_path=.*epoch_"):
        run_train(tmp_path, small_data, ["trainer.max_epochs=1"])
    assert not (tmp_path / "metrics.json").exists()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "resume.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ: {differ[:5]}"


@pytest.mark.parametrize("extra", [[], ["model.sparse_id=true"]], ids=["adamw", "lazy_adamw"])
def test_interrupted_and_resumed_equals_uninterrupted_bitwise(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    # Every source of randomness in play: dropout, modality dropout, sampled negatives, batch order.
    # With more than one thread some CPU kernels sum in a varying order unless deterministic.
    # model.sparse_id: the lazy optimiser's moments travel in the checkpoint too.
    args = ["trainer.max_epochs=3", "loss=sampled_softmax", "loss.n_negatives=16", "test=false", *extra]
    args.append("trainer.deterministic=true")
    run_train(tmp_path / "once", small_data, args)
    run_train(tmp_path / "again", small_data, args)
    _assert_same_weights(_weights(tmp_path / "once"), _weights(tmp_path / "again"))

    step = RecModule.training_step

    def stop_mid_second_epoch(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 2:  # SIGTERM or SIGKILL: the epoch's end is lost
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(RecModule, "training_step", stop_mid_second_epoch)
    with pytest.raises(TrainingStopped):
        run_train(tmp_path / "resumed", small_data, args)
    monkeypatch.setattr(RecModule, "training_step", step)
    run_train(tmp_path / "resumed", small_data, [*args, "resume=last"])
    _assert_same_weights(_weights(tmp_path / "once"), _weights(tmp_path / "resumed"))


def test_every_epoch_draws_a_new_batch_order(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[int, list[list[int]]] = {}
    step = RecModule.training_step

    def record(self, batch, batch_idx):
        seen.setdefault(self.current_epoch, []).append(batch.users.tolist())
        return step(self, batch, batch_idx)

    monkeypatch.setattr(RecModule, "training_step", record)
    run_train(tmp_path, small_data, ["trainer.max_epochs=2", "test=false"])
    assert seen[0] != seen[1]


def test_bpr_mf_trains_and_reloads_with_a_vector_per_user(
    tmp_path: Path, small_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """experiment=bpr_mf: RecModule gets the dataset's user count, the state is the user's vector
    whatever the history, and vrs-eval scores the checkpoint the same. Output that is not a
    terminal (pytest's) gets progress lines."""
    every = "progress_every_s=0.000001"
    with caplog.at_level("INFO", logger="vrs.progress"):
        metrics = run_train(
            tmp_path, small_data, ["experiment=bpr_mf", "data=synthetic", "user.item_bias=true", every]
        )
    progress = [r.getMessage() for r in caplog.records if r.name == "vrs.progress"]
    assert any(m.startswith("train epoch 0: batch 1/") for m in progress)
    assert any(m.startswith("validation: batch 1/") for m in progress)
    assert 0.0 <= metrics["test/ndcg_10"] <= 1.0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    module = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), load_images=False, eval_batch_size=16)
    dm.setup()
    assert module.net.user_encoder.weight.shape == (dm.n_users, module.net.dim - 1)  # + the bias's 1
    module.attach_data(dm.content, dm.train_counts)
    batch = next(iter(dm.eval_dataloader("test")))
    with torch.no_grad():
        states = module.net.encode_users(batch, module.net.encode_items())
    assert torch.equal(states[:, :-1], module.net.user_encoder.weight[batch.users])
    assert (states[:, -1] == 1).all()
    caplog.clear()
    with caplog.at_level("INFO", logger="vrs.progress"):
        evaluated = evaluate(
            compose_config("eval", [f"ckpt_path={ckpt}", every], tmp_path / "eval", small_data)
        )
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])
    assert any(
        r.getMessage().startswith("test: batch 1/") for r in caplog.records if r.name == "vrs.progress"
    )


def test_first_target_trains_bpr_mf_on_every_train_event_and_is_refused_for_sasrec(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.first_target=true (experiment=bpr_mf's): each epoch of user=mf has every (user, item) pair
    of the training split as a target, each user's first event included; a history-reading encoder
    refuses it."""
    counted: dict[int, int] = {}
    step = RecModule.training_step

    def record(self, batch, batch_idx):
        counted[self.current_epoch] = counted.get(self.current_epoch, 0) + int((batch.targets >= 0).sum())
        return step(self, batch, batch_idx)

    monkeypatch.setattr(RecModule, "training_step", record)
    overrides = ["experiment=bpr_mf", "data=synthetic", "trainer.max_epochs=1", "test=false"]
    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), load_images=False)
    dm.setup()
    train_len = dm.data.train_len
    run_train(tmp_path / "inputs", small_data, [*overrides, "data.first_target=false"])
    assert counted == {0: int((train_len - 1)[train_len >= 2].sum())}  # first events are inputs only
    counted.clear()
    run_train(tmp_path / "all", small_data, overrides)  # bpr_mf sets data.first_target=true
    assert counted == {0: int(train_len.sum())}
    with pytest.raises(ValueError, match="data.first_target=true .* not SASRecUserEncoder"):
        run_train(tmp_path / "sasrec", small_data, ["data.first_target=true", "trainer.max_epochs=1"])


def test_train_stride_overlaps_windows_and_is_refused_for_the_cloze_task(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.train_stride: overlapping windows give more samples per epoch but each target still trains
    once; BERT4Rec's cloze task, whose sequences are the windows' targets, refuses them."""
    seen: dict[str, list[int]] = {}
    step = RecModule.training_step

    def record(self, batch, batch_idx):
        counts = seen.setdefault(self.trainer.default_root_dir, [0, 0])
        counts[0] += len(batch.targets)
        counts[1] += int((batch.targets >= 0).sum())
        return step(self, batch, batch_idx)

    monkeypatch.setattr(RecModule, "training_step", record)
    common = [
        "user=gru4rec",
        "data.train_windows=all",
        "data.max_len=6",
        "trainer.max_epochs=1",
        "test=false",
    ]
    run_train(tmp_path / "plain", small_data, common)
    run_train(tmp_path / "overlap", small_data, [*common, "data.train_stride=2"])
    (plain_rows, plain_targets), (rows, targets) = seen.values()
    assert targets == plain_targets and rows > plain_rows  # more windows, each target once
    with pytest.raises(ValueError, match="data.train_stride=2 makes training windows overlap"):
        run_train(tmp_path / "cloze", small_data, [*common[1:], "user=bert4rec", "data.train_stride=2"])
    # Raised by the data module, which Hydra builds (vrs's commands print the cause alone).
    with pytest.raises(
        InstantiationException, match="data.train_stride=2 steps the windows of data.train_windows=all"
    ):
        run_train(tmp_path / "last", small_data, ["data.train_stride=2", "trainer.max_epochs=1"])


def test_aux_category_loss_trains_and_reloads(tmp_path: Path, small_data: Path) -> None:
    """model.aux_category_weight: the dataset's category count reaches the model, the head is kept in
    the checkpoint, and vrs-eval rebuilds it and scores the same."""
    metrics = run_train(tmp_path, small_data, ["model.aux_category_weight=0.5"])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    module = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), load_images=False)
    dm.setup()
    assert dm.n_categories >= 2
    assert module.aux_head is not None and module.aux_head.out_features == dm.n_categories
    logged = (tmp_path / "csv").rglob("metrics.csv")
    assert any("train/aux_category" in p.read_text().splitlines()[0] for p in logged)
    evaluated = evaluate(compose_config("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval", small_data))
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])


def test_lightgcn_trains_and_reloads_with_its_graph(tmp_path: Path, small_data: Path) -> None:
    """experiment=lightgcn: the graph is the training pairs, it travels in the checkpoint, and
    vrs-eval scores the checkpoint the same."""
    metrics = run_train(tmp_path, small_data, ["experiment=lightgcn", "data=synthetic", "user.n_layers=2"])
    assert 0.0 <= metrics["test/ndcg_10"] <= 1.0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    module = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    from vrs.data.datamodule import RecDataModule

    dm = RecDataModule(str(small_data), load_images=False)
    dm.setup()
    users, items = dm.train_pairs
    assert len(users) == int(dm.train_counts.sum())
    edges = set(
        zip(
            module.net.user_encoder.edge_users.tolist(),
            module.net.user_encoder.edge_items.tolist(),
            strict=True,
        )
    )
    assert edges == set(zip(users.tolist(), items.tolist(), strict=True))
    evaluated = evaluate(compose_config("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval", small_data))
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])


@pytest.mark.parametrize("experiment", ["freedom", "freedom_paper"])
def test_freedom_trains_and_reloads_with_both_graphs(
    tmp_path: Path, small_data: Path, experiment: str
) -> None:
    """experiment=freedom / freedom_paper (toy towers, frozen): the item-item graph is built from the
    frozen features, both graphs travel in the checkpoint, and vrs-eval scores it the same."""
    metrics = run_train(tmp_path, small_data, [f"experiment={experiment}", "encoder=toy", "data=synthetic"])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    module = RecModule.load_from_checkpoint(ckpt, map_location="cpu")
    encoder = module.net.user_encoder
    assert encoder.item_src.numel() == 2 * module.hparams.n_items * encoder.knn_k  # image + text graphs
    assert encoder.edge_users.numel() > 0
    evaluated = evaluate(compose_config("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval", small_data))
    assert evaluated["test/ndcg_10"] == pytest.approx(metrics["test/ndcg_10"])
    # It serves: top-4 lists for every user, none of them an item of the user's history.
    from vrs.cli.recommend import recommend
    from vrs.data.schema import load_dataset

    out = tmp_path / "recs.parquet"
    overrides = [f"ckpt_path={ckpt}", "users=all", "k=4", f"out={out}"]
    table = recommend(compose_config("recommend", overrides, tmp_path / "recommend", small_data))
    dataset = load_dataset(small_data)
    seen = dataset.interactions.groupby("user_id")["item_id"].agg(set)
    assert len(table) == 4 * len(seen) and set(table["item_id"]) <= set(dataset.items["item_id"])
    assert not any(item in seen[user] for user, item in zip(table["user_id"], table["item_id"], strict=True))
