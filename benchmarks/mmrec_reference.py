"""MMRec's FREEDOM under vrs's protocol: the reference of `experiment=freedom`.

MMRec (github.com/enoche/MMRec, the multimodal recommendation toolbox whose leaderboard FREEDOM comes
from) is not a package: this script imports its model and trainer from a checkout given by --mmrec,
trains FREEDOM there on vrs's split of a vrs dataset folder, with the same frozen image and text
features vrs reads (--image, --text: a vrs feature cache's features.pt files, or .npy), and scores
validation and test with vrs's own ranking code (full ranking over the catalogue, the user's earlier
items excluded, ties against the target; `vrs_side.score_vectors`), so both sit in one table.

Protocol: MMRec's FREEDOM settings (configs/model/FREEDOM.yaml: width 64, kNN item graph of k = 10
over image and text, image weight 0.1, 1 item-graph and 2 user-item layers, BPR with one negative,
Adam lr 1e-3, batches of 2,048 (user, item) pairs); its grid (`dropout` = edge pruning share 0.8,
0.9 x `reg_weight` 0, 1e-5, 1e-4, 1e-3) is searched on vrs's validation NDCG@10 with --grid-seed,
evaluated every epoch, early stopping after --patience epochs without a gain (MMRec: 20); the
chosen point then runs with every --seeds seed, its test scored at its best validation epoch (whose
weights are kept in memory). MMRec's own split, evaluation and model selection (Recall@20, its
test evaluated with training items masked only) are not used.

Training data: every (user, item) pair of vrs's training events, once (MMRec's x_label 0); the
validation and test targets are written with labels 1 and 2 but only vrs's code scores them. User
and item ids are vrs's indices; the catalogue (N items) is the feature files' rows, items without a
training event included. FREEDOM writes its kNN graph (mm_adj_*.pt) into the dataset folder and
torch.load()s it when present: the script removes its own copy before each model is built, so
nothing it did not write is ever unpickled.

RUNS IN A SEPARATE ENVIRONMENT, NOT THE vrs ONE (MMRec's code is GPL-3.0 and stays outside vrs):

    git clone https://github.com/enoche/MMRec /work/venvs/mmrec-src   # tested at e775373
    python3.11 -m venv /work/venvs/mmrec
    /work/venvs/mmrec/bin/pip install torch==2.14.1 "numpy<2.3" scipy pandas pyarrow pyyaml torchmetrics \
        torchvision==0.29.1 matplotlib lmdb pillow   # MMRec imports them all

From the repository root (MovieLens-100K's feature cache keys as `vrs-extract` names them):

    OMP_NUM_THREADS=1 /work/venvs/mmrec/bin/python benchmarks/mmrec_reference.py \\
        --mmrec /work/venvs/mmrec-src/src --data data/real_images/ml100k \\
        --image cache/features/image-<key>/features.pt --text cache/features/text-<key>/features.pt \\
        --out runs/baselines/mmrec_freedom_ml100k
    ... --grid "dropout=0.8 reg_weight=0" --seeds 0 --epochs 2   # a quick check

Writes RUN_DIR/results.json: every grid point's best validation NDCG@10, the chosen point, and per
seed its validation curve, best epoch and validation / test HR@10, NDCG@10 and list metrics@10, with
the wall time of each fit (`experiments/baselines/summarize.py` reads it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vrs_side import load_features, load_split, parse_grid, score_vectors, vrs_io  # noqa: E402  (shared)

DEFAULT_GRID = "dropout=0.8,0.9 reg_weight=0,1e-05,1e-04,1e-03"


def training_pairs(data) -> np.ndarray:
    """(E, 2) unique (user index, item index) pairs of vrs's training events, in user order."""
    users = np.repeat(np.arange(data.n_users), data.lengths)
    pos = np.arange(len(data.items_flat)) - data.offsets[users]
    train = pos < data.train_len[users]
    pairs = np.stack([users[train], data.items_flat[train]], 1).astype(np.int64)
    _, first = np.unique(pairs, axis=0, return_index=True)
    return pairs[np.sort(first)]


