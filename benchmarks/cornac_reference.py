"""Cornac 3's BPR and VBPR on a vrs dataset folder under vrs's protocol: the references for
`experiment=bpr_mf` and `experiment=vbpr`.

Cornac fits on the training events of vrs's own leave-one-out split (per user, the last event is the
test target, the one before it the validation target); vrs's ranking code scores it: every target
against the whole catalogue, the user's earlier items excluded, ties counted against the target.
Hyper-parameters are chosen on validation NDCG@10 over a small grid (--grid), then the chosen
setting is refitted with each --seeds value and tested. With BPR, items Cornac never saw in
training score below every other item; VBPR scores them from their image features alone (its item
factor and bias are zero there), as the model defines.

--model VBPR reads the image features from --features: a vrs feature-cache entry (`features.pt`,
(N, F) float32 in catalogue order, as `vrs-extract` writes it; loaded with weights_only=True and its
shape checked against the dataset) or a .npy file of the same shape.

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE (Cornac must never become a vrs dependency):

    python3.11 -m venv /work/venvs/cornac
    /work/venvs/cornac/bin/pip install "cornac>=2,<4" pandas pyarrow pyyaml torchmetrics
    /work/venvs/cornac/bin/pip install torch==2.14.1   # vrs's ranking code (and Cornac's VBPR) use it

(torch 2.14.1 installs from this machine's disk; any other version downloads gigabytes.) vrs itself
is not installed there: the script puts its checkout first on sys.path and imports only the dataset
reader, the split, the sequence tables and the ranking metrics. From the repository root:

    OMP_NUM_THREADS=1 /work/venvs/cornac/bin/python benchmarks/cornac_reference.py \\
        --data data/real_images/ml100k --out RUN_DIR
    /work/venvs/cornac/bin/python benchmarks/cornac_reference.py --data DIR --out /tmp/x \\
        --grid "k=64 lambda_reg=0.01 learning_rate=0.05 max_iter=20" --seeds 0
    OMP_NUM_THREADS=1 /work/venvs/cornac/bin/python benchmarks/cornac_reference.py --model VBPR \\
        --data DIR --features CACHE/image-<key>/features.pt --out RUN_DIR

Writes RUN_DIR/results.json: every grid point's validation HR/NDCG@10, the chosen one, and per seed
its validation and test HR@10 / NDCG@10 (mean and std over seeds), with the wall time of each fit;
and RUN_DIR/seed<k>/ per test fit (metrics.json, config.yaml, test_users.parquet: `vrs-compare`'s
paired tests over users against vrs's runs on the same dataset, e.g.
`vrs-compare runs/bpr_mf/ml100k RUN_DIR --metric recall_10 --mixed-datasets`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vrs_side import (  # noqa: E402  (shared)
    load_features,
    load_split,
    parse_grid,
    run_metrics,
    score_vectors,
    vrs_io,
    write_user_run,
)

DEFAULT_GRIDS = {
    "BPR": "k=64 lambda_reg=0.001,0.01,0.1 learning_rate=0.01,0.05 max_iter=50,100,200,400",
    # Cornac's VBPR defaults are k=k2=10, lr 0.005, lambda_w=lambda_b=0.01, 50 epochs of batch 100.
    "VBPR": "k=32 k2=32 learning_rate=0.001,0.005 lambda_w=0.001,0.01,0.1 lambda_b=0.01 n_epochs=20,50 batch_size=100",
}


def load(root: Path):
    data, _, ds = load_split(root)
    data.item_table = ds.items  # the categories of the beyond-accuracy metrics
    return data


def train_triples(data) -> list[tuple[str, str, float]]:
    """(user index, item index, 1) for every training event, as Cornac's string ids."""
    out = []
    for u in range(data.n_users):
        off = int(data.offsets[u])
        for i in data.items_flat[off : off + int(data.train_len[u])]:
            out.append((str(u), str(int(i)), 1.0))
    return out


def fit(triples, params: dict, seed: int, features: np.ndarray | None = None):
    import cornac

    train_set = cornac.data.Dataset.from_uir(triples, seed=seed)
    if features is not None:
        from cornac.data import ImageModality

        image = ImageModality(features=features, ids=[str(i) for i in range(len(features))])
        train_set.add_modalities(item_image=image)
        image.build(id_map=train_set.iid_map)
        model = cornac.models.VBPR(
            k=int(params["k"]),
            k2=int(params["k2"]),
            n_epochs=int(params["n_epochs"]),
            batch_size=int(params["batch_size"]),
            learning_rate=float(params["learning_rate"]),
            lambda_w=float(params["lambda_w"]),
            lambda_b=float(params["lambda_b"]),
            lambda_e=float(params.get("lambda_e", 0.0)),
            seed=seed,
            verbose=False,
        )
        start = time.perf_counter()
        model.fit(train_set)
        return model, train_set, time.perf_counter() - start
    model = cornac.models.BPR(
        k=int(params["k"]),
        max_iter=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        lambda_reg=float(params["lambda_reg"]),
        seed=seed,
        verbose=False,
    )
    start = time.perf_counter()
    model.fit(train_set)
    return model, train_set, time.perf_counter() - start


