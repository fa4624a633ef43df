"""AdamW that updates only the rows a sparse gradient touches (`model.sparse_id=true`).

With a large catalogue and sampled or in-batch negatives a training step touches a few thousand rows
of the item-ID table, but dense AdamW reads and writes every row of the table, its gradient and both
moment buffers at every step: the step then costs O(catalogue), and an epoch O(events x catalogue).
Here parameters with a sparse gradient (`nn.Embedding(sparse=True)`) get the lazy update of
`torch.optim.SparseAdam`: moments, weight decay and the step on the touched rows only, with the
step count shared by the table. Every other parameter gets torch's AdamW unchanged.

This is a different optimiser for the table, not an exact speed-up: a row's moments do not decay
while it is untouched, and weight decay shrinks a row only when it is used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor


class LazyAdamW(torch.optim.AdamW):
    """torch.optim.AdamW, with SparseAdam's lazy update for parameters whose gradient is sparse.

    Takes AdamW's arguments (`amsgrad` is not supported for the sparse parameters).
    """

    @classmethod
    def like(cls, optimizer: torch.optim.AdamW) -> LazyAdamW:
        """The same parameter groups and settings as `optimizer` (a fresh, unstepped AdamW)."""
        accepted = inspect.signature(torch.optim.AdamW.__init__).parameters
        groups = [
            {k: v for k, v in g.items() if k == "params" or k in accepted} for g in optimizer.param_groups
        ]
        defaults = {k: v for k, v in optimizer.defaults.items() if k != "params" and k in accepted}
        return cls(groups, **defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse: list[tuple[dict, Tensor, Tensor]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse.append((group, p, p.grad))
                    p.grad = None  # AdamW's dense step skips it
        try:
            super().step()
        finally:
            for _, p, grad in sparse:
                p.grad = grad
        for group, p, grad in sparse:
            self._lazy_update(group, p, grad)
        return loss

    def _lazy_update(self, group: dict, p: Tensor, grad: Tensor) -> None:
        if group["amsgrad"]:
            raise ValueError("LazyAdamW: amsgrad is not supported for parameters with a sparse gradient")
        if group["maximize"]:
            grad = -grad
        grad = grad.coalesce()  # duplicate rows summed
        rows, values = grad.indices()[0], grad.values()  # (k,), (k, ...)
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        lr = float(lr)
        exp_avg = state["exp_avg"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"][rows] = exp_avg
        state["exp_avg_sq"][rows] = exp_avg_sq
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        denom = (exp_avg_sq / bias2).sqrt_().add_(eps)
        touched = p[rows]
        if wd:
            touched.mul_(1 - lr * wd)  # decoupled weight decay, on the touched rows only
        p[rows] = touched.addcdiv_(exp_avg, denom, value=-lr / bias1)
