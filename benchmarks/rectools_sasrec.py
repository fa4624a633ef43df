"""RecTools SASRecModel (0.19.0 or 0.13.0) on the S3-Rec Amazon files, eSASRec's settings, vrs's ranking.

The external reference for vrs's SASRec numbers: RecTools' own model and training loop, vrs's data,
split and full-ranking metrics. Long, resumable, one process per run folder.

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE (RecTools must never become a vrs dependency):

    python3.11 -m venv /work/venvs/rectools
    /work/venvs/rectools/bin/pip install "rectools[torch]==0.19.0" torch==2.14.1

or, for RecTools 0.13.0, in a second one (the same script runs under both):

    python3.11 -m venv /work/venvs/rectools013
    /work/venvs/rectools013/bin/pip install "rectools[torch]==0.13.0" torch==2.14.1 pytorch-lightning==2.5.2

torch must be pinned in the same command: 2.14.1 installs from this machine's disk, any other
version downloads gigabytes. Both resolve to numpy 1.26.4, pandas 2.3.3, pytorch-lightning 2.5.2 and
torchmetrics 1.9.0 (scipy 1.17.1 and 1.12.0). 0.13.0 alone would take pytorch-lightning 2.6.6, whose
first epoch after a restore shuffles differently (a resumed run then no longer repeats an
uninterrupted one); hence its pin. Why 0.13.0: it is the version the published eSASRec rows were
produced with (transformer_benchmark's requirements.txt), and it trains differently: its
IdEmbeddingsItemNet applies nn.Dropout(dropout_rate) to the item-ID embeddings, removed in 0.16.
0.13.0 has no fit_partial and no trainer restore, and its Lightning module re-initialises the weights
and builds a new Adam on every Trainer.fit; there this script does 0.19's fit_partial and restore
steps itself, weights initialised and optimizer built once (fit_one_epoch, load_model). A run folder
records its RecTools version and is resumed or scored only under that version. vrs itself is not
installed in either environment: this script puts its own checkout first on sys.path and imports
only vrs modules that need numpy/pandas/torch/torchmetrics (the S3-Rec reader, the split, the
sequence tables and the ranking metrics).

Run it (from the repository root; everything is written under --out):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup nice -n 10 /work/venvs/rectools/bin/python \\
        benchmarks/rectools_sasrec.py --dataset Beauty --seed 0 --out RUN_DIR > RUN_DIR.log 2>&1 &
    /work/venvs/rectools/bin/python benchmarks/rectools_sasrec.py --max-users 500 --epochs 2 --out /tmp/x
    /work/venvs/rectools/bin/python benchmarks/rectools_sasrec.py --out RUN_DIR --test-only

(/work/venvs/rectools013/bin/python for RecTools 0.13.0.)

The same command continues a killed run from its last finished epoch (SIGTERM abandons the epoch in
progress and exits 143); a finished run only rescores.

Model (eSASRec, github.com/blondered/transformer_benchmark, configs/paper/loo/s3_vanilla.yaml, the
"SASRec+SS" column of its leave-one-out table): SASRecModel with n_factors 256, n_blocks 1, n_heads 1,
dropout_rate 0.2, session_max_len 50, loss sampled_softmax, n_negatives 256, deterministic; the rest
RecTools defaults (lr 1e-3, Adam betas (0.9, 0.98), batch_size 128, causal attention, learnable
positional embeddings, Xavier-normal init, train_min_user_interactions 2). Trainer as
src/models/transformers/trainer.py get_trainer_200_epochs: up to 200 epochs, validation every epoch,
early stopping with patience 50, best validation epoch restored. The README's hyper-parameter table
lists emb_dim 64 for Beauty; the config that produced the numbers says 256 (--n-factors changes it).

Data and split are vrs's own (vrs.data.adapters.amazon_seq.read_amazon_seq,
vrs.data.splits.leave_one_out): per user, the last event is the test target, the one before it the
validation target, the rest is training. RecTools is fitted on the training prefixes only; that is
the same model eSASRec fits when it hands RecTools train + validation events with
get_val_mask_func_all (which masks each user's last event out of training and builds the item map
from training events). Items that never occur in training (33 of Beauty's 12,101) have no RecTools
embedding and are ranked below every known item (a validation or test target among them is a miss).

Scoring is vrs's (vrs.data.sequences.EvalDataset for histories and seen sets, vrs.retrieval.rank_and_topk
and vrs.metrics.RankingMetrics for ranks and HR/NDCG): every target against the whole catalogue, rank = number of
other candidates scoring >= the target, every item the user had before the target excluded, a target
already in that history a miss. The user vector is RecTools' own (encode_sessions on the last 50
known history items, last position); scores are its dot products with RecTools' item embeddings.
Validation histories are the training prefixes; test histories also hold the validation event.
Model selection (best epoch, patience) uses validation NDCG@10 like vrs (--monitor recall_10 for
eSASRec's choice, Recall@10 = HR@10).

Run folder: log.csv (one row per epoch), state.json (readable copy of the run state, "rectools" its
RecTools version; a folder from before that was recorded is taken as 0.19.0), resume.ckpt
(Lightning checkpoint of the latest epoch, optimizer state and run state included), best.ckpt (the
best validation epoch; load with SASRecModel.load_from_checkpoint), metrics.json (at the end). Each
checkpoint has a <name>.sha256 record beside it: the script loads (unpickles) only checkpoints whose
record it wrote, owned by this user and writable by no one else.
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib.metadata
import inspect
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning
import torch
from pytorch_lightning import Trainer, seed_everything
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel
from rectools.models.nn.transformers.base import TransformerModelBase
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vrs_side import load_own_checkpoint, vrs_io  # noqa: E402  (the checkpoint guard, tested in vrs's suite)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "amazon-seq"
CSV_FIELDS = [
    "epoch",
    "train_seconds",
    "fit_seconds",
    "val_seconds",
    "train_loss",
    "val_ndcg_10",
    "val_hr_10",
    "val_ndcg_20",
    "val_hr_20",
    "best_epoch",
    "wait",
    "session",
    "finished_at",
]
RESUME, BEST = "resume.ckpt", "best.ckpt"
RECTOOLS = importlib.metadata.version("rectools")
# The version of run folders from before the version was recorded: 0.19.0 was the only recipe then.
UNRECORDED_RECTOOLS = "0.19.0"
# RecTools 0.16+ (0.19.0 here) has fit_partial and restores the trainer from a checkpoint; 0.13.0 has
# neither, and fit_one_epoch / load_model do the same steps themselves there.
NATIVE_PARTIAL_FIT = "_fit_partial" in vars(TransformerModelBase) and (
    "model_params_update" in inspect.signature(SASRecModel.load_from_checkpoint).parameters
)
_stop = {"signal": None}


def _on_sigterm(signum, frame) -> None:
    # Lightning chains this handler while it trains (and then abandons the epoch itself).
    _stop["signal"] = signum


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    vrs_io().write_hash_record(dst)


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_data(data_dir: Path, name: str, max_users: int | None):
    """vrs's catalogue, interactions, leave-one-out split and sequence tables."""
    sys.path.insert(0, str(REPO))  # this checkout's vrs, not installed in this environment
    from vrs.data.adapters.amazon_seq import read_amazon_seq
    from vrs.data.sequences import SequenceData
    from vrs.data.splits import describe, leave_one_out

    items, interactions = read_amazon_seq(data_dir, name)
    if max_users is not None:  # the first users of the file, for quick checks
        keep = pd.unique(interactions["user_id"])[:max_users]
        interactions = interactions[interactions["user_id"].isin(keep)].reset_index(drop=True)
        items = items[items["item_id"].isin(interactions["item_id"])].reset_index(drop=True)
    split = leave_one_out(interactions)
    return items, split, SequenceData(items, interactions, split), describe(split)


