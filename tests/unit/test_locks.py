"""Shared files produced once: while one process holds the lock the others wait, then read (the
ranks of a cluster job and the jobs of a sweep start together)."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest
import torch

import vrs.data.synthetic as synthetic
from vrs.encoders.cache import FeatureCache
from vrs.encoders.toy import ToyImageEncoder
from vrs.io import file_lock

TINY = {"n_users": 6, "n_items": 8, "image_size": 16, "min_history": 2, "max_history": 4}


def _start_waiting(target, capsys: pytest.CaptureFixture) -> threading.Thread:
    """Starts `target` in a thread and returns once it waits for a lock (it says so on stderr)."""
    thread = threading.Thread(target=target)
    thread.start()
    said, deadline = "", time.monotonic() + 30
    while "waiting for" not in said and time.monotonic() < deadline:
        time.sleep(0.02)
        said += capsys.readouterr().err
    assert "waiting for" in said, "the second caller did not wait for the lock"
    return thread


def test_second_holder_waits_until_the_first_releases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    order: list[str] = []

    def second() -> None:
        with file_lock(tmp_path / "x.lock", "x"):
            order.append("second")

    with file_lock(tmp_path / "x.lock", "x"):
        with file_lock(tmp_path / "x.lock", "x"):  # nested in one thread: passes
            thread = _start_waiting(second, capsys)
            order.append("first")
    thread.join(30)
    assert order == ["first", "second"]


def test_file_system_without_locks_warns_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def refuse(fd: int, op: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", refuse)
    ran = []
    with pytest.warns(UserWarning, match="refuses locks"), file_lock(tmp_path / "x.lock", "x"):
        ran.append(True)
    assert ran


def test_features_extracted_by_one_process_are_read_by_the_one_that_waited(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    encoder = ToyImageEncoder(out_dim=8, image_size=16).eval()
    first, second = (FeatureCache(tmp_path, shard_size=8, batch_size=4, progress=False) for _ in range(2))
    key = first.key("image", encoder, images)
    got: list[torch.Tensor] = []
    with file_lock(tmp_path / f"{key}.lock", "test"):  # the first process, extracting
        thread = _start_waiting(lambda: got.append(second.features("image", encoder, images)), capsys)
        expected = first.features("image", encoder, images)
    thread.join(30)
    assert first.encoder_calls == 5 and second.encoder_calls == 0
    assert torch.equal(got[0], expected)


def test_merge_of_an_entry_another_process_completed_returns_it(tmp_path: Path) -> None:
    images = torch.zeros(10, 3, 16, 16, dtype=torch.uint8)
    encoder = ToyImageEncoder(out_dim=8, image_size=16).eval()
    mine, other = (FeatureCache(tmp_path, shard_size=4, progress=False) for _ in range(2))
    meta = mine.describe("image", encoder, images)
    key = mine.key("image", encoder, images)
    mine.encode_shards(key, encoder, images)
    merged = other.merge(key, meta)  # the other process merges first and removes the shards
    assert torch.equal(mine.merge(key, meta), merged)


def test_catalogue_generated_once_while_another_process_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    sample = synthetic.sample_items
    monkeypatch.setattr(synthetic, "sample_items", lambda *a, **k: calls.append(1) or sample(*a, **k))
    root = tmp_path / "synthetic"
    with synthetic.generation_lock(root):  # the first process, generating
        thread = _start_waiting(lambda: synthetic.generate(root, **TINY), capsys)
        synthetic.generate(root, **TINY)
    thread.join(30)
    assert len(calls) == 1
    assert synthetic.generation_conflict(root, **TINY) is None
