"""vrs.threads.take_rows: x[idx] whose gradient is the same bits whatever the threads' timing."""

from __future__ import annotations

import torch

from vrs.threads import take_rows


def test_it_is_plain_indexing_in_value_and_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g, requires_grad=True)
    idx = torch.randint(0, 50, (6, 7), generator=g)  # any index shape
    w = torch.randn(6, 7, 8, generator=g)
    out = take_rows(x, idx)
    assert out.shape == (6, 7, 8) and torch.equal(out, x[idx])
    (out * w).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    (x[idx] * w).sum().backward()
    torch.testing.assert_close(grad, x.grad)


def test_its_gradient_repeats_to_the_bit_with_two_threads() -> None:
    # x[idx]'s backward adds repeated rows in a timing-dependent order with more than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(300, 64, generator=g, requires_grad=True)
        idx = torch.randint(0, 300, (20000,), generator=g)  # every row ~67 times
        w = torch.randn(20000, 64, generator=g)
        grads = []
        for _ in range(10):
            x.grad = None
            (take_rows(x, idx) * w).sum().backward()
            grads.append(x.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], other) for other in grads[1:])
