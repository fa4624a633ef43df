"""Reference scripts reload their own pickled checkpoints only (benchmarks/vrs_side.py), and
rectools_sasrec.py, which imports RecTools and cannot be loaded here, loads every checkpoint through
that guard."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from tests.scripts import ROOT, load_script


def _side():
    return load_script("benchmarks/vrs_side.py", "vrs_side_for_tests")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a crafted checkpoint would run when unpickled
        return (Path.touch, (self.marker,))


def test_only_a_checkpoint_the_script_recorded_loads(tmp_path: Path) -> None:
    side = _side()
    ckpt = tmp_path / "resume.ckpt"
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2)}}, ckpt)
    side.vrs_io().write_hash_record(ckpt)
    loaded = side.load_own_checkpoint(ckpt)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_crafted_or_changed_checkpoints_are_refused_before_unpickling(tmp_path: Path) -> None:
    side = _side()
    marker = tmp_path / "ran"
    crafted = tmp_path / "best.ckpt"
    torch.save({"epoch": 1, "x": _Payload(marker)}, crafted)
    with pytest.raises(SystemExit, match=r"refusing to load .*best.ckpt: not a checkpoint this script wrote"):
        side.load_own_checkpoint(crafted)  # no record
    # Recorded, then replaced by other bytes: the record no longer matches.
    mine = tmp_path / "resume.ckpt"
    torch.save({"epoch": 2}, mine)
    side.vrs_io().write_hash_record(mine)
    mine.write_bytes(crafted.read_bytes())
    with pytest.raises(SystemExit, match="resume.ckpt: not a checkpoint this script wrote"):
        side.load_own_checkpoint(mine)
    # A record others may rewrite is no record.
    torch.save({"epoch": 2}, mine)
    record = side.vrs_io().write_hash_record(mine)
    record.chmod(0o666)
    with pytest.raises(SystemExit, match="refusing to load"):
        side.load_own_checkpoint(mine)
    assert not marker.exists()


def _calls(node: ast.AST) -> set[str]:
    """Dotted names of the functions called inside `node`."""
    return {ast.unparse(c.func) for c in ast.walk(node) if isinstance(c, ast.Call)}


def test_rectools_sasrec_loads_checkpoints_only_through_the_guard() -> None:
    tree = ast.parse((ROOT / "benchmarks" / "rectools_sasrec.py").read_text())
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert "torch.load" not in _calls(tree)  # every unpickling goes through load_own_checkpoint
    assert "load_own_checkpoint" in _calls(functions["load_checkpoint"])
    # RecTools' own loader (SASRecModel.load_from_checkpoint, Trainer.fit(ckpt_path=...)) also
    # unpickles: it runs in load_model, which only load_checkpoint calls, after the guard.
    callers = {name for name, f in functions.items() if "load_model" in _calls(f)}
    assert callers == {"load_checkpoint"}
    body = functions["load_checkpoint"].body
    order = [ast.unparse(s) for s in body]
    guard = next(i for i, s in enumerate(order) if "load_own_checkpoint" in s)
    model = next(i for i, s in enumerate(order) if "load_model(" in s)
    assert guard < model