def rectools_dataset(train: pd.DataFrame):
    """The training events as a RecTools Dataset, laid out like eSASRec's s3_repro.py frame."""
    df = pd.DataFrame(
        {
            Columns.User: train["user_id"].astype(np.int64),
            Columns.Item: train["item_id"].astype(np.int64),
            Columns.Weight: 1,
            Columns.Datetime: train["seq_pos"].astype(np.int64) + 1,  # position in the line
        }
    ).sort_values([Columns.User, Columns.Datetime], kind="stable")
    return Dataset.construct(df.reset_index(drop=True))


def make_model(args) -> SASRecModel:
    return SASRecModel(
        n_factors=args.n_factors,
        n_blocks=1,
        n_heads=1,
        dropout_rate=0.2,
        session_max_len=args.max_len,
        loss="sampled_softmax",
        n_negatives=256,
        lr=1e-3,
        batch_size=128,
        epochs=1,  # fit_partial adds one epoch per call; also the (no-op) epoch count of a restore
        deterministic=True,
        verbose=0,
    )


class EpochClock(Callback):
    """Times the training epoch itself and writes the run state into every checkpoint."""

    def __init__(self) -> None:
        self.seconds = float("nan")
        self.state: dict = {}
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self._t0

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["vrs_run"] = copy.deepcopy(self.state)


