"""CPU threading helpers: per-core Python threads for kernels made of many small single-threaded ops,
and `take_rows`, a gather whose gradient does not depend on thread timing."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import Tensor


def run_split(sweep: Callable[[range], None], n_blocks: int, dev: torch.device) -> None:
    """Runs ``sweep`` over blocks: on CPU, one Python thread per core, each sweeping its own share of
    the blocks (``range(w, n_blocks, workers)`` for worker w) with single-threaded ops.

    A multi-threaded op wakes and joins the whole thread pool, ~25 us on this kind of VM, while one
    cache-sized tile's work is only ~100 us; independent per-core sweeps pay no such cost, and each
    core's tile stays in its own L2. Ops release the GIL, so the threads run in parallel. Results are
    identical to a sequential sweep when every block writes only its own rows.
    """
    n = workers(n_blocks, dev)
    if n <= 1:
        sweep(range(n_blocks))
        return
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()
    errors: list[BaseException] = []

    def work(blocks: range) -> None:
        # Grad mode, inference mode and the OpenMP thread count are per thread.
        torch.set_num_threads(1)
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                sweep(blocks)
        except BaseException as e:  # re-raised in the caller
            errors.append(e)

    join_all([threading.Thread(target=work, args=(range(w, n_blocks, n),)) for w in range(n)], errors)


def join_all(threads: list[threading.Thread], errors: list[BaseException]) -> None:
    """Starts every thread, waits for all of them, then raises the first exception one recorded in
    `errors` (a worker's exception would otherwise end only its thread)."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def workers(n_blocks: int, dev: torch.device) -> int:
    """How many threads ``run_split`` uses for ``n_blocks`` blocks (per-worker buffers size by it)."""
    return max(1, min(torch.get_num_threads(), n_blocks)) if dev.type == "cpu" else 1


def take_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for an integer index tensor of any shape, through ``index_select``.

    Its backward adds the gradient rows in index order; ``x[idx]``'s backward (an accumulating
    ``index_put_``) adds repeated rows in an order that varies with thread timing on a CPU with more
    than one thread, so the same seed trained to last-bit different weights run to run. With one
    thread both give the same bits.
    """
    return x.index_select(0, idx.reshape(-1)).reshape(*idx.shape, *x.shape[1:])
