"""vrs: a visual recommendation research framework."""

from vrs.run import Run, load_run

__version__ = "0.1.0"
__all__ = ["Run", "load_run"]
