"""vrs-compare: print the metrics.json of several runs side by side.

vrs-compare runs/demo/train runs/demo/popularity runs/demo/visual_profile
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vrs.cli.common import format_metrics, is_debug_run

KEYS = [
    "test/recall_10", "test/ndcg_10", "test/mrr_10", "test/recall_20", "test/ndcg_20",
    "test/coverage_10", "test_cold/recall_10", "test_cold/ndcg_10", "val/ndcg_10",
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: vrs-compare RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    columns: dict[str, dict[str, float]] = {}
    for arg in argv:
        path = Path(arg)
        path = path / "metrics.json" if path.is_dir() else path
        if not path.is_file():
            print(f"vrs-compare: {path} not found (run vrs-train / vrs-eval first)", file=sys.stderr)
            return 1
        if is_debug_run(path.parent):
            print(f"vrs-compare: {path.parent} is a debug run (fast_dev_run): not a result", file=sys.stderr)
            return 1
        columns[path.parent.name] = json.loads(path.read_text())
    keys = [k for k in KEYS if any(k in m for m in columns.values())]
    print(format_metrics(columns, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