def clock_of(model) -> EpochClock:
    return next(c for c in model.fit_trainer.callbacks if isinstance(c, EpochClock))


def save_checkpoint(model, path: Path) -> None:
    # Lightning writes to the temporary name, the rename makes it appear whole.
    tmp = path.with_name(path.name + ".tmp")
    model.fit_trainer.save_checkpoint(str(tmp))
    os.replace(tmp, path)
    vrs_io().write_hash_record(path)


def train_once(lightning_model, initialised: bool) -> None:
    """RecTools 0.13's Lightning module Xavier-initialises the weights in on_train_start and builds a new
    Adam in configure_optimizers on every Trainer.fit; 0.19's does both once (its is_fitted flag and
    cached optimizer). This gives a 0.13 module 0.19's behaviour, so that one fit per epoch goes on
    training the same weights with the same optimizer state."""
    done = {"init": initialised, "optimizer": None}
    xavier_init, build_optimizer = lightning_model.on_train_start, lightning_model.configure_optimizers

    def on_train_start() -> None:
        if not done["init"]:
            xavier_init()
            done["init"] = True

    def configure_optimizers():
        if done["optimizer"] is None:
            done["optimizer"] = build_optimizer()
        return done["optimizer"]

    lightning_model.on_train_start = on_train_start
    lightning_model.configure_optimizers = configure_optimizers


def fit_one_epoch(model, dataset) -> None:
    """One more training epoch: 0.19's fit_partial(dataset, min_epochs=1, max_epochs=1), or under
    RecTools without it (0.13) the same steps as 0.19's TransformerModelBase._fit_partial."""
    if NATIVE_PARTIAL_FIT:
        model.fit_partial(dataset, min_epochs=1, max_epochs=1)
        return
    prep = model.data_preparator
    prep.process_dataset_train(dataset)
    if not model.is_fitted:  # 0.19's _build_model_from_dataset
        item_model = model._construct_item_net(prep.train_dataset)
        model._init_lightning_model(
            torch_model=model._init_torch_model(item_model),
            dataset_schema=prep.train_dataset.get_schema(),
            item_external_ids=prep.train_dataset.item_id_map.external_ids,
            model_config=model.get_config(simple_types=True),
        )
        train_once(model.lightning_model, initialised=False)
        model.fit_trainer = copy.deepcopy(model._trainer)
    train_loader, val_loader = prep.get_dataloader_train(), prep.get_dataloader_val()
    model.lightning_model.train()
    loop = model.fit_trainer.fit_loop
    ready = loop.epoch_progress.current.ready
    loop.max_epochs = loop.min_epochs = ready + 1
    model.fit_trainer.fit(model.lightning_model, train_loader, val_loader)
    model.is_fitted = True


def load_model(path: Path, ckpt: dict):
    """SASRecModel.load_from_checkpoint with the trainer (optimizer, epoch counters) restored, as 0.19
    does; under RecTools without that restore (0.13) the same steps as 0.19's _model_from_checkpoint."""
    # The restore refuses a max_epochs below the checkpoint's epoch; equal, it trains nothing.
    epochs = max(1, int(ckpt["epoch"]))
    if NATIVE_PARTIAL_FIT:
        update = {"epochs": epochs}
        return SASRecModel.load_from_checkpoint(path, map_location="cpu", model_params_update=update)
    ckpt = copy.deepcopy(ckpt)
    ckpt["hyper_parameters"]["model_config"]["epochs"] = epochs
    model = SASRecModel._model_from_checkpoint(ckpt)  # weights only
    train_once(model.lightning_model, initialised=True)
    model.fit_trainer = copy.deepcopy(model._trainer)
    # A fit on a stub data set that only restores the trainer state, as 0.19 does it. Lightning 2.6+
    # (what 0.13.0 resolves to without the 2.5.2 pin) unpickles it weights-only by default, which a
    # RecTools checkpoint fails; load_checkpoint has vetted the file (own_checkpoint).
    stub = DataLoader(TensorDataset(torch.Tensor()))
    unpickle = {"weights_only": False} if "weights_only" in inspect.signature(Trainer.fit).parameters else {}
    model.fit_trainer.fit(model.lightning_model, ckpt_path=str(path), train_dataloaders=stub, **unpickle)
    return model


