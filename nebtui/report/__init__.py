"""Reports of sessions: Table 1, paths, figures, JSON and CSV (``nebtui report``).
Importing this package imports neither torch nor matplotlib: the CLI starts fast."""

from nebtui.report.command import report

__all__ = ["report"]
