"""Cost of the full-softmax loss (`linear_cross_entropy`) and where it goes, on one core by default.

    python benchmarks/bench_loss.py                                  # Beauty-sized batch
    python benchmarks/bench_loss.py --rows 2048 --items 18357        # Sports-sized batch

Prints (best of --repeats, the machine may be shared):
1. forward + backward of `linear_cross_entropy` against `F.cross_entropy` on materialised logits,
   with the largest difference between their losses and gradients;
2. the work on one cache-sized tile of logits (rows x all items): the three matmuls (logits, state
   gradient, item gradient) with their GFLOP/s, and the softmax passes;
3. the same three matmuls split into column blocks of c items, each block small enough to stay in
   L2 (a two-level tiling), against the whole catalogue at once.
Defaults: 1,536 rows (the target positions of a 256-user Beauty batch: 131k training targets in 88
batches), 12,102 items, D=64, logits spread like a trained model's (std ~6).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from vrs.cross_entropy import _CPU_TILE, linear_cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_time, matmul_peak  # noqa: E402


def _softmax_passes(p: torch.Tensor) -> None:
    """The elementwise work of one tile in `_LinearCrossEntropy.forward`, in the same order."""
    top = p.amax(1, keepdim=True)
    z = p.sub_(top).clamp_(min=-80.0).exp_().sum(1, keepdim=True)
    p.div_(z)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1536, help="target positions in the batch (M)")
    parser.add_argument("--items", type=int, default=12102, help="catalogue size (N)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--blocks", default="1024,2048,4096", help="column-block sizes c to compare")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m, n, d, reps = args.rows, args.items, args.dim, args.repeats
    scale = (6.0 / math.sqrt(d)) ** 0.5  # logit std ~6
    states = (torch.randn(m, d) * scale).requires_grad_()
    items = (torch.randn(n, d) * scale).requires_grad_()
    targets = torch.randint(0, n, (m,))
    print(f"rows {m:,} x items {n:,} x D {d}, {args.threads} thread(s), best of {reps}")

    def step(loss_fn) -> None:
        states.grad = items.grad = None
        loss_fn().backward()

    ours = best_time(lambda: step(lambda: linear_cross_entropy(states, items, targets)), reps)
    ref = best_time(lambda: step(lambda: F.cross_entropy(states @ items.T, targets)), reps)
    loss_ours = linear_cross_entropy(states, items, targets)
    grads_ours = torch.autograd.grad(loss_ours, (states, items))
    loss_ref = F.cross_entropy(states @ items.T, targets)
    grads_ref = torch.autograd.grad(loss_ref, (states, items))
    diff = max(float((a - b).abs().max()) for a, b in zip(grads_ours, grads_ref, strict=True))
    print(
        f"1. forward+backward: linear_cross_entropy {ours * 1e3:.1f} ms, F.cross_entropy on the logits "
        f"{ref * 1e3:.1f} ms ({m * n * 4 / 2**20:.0f} MiB of logits); |loss diff| "
        f"{abs(loss_ours.item() - loss_ref.item()):.1e}, max |grad diff| {diff:.1e}"
    )
    print(f"   matmul peak (2048^3, {args.threads} thread(s)): {matmul_peak():.0f} GFLOP/s")

    # One tile as the loss cuts it on CPU.
    rows = max(1, _CPU_TILE // n)
    tiles = math.ceil(m / rows)
    with torch.no_grad():
        h, it = states[:rows].detach().clone(), items.detach().clone()
        logits = h @ it.T
        p = torch.softmax(logits, 1)
        gs, acc = torch.empty(rows, d), torch.zeros(n, d)
        flop = 2 * rows * n * d
        whole = {
            "logits  h @ items.T": lambda: torch.mm(h, it.T, out=logits),
            "grad states  p @ items": lambda: torch.mm(p, it, out=gs),
            "grad items  acc += p.T @ h": lambda: acc.addmm_(p.T, h),
        }
        copy = best_time(lambda: logits.clone(), reps)
        soft = best_time(lambda: _softmax_passes(logits.clone()), reps) - copy
        times = {name: best_time(fn, reps) for name, fn in whole.items()}
        print(
            f"2. one tile of {rows} rows x {n:,} items ({rows * n * 4 / 2**20:.1f} MiB; {tiles} tiles per batch):"
        )
        for name, t in times.items():
            print(f"   {name:<28} {t * 1e3:6.3f} ms  {flop / t / 1e9:5.1f} GFLOP/s")
        print(f"   {'softmax passes (6)':<28} {soft * 1e3:6.3f} ms")
        total = sum(times.values()) + soft
        print(f"   tile total {total * 1e3:.3f} ms x {tiles} tiles = {total * tiles * 1e3:.1f} ms per batch")

        # A lower bound for a real two-level tiling, which needs every block's logits (the row's
        # softmax denominator) before any gradient, so adds a second logits pass.
        print("3. the three matmuls block by block over c items (two-level tiling; a lower bound) vs whole:")
        print(f"   {'whole catalogue':<28} {sum(times.values()) * 1e3:6.3f} ms")
        for c in (int(x) for x in args.blocks.split(",")):
            cols = [slice(i, min(i + c, n)) for i in range(0, n, c)]

            def blocked(cols=cols) -> None:
                grad = torch.zeros(rows, d)
                for s in cols:
                    torch.mm(h, it[s].T, out=logits[:, s])
                    grad.addmm_(p[:, s], it[s])
                    acc[s].addmm_(p[:, s].T, h)

            t = best_time(blocked, reps)
            print(f"   {f'c = {c} ({c * d * 4 // 1024} KiB of items)':<28} {t * 1e3:6.3f} ms")


if __name__ == "__main__":
    main()
