"""Timing helpers shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

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
