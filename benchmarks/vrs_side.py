"""What the reference scripts (`cornac_reference.py`, `recbole_reference.py`, `rectools_sasrec.py`,
`mmrec_reference.py`) take from vrs, in side environments where vrs is not installed: it is imported
from this checkout. The dataset reader, the split and the sequence tables need numpy, pandas, pyarrow,
pyyaml and torch only (the ranking metrics also torchmetrics); so do the guard on the pickled
checkpoints a script writes and reloads, the feature reader and the scoring of a reference's user and
item vectors by vrs's ranking code."""

from __future__ import annotations

import itertools
import pickle
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # this checkout's vrs


def vrs_io():
    """vrs.io of this checkout (hash records of written files)."""
    _on_path()
    import vrs.io

    return vrs.io


def own_checkpoint(path: Path) -> Path:
    """`path`, if a script wrote it with vrs.io's hash record beside it: reference checkpoints (such
    as RecTools') are pickles, so only a file whose record the script wrote, both this user's and
    writable by no one else, is loaded."""
    if not vrs_io().matches_record(path):
        raise SystemExit(
            f"refusing to load {path}: not a checkpoint this script wrote (its {path.name}.sha256 record "
            "is missing or differs, or one of them is not this user's or is writable by others); "
            "loading it could run code. Start a fresh --out folder."
        )
    return path


def load_own_checkpoint(path: Path) -> dict:
    """torch.load of a pickled checkpoint, after own_checkpoint has vetted it."""
    import torch

    return torch.load(own_checkpoint(path), map_location="cpu", weights_only=False)


def load_split(root: Path):
    """(SequenceData, Split, Dataset) of the canonical dataset folder `root`."""
    _on_path()
    from vrs.data.schema.files import load_dataset
    from vrs.data.sequences import SequenceData
    from vrs.data.splits import make_split

    ds = load_dataset(root, check_images=False)
    split = make_split(ds.interactions, "leave_one_out")
    return SequenceData(ds.items, ds.interactions, split), split, ds


def parse_grid(text: str) -> list[dict[str, float]]:
    """A reference's --grid: "k=64 lambda_reg=0.01,0.1" -> every combination as a dict (values with a
    "." or an "e" are floats, the others integers)."""
    axes = {}
    for part in text.split():
        name, _, values = part.partition("=")
        if not name or not values:
            raise SystemExit(f"--grid: {part!r} is not key=v1,v2,...")
        try:
            axes[name] = [float(v) if "." in v or "e" in v else int(v) for v in values.split(",")]
        except ValueError as e:
            raise SystemExit(f"--grid: {part!r}: {e}") from e
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def load_features(path: Path, n_items: int) -> np.ndarray:
    """(N, F) float32 features of the catalogue (a vrs feature cache's features.pt or an .npy file),
    checked against the dataset's N."""
    try:  # never unpickles objects: only plain arrays and tensors load
        if path.suffix == ".npy":
            feats = np.load(path, allow_pickle=False)
        else:
            import torch

            feats = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(feats, torch.Tensor):
                raise SystemExit(f"{path}: expected one (N, F) tensor, got {type(feats).__name__}")
            feats = feats.float().numpy()
    except (pickle.UnpicklingError, ValueError, RuntimeError) as e:
        raise SystemExit(f"{path}: not a plain array or tensor file ({type(e).__name__}: {e})") from e
    if feats.ndim != 2 or feats.shape[0] != n_items:
        raise SystemExit(f"{path}: expected ({n_items}, F) features (one row per item), got {feats.shape}")
    if not np.isfinite(feats).all():
        raise SystemExit(f"{path}: features hold NaN or infinite values")
    return feats.astype(np.float32)


def item_stats(data):
    """vrs's per-item facts for the list metrics: training counts and, where `data.item_table` has
    them, categories."""
    _on_path()
    import torch

    from vrs.list_metrics import ItemStats, category_codes

    items = data.item_table
    categories = category_codes(items["category"]) if "category" in items.columns else None
    return ItemStats(torch.as_tensor(data.train_counts, dtype=torch.float32), categories)


