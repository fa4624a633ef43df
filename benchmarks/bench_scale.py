"""How each vrs stage's wall time and peak memory grow with the catalogue and the log.

For each size (items:events) the script writes an ID-only dataset with Zipf item popularity and
browsing sessions (each session stays in one cluster of related items), then runs every stage as a
separate process, the way a user runs it, and reads that process's wall time and peak resident
memory (wait4):

  generate   this script's generator (numpy), written as a canonical dataset folder
  load       reading and validating the tables, the split and the training sequences
             (RecDataModule.setup; the sub-steps' seconds are printed too)
  train_fs   `vrs-train` ID-only SASRec (`user=sasrec_v1`, the model of the rows so far), full softmax
             (`linear_cross_entropy`), --steps steps
  train_ss   the same with 1,024 sampled negatives (logQ-corrected)
  train_ss_lazy  train_ss with `model.sparse_id=true`: sparse ID-table gradients and a lazy AdamW
             (touched rows only) instead of a dense update of the whole table every step
  train_ib   the same with in-batch negatives (`loss=in_batch`: the batch's other targets)
  train_ib_lazy  train_ib with `model.sparse_id=true`
  eval       `vrs-eval` full-ranking evaluation of every test user
  recommend  `vrs-recommend users=all k=10`

Training runs a fixed number of steps; the per-epoch time printed is extrapolated from them (it
says so): the first step, which carries one-off costs, plus the later steps' mean for the others.
Then, between consecutive sizes, each stage's growth exponent: log(t2 / t1) / log(events2 /
events1) (evaluation and recommend also against users x items).

    python benchmarks/bench_scale.py --sizes 10k:100k 100k:1M --out /tmp/scale
    python benchmarks/bench_scale.py --sizes 1M:10M --steps 20 --out /tmp/scale   # ~24 GiB machine

Each size's folder under --out is reused when it exists (the dataset is regenerated only if
missing); results.json there holds the figures. --stages runs some stages only (load always runs);
the others keep their figures from an earlier run in results.json.

    python benchmarks/bench_scale.py --sizes 10k:100k 100k:1M --stages train_ss train_ss_lazy --out /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLUSTER = 50  # items per cluster of related items
SESSION = 5  # mean events per browsing session
EVENTS_PER_USER = 20


def parse_count(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a count such as 10k or 1M, got {text!r}")
    return int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6}[m.group(2).lower()])


def generate(root: Path, n_items: int, n_events: int, seed: int = 0) -> dict:
    """Writes the dataset: users with about EVENTS_PER_USER events, in sessions of related items."""
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from vrs.data.schema.files import write_dataset

    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // EVENTS_PER_USER)
    n_clusters = max(1, n_items // CLUSTER)
    # Cluster popularity and item popularity within a cluster both Zipf(1): the catalogue's overall
    # popularity is then heavy-tailed, and a session's items are related.
    cluster_p = 1.0 / np.arange(1, n_clusters + 1)
    cluster_p /= cluster_p.sum()
    within_p = 1.0 / np.arange(1, CLUSTER + 1)
    within_p /= within_p.sum()
    users = np.sort(rng.integers(0, n_users, n_events))  # each user's events together
    users[:n_users] = np.arange(n_users)  # every user at least once ...
    users = np.sort(users)
    # ... sessions: a new one starts with probability 1 / SESSION at each event or a new user.
    new_session = (rng.random(n_events) < 1.0 / SESSION) | np.r_[True, users[1:] != users[:-1]]
    session = np.cumsum(new_session) - 1
    session_cluster = rng.choice(n_clusters, size=int(session[-1]) + 1, p=cluster_p)
    cluster = session_cluster[session]
    item = np.minimum(cluster * CLUSTER + rng.choice(CLUSTER, size=n_events, p=within_p), n_items - 1)
    position = np.arange(n_events) - np.searchsorted(users, users)  # index within the user's events
    interactions = pd.DataFrame({
        "user_id": np.char.add("u", users.astype(str)),
        "item_id": np.char.add("i", item.astype(str)),
        "timestamp": position.astype(np.int64),
    })  # fmt: skip
    items = pd.DataFrame({"item_id": np.char.add("i", np.arange(n_items).astype(str)), "title": ""})
    items["category"] = np.char.add("c", (np.arange(n_items) // CLUSTER).astype(str))
    write_dataset(
        root, items, interactions, name=root.name, source="benchmarks/bench_scale.py", licence="none"
    )
    return {"users": n_users, "items": n_items, "events": n_events}


LOAD = """
import json, sys, time
t = {}
t0 = time.perf_counter()
from vrs.data.schema.files import load_dataset
from vrs.data.splits import make_split
from vrs.data.sequences import SequenceData, TrainSequenceDataset
t1 = time.perf_counter(); ds = load_dataset(sys.argv[1], check_images=False); t["read_validate_s"] = time.perf_counter() - t1
t1 = time.perf_counter(); split = make_split(ds.interactions, "leave_one_out"); t["split_s"] = time.perf_counter() - t1
t1 = time.perf_counter(); data = SequenceData(ds.items, ds.interactions, split)
train = TrainSequenceDataset(data, 50); lengths = train.lengths; t["sequences_s"] = time.perf_counter() - t1
t["users_with_training"] = len(train)
print("STAGES " + json.dumps(t))
"""


def run_stage(cmd: list[str], env: dict, cwd: Path, log: Path) -> dict:
    """Runs `cmd`; its wall seconds, peak RSS (GiB) and exit code."""
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "wall_s": round(wall, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
        "rc": proc.returncode,
    }
    if proc.returncode != 0:
        result["error"] = log.read_text()[-2000:]
    return result


def last_metrics(run: Path) -> dict[str, float]:
    """The latest value of each column of the run's CSV metrics log ({} without one)."""
    import csv

    path = run / "csv" / "metrics.csv"
    out: dict[str, float] = {}
    if path.is_file():
        for row in csv.DictReader(path.open()):
            out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