def write_mmrec_dataset(data, folder: Path, image: np.ndarray, text: np.ndarray) -> int:
    """MMRec's dataset files in `folder`: vrs.inter (userID, itemID, x_label) and the two feature
    arrays. Returns the number of training pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = training_pairs(data)
    rows = [f"{u}\t{i}\t0\n" for u, i in pairs.tolist()]
    for label, targets in ((1, data.val_targets), (2, data.test_targets)):
        rows += [f"{u}\t{int(data.user_seqs[u][p])}\t{label}\n" for u, p in targets.tolist()]
    (folder / "vrs.inter").write_text("userID\titemID\tx_label\n" + "".join(rows))
    np.save(folder / "image_feat.npy", image)
    np.save(folder / "text_feat.npy", text)
    return len(pairs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mmrec", type=Path, required=True, help="MMRec's src folder (holds models/, configs/)")
    p.add_argument("--data", type=Path, required=True, help="a vrs dataset folder")
    p.add_argument("--image", type=Path, required=True, help="(N, F) image features: features.pt or .npy")
    p.add_argument("--text", type=Path, required=True, help="(N, F) text features: features.pt or .npy")
    p.add_argument("--out", type=Path, required=True, help="run folder (created; must not hold results.json)")
    p.add_argument(
        "--grid", default=DEFAULT_GRID, help=f"FREEDOM settings searched (default {DEFAULT_GRID!r})"
    )
    p.add_argument("--seeds", default="0,1,2", help="seeds of the chosen point, comma-separated")
    p.add_argument("--grid-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1000, help="MMRec's default")
    p.add_argument("--patience", type=int, default=20, help="epochs without a validation gain (MMRec's 20)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if not (args.mmrec / "models" / "freedom.py").is_file():
        p.error(f"--mmrec {args.mmrec}: no models/freedom.py; give MMRec's src folder")
    if not (args.data / "interactions.parquet").is_file():
        p.error(f"--data {args.data}: no interactions.parquet: not a vrs dataset folder")
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = parse_grid(args.grid)
    out = args.out.resolve()
    if (out / "results.json").exists():
        sys.exit(f"{out / 'results.json'} exists: this run is finished; give another --out")
    out.mkdir(parents=True, exist_ok=True)
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]), flush=True)

    import scipy.sparse
    import torch

    torch.set_num_threads(args.threads)
    if not hasattr(scipy.sparse.dok_matrix, "_update"):
        # FREEDOM builds its adjacency with dok_matrix._update, which SciPy 1.12 removed; the same
        # bulk insert into the matrix's own dict (values are all 1).
        scipy.sparse.dok_matrix._update = lambda self, d: self._dict.update(d)
    data, _, ds = load_split(args.data.resolve())
    data.item_table = ds.items  # categories for the list metrics
    image = load_features(args.image.resolve(), data.n_items)
    text = load_features(args.text.resolve(), data.n_items)
    dataset_dir = out / "data" / "vrs"
    n_pairs = write_mmrec_dataset(data, dataset_dir, image, text)
    print(f"{args.data}: {data.n_users} users, {data.n_items} items, {n_pairs} training pairs", flush=True)

    src = str(args.mmrec.resolve())
    sys.path.insert(0, src)
    cwd = os.getcwd()
    os.chdir(src)  # MMRec's Config reads configs/*.yaml from the working folder
    try:
        from common.trainer import Trainer
        from models.freedom import FREEDOM
        from utils.configurator import Config
        from utils.dataloader import TrainDataLoader
        from utils.dataset import RecDataset
        from utils.utils import init_seed
    except ImportError as e:
        sys.exit(f"{e}: run this with the MMRec environment and --mmrec pointing at MMRec's src (docstring)")

    def fit(params: dict[str, float], seed: int) -> dict:
        config = Config(
            "FREEDOM",
            "vrs",
            {
                "use_gpu": False,
                "gpu_id": 0,
                "data_path": str(out / "data") + os.sep,
                "inter_file_name": "vrs.inter",
                "USER_ID_FIELD": "userID",
                "ITEM_ID_FIELD": "itemID",
                "inter_splitting_label": "x_label",
                "field_separator": "\t",
                "vision_feature_file": "image_feat.npy",
                "text_feature_file": "text_feat.npy",
                "filter_out_cod_start_users": True,
                "seed": seed,
                "epochs": args.epochs,
                "stopping_step": args.patience,
                **params,
            },
        )
        init_seed(seed)
        rec = RecDataset(config)
        rec.user_num, rec.item_num = data.n_users, data.n_items  # the whole catalogue, as vrs ranks it
        train, _, _ = rec.split()
        str(
            train
        )  # MMRec sets a dataset's inter_num in __str__ (its quick_start logs it), the loader needs it
        loader = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
        loader.pretrain_setup()
        for old in dataset_dir.glob("mm_adj_*.pt"):
            old.unlink()  # this script's own kNN graph file: rebuilt, never unpickled
        model = FREEDOM(config, loader)
        trainer = Trainer(config, model)
        curve: list[float] = []
        best = {"ndcg": float("-inf"), "epoch": -1, "vectors": None}
        start = time.perf_counter()
        for epoch in range(args.epochs):
            model.pre_epoch_processing()
            loss, _ = trainer._train_epoch(loader, epoch)
            if torch.is_tensor(loss):  # MMRec's signal of a NaN loss
                print(f"  epoch {epoch}: NaN loss, stopped", flush=True)
                break
            trainer.lr_scheduler.step()
            model.eval()
            with torch.no_grad():
                users, items = (t.numpy().copy() for t in model.forward(model.norm_adj))
            val = score_vectors(data, data.val_targets, users, items)
            curve.append(val["ndcg_10"])
            if val["ndcg_10"] > best["ndcg"]:
                best = {"ndcg": val["ndcg_10"], "epoch": epoch, "vectors": (users, items), "val": val}
            print(f"  epoch {epoch}: loss {loss:.4f}, validation NDCG@10 {val['ndcg_10']:.4f}", flush=True)
            if epoch - best["epoch"] >= args.patience:
                break
        users, items = best["vectors"]
        return {
            "seed": seed,
            "params": params,
            "best_epoch": best["epoch"],
            "epochs_run": len(curve),
            "val_curve": curve,
            "fit_seconds": time.perf_counter() - start,
            "val": best["val"],
            "test": score_vectors(data, data.test_targets, users, items),
        }

    try:
        searched = []
        for params in grid:
            print(f"grid point {params}, seed {args.grid_seed}", flush=True)
            run = fit(params, args.grid_seed)
            searched.append(run)
            print(f"  -> best validation NDCG@10 {run['val']['ndcg_10']:.4f} at epoch {run['best_epoch']}")
        chosen = max(searched, key=lambda r: r["val"]["ndcg_10"])["params"]
        runs = []
        for seed in seeds:
            done = [r for r in searched if r["params"] == chosen and r["seed"] == seed]
            run = done[0] if done else fit(chosen, seed)
            runs.append(run)
            print(f"chosen {chosen}, seed {seed}: test NDCG@10 {run['test']['ndcg_10']:.4f}", flush=True)
    finally:
        os.chdir(cwd)

    def summary(part: str, key: str) -> dict[str, float]:
        values = [r[part][key] for r in runs]
        return {f"{part}_{key}_mean": float(np.mean(values)), f"{part}_{key}_std": float(np.std(values, ddof=1))
                if len(values) > 1 else 0.0}  # fmt: skip

    results = {
        "model": "MMRec FREEDOM",
        "mmrec": src,
        "data": str(args.data.resolve()),
        "fingerprint": ds.meta.get("fingerprint"),
        "features": {"image": str(args.image.resolve()), "text": str(args.text.resolve())},
        "training_pairs": n_pairs,
        "grid": [
            {"params": r["params"], "val_ndcg_10": r["val"]["ndcg_10"], "best_epoch": r["best_epoch"]}
            for r in searched
        ],  # fmt: skip
        "chosen": chosen,
        "runs": [{k: v for k, v in r.items()} for r in runs],
        **summary("val", "ndcg_10"),
        **summary("test", "hr_10"),
        **summary("test", "ndcg_10"),
    }
    vrs_io().write_json(out / "results.json", results)  # temp file, then rename
    print(
        f"chosen {chosen}: test HR@10 {results['test_hr_10_mean']:.4f} ± {results['test_hr_10_std']:.4f}, "
        f"NDCG@10 {results['test_ndcg_10_mean']:.4f} ± {results['test_ndcg_10_std']:.4f} -> {out / 'results.json'}"
    )


if __name__ == "__main__":
    main()
