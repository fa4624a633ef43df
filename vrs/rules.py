"""Rules for plain setting values: (test, what is expected) pairs, shared by the command-line config
check (`vrs.cli.checks`) and the fine-tuning node (`vrs.lit.finetune`). No torch import: the
commands check settings before anything heavy loads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rule = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(low: int) -> Rule:
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def number(low: float, high: float | None = None, open_low: bool = False) -> Rule:
    def ok(v: Any) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool) or v != v:  # NaN fails
            return False
        return (v > low if open_low else v >= low) and (high is None or v < high)

    bound = f"> {low}" if open_low else f">= {low}"
    return ok, f"a number {bound}" + (f" and < {high}" if high is not None else "")


def choice(*options: Any) -> Rule:
    return (lambda v: v in options), "one of " + ", ".join(map(str, options))


def optional(rule: Rule) -> Rule:
    """`rule`, or null."""
    ok, expected = rule
    return (lambda v: v is None or ok(v)), f"null or {expected}"


BOOL: Rule = ((lambda v: isinstance(v, bool)), "true or false")
