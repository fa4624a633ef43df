"""One training step's graph propagation of `user=lightgcn` (and FREEDOM's user-item part).

    python benchmarks/bench_graph.py                      # the S3-Rec Amazon Beauty file
    python benchmarks/bench_graph.py --name Toys_and_Games --layers 3 --threads 1

Builds LightGCN over the training split's (user, item) pairs and times the forward and backward
pass of its propagation (every user's and item's final vector, D=64): vrs's CSR products, whose
backward multiplies by the stored transpose, against `torch.sparse.mm` on COO matrices with
autograd's own backward (vrs's propagation until 2026-12-03). Both passes must give the same vectors
and gradients; the script says so, or exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from timing import best_time, parse_run_args, print_setup

from vrs.data.adapters.amazon_seq import convert_amazon_seq
from vrs.data.datamodule import RecDataModule
from vrs.user.lightgcn import LightGCN

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-seq"


def coo_propagate(
    encoder: LightGCN, a: torch.Tensor, a_t: torch.Tensor, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: the same normalised matrix and its transpose as COO (built once, as vrs cached
    them), multiplied by `torch.sparse.mm` with autograd's own backward."""
    u, i = encoder.weight, items
    sum_u, sum_i = u, i
    for _ in range(encoder.n_layers):
        u, i = torch.sparse.mm(a, i), torch.sparse.mm(a_t, u)
        sum_u, sum_i = sum_u + u, sum_i + i
    return sum_u / (encoder.n_layers + 1), sum_i / (encoder.n_layers + 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--name", default="Beauty")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    args = parse_run_args(p, argv, repeats=5)

    with tempfile.TemporaryDirectory() as tmp:
        root = convert_amazon_seq(args.data, Path(tmp) / args.name, args.name)
        dm = RecDataModule(str(root), load_images=False)
        dm.setup()
        users, items = dm.train_pairs
        n_users, n_items = dm.data.n_users, dm.n_items
    encoder = LightGCN(args.dim, max_len=1, n_events=1, n_users=n_users, n_layers=args.layers)
    encoder.set_interactions(users, items)
    layer0 = torch.randn(n_items, args.dim, requires_grad=True)
    weights = torch.randn(n_users + n_items, args.dim)
    a, a_t = (m.to_sparse_coo().coalesce() for m in encoder._adjacency(n_items, layer0.device))

    def step(
        propagate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, ...]:
        encoder.weight.grad, layer0.grad = None, None
        u, i = propagate(layer0)
        (torch.cat([u, i]) * weights).sum().backward()
        return u.detach(), i.detach(), encoder.weight.grad.clone(), layer0.grad.clone()

    got = step(encoder.propagate)
    want = step(lambda x: coo_propagate(encoder, a, a_t, x))
    same = all(torch.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(got, want, strict=True))
    seconds = {
        "vrs (CSR, stored transpose)": best_time(lambda: step(encoder.propagate), args.repeats),
        "COO torch.sparse.mm": best_time(
            lambda: step(lambda x: coo_propagate(encoder, a, a_t, x)), args.repeats
        ),
    }

    print_setup("bench_graph.py", argv)
    print(
        f"dataset: {args.name}  users={n_users}  items={n_items}  edges={encoder.edge_users.numel()}  "
        f"layers={args.layers}  D={args.dim}"
    )
    for name, s in seconds.items():
        print(f"{name:30s} forward + backward {1000 * s:8.1f} ms")
    ref = seconds["COO torch.sparse.mm"]
    print(f"speed-up: {ref / seconds['vrs (CSR, stored transpose)']:.2f}x")
    print(f"vectors and gradients agree (rtol 1e-4): {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
