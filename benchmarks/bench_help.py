"""Wall and CPU seconds of each vrs command's `--help` (the best of --repeats runs), for one or more
checkouts side by side, runs interleaved so that every checkout sees the same machine load.

    python benchmarks/bench_help.py /path/to/before /path/to/after --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tomllib
from pathlib import Path


def help_seconds(repo: Path, module: str) -> tuple[float, float, int]:
    """(wall, CPU, exit code) of `python -m module --help` with `repo`'s vrs and configs."""
    env = {**os.environ, "PYTHONPATH": str(repo), "VRS_CONFIG_DIR": str(repo / "configs")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = os.times().elapsed
    result = subprocess.run([sys.executable, "-m", module, "--help"], env=env, capture_output=True, cwd=repo)
    wall = os.times().elapsed - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repos", nargs="+", type=Path, help="checkouts to compare")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scripts = tomllib.loads((args.repos[-1] / "pyproject.toml").read_text())["project"]["scripts"]
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for name, target in sorted(scripts.items()):
        module = target.split(":")[0]
        runs = {repo: [help_seconds(repo, module) for _ in range(args.repeats)] for repo in args.repos}
        cells = [
            f"{repo.name}: wall {min(r[0] for r in rs):5.2f} s, CPU {min(r[1] for r in rs):5.2f} s, exit {rs[-1][2]}"
            for repo, rs in runs.items()
        ]
        print(f"{name:14s} " + " | ".join(cells), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
