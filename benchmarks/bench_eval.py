"""Throughput of the full-catalogue evaluation kernel (`rank_and_topk`) against the machine's matmul.

Prints the measured matmul GFLOP/s (a representative (B x D) @ (D x N) product and a 2048^3 square
product as "peak"), then users/s and achieved GFLOP/s of `rank_and_topk` (target ranks + seen-excluded
top-K, what evaluation computes) for each chunk size and top-K length, and the fraction of peak.
Times are the best of --repeats runs; the peak is the best 2048^3 time measured before AND after the
kernel runs (this VM's speed drifts by tens of percent within a minute). `VRS_NATIVE=0` measures the
PyTorch-op fallback instead of the compiled tile pass.

    python benchmarks/bench_eval.py --n-items 100000 --dim 64 --n-users 8192 --batch-size 1024
"""

from __future__ import annotations

import argparse

import torch
from timing import best_time, matmul_peak, parse_run_args, print_setup

from vrs.retrieval import rank_and_topk


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-items", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--n-users", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--chunk-size", type=int, nargs="+", default=[1024, 2048], help="capped at 2048")
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], help="10 = what evaluation computes")
    p.add_argument("--history", type=int, default=20, help="seen items per user")
    args = parse_run_args(p, argv, repeats=5)
    b, n, d = args.batch_size, args.n_items, args.dim

    from vrs.retrieval import native

    kernel = (
        "compiled tile pass" if native.load() is not None else "PyTorch ops (no C compiler or VRS_NATIVE=0)"
    )
    print_setup("bench_eval.py", argv, f", kernel: {kernel}")
    peak_before = matmul_peak(torch.float32, args.repeats)
    with torch.inference_mode():
        u, it = torch.randn(b, d), torch.randn(n, d)
        rep = 2 * b * n * d / best_time(lambda: u @ it.T, args.repeats) / 1e9

    users = torch.randn(args.n_users, d)
    items = torch.randn(n, d)
    targets = torch.randint(0, n, (args.n_users,))
    seen = torch.randint(0, n, (args.n_users, args.history))
    flops = 2 * args.n_users * n * d

    def run(chunk: int, k: int) -> None:
        for s in range(0, args.n_users, b):
            sl = slice(s, s + b)
            rank_and_topk(users[sl], items, targets[sl], seen[sl], k=k, chunk_size=chunk)

    times = {
        (chunk, k): best_time(lambda chunk=chunk, k=k: run(chunk, k), args.repeats)
        for k in args.k
        for chunk in args.chunk_size
    }
    peak = max(peak_before, matmul_peak(torch.float32, args.repeats))
    print(f"matmul peak (2048^3 fp32, best before/after): {peak:8.1f} GFLOP/s")
    print(f"matmul representative ({b}x{d})@({d}x{n}): {rep:8.1f} GFLOP/s ({rep / peak:.0%} of peak)")
    print(f"rank_and_topk: {args.n_users} users, N={n}, D={d}, batch {b}, {args.history} seen/user")
    for (chunk, k), dt in times.items():
        gf = flops / dt / 1e9
        print(
            f"  K={k:<3} chunk {chunk:>5}: {dt:7.3f} s  {args.n_users / dt:8.0f} users/s  "
            f"{gf:7.1f} GFLOP/s  {gf / peak:5.1%} of peak"
        )


if __name__ == "__main__":
    main()
