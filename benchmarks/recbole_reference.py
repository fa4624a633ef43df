"""RecBole 1.2.1 models on the S3-Rec Amazon files under vrs's protocol: the reference accuracy runs.

The reference side of vrs's baseline checks (`model=` / `user=` words against the model that field
users know): RecBole's own model, trainer and full-ranking evaluation, on the same leave-one-out split
as vrs (per user, the last item is the test target, the one before it the validation target; RecBole's
{'LS': 'valid_and_test'} in time order), history items excluded from the ranking, early stopping on
validation NDCG@10, test scored at the best validation epoch.

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE (recipe in benchmarks/recbole_sasrec_beauty.py;
any folder works, e.g. /work/venvs/recbole). From the repository root:

    OMP_NUM_THREADS=1 /work/venvs/recbole/bin/python benchmarks/recbole_reference.py --model GRU4Rec \\
        --name Beauty --seed 0 --out RUN_DIR
    /work/venvs/recbole/bin/python benchmarks/recbole_reference.py --model GRU4Rec --max-users 500 --epochs 2

Models and their settings (RecBole's defaults for the model, loss CE = full softmax):
  GRU4Rec  embedding 64, GRU 128, 1 layer, dropout 0.3 on the item embeddings (vrs:
           `experiment=gru4rec_amazon`).
  SASRec   2 layers, 2 heads, hidden 64, inner 256, dropout 0.2, GELU (vrs: `experiment=sasrec_amazon`
           with those sizes).
  BERT4Rec the same sizes, 20% of the items masked (vrs: `user=bert4rec` with `model.dim=64`).
  LightGCN embedding 64, 2 layers, L2 1e-5, BPR with one uniform negative (vrs: `experiment=lightgcn`).

Differences from vrs's evaluation, both small: RecBole ranks with torch.topk, so a tie with the target
may fall either way (vrs counts ties against the target); and RecBole's validation and test run over
every user with a target, as vrs's do. Writes RUN_DIR/results.json (the validation curve, seconds per
epoch, test HR@10 / NDCG@10 at the best epoch, whose weights are kept in memory: no checkpoint file is
written or unpickled) and RecBole's own log under RUN_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recbole_sasrec_beauty import DEFAULT_DATA, convert, recbole_settings  # noqa: E402  (shared)

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding <name>.txt")
    parser.add_argument("--name", default="Beauty")
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
    src = (args.data / f"{args.name}.txt").resolve()
    n_users, n_inters = convert(src, out / "dataset", args.name, args.max_users)
    cwd = os.getcwd()
    os.chdir(out)  # RecBole writes ./log and ./log_tensorboard relative to the working folder
    sys.argv = sys.argv[:1]  # Config also reads --key=value from sys.argv
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        config = Config(
            model=args.model,
            dataset=args.name,
            config_dict={
                **recbole_settings(
                    out / "dataset", args.max_len, args.batch_size, args.lr, args.epochs, args.seed
                ),
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
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = Trainer(config, model)
        curve: list[dict[str, float]] = []
        epoch_seconds: list[float] = []
        # The best epoch's weights stay in memory: RecBole's own reload unpickles its checkpoint file
        # (torch.load without weights_only), which this script does not do.
        best: dict[str, object] = {"ndcg": float("-inf"), "state": None}
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed_train_epoch(*a, **kw):
            start = time.perf_counter()
            result = train_epoch(*a, **kw)
            epoch_seconds.append(time.perf_counter() - start)
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
        start = time.perf_counter()
        best_score, best_valid = trainer.fit(train_data, valid_data, saved=False, show_progress=False)
        wall = time.perf_counter() - start
        model.load_state_dict(best["state"])
        test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    finally:
        os.chdir(cwd)
    best_epoch = max(range(len(curve)), key=lambda i: curve[i]["ndcg@10"]) if curve else None
    results = {
        "model": args.model,
        "recbole": recbole.__version__,
        "dataset": args.name,
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
        "wall_seconds": wall,
        "seconds_per_epoch": epoch_seconds,
        "val_curve": curve,
        "val": {k: float(v) for k, v in best_valid.items()},
        "test": {k: float(v) for k, v in test.items()},
    }
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out / "results.json")
    print(
        f"{args.model} on {args.name}, seed {args.seed}: best epoch {best_epoch} of {len(curve)}; "
        f"val NDCG@10 {results['val'].get('ndcg@10', float('nan')):.4f}; "
        f"test HR@10 {results['test']['hit@10']:.4f} NDCG@10 {results['test']['ndcg@10']:.4f} -> {out / 'results.json'}"
    )


if __name__ == "__main__":
    main()