def load_checkpoint(path: Path):
    """The model of a checkpoint with its trainer (optimizer, epoch counters) restored, and its run state."""
    ckpt = load_own_checkpoint(path)
    run = ckpt.get("vrs_run", {})
    written_by = run.get("rectools", UNRECORDED_RECTOOLS)
    if written_by != RECTOOLS:
        raise SystemExit(
            f"{path} was written by rectools {written_by}, this environment has rectools {RECTOOLS}: "
            "a run continues (and is scored) only under the RecTools version that started it. Use that "
            "version's virtualenv or a fresh --out folder."
        )
    model = load_model(path, ckpt)
    model.fit_trainer.callbacks.append(EpochClock())
    return model, run


def item_tower(sim):
    """The similarity module's item tower; RecTools 0.13 has no towers (identity for dot products)."""
    if hasattr(sim, "item_tower_forward"):
        return sim.item_tower_forward
    assert sim.distance == "dot", sim.distance
    return lambda embs: embs


def session_tower(sim):
    """The similarity module's session tower; RecTools 0.13 has no towers (identity for dot products)."""
    if hasattr(sim, "session_tower_forward"):
        return sim.session_tower_forward
    assert sim.distance == "dot", sim.distance
    return lambda embs: embs


@torch.no_grad()
def score(model, data, targets: np.ndarray, max_len: int, batch_size: int = 2048) -> dict[str, float]:
    """vrs's full-ranking HR/NDCG@{10,20} of `targets` ((user index, seq_pos) rows) under `model`."""
    from vrs.data.sequences import EvalDataset
    from vrs.metrics import RankingMetrics
    from vrs.retrieval import rank_and_topk

    torch_model = model.lightning_model.torch_model.cpu().eval()
    sim = torch_model.similarity_module
    item_embs = torch_model.item_model.get_all_embeddings()  # (1 + known items, D), row 0 = padding
    known = model.data_preparator.item_id_map  # external (int item id) -> RecTools internal id
    ext = np.array([int(i) for i in data._item_lookup], dtype=np.int64)
    # vrs catalogue index -> RecTools internal id (its position in the id map) or -1.
    rt_of = pd.Index(known.external_ids).get_indexer(ext).astype(np.int64)
    is_known = torch.from_numpy(rt_of >= 0)
    # One extra coordinate keeps items RecTools never saw below every known item: user side 1,
    # item side 0 (known) or -1e30 (unknown), so score = RecTools' dot product or -1e30.
    vecs = item_tower(sim)(item_embs).float()
    items = torch.zeros(len(rt_of), vecs.shape[1] + 1)
    items[is_known, :-1] = vecs[torch.from_numpy(rt_of[rt_of >= 0])]
    items[~is_known, -1] = -1e30
    metric = RankingMetrics(len(rt_of), ks=(10, 20))
    dataset = EvalDataset(data, targets, max_len)
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = np.zeros((len(samples), max_len), dtype=np.int64)  # left padded with 0 = RecTools' PAD
        seen_w = max(1, max(len(s["seen"]) for s in samples))
        seen = np.full((len(samples), seen_w), -1, dtype=np.int64)
        for row, s in enumerate(samples):
            # Unknown items leave the session as RecTools' recommend path drops them.
            ids = rt_of[s["items"]]
            ids = ids[ids >= 0][-max_len:]
            x[row, max_len - len(ids) :] = ids
            seen[row, seen_w - len(s["seen"]) :] = s["seen"]
        sess = torch_model.encode_sessions({"x": torch.from_numpy(x)}, item_embs)[:, -1, :]
        users = torch.cat([session_tower(sim)(sess).float(), torch.ones(len(samples), 1)], dim=1)
        target = torch.tensor([s["target"] for s in samples], dtype=torch.long)
        ranking = rank_and_topk(users, items, target, torch.from_numpy(seen), k=0)
        metric.update(ranking.ranks, ranking.target_seen)
    out = metric.compute()
    return {
        "ndcg_10": out["ndcg_10"],
        "hr_10": out["recall_10"],
        "ndcg_20": out["ndcg_20"],
        "hr_20": out["recall_20"],
        "n_users": int(out["n_users"]),
        "seen_target_share": out["seen_target_share"],
    }


