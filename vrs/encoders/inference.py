"""Running a frozen encoder fast for feature extraction: an inference copy (BatchNorm folded into the
convolutions, channels-last, bf16 weights where the device has bf16 units) and per-core worker
threads that each decode and encode their own batches.

Why per-core threads rather than one caller with a multi-threaded op per layer: a CNN such as
EfficientNet-Lite0 runs a few hundred small ops per batch, and every multi-threaded op ends in a
barrier that waits for its slowest thread. When other jobs share the cores (or the decoder runs
beside the encoder), one descheduled thread stalls them all, and the waiting threads spin in the
kernel: on this project's 2-core VM beside other jobs one caller with 2 threads encoded 27 images/s
where one thread alone did 48-70. Workers with one thread each never wait for one another, and
decoding a batch in the same worker keeps every core on one job at a time.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import platform
import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

from vrs.threads import join_all

T = TypeVar("T")
PRECISIONS = ("fp32", "bf16")


def bf16_units(device: torch.device | str) -> bool:
    """True when `device` computes bfloat16 natively: CUDA GPUs from Ampere on, CPUs with AMX or
    AVX512-BF16 (elsewhere bf16 is emulated and slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = torch.cpu  # private probes, the ones torch's own CPU kernels dispatch on
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """The precision features are computed in on `device`: `precision`, except bf16 on a device
    without bf16 units, which warns (once per place it is asked from) and gives fp32.

    Raises:
        ValueError: for a precision other than "fp32" and "bf16".
    """
    if precision not in PRECISIONS:
        raise ValueError(f"feature_precision must be one of {list(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "bf16" and not bf16_units(device):
        warnings.warn(
            f"feature_precision=bf16: this {device.type} has no bfloat16 units (CPU: AMX or "
            "AVX512-BF16; GPU: Ampere or later), where bf16 would be slower than fp32; features are "
            "computed and cached as fp32",
            stacklevel=2,
        )
        return "fp32"
    return precision


def fold_batchnorm(model: nn.Module) -> int:
    """Folds every eval-mode BatchNorm2d into the Conv2d registered just before it in the same
    parent, in place: the conv's weight and bias absorb the normalisation, the norm becomes its
    activation (timm's BatchNormAct2d) or Identity. Returns the number folded.

    Registration order is only a guess at data flow; `inference_copy` checks the folded model
    against the original and keeps the original when they differ.
    """
    folded = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in itertools.pairwise(children):
            if not (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and not bn.training
                and bn.running_mean is not None
                and bn.running_var is not None
                and conv.out_channels == bn.num_features
            ):
                continue
            scale = torch.rsqrt(bn.running_var + bn.eps)  # (C,)
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale  # (C,)
            if bn.bias is not None:
                shift = shift + bn.bias
            bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
            # timm's BatchNormAct2d applies drop (Identity in eval) and act after the normalisation.
            rest = [getattr(bn, name, None) for name in ("drop", "act")]
            rest = [m for m in rest if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
            setattr(parent, bn_name, nn.Sequential(*rest) if len(rest) > 1 else (rest or [nn.Identity()])[0])
            folded += 1
    return folded


def _pointwise(act: nn.Module) -> tuple[str, list[float]] | None:
    """oneDNN's name (and scalars) of an activation it can apply inside a convolution."""
    if isinstance(act, nn.Identity):
        return "none", []
    if isinstance(act, nn.ReLU):
        return "relu", []
    if isinstance(act, nn.Hardtanh):  # ReLU6 included
        return "hardtanh", [float(act.min_val), float(act.max_val)]
    if isinstance(act, nn.SiLU):
        return "swish", []
    if isinstance(act, nn.Hardswish):
        return "hardswish", []
    return None


class ConvPointwise(nn.Module):
    """A Conv2d and the activation after it as one oneDNN call on CPU (what torch.compile fuses them
    into): the activation runs while the output is in cache, not as a pass over memory of its own.
    EfficientNet-Lite0 on this project's CPU spent half its time in ReLU6 as a separate op.

    Inputs are cast to the weights' dtype (bf16 weights take fp32 images).
    """

    def __init__(self, conv: nn.Conv2d, attr: str, scalars: list[float]) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.padding, self.stride = list(conv.padding), list(conv.stride)  # type: ignore[arg-type]
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr, self.scalars = attr, scalars

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(self.weight.dtype), self.weight, self.bias, self.padding, self.stride,
            self.dilation, self.groups, self.attr, self.scalars, None,
        )  # fmt: skip


def fuse_conv_activations(model: nn.Module) -> int:
    """Replaces, in place, each plain Conv2d (zero padding given as numbers) and the activation (or
    Identity) registered just after it by one `ConvPointwise` and an Identity. Returns the number
    fused. Only for CPU inference; registration order is a guess at data flow (see `fold_batchnorm`)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return 0
    fused = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (act_name, act) in itertools.pairwise(children):
            spec = _pointwise(act)
            if (
                type(conv) is not nn.Conv2d
                or spec is None
                or conv.padding_mode != "zeros"
                or isinstance(conv.padding, str)
            ):
                continue
            setattr(parent, conv_name, ConvPointwise(conv, *spec))
            setattr(parent, act_name, nn.Identity())
            fused += 1
    return fused


def _probe_input(encoder: nn.Module, device: torch.device) -> Tensor | None:
    size = getattr(encoder, "image_size", None)
    if not isinstance(size, int):
        return None
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=gen).to(device)


@torch.inference_mode()
def inference_copy(encoder: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """A copy of `encoder` for frozen inference on `device`: BatchNorm folded into the convolutions
    and, on CPU, each convolution fused with its activation (image encoders; kept only when the copy
    gives the same fp32 features on a probe batch), channels-last weights, and bf16 weights for
    precision="bf16" (run it under bf16 autocast)."""
    fast = copy.deepcopy(encoder).eval().requires_grad_(False)
    probe = _probe_input(fast, device)
    if probe is not None and any(isinstance(m, nn.Conv2d) for m in fast.modules()):
        fused = copy.deepcopy(fast)
        changed = fold_batchnorm(fused)
        if device.type == "cpu":
            changed += fuse_conv_activations(fused)
        if changed:
            want, got = fast(probe).float(), fused(probe).float()  # (2, F)
            tol = 1e-4 * float(want.abs().max()) + 1e-6
            if want.shape == got.shape and float((want - got).abs().max()) <= tol:
                fast = fused
    fast = fast.to(memory_format=torch.channels_last)  # 4-d weights only; the rest as it was
    if precision == "bf16":
        # bf16 weights as well as autocast: no weight cast per call, and CPU matmuls then run on
        # the bf16 units (ViT-B/32 on this CPU: 82 images/s vs 26 with autocast alone).
        fast = fast.to(torch.bfloat16)
    return fast


_KEEP_FREED = False


def keep_freed_memory() -> bool:
    """Process-wide, glibc only: freed blocks below 256 MiB stay in the process for reuse (at most
    256 MiB of free memory per malloc arena), instead of each large tensor being a fresh mmap.

    Every batch allocates and frees activations of several MB per layer. With glibc's defaults
    (and one malloc arena per worker thread) they are returned to the OS and fault back in, zeroed,
    page by page: 18.5 million page faults and 44 s of kernel time for H&M's 17,033 images, about
    half the CPU time of the encoding. Returns whether the setting was applied (once per process).
    """
    global _KEEP_FREED
    if _KEEP_FREED:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    _KEEP_FREED = bool(
        libc.mallopt(m_mmap_threshold, 256 << 20)
        and libc.mallopt(m_trim_threshold, 256 << 20)
        and libc.mallopt(m_top_pad, 16 << 20)
    )
    return _KEEP_FREED


def map_workers(fn: Callable[[int], T], n: int, workers: int, cpu: bool = True) -> list[T]:
    """[fn(0), ..., fn(n - 1)] computed by `workers` threads, each taking the next index as it
    finishes one; on CPU each thread runs its ops single-threaded (see the module docstring).

    Results do not depend on the number of workers when fn(i) depends only on i. Grad and
    inference mode are carried into the threads; autocast is not (enter it inside `fn`). The first
    exception stops the other workers after their current call and is raised here.
    """
    workers = max(1, min(workers, n))
    if workers == 1:
        return [fn(i) for i in range(n)]
    results: list[T | None] = [None] * n
    order = itertools.count()  # next() is atomic under the GIL
    errors: list[BaseException] = []
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def work() -> None:
        if cpu:
            torch.set_num_threads(1)  # this thread's own OpenMP team (per-thread setting)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            while not errors:
                i = next(order)
                if i >= n:
                    return
                try:
                    results[i] = fn(i)
                except BaseException as err:  # re-raised in the caller
                    errors.append(err)

    join_all([threading.Thread(target=work, daemon=True) for _ in range(workers)], errors)
    return results  # type: ignore[return-value]
