"""The fused score-tile pass (`tile_pass.c`), compiled on first use with the system C compiler.

Target counts and the running top-K of a score tile are one pass in C instead of several PyTorch
ops (each re-reading the tile and, multi-threaded, paying a thread-pool wake-up) plus a top-K
search over group maxima with a re-scoring gather. The library is built
with ``-march=native`` into a cache keyed by the source and this CPU's feature flags; when no
compiler is available (or VRS_NATIVE=0), `load()` returns None and callers use PyTorch ops.

Loading a library runs its code, and the cached file's name is predictable, so a cached library is
loaded only when it, its sha256 record and the cache folder belong to this user and no one else can
write them, and the record matches the file; anything else is rebuilt (in a private temporary folder
when the cache folder itself is not private).
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
import warnings
from pathlib import Path

from torch import Tensor

from vrs.io import hash_record, is_private, matches_record, sha256_file

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
    # Resolved once, so the checks and the load below name the same folder even if a link changes.
    return Path(root).resolve()


def _library_path() -> Path:
    """Where the library for this source and CPU is cached (a predictable name: see `_trusted`)."""
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + _cpu_flags().encode() + platform.machine().encode()).hexdigest()[:16]
    return _cache_dir() / f"tile_pass-{key}.so"


def _trusted(lib: Path) -> bool:
    """Whether `lib` is the library this user built: the name is predictable, so anything found there
    (planted by another user of a shared cache, or left half-written) is loaded only when the file
    and its hash record are this user's, writable by no one else, and the hashes match."""
    return matches_record(lib)


def _compile(compiler: str, folder: Path, name: str) -> Path | None:
    """Builds into a fresh private file in `folder`; returns it (mode 755), or None on failure."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".so")
    os.close(fd)
    cmd = [compiler, "-O3", "-march=native", "-shared", "-fPIC", "-o", tmp, str(_SOURCE)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        os.remove(tmp)
        return None
    os.chmod(tmp, 0o755)  # the linker creates it afresh under the umask, which may be group-writable
    return Path(tmp)


def _build() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    lib = _library_path()
    lib.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_private(lib.parent, follow=True):
        # Anyone else who can write there could swap a library in after any check.
        warnings.warn(
            f"VRS native cache {lib.parent} is group/world-writable or not owned by you: the tile-pass "
            "kernel is built into a private temporary folder for this process (set VRS_NATIVE_CACHE "
            f"to a private folder, or run chmod go-w {lib.parent})",
            stacklevel=3,
        )
        return _build_private(compiler, lib.name)
    if _trusted(lib):
        return _bind(ctypes.CDLL(str(lib)))
    if any(os.path.lexists(p) and p.lstat().st_uid != os.getuid() for p in (lib, hash_record(lib))):
        return _build_private(compiler, lib.name)  # not this user's files: left where they are
    built = _compile(compiler, lib.parent, lib.name)
    if built is None:
        return None
    _install(built, lib)
    if not _trusted(lib):  # another process replaced it meanwhile: load nothing unchecked
        return None
    return _bind(ctypes.CDLL(str(lib)))


def _build_private(compiler: str, name: str) -> ctypes.CDLL | None:
    """Builds into a private temporary folder, loads, and removes the folder (dlopen has mapped the
    file; the mapping outlives the name)."""
    with tempfile.TemporaryDirectory(prefix="vrs-native-") as folder:
        built = _compile(compiler, Path(folder), name)
        return _bind(ctypes.CDLL(str(built))) if built else None


def _install(built: Path, lib: Path) -> None:
    """Moves a fresh build to `lib`, its hash record first: each rename is atomic, and a reader that
    comes between them sees a mismatch (and rebuilds) rather than an unchecked library."""
    record = hash_record(lib)
    fd, tmp = tempfile.mkstemp(dir=lib.parent, prefix=f".{record.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(sha256_file(built) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, record)
        os.replace(built, lib)
    finally:
        for leftover in (built, Path(tmp)):
            if leftover.exists():
                leftover.unlink()


def _bind(dll: ctypes.CDLL) -> ctypes.CDLL:
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
