"""What the commands print: records filtered and formatted by vrs.cli.console."""

from __future__ import annotations

import logging
import warnings

import pytest

from vrs.cli import console


def _record(msg: str, level: int = logging.INFO, name: str = "vrs.data") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_lightning_adverts_are_dropped_and_other_lines_kept() -> None:
    adverts = console.NoAdverts()
    assert not adverts.filter(_record("💡 Tip: For seamless cloud logging ... litlogger"))
    assert adverts.filter(_record("GPU available: False, used: False"))


def test_ranks_other_than_zero_keep_only_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_utilities.core.rank_zero import rank_zero_only

    rank_zero = console.RankZeroInfo()
    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    assert not rank_zero.filter(_record("Reusing the synthetic dataset"))
    assert rank_zero.filter(_record("a real problem", logging.WARNING))
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert rank_zero.filter(_record("Reusing the synthetic dataset"))


def test_rank_before_lightning_sets_one_comes_from_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "lightning_utilities.core.rank_zero", raising=False)
    for key in console._RANK_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    assert console.process_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's DDP launcher gives the ranks it starts
    assert console.process_rank() == 1


def test_console_lines_are_one_line_per_event() -> None:
    fmt = console.ConsoleFormatter()
    rule = "-" * 40
    text = fmt.format(_record(f"{rule}\ndistributed_backend=gloo\nAll registered\n{rule}\n"))
    assert text.endswith("] distributed_backend=gloo; All registered") and "\n" not in text
    assert "WARNING vrs.data: look" in fmt.format(_record("look", logging.WARNING))


def test_only_the_named_dependency_warning_is_ignored() -> None:
    message = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        console.ignore_irrelevant_warnings()
        # As torch raises it from Lightning's pytree helper, then the same text from vrs code.
        warnings.warn_explicit(
            message, FutureWarning, "_pytree.py", 21, "lightning.pytorch.utilities._pytree"
        )
        warnings.warn_explicit(message, FutureWarning, "x.py", 1, "vrs.lit.module")
        warnings.warn_explicit(
            "something else", FutureWarning, "_pytree.py", 22, "lightning.pytorch.utilities._pytree"
        )
    assert [str(w.message) for w in caught] == [message, "something else"]


def test_frozen_encoders_in_eval_mode_are_not_reported() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        console.ignore_irrelevant_warnings()
        warnings.warn(
            "Found 395 module(s) in eval mode at the start of training. This may lead to",
            UserWarning,
            stacklevel=2,
        )
        warnings.warn("Found 3 modules in some other state", UserWarning, stacklevel=2)
    assert [str(w.message) for w in caught] == ["Found 3 modules in some other state"]
