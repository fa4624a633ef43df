"""The compiled tile-pass kernel loads only a library this user built and recorded the hash of."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vrs.io import hash_record, sha256_file
from vrs.retrieval import native

pytestmark = pytest.mark.skipif(
    not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")), reason="no C compiler"
)

# A library whose constructor leaves a marker file: it ran the moment the process loaded it.
PLANTED = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) fclose(f);
}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, private cache folder; the module forgets any library it loaded before."""
    root = tmp_path / "native"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("VRS_NATIVE_CACHE", str(root))
    monkeypatch.delenv("VRS_NATIVE", raising=False)
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_tried", False)
    return root


def _plant(path: Path, marker: Path, mode: int = 0o755, record: bool = True) -> None:
    """Compiles the marker library to `path`, with a matching hash record when `record`."""
    src = path.parent / "planted.c"
    src.write_text(PLANTED)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    cmd = [compiler, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(path), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    src.unlink()
    os.chmod(path, mode)
    if record:
        rec = hash_record(path)
        rec.write_text(sha256_file(path) + "\n")
        os.chmod(rec, 0o644)


def _works(lib) -> None:  # noqa: ANN001
    """The loaded library is the real kernel: its top-2 equals torch.topk."""
    scores = torch.tensor([[0.1, 0.9, 0.5, -1.0, 0.7], [3.0, 1.0, 2.0, 0.0, -2.0]])  # (rows, C)
    top_val = torch.full((2, 2), float("-inf"))
    top_idx = torch.full((2, 2), -1, dtype=torch.long)
    native.tile_pass(lib, scores, 0, None, None, None, top_val, top_idx)
    order = top_val.argsort(dim=1, descending=True)
    assert torch.equal(top_idx.gather(1, order), scores.topk(2, dim=1).indices)


def test_builds_records_and_reuses_its_library(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = native.load()
    assert lib is not None
    _works(lib)
    path = native._library_path()
    assert path.parent == cache and path.is_file()
    assert hash_record(path).read_text().strip() == sha256_file(path)
    assert not path.stat().st_mode & 0o022
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, hash_record(path).name])
    # A later process loads it without compiling.
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_compile", lambda *a: pytest.fail("recompiled a trusted library"))
    _works(native.load())


def test_planted_library_without_record_is_not_loaded(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "constructor-ran"
    _plant(native._library_path(), marker, record=False)
    lib = native.load()
    assert not marker.exists()
    assert lib is not None
    _works(lib)


def test_planted_library_with_wrong_record_is_not_loaded(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "constructor-ran"
    path = native._library_path()
    _plant(path, marker)
    hash_record(path).write_text("0" * 64 + "\n")
    lib = native.load()
    assert not marker.exists()
    _works(lib)


@pytest.mark.parametrize("writable", ["library", "record", "folder"])
def test_group_writable_files_are_refused(cache: Path, tmp_path: Path, writable: str) -> None:
    """A library with a matching record is still refused when anyone else could have written it."""
    marker = tmp_path / "constructor-ran"
    path = native._library_path()
    _plant(path, marker, mode=0o775 if writable == "library" else 0o755)
    if writable == "record":
        os.chmod(hash_record(path), 0o664)
    if writable == "folder":
        os.chmod(cache, 0o770)
    if writable == "folder":
        with pytest.warns(UserWarning, match=f"{cache}.*group/world-writable"):
            lib = native.load()
    else:
        lib = native.load()
    assert not marker.exists()
    _works(lib)
    if writable == "folder":  # nothing written into a folder others can write to
        assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, hash_record(path).name])


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_another_users_library_is_neither_loaded_nor_removed(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "constructor-ran"
    path = native._library_path()
    _plant(path, marker)
    os.chown(path, 12345, -1)
    before = sha256_file(path)
    _works(native.load())
    assert not marker.exists()
    assert path.stat().st_uid == 12345 and sha256_file(path) == before  # built elsewhere instead


def test_matches_record_accepts_only_own_unaltered_files(tmp_path: Path) -> None:
    from vrs.io import matches_record, write_hash_record

    own = tmp_path / "run.ckpt"
    own.write_bytes(b"written by us")
    assert not matches_record(own)  # no record: not known to be ours
    write_hash_record(own)
    assert matches_record(own)
    own.write_bytes(b"replaced by someone")  # crafted content under the recorded name
    assert not matches_record(own)
    write_hash_record(own)
    os.chmod(own, 0o666)  # anyone could have written it
    assert not matches_record(own)
