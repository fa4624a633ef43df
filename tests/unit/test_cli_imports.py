"""Command modules share helpers through vrs/cli/common.py, checks.py and runs.py, never each other;
--help and tab completion import none of the model stack."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_no_command_module_imports_another() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"].values()
    commands = {target.split(":")[0] for target in scripts}  # vrs.cli.recommend, ...
    found = []
    for module in sorted(commands):
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{module} imports {n}" for n in names if n in commands - {module}]
    assert commands and not found, found


# --help and tab completion answer before any job runs: importing the model stack there cost seconds.
HEAVY = ("lightning", "torch", "pandas")
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Runs a command's main() as its console script would, then names the heavy modules it imported.
PROBE = """
import sys
sys.argv = [{name!r}, *{args!r}]
from {module} import {function} as main
try:
    main()
except SystemExit as stop:
    assert stop.code in (0, None), f"exit code {{stop.code}}"
print("imported:", [m for m in {heavy!r} if m in sys.modules])
"""


def _probe(name: str, args: list[str], env: dict[str, str] | None = None) -> str:
    module, function = SCRIPTS[name].split(":")
    code = PROBE.format(name=name, args=args, module=module, function=function, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(
    ("name", "args"), [*((n, ["--help"]) for n in sorted(SCRIPTS)), ("vrs-index", ["build", "--help"])]
)
def test_help_imports_no_model_stack(name: str, args: list[str]) -> None:
    out = _probe(name, args)
    assert "usage" in out.lower() or "Powered by Hydra" in out, out[-2000:]
    assert out.rstrip().endswith("imported: []"), out[-500:]


def test_tab_completion_imports_no_model_stack() -> None:
    out = _probe("vrs-train", ["-sc", "query=bash"], env={"COMP_LINE": "vrs-train fus", "COMP_POINT": "13"})
    assert "fusion=" in out  # the config groups were offered
    assert out.rstrip().endswith("imported: []"), out[-500:]