def write_log(out: Path, rows: list[dict]) -> None:
    tmp = out / "log.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out / "log.csv")


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def readable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in ("rng", "rows")}


def test_best(args, out: Path, data, state: dict) -> None:
    """Scores validation and test targets with best.ckpt and writes metrics.json."""
    model, best_run = load_checkpoint(out / BEST)
    if best_run.get("epoch") != state["best_epoch"]:
        raise SystemExit(
            f"{out / BEST} holds epoch {best_run.get('epoch')}, state says {state['best_epoch']}"
        )
    t0 = time.perf_counter()
    val = score(model, data, data.val_targets, args.max_len)
    test = score(model, data, data.test_targets, args.max_len)
    rows = state["rows"]
    train_s = [r["train_seconds"] for r in rows]
    metrics = {
        "model": "rectools.models.SASRecModel",
        "rectools": RECTOOLS,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "dataset": args.dataset,
        "seed": state["seed"],
        "config": state["config"],
        "split": state["split"],
        "monitor": state["monitor"],
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "stopped_early": state["stopped_early"],
        "val": val,
        "test": test,
        "val_logged_at_best": next(r for r in rows if r["epoch"] == state["best_epoch"]),
        "wall_seconds": state["wall_seconds"],
        "train_seconds": sum(train_s),
        "seconds_per_epoch": sum(train_s) / max(len(train_s), 1),
        "test_scoring_seconds": time.perf_counter() - t0,
        "commit": state["commits"][-1],
        "commits": state["commits"],
        "run_dir": str(out),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(
        f"test (best epoch {state['best_epoch']}): HR@10 {test['hr_10']:.4f} NDCG@10 {test['ndcg_10']:.4f}"
        f" | val HR@10 {val['hr_10']:.4f} NDCG@10 {val['ndcg_10']:.4f} -> {out / 'metrics.json'}",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="Beauty", help="S3-Rec file name without .txt")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding <dataset>.txt")
    p.add_argument("--out", type=Path, required=True, help="run folder (created; reused to resume)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=200, help="most epochs (eSASRec: 200)")
    p.add_argument("--patience", type=int, default=50, help="validations without gain before stopping")
    p.add_argument("--validate-every", type=int, default=1, help="epochs between validations")
    p.add_argument("--monitor", choices=("ndcg_10", "hr_10"), default="ndcg_10")
    p.add_argument("--n-factors", type=int, default=256)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--max-users", type=int, default=None, help="first N users only (quick checks)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--test-only", action="store_true", help="score best.ckpt and write metrics.json")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*self.log.*")
    # Chatter that says nothing about this run (no item features, no Lightning val loop, pandas).
    warnings.filterwarnings("ignore", message=".*CatFeaturesItemNet.*")
    warnings.filterwarnings("ignore", message=".*Pydantic serializer warnings.*")
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")  # restores
    warnings.filterwarnings("ignore", category=FutureWarning)
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    session_t0 = time.perf_counter()
    items, split, data, split_info = load_data(args.data, args.dataset, args.max_users)
    dataset = rectools_dataset(split.train)
    commit = git_commit()
    print(
        f"{args.dataset}: {split_info}, catalogue {data.n_items}; commit {commit}; rectools {RECTOOLS}"
        f" (torch {torch.__version__}, pytorch-lightning {pytorch_lightning.__version__})",
        flush=True,
    )

    if (out / RESUME).is_file():
        model, state = load_checkpoint(out / RESUME)
        set_rng_state(state["rng"])  # after the load, which draws from the RNG
        state.setdefault("rectools", UNRECORDED_RECTOOLS)  # load_checkpoint refused any other version
        state["session"] += 1
        state["commits"].append(commit)
        if (args.dataset, args.seed) != (state["dataset"], state["seed"]):
            raise SystemExit(f"{out} holds {state['dataset']} seed {state['seed']}")
        # best.ckpt is copied right after resume.ckpt is committed: redo a copy a kill cut off.
        if state["best_epoch"] == state["epoch"] and state["epoch"] > 0:
            best_epoch = None
            if (out / BEST).is_file():
                best = load_own_checkpoint(out / BEST)
                best_epoch = best.get("vrs_run", {}).get("epoch")
            if best_epoch != state["epoch"]:
                atomic_copy(out / RESUME, out / BEST)
        print(f"resumed at epoch {state['epoch']} (session {state['session']})", flush=True)
    else:
        seed_everything(args.seed, workers=False, verbose=False)
        model = make_model(args)
        model._trainer.callbacks.append(EpochClock())  # deep-copied into fit_trainer
        state = {
            "dataset": args.dataset,
            "seed": args.seed,
            "rectools": RECTOOLS,
            "config": {
                "n_factors": args.n_factors,
                "n_blocks": 1,
                "n_heads": 1,
                "dropout_rate": 0.2,
                "session_max_len": args.max_len,
                "loss": "sampled_softmax",
                "n_negatives": 256,
                "lr": 1e-3,
                "batch_size": 128,
                "max_epochs": args.epochs,
                "patience": args.patience,
                "validate_every": args.validate_every,
                "max_users": args.max_users,
            },
            "split": split_info,
            "monitor": args.monitor,
            "epoch": 0,
            "best": float("-inf"),
            "best_epoch": 0,
            "wait": 0,
            "stopped_early": False,
            "finished": False,
            "wall_seconds": 0.0,
            "session": 0,
            "commits": [commit],
            "rows": [],
        }
    write_log(out, state["rows"])

    wall_before = state["wall_seconds"]
    while not args.test_only and not state["finished"]:
        epoch = state["epoch"] + 1
        t0 = time.perf_counter()
        try:
            fit_one_epoch(model, dataset)
        except SIGTERMException:
            print(f"SIGTERM during epoch {epoch}: abandoned, resume restarts it", flush=True)
            sys.exit(143)
        fit_s = time.perf_counter() - t0
        if model.lightning_model.item_external_ids is not None:
            # Resuming refits the data preparator: its item map must be the checkpoint's.
            same = np.array_equal(
                np.asarray(model.data_preparator.item_id_map.external_ids, dtype=object),
                np.asarray(model.lightning_model.item_external_ids, dtype=object),
            )
            assert same, "item id map changed"
        clock = clock_of(model)
        loss = model.fit_trainer.callback_metrics.get("train_loss")
        row = {
            "epoch": epoch,
            "train_seconds": round(clock.seconds, 3),
            "fit_seconds": round(fit_s, 3),
            "train_loss": None if loss is None else round(float(loss), 6),
            "session": state["session"],
        }
        improved = False
        if epoch % args.validate_every == 0 or epoch == args.epochs:
            t1 = time.perf_counter()
            val = score(model, data, data.val_targets, args.max_len)
            row.update(
                val_seconds=round(time.perf_counter() - t1, 3),
                val_ndcg_10=round(val["ndcg_10"], 6),
                val_hr_10=round(val["hr_10"], 6),
                val_ndcg_20=round(val["ndcg_20"], 6),
                val_hr_20=round(val["hr_20"], 6),
            )
            # Strictly better, as Lightning's ModelCheckpoint and EarlyStopping (min_delta 0).
            improved = val[args.monitor] > state["best"]
            if improved:
                state.update(best=val[args.monitor], best_epoch=epoch, wait=0)
            else:
                state["wait"] += 1
        row.update(
            best_epoch=state["best_epoch"],
            wait=state["wait"],
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        state["rows"].append(row)
        state["epoch"] = epoch
        if state["wait"] >= args.patience:
            state["stopped_early"] = True
        state["finished"] = state["stopped_early"] or epoch >= args.epochs
        state["wall_seconds"] = wall_before + time.perf_counter() - session_t0
        state["rng"] = rng_state()
        clock.state = state
        save_checkpoint(model, out / RESUME)  # the commit point of this epoch
        if improved:
            atomic_copy(out / RESUME, out / BEST)
        write_log(out, state["rows"])
        atomic_write(out / "state.json", json.dumps(readable(state), indent=2) + "\n")
        print(
            f"epoch {epoch}/{args.epochs} train {row['train_seconds']:.1f} s (fit {fit_s:.1f} s)"
            f" loss {row['train_loss']}"
            + (
                f" | val NDCG@10 {row['val_ndcg_10']:.4f} HR@10 {row['val_hr_10']:.4f}"
                f" ({row['val_seconds']:.1f} s)"
                if "val_ndcg_10" in row
                else ""
            )
            + f" | best {state['best_epoch']} wait {state['wait']}",
            flush=True,
        )
        if _stop["signal"] is not None:
            print(f"SIGTERM: stopped after epoch {epoch}, resume continues from it", flush=True)
            sys.exit(143)
    if state["epoch"] == 0:
        raise SystemExit(f"{out}: no epoch trained yet")
    test_best(args, out, data, state)


if __name__ == "__main__":
    main()
