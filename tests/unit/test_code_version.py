"""vrs.code_version: a run records the folder and commit of the code that ran it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import vrs
from vrs.code_version import CODE_FILE, code_version, record_code


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_a_checkout_gives_its_commit_and_whether_its_code_differs(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "vrs").mkdir(parents=True)
    (root / "vrs" / "__init__.py").write_text("")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = _git(root, "rev-parse", "HEAD")
    assert code_version(root / "vrs") == {"package": str(root / "vrs"), "commit": head, "dirty": False}
    (root / "vrs" / "__init__.py").write_text("changed = True\n")
    assert code_version(root / "vrs")["dirty"] is True
    (root / "notes.txt").write_text("outside vrs/ and configs/: not the code")
    _git(root, "add", "notes.txt")
    (root / "vrs" / "__init__.py").write_text("")
    assert code_version(root / "vrs")["dirty"] is False


def test_a_copy_inside_another_repository_has_no_commit(tmp_path: Path) -> None:
    # e.g. a package installed into a virtualenv that sits inside a checkout
    repo = tmp_path / "repo"
    package = repo / ".venv" / "site-packages" / "vrs"
    package.mkdir(parents=True)
    _git(repo, "init", "-q")
    assert code_version(package) == {"package": str(package), "commit": None, "dirty": None}


def test_the_imported_package_is_described() -> None:
    version = code_version()
    assert version["package"] == str(Path(vrs.__file__).resolve().parent)


def test_entries_are_appended_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    record_code(tmp_path, "vrs-train")
    record_code(tmp_path, "vrs-eval")
    entries = json.loads((tmp_path / CODE_FILE).read_text())
    assert [e["command"] for e in entries] == ["vrs-train", "vrs-eval"]
    assert all(e["package"] == str(Path(vrs.__file__).resolve().parent) for e in entries)
    (tmp_path / CODE_FILE).write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        record_code(tmp_path, "vrs-train")
    assert json.loads((tmp_path / CODE_FILE).read_text()) == {"not": "a list"}  # left as it was