def metrics_of(run: Path) -> dict:
    """The run's latest time/train_s, time/first_step_s and time/step_s, without the prefix."""
    m = last_metrics(run)
    return {key: m[f"time/{key}"] for key in ("train_s", "first_step_s", "step_s") if f"time/{key}" in m}


def one_size(args, n_items: int, n_events: int) -> dict:
    name = f"items{n_items}_events{n_events}"
    folder = args.out / name
    data = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_MODE": "offline"}
    earlier = folder / "results.json"
    result: dict = json.loads(earlier.read_text()) if earlier.is_file() else {}
    result.update({"items": n_items, "events": n_events})
    if not (data / "dataset.json").is_file():
        start = time.perf_counter()
        result["shape"] = generate(data, n_items, n_events)
        result["generate"] = {"wall_s": round(time.perf_counter() - start, 2)}
    load = run_stage(
        [sys.executable, "-c", LOAD, str(data)], {**env, "PYTHONPATH": str(REPO)}, folder, folder / "load.log"
    )
    match = re.search(r"^STAGES (.*)$", (folder / "load.log").read_text(), re.M)
    result["load"] = {**load, **(json.loads(match.group(1)) if match else {})}
    common = [f"data.root={data}", "data=canonical", "data.load_images=false", "~encoder", "fusion=id_embedding",
              "user=sasrec_v1", "model.dim=64", "logger=csv", "test=false", "trainer.max_epochs=1",
              f"+trainer.limit_train_batches={args.steps}", "+trainer.limit_val_batches=1",
              f"data.batch_size={args.batch_size}"]  # fmt: skip
    users = result["load"].get("users_with_training", 0)
    batches = math.ceil(users / args.batch_size) if users else 0
    for stage, loss in (
        ("train_fs", ["loss=full_softmax"]),
        ("train_ss", ["loss=sampled_softmax", "loss.n_negatives=1024"]),
        ("train_ss_lazy", ["loss=sampled_softmax", "loss.n_negatives=1024", "model.sparse_id=true"]),
        ("train_ib", ["loss=in_batch"]),
        ("train_ib_lazy", ["loss=in_batch", "model.sparse_id=true"]),
    ):
        if stage not in args.stages:
            continue
        run = folder / stage
        out = run_stage(
            [str(BIN / "vrs-train"), *common, *loss, f"hydra.run.dir={run}"],
            env,
            folder,
            folder / f"{stage}.log",
        )
        timed = metrics_of(run)
        if "train_s" in timed and batches:
            out["steps"] = min(args.steps, batches)
            # The first step carries one-off costs (loader start, optimiser state for the whole
            # table): the epoch is extrapolated from the later steps' mean when there are any.
            step = timed.get("step_s", timed["train_s"] / out["steps"])
            first = timed.get("first_step_s", step)
            out["first_step_s"] = round(first, 4)
            out["s_per_step"] = round(step, 4)
            out["epoch_s_extrapolated"] = round(first + step * (batches - 1), 1)
        ckpts = sorted((run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").is_dir() else []
        if ckpts:
            out["checkpoint_mib"] = round(ckpts[-1].stat().st_size / 2**20, 1)
        result[stage] = out
    ckpts = sorted((folder / "train_fs" / "checkpoints").glob("*.ckpt"))
    if ckpts and {"eval", "recommend"} & set(args.stages):
        ckpt = ckpts[-1]
        if "eval" in args.stages:
            result["eval"] = run_stage([str(BIN / "vrs-eval"), f"ckpt_path={ckpt}", "data=canonical", f"data.root={data}",
                                    "data.load_images=false", "stages=[test]", "logger=none",
                                    f"hydra.run.dir={folder / 'eval'}"], env, folder, folder / "eval.log")  # fmt: skip
        if "recommend" in args.stages:
            result["recommend"] = run_stage([str(BIN / "vrs-recommend"), f"ckpt_path={ckpt}", "data=canonical",
                                         f"data.root={data}", "data.load_images=false", "users=all", "k=10",
                                         "explain=0", f"out={folder / 'recs.parquet'}",
                                         f"hydra.run.dir={folder / 'recommend'}"], env, folder, folder / "recommend.log")  # fmt: skip
    result["users"] = users
    tmp = folder / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, folder / "results.json")
    return result


STAGES = (
    "generate",
    "load",
    "train_fs",
    "train_ss",
    "train_ss_lazy",
    "train_ib",
    "train_ib_lazy",
    "eval",
    "recommend",
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["10k:100k", "100k:1M"], help="items:events, e.g. 1M:10M")
    p.add_argument("--steps", type=int, default=20, help="training steps timed per loss")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--stages", nargs="+", choices=STAGES[2:], default=list(STAGES[2:]), help="stages to run")
    args = p.parse_args(argv)
    print("reproduce: python " + shlex.join(sys.argv), flush=True)
    results = []
    for size in args.sizes:
        n_items, n_events = (parse_count(x) for x in size.split(":"))
        r = one_size(args, n_items, n_events)
        results.append(r)
        print(f"\n{n_items:,} items, {n_events:,} events, {r['users']:,} users with training events")
        for stage in STAGES:
            if stage in r:
                s = r[stage]
                extra = {k: v for k, v in s.items() if k not in ("wall_s", "peak_rss_gib", "rc", "error")}
                print(
                    f"  {stage:10s} {s['wall_s']:9.1f} s  peak {s.get('peak_rss_gib', float('nan')):6.2f} GiB  {extra}"
                )
                if s.get("rc"):
                    print(f"    FAILED (exit {s['rc']}): {s.get('error', '')[-400:]}")
    for a, b in zip(results, results[1:], strict=False):
        print(
            f"\ngrowth exponents {a['items']:,}:{a['events']:,} -> {b['items']:,}:{b['events']:,} (in events)"
        )
        for stage in STAGES:
            key = "epoch_s_extrapolated" if stage.startswith("train") else "wall_s"
            if stage in a and stage in b and a[stage].get(key) and b[stage].get(key):
                e = math.log(b[stage][key] / a[stage][key]) / math.log(b["events"] / a["events"])
                line = f"  {stage:10s} time {e:5.2f}"
                if stage in ("eval", "recommend"):
                    ui = math.log(b["users"] * b["items"] / (a["users"] * a["items"]))
                    line += f"  (vs users x items: {math.log(b[stage][key] / a[stage][key]) / ui:5.2f})"
                if a[stage].get("peak_rss_gib") and b[stage].get("peak_rss_gib"):
                    m = math.log(b[stage]["peak_rss_gib"] / a[stage]["peak_rss_gib"]) / math.log(
                        b["events"] / a["events"]
                    )
                    line += f"  memory {m:5.2f}"
                print(line)


if __name__ == "__main__":
    main()
