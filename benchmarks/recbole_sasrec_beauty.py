"""Seconds per training epoch of RecBole 1.2.1's SASRec on the S3-Rec Amazon Beauty file.

The reference side of `benchmarks/bench_train.py`: same data file, same split, same model sizes.

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE. Use /tmp/recbole-venv (or any environment with
recbole==1.2.1 and numpy<2); the project's .venv does not have RecBole and must not get it. Create it with:

    python3 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install --no-deps recbole==1.2.1
    /tmp/recbole-venv/bin/pip install torch==2.14.1 numpy==1.26.4 scipy==1.13.1 pandas==2.2.3 \
        "scikit-learn<1.6" tqdm colorlog==4.7.2 colorama==0.4.4 pyyaml tensorboard thop tabulate \
        texttable psutil plotly

`--no-deps` skips RecBole's hard requirement on ray (<=2.6.3), which only `recbole.quick_start`
imports (hyper-parameter tuning); this script does not import it. numpy must stay below 2: RecBole
1.2.1 uses `np.float` and restores such aliases itself from `np.float_`, which numpy 2 removed.
No patch to RecBole is needed with these pins.

Run it (from the repository root; nothing is written to the repository):

    /tmp/recbole-venv/bin/python benchmarks/recbole_sasrec_beauty.py --epochs 2
    /tmp/recbole-venv/bin/python benchmarks/recbole_sasrec_beauty.py --max-users 500   # quick check

What it does: converts `<name>.txt` ("user item_1 ... item_n", chronological) into the RecBole atomic
file `<name>.inter` (user_id:token, item_id:token, timestamp:float = position in the line) under
--data-dir (a temporary folder by default), then trains RecBole's own SASRec with the sizes of
bench_train.py: 2 layers, 2 heads, hidden 64, inner (MLP) size 256 = 4 x hidden, GELU, dropout 0.2
on hidden states and attention, MAX_ITEM_LIST_LENGTH 50, loss_type CE (full softmax over the
catalogue, no negative sampling), Adam lr 1e-3, train batch 256, leave-one-out split
({'LS': 'valid_and_test'}, time order), device cpu, no evaluation. RecBole's Trainer.fit runs the
epochs (valid_data=None, so it never evaluates); the seconds per epoch are RecBole's own epoch timing
(the same numbers it logs as "epoch N training [time: ...]"), cross-checked by a wall clock around
Trainer._train_epoch.

RecBole turns every prefix of a user's training events into a separate example (history -> next
item), so it builds sum_u (n_u - 3) training examples (each with one target) where bench_train.py
makes one causal pass per user (n_u - 3 targets, the most recent 50 of them). Compare the two as
target positions/s, or as seconds per epoch (both see every training target once per epoch).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-seq"


def convert(src: Path, out_dir: Path, name: str, max_users: int | None) -> tuple[int, int]:
    """Writes `out_dir/<name>/<name>.inter` from `src`; returns (users, interactions) written."""
    dataset_dir = out_dir / name
    dataset_dir.mkdir(parents=True, exist_ok=True)
    users = inters = 0
    with src.open() as f, (dataset_dir / f"{name}.inter").open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if max_users is not None and users >= max_users:
                break
            user, items = fields[0], fields[1:]
            for pos, item in enumerate(items):
                out.write(f"{user}\t{item}\t{pos}\n")
            users += 1
            inters += len(items)
    return users, inters


def recbole_settings(
    data_path: Path, max_len: int, batch_size: int, lr: float, epochs: int, seed: int
) -> dict[str, object]:
    """RecBole config entries every script here shares: the converted file's fields, no filtering,
    leave-one-out in time order with full ranking, CE loss (full softmax), Adam, CPU, seeded."""
    return {
        "data_path": str(data_path),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": batch_size,
        "learner": "adam",
        "learning_rate": lr,
        "epochs": epochs,
        "use_gpu": False,
        "gpu_id": "",
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding <name>.txt")
    parser.add_argument("--name", default="Beauty")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where to write the atomic file, RecBole's log/ and saved/ (default: a temp folder, removed)",
    )
    parser.add_argument(
        "--max-users", type=int, default=None, help="use only the first N users (quick check)"
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="0 = build the dataset and count, train nothing"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--inner-size", type=int, default=None, help="default 4 x dim")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    inner = args.inner_size or 4 * args.dim

    repro = [
        "python",
        "benchmarks/recbole_sasrec_beauty.py",
        "--name",
        args.name,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--max-len",
        str(args.max_len),
        "--dim",
        str(args.dim),
    ]
    if args.max_users is not None:
        repro += ["--max-users", str(args.max_users)]
    if args.threads is not None:
        repro += ["--threads", str(args.threads)]
    print("reproduce: /tmp/recbole-venv/bin/" + shlex.join(repro), flush=True)

    try:
        import recbole
        import torch
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.sequential_recommender import SASRec
        from recbole.trainer import Trainer
        from recbole.utils import init_logger, init_seed
    except ImportError as e:
        sys.exit(f"{e}: run this with /tmp/recbole-venv/bin/python (see the docstring for how to create it)")
    if recbole.__version__ != "1.2.1":
        print(f"warning: recbole {recbole.__version__}, this script was written for 1.2.1", file=sys.stderr)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    src = (args.data / f"{args.name}.txt").resolve()
    cwd = os.getcwd()
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="recbole-sasrec-")
        work = Path(tmp.name)
    else:
        work = args.data_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    try:
        n_users, n_inters = convert(src, work / "dataset", args.name, args.max_users)
        # RecBole writes ./log, ./log_tensorboard and checkpoint_dir relative to the working folder.
        os.chdir(work)
        # Config also reads `--key=value` overrides from sys.argv: keep this script's flags away from it.
        sys.argv = sys.argv[:1]
        # pandas 2.2 FutureWarnings from RecBole's fillna(inplace=True) and torch's on torch.cuda.amp.
        warnings.filterwarnings("ignore", category=FutureWarning)
        config = Config(
            model="SASRec",
            dataset=args.name,
            config_dict={
                **recbole_settings(
                    work / "dataset", args.max_len, args.batch_size, args.lr, args.epochs, args.seed
                ),
                "checkpoint_dir": str(work / "saved"),
                "n_layers": args.n_layers,
                "n_heads": args.n_heads,
                "hidden_size": args.dim,
                "inner_size": inner,
                "hidden_dropout_prob": args.dropout,
                "attn_dropout_prob": args.dropout,
                "hidden_act": "gelu",
            },
        )
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)

        t0 = time.perf_counter()
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        prep_s = time.perf_counter() - t0
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = SASRec(config, train_data._dataset).to(config["device"])
        trainer = Trainer(config, model)

        # RecBole's own per-epoch timing: fit() hands (epoch, start, end) to _generate_train_loss_output.
        recbole_times: list[float] = []
        wall_times: list[float] = []
        gen_output = trainer._generate_train_loss_output
        train_epoch = trainer._train_epoch

        def _record_output(epoch_idx, s_time, e_time, losses):
            recbole_times.append(e_time - s_time)
            return gen_output(epoch_idx, s_time, e_time, losses)

        def _timed_train_epoch(*a, **kw):
            start = time.perf_counter()
            out = train_epoch(*a, **kw)
            wall_times.append(time.perf_counter() - start)
            return out

        trainer._generate_train_loss_output = _record_output
        trainer._train_epoch = _timed_train_epoch
        trainer.fit(train_data, valid_data=None, verbose=True, saved=False, show_progress=False)
    finally:
        os.chdir(cwd)
        if tmp is not None:
            tmp.cleanup()

    n_train = len(train_data._dataset)
    print()
    print(
        f"dataset: {args.name}{'' if args.max_users is None else f' (first {n_users} users)'}  "
        f"users={dataset.user_num - 1}  items={dataset.item_num - 1}  interactions={n_inters}"
    )
    print(
        f"RecBole training sequences (augmented prefixes, 1 target each) = {n_train}  "
        f"batches/epoch={len(train_data)}  data preparation {prep_s:.1f} s (not timed)"
    )
    print(
        f"model: RecBole {recbole.__version__} SASRec, {args.n_layers} layers, {args.n_heads} heads, "
        f"hidden {args.dim}, inner {inner}, dropout {args.dropout}, history {args.max_len}, CE full softmax; "
        f"batch {args.batch_size}; adam lr {args.lr}; {config['device']}; {torch.get_num_threads()} threads; "
        f"torch {torch.__version__}"
    )
    for epoch, (rb, wall) in enumerate(zip(recbole_times, wall_times, strict=True)):
        print(
            f"epoch {epoch}: {rb:7.2f} s (RecBole timer; wall {wall:7.2f} s)   "
            f"{n_train / rb:9.0f} sequences/s = target positions/s"
        )
    if not recbole_times:
        print("no epoch trained (--epochs 0): data preparation only")
        return
    steady = recbole_times[1:] or recbole_times
    print(
        f"seconds per epoch (mean of epochs {len(recbole_times) - len(steady)}..{len(recbole_times) - 1}): "
        f"{sum(steady) / len(steady):.2f}"
    )


if __name__ == "__main__":
    main()
