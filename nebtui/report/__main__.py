"""``python -m nebtui.report ID ...``: the report command on its own (the app's
export key runs it in a child process)."""

import os

import typer

from nebtui.report.command import report

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
app.command()(report)

if __name__ == "__main__":
    app()
