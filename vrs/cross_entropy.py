"""`linear_cross_entropy`: the full-softmax loss of `states @ items.T` over a whole catalogue, computed
tile by tile with its gradients in the same pass (`vrs.losses.FullSoftmaxLoss`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vrs import threads

# Logit elements per tile: 2 MiB of fp32 stays in a core's L2 on CPU, so softmax and both gradient
# matmuls read the tile from cache. On GPUs tiles only bound memory.
_CPU_TILE = 1 << 19
_GPU_TILE = 1 << 26
# Rows per tile at least: with a catalogue so large that fewer rows fit in L2 (over 16k items), a
# tile of a few rows is a matrix-vector pass over the whole item table, memory-bound (at 1M items,
# 1-row tiles ran at 5-6 GFLOP/s); 32 rows make it matrix-matrix at 32 x N logits per tile.
_MIN_ROWS = 32


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``states @ items.T`` computed tile by tile, with its gradients computed
    in the same pass: the (M, N) logits never exist whole, and each tile is read once, from cache."""

    @staticmethod
    def forward(ctx, states: Tensor, items: Tensor, targets: Tensor) -> Tensor:
        m, n = states.shape[0], items.shape[0]
        dev = states.device
        rows = max(_MIN_ROWS, (_CPU_TILE if dev.type == "cpu" else _GPU_TILE) // n)
        n_blocks = math.ceil(m / rows)
        lse = torch.empty(m, device=dev)  # (M,)
        grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        # Gradient buffers only when a backward will follow; one item-gradient accumulator per thread
        # (blocks of different threads share every item).
        grad_states = torch.empty_like(states) if grad else None  # (M, D)
        grad_items = [torch.zeros_like(items) for _ in range(threads.workers(n_blocks, dev) if grad else 0)]

        def sweep(blocks: range) -> None:
            acc = grad_items[blocks.start] if grad else None  # run_split: worker w starts at block w
            for b in blocks:
                sl = slice(b * rows, (b + 1) * rows)
                h = states[sl]  # (r, D)
                p = h @ items.T  # (r, N)
                top = p.amax(1, keepdim=True)  # (r, 1)
                # exp of a value under ~-87 (an fp32 underflow) takes a slow path, ~50x the time;
                # clamped, such terms are e^-80 instead of 0 or a denormal: no change to the loss.
                z = p.sub_(top).clamp_(min=-80.0).exp_().sum(1, keepdim=True)  # (r, 1)
                lse[sl] = (top + z.log()).squeeze(1)
                if grad:
                    p.div_(z)  # softmax
                    torch.mm(p, items, out=grad_states[sl])
                    acc.addmm_(p.T, h)

        threads.run_split(sweep, n_blocks, dev)
        chosen = items[targets]  # (M, D)
        loss = (lse - (states * chosen).sum(1)).mean()
        if grad:
            for extra in grad_items[1:]:
                grad_items[0] += extra
            grad_states -= chosen
            grad_items[0].index_add_(0, targets, states, alpha=-1.0)
            ctx.save_for_backward(grad_states, grad_items[0])
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor, Tensor, None]:
        grad_states, grad_items = ctx.saved_tensors
        scale = grad_loss / grad_states.shape[0]
        return grad_states * scale, grad_items * scale, None


def linear_cross_entropy(states: Tensor, items: Tensor, targets: Tensor) -> Tensor:
    """``F.cross_entropy(states @ items.T, targets)`` (mean) without materialising the (M, N) logits.

    Computed in fp32 even under autocast. The gradients are computed with the loss (one pass over the
    logits instead of three), so call it only when the loss will be backpropagated or is cheap enough.

    Args:
        states: (M, D) user states.
        items: (N, D) item vectors.
        targets: (M,) item index of each row.
    """
    with torch.autocast(states.device.type, enabled=False):
        out = _LinearCrossEntropy.apply(states.float(), items.float(), targets)
    return out
