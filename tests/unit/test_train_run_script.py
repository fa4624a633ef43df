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


RUN_SH = SCRIPT.parents[1] / "baselines" / "run.sh"


def test_baselines_evaluates_category_interest_once_per_seed_and_records_its_cost(tmp_path: Path) -> None:
    # Stand-ins for the venv's commands: vrs-eval logs its arguments and writes the metrics file.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    (bin_dir / "vrs-eval").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'for a in "$@"; do [[ $a == hydra.run.dir=* ]] && d=${a#hydra.run.dir=}; done\n'
        'mkdir -p "$d" && echo "{}" > "$d/metrics.json"\n'
    )
    (bin_dir / "python").write_text("#!/usr/bin/env bash\nexit 0\n")  # summarize.py is tested apart
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    out = tmp_path / "runs"
    env = {"PATH": "/usr/bin:/bin", "BIN": str(bin_dir), "OUT": str(out), "DATASETS": "synthetic",
           "MODELS": "category_interest", "SEEDS": "0 1"}  # fmt: skip
    for _ in range(2):  # the second pass finds both runs done
        subprocess.run(["bash", str(RUN_SH)], cwd=tmp_path, env=env, check=True, capture_output=True)
    lines = calls.read_text().splitlines()
    assert len(lines) == 2
    for seed, line in enumerate(lines):
        run = out / "category_interest" / "synthetic" / f"seed{seed}"
        assert {f"seed={seed}", "encoder=lenet", "model.visual_weight=0.01"} <= set(line.split())
        assert f"hydra.run.dir={run}" in line.split()
        assert int((run / "wall_seconds").read_text()) >= 0
        assert len((run / "commit").read_text().split()) == 1
