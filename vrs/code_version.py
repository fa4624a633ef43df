"""Which code a run ran: the vrs package's folder and, in a git checkout, its commit.

A run folder records it in `code.json`, one entry per command that trained or evaluated in it (a
resumed run may have run under several commits). The folder is the one Python imported, so a
worktree that links another checkout's virtualenv (whose editable install points at that checkout)
records the code that ran, not the worktree's commit.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from vrs.io import write_json

CODE_FILE = "code.json"


def code_version(package: str | Path | None = None) -> dict[str, Any]:
    """{"package": folder of the imported vrs (or `package`), "commit": its checkout's HEAD or None
    (not a git checkout, or git missing), "dirty": whether tracked files under vrs/ or configs/
    differ from that commit (None without a commit)}."""
    package = Path(package or Path(__file__).parent).resolve()
    root = package.parent
    # An installed copy inside some other repository (a virtualenv in a checkout) is not that checkout.
    top = _git(root, "rev-parse", "--show-toplevel")
    commit = _git(root, "rev-parse", "HEAD") if top and Path(top).resolve() == root else None
    dirty = None
    if commit is not None:
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "vrs", "configs")
        dirty = None if status is None else bool(status)
    return {"package": str(package), "commit": commit, "dirty": dirty}


def record_code(run_dir: str | Path, command: str | None = None) -> Path:
    """Appends this process's code version (with `command`, default the program's name, and the
    time) to RUN_DIR/code.json; a file that is not such a list is refused rather than overwritten."""
    path = Path(run_dir) / CODE_FILE
    entries: list[Any] = []
    if path.is_file():
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(
                f"{path}: not readable as JSON ({err}); move it away to record this run"
            ) from err
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a JSON list of code versions, got {type(entries).__name__}")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    command = command or Path(sys.argv[0]).name
    entries.append({"command": command, "time": now, **code_version()})
    return write_json(path, entries)


def _git(root: Path, *args: str) -> str | None:
    """`git -C root ARGS` output, None when it fails (no git, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
