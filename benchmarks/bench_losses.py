"""Full softmax, sampled softmax (logQ-corrected) and in-batch negatives on a large catalogue:
time per epoch and validation NDCG@10 after the same kind of training.

Runs on a dataset written by `bench_scale.py` (its `items*_events*/data` folder) with bench_scale's
ID-only SASRec (`user=sasrec_v1`, D=64, batches of 128 histories), one process per loss, the way a
user runs it:

  sampled_lazy   `loss=sampled_softmax loss.n_negatives=1024 model.sparse_id=true`, --epochs epochs
                 (uniform negatives: the logQ correction is a constant)
  sampled_pop_lazy  the same with `loss.sampler=popularity` (negatives drawn by training frequency,
                 logQ-corrected)
  in_batch_lazy  `loss=in_batch model.sparse_id=true`, --epochs epochs
  full           `loss=full_softmax`, --full-steps batches (a whole epoch over 1M items takes about a
                 day on one core: its epoch time is extrapolated from the steps, and it says so)

Each is validated on the first --val-users validation users, full ranking over the whole catalogue
(`+trainer.limit_val_batches`); test is never computed. Printed per loss: batches trained, training
seconds, seconds per step (after the first), the epoch time (measured or extrapolated), and
validation NDCG@10 / Recall@10. Losses run earlier into the same --out keep their figures in
results.json. A run's folder then serves `bench_index.py --run` (ANN on trained vectors).

    python benchmarks/bench_scale.py --sizes 1M:10M --stages train_ss_lazy --out /tmp/scale
    python benchmarks/bench_losses.py --data /tmp/scale/items1000000_events10000000/data --out /tmp/losses
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

from bench_scale import BIN, last_metrics, run_stage

LOSSES = {
    "sampled_lazy": ["loss=sampled_softmax", "loss.n_negatives=1024", "model.sparse_id=true"],
    "sampled_pop_lazy": [
        "loss=sampled_softmax",
        "loss.n_negatives=1024",
        "loss.sampler=popularity",
        "model.sparse_id=true",
    ],
    "in_batch_lazy": ["loss=in_batch", "model.sparse_id=true"],
    "full": ["loss=full_softmax"],
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a bench_scale.py dataset folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    p.add_argument("--epochs", type=int, default=1, help="epochs of the sampled and in-batch losses")
    p.add_argument("--full-steps", type=int, default=20, help="batches of the full softmax")
    p.add_argument("--val-users", type=int, default=10_240)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if not (args.data / "dataset.json").is_file():
        raise SystemExit(
            f"--data {args.data}: no dataset.json there (expected a bench_scale.py dataset folder)"
        )
    print("reproduce: python " + shlex.join(sys.argv), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_MODE": "offline"}
    eval_batch = 256  # configs/data/canonical.yaml eval_batch_size
    common = [f"data.root={args.data.resolve()}", "data=canonical", "data.load_images=false", "~encoder",
              "fusion=id_embedding", "user=sasrec_v1", "model.dim=64", "logger=csv", "test=false",
              f"data.batch_size={args.batch_size}", f"data.eval_batch_size={eval_batch}",
              f"+trainer.limit_val_batches={math.ceil(args.val_users / eval_batch)}"]  # fmt: skip
    earlier = args.out / "results.json"  # losses run before into this folder keep their figures
    results = json.loads(earlier.read_text()) if earlier.is_file() else {}
    for name in args.losses:
        run = args.out / name
        length = (
            ["trainer.max_epochs=1", f"+trainer.limit_train_batches={args.full_steps}"]
            if name == "full"
            else [f"trainer.max_epochs={args.epochs}"]
        )
        stage = run_stage(
            [str(BIN / "vrs-train"), *common, *LOSSES[name], *length, f"hydra.run.dir={run.resolve()}"],
            env,
            args.out,
            args.out / f"{name}.log",
        )
        m = last_metrics(run)
        stage.update({k.split("/")[-1]: round(v, 5) for k, v in m.items() if k.startswith(("time/", "val/"))})
        stage["batches_trained"] = int(m["step"]) + 1 if "step" in m else None  # the last step's index
        results[name] = stage
        tmp = earlier.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, earlier)
    # Batches in an epoch: counted by a loss that trained whole epochs.
    whole = [r for n, r in results.items() if n != "full" and r.get("batches_trained")]  # same --epochs
    per_epoch = whole[0]["batches_trained"] // args.epochs if whole else None
    print(f"\n{args.data}: validation on the first {args.val_users:,} validation users, full ranking")
    for name, r in results.items():
        if r.get("rc"):
            print(f"  {name:14s} FAILED (exit {r['rc']}): {r.get('error', '')[-400:]}")
            continue
        epoch = "?"
        if name != "full":
            epoch = f"{r.get('train_s', float('nan')) / args.epochs:.0f} s"
        elif per_epoch and "step_s" in r:
            epoch = f"{r['first_step_s'] + r['step_s'] * (per_epoch - 1):.0f} s extrapolated from {r['batches_trained']} batches"
        print(
            f"  {name:14s} {r.get('batches_trained')} batches in {r.get('train_s', float('nan')):.1f} s"
            f" (step {r.get('step_s', float('nan')):.4f} s, first {r.get('first_step_s', float('nan')):.3f} s);"
            f" epoch {epoch}; val NDCG@10 {r.get('ndcg_10', float('nan')):.4f},"
            f" R@10 {r.get('recall_10', float('nan')):.4f}; peak {r['peak_rss_gib']:.2f} GiB"
        )


if __name__ == "__main__":
    main()
