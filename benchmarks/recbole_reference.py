"""RecBole 1.2.1 models under vrs's protocol: the reference accuracy runs.

The reference side of vrs's baseline checks (`model=` / `user=` words against the model that field
users know): RecBole's own model, trainer and full-ranking evaluation, on the same leave-one-out split
as vrs (per user, the last item is the test target, the one before it the validation target; RecBole's
{'LS': 'valid_and_test'} in time order), early stopping on validation NDCG@10, test scored at the best
validation epoch.

Data, one of:
  --name NAME  an S3-Rec Amazon file (`--amazon-dir`/NAME.txt, default Beauty): one chronological line
               per user.
  --data DIR   a vrs dataset folder (items.parquet, interactions.parquet, dataset.json, as `vrs-prepare`
               writes it). vrs's own code (imported from this checkout) reads it and splits it; each
               user's sequence is written in vrs's event order (time, ties by the file's row order) with
               timestamp = position, user / item tokens = vrs's indices, and a .item file holding the
               whole catalogue, so RecBole ranks vrs's N items and its leave-one-out takes vrs's
               targets. After RecBole builds its splits, every training / validation / test example is
               checked against vrs's split (results.json `split_check`; a warning if any differs).
               Known gaps, reported there: a user with exactly 3 events has a validation target in vrs
               but none in RecBole's sequential split (whose first example, the validation target, is
               trained on instead); a user with 2 events (not evaluated by vrs) gets a test target in
               RecBole's general (LightGCN) split. MovieLens-100K has neither. vrs's event types are
               not passed on (RecBole models here use items only).

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE (recipe in benchmarks/recbole_sasrec_beauty.py;
any folder works, e.g. /work/venvs/recbole; --data also needs `pip install --no-deps pyarrow==21.0.0`
there: pyarrow 26 wants numpy 2, 21.0.0 takes RecBole's numpy 1.26). From the repository root:

    OMP_NUM_THREADS=1 /work/venvs/recbole/bin/python benchmarks/recbole_reference.py --model GRU4Rec \\
        --name Beauty --seed 0 --out RUN_DIR
    OMP_NUM_THREADS=1 /work/venvs/recbole/bin/python benchmarks/recbole_reference.py --model BERT4Rec \\
        --data data/real_images/ml100k --seed 0 --out RUN_DIR
    /work/venvs/recbole/bin/python benchmarks/recbole_reference.py --model GRU4Rec --max-users 500 --epochs 2

Models and their settings (RecBole's defaults for the model, loss CE = full softmax):
  GRU4Rec  embedding 64, GRU 128, 1 layer, dropout 0.3 on the item embeddings (vrs:
           `experiment=gru4rec_amazon`).
  SASRec   2 layers, 2 heads, hidden 64, inner 256, dropout 0.2, GELU (vrs: `experiment=sasrec_amazon`
           with those sizes).
  BERT4Rec the same sizes, 20% of the items masked (vrs: `experiment=bert4rec_amazon`).
  LightGCN embedding 64, 2 layers, L2 1e-5, BPR with one uniform negative (vrs: `experiment=lightgcn`).

Differences from vrs's evaluation: RecBole ranks with torch.topk, so a tie with the target may fall
either way (vrs counts ties against the target). RecBole 1.2.1 excludes the user's earlier items
from the ranking for general models (LightGCN) only: its full-ranking loader gives sequential models
(GRU4Rec, SASRec, BERT4Rec) no history mask, so they rank every item. With --data this script
therefore removes, for every model and for validation (model selection) as for test, every item of
the user before the target in vrs's split, as vrs does (a target that repeats one becomes a miss, as
in vrs; results.json `history_mask`); with --name (S3-Rec files) RecBole's own ranking stands.
RecBole's validation and test run over every user with a target, as vrs's do. Writes RUN_DIR/results.json (the validation curve, seconds per epoch, test HR@10 /
NDCG@10 at the best epoch, whose weights are kept in memory: no checkpoint file is written or
unpickled; with --data also the folder, dataset.json's fingerprint and vrs's split counts) and
RecBole's own log under RUN_DIR; with --data also RUN_DIR/{metrics.json, config.yaml,
test_users.parquet} (each test target's rank with ties against it, as vrs counts; results.json
`test_vrs_ties` gives HR/NDCG@10 from those ranks), so `vrs-compare VRS_RUNS RUN_DIR --metric
recall_10 --mixed-datasets` runs paired tests over users between vrs and the reference. A run killed before the end continues from its last finished epoch
when the same command is given again: RUN_DIR/resume.ckpt (model, optimizer, early-stopping state,
the curve, the best epoch's weights, random states) is written at the start of every epoch after the
first, with a hash record beside it, and is loaded only if that record matches (a pickle this
script wrote; `vrs_side.own_checkpoint`). The data order after a resume differs from an unbroken run.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recbole_sasrec_beauty import DEFAULT_DATA, convert, recbole_settings  # noqa: E402  (shared)
from vrs_side import load_own_checkpoint, load_split, run_metrics, vrs_io, write_user_run  # noqa: E402

PARTS = ("train", "valid", "test")

MODELS = {
    "GRU4Rec": {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3},
    "SASRec": {
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.2,
        "attn_dropout_prob": 0.2,
        "hidden_act": "gelu",
    },
}
# BERT4Rec: SASRec's sizes, 20% of the items masked.
MODELS["BERT4Rec"] = {**MODELS["SASRec"], "mask_ratio": 0.2}
# LightGCN (a general, not sequential, model): RecBole's defaults, BPR with one uniform negative.
MODELS["LightGCN"] = {
    "embedding_size": 64,
    "n_layers": 2,
    "reg_weight": 1e-05,
    "train_neg_sample_args": {
        "distribution": "uniform",
        "sample_num": 1,
        "alpha": 1.0,
        "dynamic": False,
        "candidate_num": 0,
    },
}


def load_vrs(root: Path):
    """vrs's own reading of a canonical dataset folder and its leave-one-out split
    (`vrs_side.load_split`). Returns (SequenceData, Split, dataset.json as a dict); the fingerprint
    recorded is dataset.json's."""
    data, split, ds = load_split(root)
    data.item_table = ds.items  # the item ids of the per-target results (write_user_run)
    return data, split, ds.meta


