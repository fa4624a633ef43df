"""Atomic file writes (a reader never sees a half-written file), locks that let one of several
processes produce a shared file while the others wait for it, and hash records that let a program
recognise a file it wrote itself before loading it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Calls `write(tmp)` on a temp file beside `path`, then renames it over `path`.

    A failure (or a kill) before the rename leaves `path` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# Locks this process holds, by (lock file, thread): a nested `file_lock` of the same file passes.
_HELD: dict[tuple[str, int], int] = {}
# What a file system without locks answers (Lustre mounted without `flock`, some FUSE mounts).
_NO_LOCKS = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


@contextlib.contextmanager
def file_lock(path: str | Path, what: str) -> Iterator[None]:
    """Holds an exclusive lock on the file `path` (created if absent; never removed, as removing a
    lock file lets two processes lock different files) while the block runs.

    Processes on one machine exclude each other; on a shared file system with working locks (NFSv4,
    GPFS, Lustre mounted with `flock`) so do processes on other nodes. The kernel drops the lock of a
    process that dies, so a crash leaves nothing to clean up. Nested calls for the same file in one
    thread pass. A process that has to wait says so on stderr, naming `what` it waits for. Where the
    file system refuses locks this warns and runs the block unlocked: callers keep their writes
    atomic, so concurrent processes then repeat work but read no half-written file.
    """
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): nothing to coordinate with on a cluster
        yield
        return
    path = Path(path)
    held = (str(path.resolve()), threading.get_ident())
    if held in _HELD:
        _HELD[held] += 1
        try:
            yield
        finally:
            _HELD[held] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for {what} (another process holds {path})", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            if err.errno not in _NO_LOCKS:
                raise
            warnings.warn(
                f"{path}: the file system refuses locks ({err.strerror}), so processes sharing it do not "
                f"wait for each other's {what}: each may produce it again",
                stacklevel=3,
            )
        _HELD[held] = 1
        try:
            yield
        finally:
            del _HELD[held]
    finally:
        os.close(fd)  # releases the lock


def hash_record(path: str | Path) -> Path:
    """Where `write_hash_record` keeps the sha256 of `path`: beside it, with ".sha256" appended."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_private(path: str | Path, follow: bool = False) -> bool:
    """Owned by this user and writable by nobody else. Without `follow`: a regular file, not a
    symlink; with it: a folder (symlinks followed)."""
    try:
        st = Path(path).stat() if follow else Path(path).lstat()
    except OSError:
        return False
    kind = stat.S_ISDIR if follow else stat.S_ISREG
    return kind(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def write_hash_record(path: str | Path) -> Path:
    """Records the sha256 of `path` (a file this program just wrote) in `hash_record(path)`."""
    return atomic_write_text(hash_record(path), sha256_file(path) + "\n")


def matches_record(path: str | Path) -> bool:
    """Whether `path` is the file its hash record describes, both this user's and writable by no one
    else: what to require before loading a file whose loading can run code (a library, a pickle)."""
    record = hash_record(path)
    if not (is_private(path) and is_private(record)):
        return False
    try:
        return record.read_text().strip() == sha256_file(path)
    except OSError:
        return False
