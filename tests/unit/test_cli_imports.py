"""Command modules share helpers through vrs/cli/common.py, checks.py and runs.py, never each other."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

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