def write_vrs_atomic(data, out_dir: Path, name: str, max_users: int | None = None) -> dict[str, int]:
    """Writes `out_dir/<name>/<name>.inter` and `<name>.item` from vrs's sequences (`SequenceData`).

    Tokens are vrs's indices (user index, item index in catalogue order). Each user's events are
    written in vrs's order (time, ties by the interactions file's row order, as `order_interactions`
    puts them) with timestamp = the event's seq_pos, so RecBole's time sort cannot reorder them and
    its leave-one-out takes exactly vrs's test target (last event) and validation target (the one
    before). The .item file lists the whole catalogue, so RecBole ranks the same N items as vrs
    (items nobody interacted with included). `max_users` keeps vrs's first users only.
    Returns the counts written.
    """
    n_users = data.n_users if max_users is None else min(max_users, data.n_users)
    end = int(data.offsets[n_users])
    users = np.repeat(np.arange(n_users), data.lengths[:n_users])
    pos = np.arange(end) - data.offsets[users]
    dataset_dir = out_dir / name
    dataset_dir.mkdir(parents=True, exist_ok=True)
    rows = zip(users.tolist(), data.items_flat[:end].tolist(), pos.tolist(), strict=True)
    (dataset_dir / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{p}\n" for u, i, p in rows)
    )
    (dataset_dir / f"{name}.item").write_text(
        "item_id:token\n" + "".join(f"{i}\n" for i in range(data.n_items))
    )
    return {"users": n_users, "interactions": end, "items": data.n_items}


def _key(user: int, target: int, history: np.ndarray | None) -> tuple[int, int, bytes]:
    return (user, target, b"" if history is None else np.asarray(history, dtype=np.int32).tobytes())


