"""Reports of sessions as files (``nebtui report``): the analysis is sessions.analysis';
this package writes it. ``command``: the command and its options; ``writers``: JSON,
CSV, Markdown and HTML of one session; ``figures``: its figures (matplotlib, PNG);
``compare``: the files of several sessions compared. Importing this package imports
neither torch nor matplotlib: the CLI starts fast."""

from nebtui.report.command import report

__all__ = ["report"]
