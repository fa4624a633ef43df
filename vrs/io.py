"""Atomic file writes (a reader never sees a half-written file), and hash records that let a program
recognise a file it wrote itself before loading it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
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
