"""The fused score-tile pass (`tile_pass.c`), compiled on first use with the system C compiler.

Target counts and the running top-K of a score tile are one pass in C instead of several PyTorch
ops (each re-reading the tile and, multi-threaded, paying a thread-pool wake-up) plus a top-K
search over group maxima with a re-scoring gather. The library is built
with ``-march=native`` into a cache keyed by the source and this CPU's feature flags; when no
compiler is available (or VRS_NATIVE=0), `load()` returns None and callers use PyTorch ops.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from torch import Tensor

_SOURCE = Path(__file__).with_name("tile_pass.c")
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    root = os.environ.get("VRS_NATIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vrs", "native"
    )
    return Path(root)


def _build() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + _cpu_flags().encode() + platform.machine().encode()).hexdigest()[:16]
    lib = _cache_dir() / f"tile_pass-{key}.so"
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=lib.parent, suffix=".so")
        os.close(fd)
        try:
            cmd = [compiler, "-O3", "-march=native", "-shared", "-fPIC", "-o", tmp, str(_SOURCE)]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                return None
            os.replace(tmp, lib)  # atomic: a concurrent build never loads a half-written file
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    dll = ctypes.CDLL(str(lib))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    dll.vrs_tile_pass.argtypes = [ptr, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, i64]
    dll.vrs_tile_pass.restype = None
    return dll


def load() -> ctypes.CDLL | None:
    """The compiled library, or None (no compiler, a failed build, or VRS_NATIVE=0)."""
    global _lib, _tried
    if os.environ.get("VRS_NATIVE", "1") == "0":
        return None
    with _lock:
        if not _tried:
            _tried = True
            try:
                _lib = _build()
            except OSError:
                _lib = None
    return _lib


def tile_pass(
    lib: ctypes.CDLL,
    scores: Tensor,
    col0: int,
    target_score: Tensor | None,
    targets: Tensor | None,
    counts: Tensor | None,
    top_val: Tensor,
    top_idx: Tensor,
) -> None:
    """Target counts and running top-K of one (rows, C) fp32 CPU tile, in one pass.

    Args:
        lib: from `load()`.
        scores: (rows, C) contiguous; excluded columns already -inf.
        col0: the item id of the tile's first column.
        target_score: (rows,) contiguous; targets: (rows,) long global target ids; counts: (rows,)
            contiguous out: columns >= the target score, the target's own column not counted.
            All three None: no counting.
        top_val, top_idx: (rows, K) contiguous float / long, a min-heap per row (start at -inf / -1),
            updated in place; K = 0 skips it. Sort them once the last tile is done.
    """
    rows, chunk = scores.shape
    k = top_val.shape[1]
    lib.vrs_tile_pass(
        scores.data_ptr(),
        rows,
        chunk,
        col0,
        None if target_score is None else target_score.data_ptr(),
        None if targets is None else targets.data_ptr(),
        None if counts is None else counts.data_ptr(),
        top_val.data_ptr() if k else None,
        top_idx.data_ptr() if k else None,
        k,
    )
