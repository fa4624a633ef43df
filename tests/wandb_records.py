"""Reads an offline W&B run file (run-*.wandb): what a W&B user would see once it is synced."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

_BLOCK = 32768  # the file is a LevelDB-style log: 32 KiB blocks of chunks with 7-byte headers
_FULL, _LAST = 1, 4


def records(path: Path) -> list[Any]:
    """Every protobuf Record of the run file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, out = 7, b"", []
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if (kind == 0 and length == 0) or pos + 7 + length > len(data):
            break  # the end, or a record still being written
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def run_view(path: Path, wait_for_summary: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """name, group, job_type, tags, the logged config (key -> value) and the final summary.

    W&B's service process writes the file after the run returns from finish(); ``wait_for_summary``
    rereads it (up to ``timeout`` seconds) until that summary key is there.
    """
    deadline = time.monotonic() + timeout
    view = _view(path)
    while wait_for_summary and wait_for_summary not in view["summary"] and time.monotonic() < deadline:
        time.sleep(0.5)
        view = _view(path)
    return view


def _view(path: Path) -> dict[str, Any]:
    view: dict[str, Any] = {"config": {}, "summary": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            view.update(
                name=run.display_name, group=run.run_group, job_type=run.job_type, tags=list(run.tags)
            )
        elif kind == "config":
            view["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                view["summary"][key] = json.loads(item.value_json)
    return view