def score_vectors(
    data,
    targets: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    batch_size: int = 1024,
    per_target: dict | None = None,
) -> dict[str, float]:
    """vrs's full-ranking HR/NDCG@10 and list metrics@10 of `targets` ((user index, seq_pos) rows)
    when user u scores item i as users[u] . items[i] (rows in vrs's user and item order): the user's
    earlier items excluded, ties against the target. `data.item_table` gives the categories. A dict
    passed as `per_target` receives each target's user and item index, rank and seen flag (the rows
    of `write_user_run`)."""
    _on_path()
    import torch

    from vrs.data.sequences import EvalDataset
    from vrs.list_metrics import ListMetrics
    from vrs.metrics import RankingMetrics
    from vrs.retrieval import rank_and_topk

    n_items = data.n_items
    if items.shape[0] != n_items or users.shape[0] != data.n_users or users.shape[1] != items.shape[1]:
        raise ValueError(
            f"vectors: users {users.shape}, items {items.shape}; expected ({data.n_users}, k), ({n_items}, k)"
        )
    item_t = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
    user_t = torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32))
    metric = RankingMetrics(n_items, ks=(10, 20))
    lists = ListMetrics(n_items, ks=(10,))
    lists.set_stats(item_stats(data))
    dataset = EvalDataset(data, targets, max_len=1)
    kept: dict[str, list] = {"user": [], "target": [], "rank": [], "seen": []}
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        user_idx = torch.tensor([int(s["user"]) for s in samples], dtype=torch.long)
        rows = user_t[user_idx]
        seen_w = max(1, max(len(s["seen"]) for s in samples))
        seen = torch.full((len(samples), seen_w), -1, dtype=torch.long)
        for r, s in enumerate(samples):
            seen[r, seen_w - len(s["seen"]) :] = torch.from_numpy(s["seen"])
        target = torch.tensor([s["target"] for s in samples], dtype=torch.long)
        ranking = rank_and_topk(rows, item_t, target, seen, k=10)
        metric.update(ranking.ranks, ranking.target_seen)
        lists.update(ranking.top_items)
        if per_target is not None:
            kept["user"].append(user_idx.numpy())
            kept["target"].append(target.numpy())
            kept["rank"].append(ranking.ranks.reshape(-1).numpy().astype(np.int64))
            kept["seen"].append(ranking.target_seen.reshape(-1).numpy().astype(bool))
    if per_target is not None:
        per_target.update({k: np.concatenate(v) if v else np.zeros(0) for k, v in kept.items()})
    out = metric.compute()
    beyond = {k: float(v) for k, v in lists.compute().items() if k.endswith("_10")}
    return {
        "ndcg_10": float(out["ndcg_10"]),
        "hr_10": float(out["recall_10"]),
        "n_users": int(out["n_users"]),
        **beyond,
    }


def write_user_run(folder: Path, data, per_target: dict, metrics: dict[str, float], config: dict) -> Path:
    """A reference fit as a run folder that `vrs-compare` reads beside vrs's own runs: metrics.json
    (vrs's key names), config.yaml (`config`: what was fitted, `data.root`, `seed`) and
    test_users.parquet (one row per test target: user and target ids, rank, seen, cold = the target
    never occurs in training), so its paired tests over users can set a reference against a vrs model.
    Each file is written to a temp file, then renamed."""
    import pandas as pd
    import yaml

    io = vrs_io()
    folder.mkdir(parents=True, exist_ok=True)
    target = per_target["target"].astype(np.int64)
    frame = pd.DataFrame({
        "user": np.asarray(data.user_ids)[per_target["user"].astype(np.int64)],
        "target": data.item_table["item_id"].to_numpy()[target],
        "rank": per_target["rank"].astype(np.int64),
        "seen": per_target["seen"].astype(bool),
        "cold": np.asarray(data.train_counts)[target] == 0,
    })  # fmt: skip
    io.atomic_write(folder / "test_users.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    io.atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=True))
    return io.write_json(folder / "metrics.json", metrics)


def run_metrics(run: dict) -> dict[str, float]:
    """A reference fit's {"val": ..., "test": ...} scores under vrs's metric names: "hr_10" (this
    module's) and "hit@10" (RecBole's) become "test/recall_10" (HR@10 is recall@10 with one target per
    user), "ndcg@10" "test/ndcg_10"."""
    out = {}
    for stage in ("val", "test"):
        for key, value in run[stage].items():
            key = key.replace("@", "_")
            if key != "n_users":
                out[f"{stage}/{'recall_10' if key in ('hr_10', 'hit_10') else key}"] = float(value)
    return out
