"""vrs-data: dataset utilities.

vrs-data validate root=DIR      check a canonical dataset; print a summary or the error
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

USAGE = "usage: vrs-data validate root=DIR [check_images=true]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, overrides = argv[0], argv[1:]
    if command != "validate":
        print(f"vrs-data: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    bad = [o for o in overrides if "=" not in o]
    if bad:
        print(f"vrs-data: expected key=value arguments, got {bad}\n{USAGE}", file=sys.stderr)
        return 2
    args = OmegaConf.from_dotlist(overrides)
    if "root" not in args:
        print(f"vrs-data: root=DIR is required\n{USAGE}", file=sys.stderr)
        return 2
    from vrs.data.schema import DatasetError, format_summary, load_dataset, summarize

    try:
        dataset = load_dataset(str(args.root), check_images=bool(args.get("check_images", True)))
    except DatasetError as err:
        print(f"invalid dataset: {err}", file=sys.stderr)
        return 1
    print(format_summary(summarize(dataset)))
    print(f"{args.root}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
