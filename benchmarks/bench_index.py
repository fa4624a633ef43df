"""Build time, throughput and recall of every `ItemIndex` backend against exact search.

Items and queries are random Gaussian vectors by default, the hardest case for ANN indexes (no
cluster structure for IVF lists or graph neighbourhoods to exploit). With --run they are a trained
run's: its item vectors, and the user vectors of its first --n-queries test users as queries (the
searches `vrs-recommend index=...` makes). For each backend and search setting it prints the
build time, queries/s, recall@K against `ExactItemIndex` and the speed-up over exact queries/s, then
whether any setting meets the issue's target (recall@K >= 0.95 at >= 10x exact queries/s). Each
search time is the best of --repeats runs after a short warm-up (the machine may be shared).

    python benchmarks/bench_index.py --n-items 1000000 --dim 64 --n-queries 1000 --k 100
    python benchmarks/bench_index.py --run runs/beauty/seed0 --n-queries 1000 --k 100
"""

from __future__ import annotations

import argparse
import shlex
import time

import faiss
import torch
from timing import best_time
from torch import Tensor

from vrs.retrieval import ItemIndex, build_index


def search_all(index: ItemIndex, queries: Tensor, k: int, batch_size: int) -> Tensor:
    """(B, K) ids, searched `batch_size` queries at a time."""
    return torch.cat([index.search(q, k)[1] for q in torch.split(queries, batch_size)])


def recall(idx: Tensor, ref: Tensor) -> float:
    """Fraction of the exact top-K ids found, averaged over queries."""
    hits = torch.cat(
        [(a[:, :, None] == r[:, None, :]).any(1) for a, r in zip(idx.split(256), ref.split(256), strict=True)]
    )
    return hits.float().mean().item()


def run_vectors(run_dir: str, data_root: str | None, n_queries: int) -> tuple[Tensor, Tensor]:
    """A trained run's (N, D) item vectors and the (B, D) vectors of its first test users."""
    from vrs import load_run

    run = load_run(run_dir, **({"root": data_root} if data_root else {}))
    users = []
    with torch.no_grad():
        items = run.net.encode_items().float()
        for batch in run.datamodule.eval_dataloader("test"):
            users.append(run.net.encode_users(batch, items).float())
            if sum(len(u) for u in users) >= n_queries:
                break
    return items.contiguous(), torch.cat(users)[:n_queries].contiguous()


def as_flags(args: argparse.Namespace) -> list[str]:
    """Every option's effective value, so the printed command reproduces the run as defaults change."""
    flags = []
    for key, value in vars(args).items():
        if value is not None:
            values = value if isinstance(value, list) else [value]
            flags += ["--" + key.replace("_", "-"), *map(str, values)]
    return flags


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--n-queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--backends", nargs="+", default=["exact", "flat", "ivf", "hnsw"])
    p.add_argument("--batch-size", type=int, default=1000, help="queries per search call")
    p.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the library's)")
    p.add_argument("--nprobe", type=int, nargs="+", default=None, help="default: nlist/32 ... nlist/2")
    p.add_argument("--m", type=int, default=32, help="HNSW links per node")
    p.add_argument("--ef-construction", type=int, default=None, help="default: the library's")
    p.add_argument("--ef-search", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", help="a vrs-train run folder: its item vectors and test users' vectors")
    p.add_argument("--data-root", help="with --run: the dataset folder, if not the run's (relative) one")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    n, d, k = args.n_items, args.dim, args.k

    print(f"torch {torch.__version__}, faiss {faiss.__version__}, threads {args.threads}")
    print("reproduce: python benchmarks/bench_index.py " + shlex.join(as_flags(args)))
    if args.run:
        items, queries = run_vectors(args.run, args.data_root, args.n_queries)
        n, d = items.shape
        print(
            f"N={n} item vectors of run {args.run}, D={d}, {len(queries)} of its test users' vectors, K={k}"
        )
    else:
        print(f"N={n} random Gaussian items, D={d}, {args.n_queries} random Gaussian queries, K={k}")
        g = torch.Generator().manual_seed(args.seed)
        items = torch.randn(n, d, generator=g)
        queries = torch.randn(args.n_queries, d, generator=g)

    def measure(index: ItemIndex) -> tuple[float, Tensor]:
        index.search(queries[:16], k)  # warm-up: first-touch of the index's memory, thread start
        box: list[Tensor] = []
        dt = best_time(
            lambda: box.append(search_all(index, queries, k, args.batch_size)), args.repeats, warmup=False
        )
        return args.n_queries / dt, box[-1]

    exact = build_index(items, "exact")
    exact_qps, ref = measure(exact)
    rows = []  # (backend, params, build s, queries/s, recall)
    print(
        f"{'backend':<7} {'params':<50} {'build s':>8} {'queries/s':>10} {'recall@' + str(k):>10} {'speed-up':>9}"
    )

    def report(backend: str, params: str, build_s: float, qps: float, rec: float) -> None:
        rows.append((backend, params, build_s, qps, rec))
        print(
            f"{backend:<7} {params:<50} {build_s:8.1f} {qps:10.1f} {rec:10.4f} {qps / exact_qps:8.1f}x",
            flush=True,
        )

    for backend in args.backends:
        if backend == "exact":
            report("exact", "-", 0.0, exact_qps, 1.0)
            continue
        kwargs: dict[str, int] = {}
        if backend == "ivf" and args.nlist:
            kwargs["nlist"] = args.nlist
        if backend == "hnsw":
            kwargs["m"] = args.m
            if args.ef_construction:
                kwargs["ef_construction"] = args.ef_construction
        start = time.perf_counter()
        index = build_index(items, backend, **kwargs)
        build_s = time.perf_counter() - start
        # The search knob swept on one built index (searches are cheap next to builds); the
        # library's default setting is marked.
        knob = {"ivf": "nprobe", "hnsw": "ef_search"}.get(backend)
        default = index.params.get(knob)
        if knob == "nprobe":
            nlist = index.params["nlist"]
            values = args.nprobe or [max(1, nlist // f) for f in (32, 16, 8, 4, 2)]
        else:
            values = args.ef_search if knob else []
        for value in sorted({default, *values} - {None}) or [None]:
            if knob:
                index.set_search_params(**{knob: value})
            qps, idx = measure(index)
            text = " ".join(f"{key}={v}" for key, v in index.params.items()) or "-"
            report(
                backend,
                text + (" (default)" if knob and value == default else ""),
                build_s,
                qps,
                recall(idx, ref),
            )
        del index

    ok = [r for r in rows if r[0] != "exact" and r[4] >= 0.95]
    best = max(ok, key=lambda r: r[3], default=None)
    if best is None:
        print(
            f"target (recall@{k} >= 0.95 at >= 10x exact queries/s): NOT MET; no setting reaches recall 0.95"
        )
    else:
        verdict = "met" if best[3] >= 10 * exact_qps else "NOT MET"
        print(
            f"target (recall@{k} >= 0.95 at >= 10x exact queries/s): {verdict}; fastest setting with "
            f"recall >= 0.95: {best[0]} {best[1]}, {best[3] / exact_qps:.1f}x exact"
        )


if __name__ == "__main__":
    main()
