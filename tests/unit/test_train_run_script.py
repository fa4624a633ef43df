"""experiments/reproduce_sasrec_amazon/train_run.sh: the scripts that source it run their own
checkout's code, not the package a shared .venv's editable install points at."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "reproduce_sasrec_amazon" / "train_run.sh"


def test_sourcing_puts_its_checkout_first_on_the_import_path(tmp_path: Path) -> None:
    # A stand-in checkout (a worktree at another commit) whose vrs package differs from the installed one.
    checkout = tmp_path / "worktree"
    (checkout / "experiments" / "reproduce_sasrec_amazon").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "experiments" / "reproduce_sasrec_amazon" / "train_run.sh")
    (checkout / "vrs").mkdir()
    (checkout / "vrs" / "__init__.py").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = (
        f"source {checkout}/experiments/reproduce_sasrec_amazon/train_run.sh && "
        f'"{sys.executable}" -c "import vrs; print(vrs.__file__)"'
    )
    out = subprocess.run(
        ["bash", "-c", command], cwd=elsewhere, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(out) == checkout / "vrs" / "__init__.py"