def vrs_examples(
    data, sequential: bool, max_len: int, max_users: int | None = None
) -> dict[str, list[tuple[int, int, bytes]]]:
    """The examples RecBole must build from vrs's split, as (user, target item, history) keys.

    Sequential models: every training event after the user's first (history = the training events
    before it, the last `max_len`), and each validation / test target with the user's last `max_len`
    events before it. General models: every training event, and each target, without history.
    """
    n_users = data.n_users if max_users is None else min(max_users, data.n_users)
    out: dict[str, list[tuple[int, int, bytes]]] = {part: [] for part in PARTS}

    def history(u: int, p: int) -> np.ndarray | None:
        return data.user_seqs[u][max(0, p - max_len) : p] if sequential else None

    for u in range(n_users):
        seq = data.user_seqs[u]
        for p in range(1 if sequential else 0, int(data.train_len[u])):
            out["train"].append(_key(u, int(seq[p]), history(u, p)))
    for part, targets in (("valid", data.val_targets), ("test", data.test_targets)):
        for u, p in targets.tolist():
            if u < n_users:
                out[part].append(_key(u, int(data.user_seqs[u][p]), history(u, p)))
    return out


def compare_examples(
    expected: dict[str, list[tuple[int, int, bytes]]], got: dict[str, list[tuple[int, int, bytes]]]
) -> dict[str, dict[str, int]]:
    """Per part, how many examples each side has and how many of vrs's are missing / RecBole's extra
    (as multisets: a repeated example counts as often as it occurs)."""
    report = {}
    for part in PARTS:
        want, have = Counter(expected[part]), Counter(got[part])
        report[part] = {
            "vrs": len(expected[part]),
            "recbole": len(got[part]),
            "missing": sum((want - have).values()),
            "extra": sum((have - want).values()),
            "users_vrs": len({k[0] for k in expected[part]}),
            "users_recbole": len({k[0] for k in got[part]}),
        }
    return report


def earlier_items(data, dataset, max_users: int | None = None) -> dict[str, list[np.ndarray]]:
    """Per part ("valid", "test"), per RecBole user id, RecBole's item ids of the user's events before
    that part's target in vrs's split: what vrs leaves out of the ranking (an empty array for a
    user without that target)."""
    users = dataset.field2id_token[dataset.uid_field]
    items = dataset.field2id_token[dataset.iid_field]
    recbole_item = np.zeros(data.n_items, dtype=np.int64)  # vrs item index -> RecBole item id
    recbole_item[np.array([int(t) for t in items[1:]], dtype=np.int64)] = np.arange(1, len(items))
    n_users = data.n_users if max_users is None else min(max_users, data.n_users)
    out: dict[str, list[np.ndarray]] = {}
    for part, targets in (("valid", data.val_targets), ("test", data.test_targets)):
        position = dict(targets.tolist())
        out[part] = [np.empty(0, dtype=np.int64)] + [
            recbole_item[data.user_seqs[u][: position[u]]]
            if u in position and u < n_users
            else np.empty(0, dtype=np.int64)
            for u in (int(t) for t in users[1:])
        ]
    return out