def vbpr_vectors(model, train_set, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VBPR's score as one dot product: item [gamma_i, E f_i, beta_i + beta' f_i] (gamma_i = beta_i =
    0 for items unseen in training), user [gamma_u, theta_u, 1]."""
    n_items = len(features)
    row = np.array([train_set.iid_map.get(str(i), -1) for i in range(n_items)], dtype=np.int64)
    known = row >= 0
    k = model.gamma_item.shape[1]
    gamma = np.zeros((n_items, k), dtype=np.float32)
    gamma[known] = model.gamma_item[row[known]]
    bias = (features @ np.asarray(model.beta_prime, dtype=np.float32)).ravel()
    bias[known] += np.asarray(model.beta_item, dtype=np.float32).ravel()[row[known]]
    items = np.concatenate(
        [gamma, features @ np.asarray(model.emb_matrix, dtype=np.float32), bias[:, None]], 1
    )
    users = np.concatenate(
        [model.gamma_user, model.theta_user, np.ones((len(model.gamma_user), 1))], 1
    ).astype(np.float32)
    return items.astype(np.float32), users


def score(
    model,
    train_set,
    data,
    targets: np.ndarray,
    batch_size: int = 1024,
    features: np.ndarray | None = None,
    per_target: dict | None = None,
) -> dict[str, float]:
    """vrs's full-ranking HR/NDCG@10 of `targets` ((user index, seq_pos) rows) under a fitted model
    (`per_target`: see `vrs_side.score_vectors`)."""
    n_items = data.n_items
    if features is not None:
        items, cornac_users = vbpr_vectors(model, train_set, features)
    else:
        # vrs item index -> Cornac's row, or -1 for items never in training (ranked below every other).
        row = np.array([train_set.iid_map.get(str(i), -1) for i in range(n_items)], dtype=np.int64)
        known = row >= 0
        factors = np.asarray(model.i_factors, dtype=np.float32)
        biases = np.asarray(model.i_biases, dtype=np.float32).reshape(-1)
        k = factors.shape[1]
        # Item side [factors, bias, unknown flag]; user side [factors, 1, 1]: score = u.i + b_i, or
        # -1e30 for an unknown item.
        items = np.zeros((n_items, k + 2), dtype=np.float32)
        items[known, :k] = factors[row[known]]
        items[known, k] = biases[row[known]]
        items[~known, k + 1] = -1e30
        cornac_users = np.concatenate(
            [np.asarray(model.u_factors, dtype=np.float32), np.ones((len(model.u_factors), 2), np.float32)], 1
        )
    # Cornac's user rows in vrs's user order (a user without training events keeps zeros).
    users = np.zeros((data.n_users, items.shape[1]), dtype=np.float32)
    for u in range(data.n_users):
        r = train_set.uid_map.get(str(u))
        if r is not None:
            users[u] = cornac_users[r]
    return score_vectors(data, targets, users, items, batch_size, per_target)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a vrs dataset folder (vrs-prepare's output)")
    p.add_argument("--out", type=Path, required=True, help="run folder (results.json)")
    p.add_argument("--model", choices=sorted(DEFAULT_GRIDS), default="BPR")
    p.add_argument("--features", type=Path, help="VBPR: the items' image features (features.pt or .npy)")
    p.add_argument("--grid", help="name=v1,v2 ... (the model's arguments; default: DEFAULT_GRIDS)")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the chosen setting's test fits")
    p.add_argument("--grid-seed", type=int, default=0, help="seed of the validation grid's fits")
    args = p.parse_args(argv)
    if (args.model == "VBPR") != (args.features is not None):
        p.error("--features is needed by --model VBPR, and only by it")
    print("reproduce: /work/venvs/cornac/bin/python " + shlex.join(sys.argv), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load(args.data)
    features = load_features(args.features, data.n_items) if args.features is not None else None
    triples = train_triples(data)
    print(
        f"{args.data}: {data.n_users} users, {data.n_items} items, {len(triples)} training events", flush=True
    )
    grid = []
    for params in parse_grid(args.grid or DEFAULT_GRIDS[args.model]):
        model, train_set, seconds = fit(triples, params, args.grid_seed, features)
        val = score(model, train_set, data, data.val_targets, features=features)
        grid.append({"params": params, "val": val, "fit_seconds": seconds})
        print(
            f"{params}: val NDCG@10 {val['ndcg_10']:.4f} HR@10 {val['hr_10']:.4f} ({seconds:.1f} s)",
            flush=True,
        )
    best = max(grid, key=lambda g: g["val"]["ndcg_10"])["params"]
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        model, train_set, seconds = fit(triples, best, seed, features)
        per_target: dict = {}
        runs.append({
            "seed": seed,
            "val": score(model, train_set, data, data.val_targets, features=features),
            "test": score(model, train_set, data, data.test_targets, features=features, per_target=per_target),
            "fit_seconds": seconds,
        })  # fmt: skip
        config = {"reference": f"cornac.models.{args.model}", "params": best, "seed": seed,
                  "data": {"root": str(args.data)}}  # fmt: skip
        write_user_run(args.out / f"seed{seed}", data, per_target, run_metrics(runs[-1]), config)
        print(
            f"seed {seed}: test NDCG@10 {runs[-1]['test']['ndcg_10']:.4f} HR@10 {runs[-1]['test']['hr_10']:.4f}"
        )
    summary = {
        f"{split}_{m}_{stat}": float(fn([r[split][m] for r in runs]))
        for split in ("val", "test")
        for m in ("hr_10", "ndcg_10")
        for stat, fn in (("mean", np.mean), ("std", lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0))
    }
    result = {"data": str(args.data), "model": f"cornac.models.{args.model}", "chosen": best, "grid": grid,
              "runs": runs, "summary": summary, "command": shlex.join(sys.argv)}  # fmt: skip
    vrs_io().write_json(args.out / "results.json", result)  # temp file, then rename
    print(f"chosen {best}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()))
    print(f"-> {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
