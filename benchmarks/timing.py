"""Timing helpers shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable

import torch


def best_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Best wall time of `repeats` calls (after one warm-up call unless `warmup=False`): the machine
    may be shared, and the best run is the one least disturbed."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(dtype: torch.dtype = torch.float32, repeats: int = 3, n: int = 2048) -> float:
    """GFLOP/s of an n x n x n matmul in `dtype`: the machine's measured matrix-multiply peak."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch.inference_mode():
        return 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9


def parse_run_args(p: argparse.ArgumentParser, argv: list[str] | None, repeats: int) -> argparse.Namespace:
    """Adds --repeats (default `repeats`) and --threads, parses `argv`, applies --threads and seeds
    torch with 0."""
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def print_setup(script: str, argv: list[str] | None, note: str = "") -> None:
    """Prints torch's version and thread count (then `note`) and the command that reproduces the run."""
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}{note}")
    print(f"reproduce: python benchmarks/{script} " + shlex.join(sys.argv[1:] if argv is None else argv))