def recbole_examples(dataset) -> list[tuple[int, int, bytes]]:
    """A built RecBole dataset's examples as `vrs_examples` keys (tokens are vrs indices)."""
    users = dataset.field2id_token[dataset.uid_field]
    items = dataset.field2id_token[dataset.iid_field]
    user_of = np.array([-1] + [int(t) for t in users[1:]], dtype=np.int64)  # id 0 is [PAD]
    item_of = np.array([-1] + [int(t) for t in items[1:]], dtype=np.int64)
    feat = dataset.inter_feat
    u = user_of[feat[dataset.uid_field].numpy()].tolist()
    i = item_of[feat[dataset.iid_field].numpy()].tolist()
    list_field = getattr(dataset, "item_id_list_field", None)
    if list_field is None:  # a general (not sequential) model: no history
        return [_key(a, b, None) for a, b in zip(u, i, strict=True)]
    lists = item_of[feat[list_field].numpy()]
    lengths = feat[dataset.item_list_length_field].numpy().tolist()
    return [_key(a, b, row[:n]) for a, b, row, n in zip(u, i, lists, lengths, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument(
        "--name", default=None, help="S3-Rec Amazon file <name>.txt in --amazon-dir (default Beauty)"
    )
    parser.add_argument(
        "--amazon-dir", type=Path, default=DEFAULT_DATA, help="folder holding <name>.txt (with --name)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a vrs dataset folder (items.parquet, interactions.parquet, dataset.json) instead of --name",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="run folder (created; must not hold results.json)"
    )
    parser.add_argument("--max-users", type=int, default=None, help="first N users only (quick checks)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10, help="validations without gain before stopping")
    parser.add_argument("--batch-size", type=int, default=2048, help="RecBole's default")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.data is not None and args.name is not None:
        parser.error(
            "--data (a vrs dataset folder) and --name (an S3-Rec file, in --amazon-dir) exclude each "
            "other; the S3-Rec folder is now given with --amazon-dir"
        )
    if args.data is not None and not (args.data / "interactions.parquet").is_file():
        hint = (
            " (an S3-Rec folder? give it as --amazon-dir with --name)" if any(args.data.glob("*.txt")) else ""
        )
        parser.error(f"--data {args.data}: no interactions.parquet: not a vrs dataset folder{hint}")
    out = args.out.resolve()
    if (out / "results.json").exists():
        sys.exit(f"{out / 'results.json'} exists: this run is finished; give another --out")
    out.mkdir(parents=True, exist_ok=True)
    print("reproduce: /work/venvs/recbole/bin/python " + shlex.join(sys.argv), flush=True)

    try:
        import recbole
        import torch
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.trainer import Trainer
        from recbole.utils import get_model, init_logger, init_seed
    except ImportError as e:
        sys.exit(f"{e}: run this with the RecBole environment (see the docstring)")
    torch.set_num_threads(args.threads)
    import scipy.sparse

    if not hasattr(scipy.sparse.dok_matrix, "_update"):
        # RecBole 1.2.1's LightGCN builds its adjacency with dok_matrix._update, which SciPy 1.12
        # removed; the same bulk insert into the matrix's own dict (values are all 1).
        scipy.sparse.dok_matrix._update = lambda self, data: self._dict.update(data)
    load_col: dict[str, list[str]] = {"inter": ["user_id", "item_id", "timestamp"]}
    source: dict[str, object]
    if args.data is None:
        name = args.name or "Beauty"
        src = (args.amazon_dir / f"{name}.txt").resolve()
        n_users, n_inters = convert(src, out / "dataset", name, args.max_users)
        source = {"dataset": name, "source": str(src)}
        data = None
    else:
        root = args.data.resolve()
        data, split, meta = load_vrs(root)
        read = {"users": data.n_users, "items": data.n_items, "interactions": len(data.items_flat)}
        recorded = {k: meta.get("counts", {}).get(k) for k in read}
        if recorded != read:
            print(f"warning: {root}/dataset.json records counts {recorded}, read {read}", file=sys.stderr)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in root.name) or "vrs"
        counts = write_vrs_atomic(data, out / "dataset", name, args.max_users)
        n_users, n_inters = counts["users"], counts["interactions"]
        load_col["item"] = ["item_id"]  # the whole catalogue, as vrs ranks it
        source = {
            "dataset": meta.get("name", root.name),
            "data": str(root),
            "fingerprint": meta.get("fingerprint"),
            "items": counts["items"],
            "vrs_split": {
                "users": data.n_users,
                "val_targets": len(data.val_targets),
                "test_targets": len(data.test_targets),
                "users_not_evaluated": split.users_dropped,
            },
        }
        print(f"{root}: {source['vrs_split']}, {counts}", flush=True)
    cwd = os.getcwd()
    os.chdir(out)  # RecBole writes ./log and ./log_tensorboard relative to the working folder
    sys.argv = sys.argv[:1]  # Config also reads --key=value from sys.argv
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        config = Config(
            model=args.model,
            dataset=name,
            config_dict={
                **recbole_settings(
                    out / "dataset", args.max_len, args.batch_size, args.lr, args.epochs, args.seed
                ),
                "load_col": load_col,
                "metrics": ["Hit", "NDCG"],
                "topk": [10],
                "valid_metric": "NDCG@10",
                "eval_step": 1,
                "stopping_step": args.patience,
                "eval_batch_size": 4096,
                **MODELS[args.model],
            },
        )
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        if data is not None:
            # What RecBole built against what vrs's split asks for, example by example.
            sequential = hasattr(dataset, "item_id_list_field")
            expected = vrs_examples(data, sequential, args.max_len, args.max_users)
            got = {
                part: recbole_examples(loader._dataset)
                for part, loader in zip(PARTS, (train_data, valid_data, test_data), strict=True)
            }
            source["split_check"] = check = compare_examples(expected, got)
            print(f"split check (RecBole's examples against vrs's split): {check}", flush=True)
            if any(c["missing"] or c["extra"] for c in check.values()):
                print(
                    "warning: RecBole's leave-one-out differs from vrs's split (see split_check): users "
                    "with 3 events get no validation target in RecBole's sequential split, users with 2 "
                    "a test target in its general one",
                    file=sys.stderr,
                )
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = Trainer(config, model)
        curve: list[dict[str, float]] = []
        epoch_seconds: list[float] = []
        # The best epoch's weights stay in memory (and in resume.ckpt): RecBole's own reload unpickles
        # its checkpoint file (torch.load without weights_only), which this script does not do.
        best: dict[str, object] = {"ndcg": float("-inf"), "state": None}
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch
        resume_path = out / "resume.ckpt"
        wall_before, sessions = 0.0, 0
        if resume_path.exists():
            state = load_own_checkpoint(resume_path)
            model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.start_epoch = state["epoch"]
            trainer.best_valid_score, trainer.cur_step = state["best_valid_score"], state["cur_step"]
            curve[:], epoch_seconds[:] = state["curve"], state["epoch_seconds"]
            best.update(state["best"])
            wall_before, sessions = state["wall_seconds"], state["sessions"] + 1
            torch.set_rng_state(state["rng"]["torch"])
            np.random.set_state(state["rng"]["numpy"])
            random.setstate(state["rng"]["random"])
            print(f"resumed at epoch {state['epoch']} (session {sessions})", flush=True)

        def save_resume(epoch: int) -> None:
            """The state after `epoch` finished epochs (RecBole's early-stopping update included)."""
            state = {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": trainer.optimizer.state_dict(),
                "best_valid_score": trainer.best_valid_score,
                "cur_step": trainer.cur_step,
                "curve": curve,
                "epoch_seconds": epoch_seconds,
                "best": best,
                "wall_seconds": wall_before + time.perf_counter() - start,
                "sessions": sessions,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": np.random.get_state(),
                    "random": random.getstate(),
                },
            }
            vrs_io().atomic_write(resume_path, lambda tmp: torch.save(state, tmp))
            vrs_io().write_hash_record(resume_path)

        def timed_train_epoch(train_data, epoch_idx, *a, **kw):
            if epoch_idx > trainer.start_epoch:
                save_resume(epoch_idx)
            begin = time.perf_counter()
            result = train_epoch(train_data, epoch_idx, *a, **kw)
            epoch_seconds.append(time.perf_counter() - begin)
            return result

        def recorded_valid_epoch(*a, **kw):
            score, result = valid_epoch(*a, **kw)
            curve.append({"epoch": len(curve), **{k: float(v) for k, v in result.items()}})
            if curve[-1]["ndcg@10"] > best["ndcg"]:
                best["ndcg"] = curve[-1]["ndcg@10"]
                best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            print(f"epoch {len(curve) - 1}: {epoch_seconds[-1]:.1f} s, validation {dict(result)}", flush=True)
            return score, result

        trainer._train_epoch, trainer._valid_epoch = timed_train_epoch, recorded_valid_epoch
        phase = {"now": "valid"}
        per_target: dict[str, list[np.ndarray]] = {"user": [], "target": [], "rank": [], "seen": []}
        if data is not None:
            # vrs's history mask on every ranking (validation and test), whatever the model type.
            earlier = earlier_items(data, dataset, args.max_users)
            batch_eval = trainer._full_sort_batch_eval

            user_of = np.array([-1] + [int(t) for t in dataset.field2id_token[dataset.uid_field][1:]])
            item_of = np.array([-1] + [int(t) for t in dataset.field2id_token[dataset.iid_field][1:]])

            def masked_batch_eval(batched_data):
                interaction, scores, positive_u, positive_i = batch_eval(batched_data)
                seen = earlier[phase["now"]]
                per_row = [seen[u] for u in interaction[dataset.uid_field].tolist()]
                rows = np.repeat(np.arange(len(per_row)), [len(a) for a in per_row])
                cols = np.concatenate(per_row) if per_row else np.empty(0, dtype=np.int64)
                scores[torch.as_tensor(rows), torch.as_tensor(cols)] = -np.inf
                if phase["now"] == "test":  # each target's rank as vrs counts it: ties against it
                    target = scores[positive_u, positive_i]
                    rank = (scores[positive_u] >= target[:, None]).sum(1) - 1
                    masked = torch.isneginf(target)  # an earlier item of the user: a miss, rank N
                    rank[masked] = data.n_items
                    users = interaction[dataset.uid_field][positive_u].cpu().numpy()
                    per_target["user"].append(user_of[users])
                    per_target["target"].append(item_of[positive_i.cpu().numpy()])
                    per_target["rank"].append(rank.cpu().numpy())
                    per_target["seen"].append(masked.cpu().numpy())
                return interaction, scores, positive_u, positive_i

            trainer._full_sort_batch_eval = masked_batch_eval
            source["history_mask"] = "vrs: every item of the user before the target"
        start = time.perf_counter()
        best_score, best_valid = trainer.fit(train_data, valid_data, saved=False, show_progress=False)
        wall = wall_before + time.perf_counter() - start
        best_epoch = max(range(len(curve)), key=lambda i: curve[i]["ndcg@10"]) if curve else None
        if trainer.start_epoch > 0:  # resumed: fit's best_valid covers this session's epochs only
            best_valid = {k: v for k, v in curve[best_epoch].items() if k != "epoch"}
        model.load_state_dict(best["state"])
        phase["now"] = "test"
        test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    finally:
        os.chdir(cwd)
    results = {
        "model": args.model,
        "recbole": recbole.__version__,
        **source,
        "users": n_users,
        "interactions": n_inters,
        "seed": args.seed,
        "settings": {
            **MODELS[args.model],
            "batch_size": args.batch_size,
            "lr": args.lr,
            "max_len": args.max_len,
        },
        "best_epoch": best_epoch,
        "epochs_run": len(curve),
        "sessions": sessions + 1,
        "wall_seconds": wall,
        "seconds_per_epoch": epoch_seconds,
        "val_curve": curve,
        "val": {k: float(v) for k, v in best_valid.items()},
        "test": {k: float(v) for k, v in test.items()},
    }
    if data is not None and per_target["rank"]:  # vrs-compare's paired tests against vrs's runs
        config = {"reference": f"recbole.{args.model}", "seed": args.seed, "settings": results["settings"],
                  "data": {"root": str(args.data)}}  # fmt: skip
        targets = {k: np.concatenate(v) for k, v in per_target.items()}
        write_user_run(out, data, targets, run_metrics({"val": best_valid, "test": test}), config)
        ranks = targets["rank"]
        hit = (ranks < 10) & ~targets["seen"]
        results["test_vrs_ties"] = {  # the same targets, ties counted against the target (vrs's rule)
            "hit@10": float(hit.mean()),
            "ndcg@10": float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()),
            "targets": int(len(ranks)),
        }
    vrs_io().write_json(out / "results.json", results)  # temp file, then rename
    print(
        f"{args.model} on {source['dataset']}, seed {args.seed}: best epoch {best_epoch} of {len(curve)}; "
        f"val NDCG@10 {results['val'].get('ndcg@10', float('nan')):.4f}; "
        f"test HR@10 {results['test']['hit@10']:.4f} NDCG@10 {results['test']['ndcg@10']:.4f} -> {out / 'results.json'}"
    )


if __name__ == "__main__":
    main()
