"""The ``nebtui`` command line. Starts fast: nothing here imports torch; each
command imports the engine only when it runs."""

from __future__ import annotations

import os
import sys

import typer

from nebtui.demo import demo
from nebtui.explore import explore
from nebtui.report import report
from nebtui.serve import serve
from nebtui.sessions_cmd import app as sessions_app
from nebtui.sessions_cmd import pick_session
from nebtui.train import train
from nebtui.trust_cmd import trust

app = typer.Typer(
    name="nebtui",
    help="Connect trained networks by low-loss paths with AutoNEB, live in the terminal.",
    add_completion=True,  # --install-completion: commands, options and session names
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command(no_args_is_help=True)(explore)
app.command(no_args_is_help=True)(demo)
app.command(no_args_is_help=True)(train)
app.command(no_args_is_help=True)(report)
app.command()(serve)
sessions_app.command()(trust)
app.add_typer(sessions_app, name="sessions")


@app.callback(invoke_without_command=True)
def callback(ctx: typer.Context) -> None:
    """nebtui: minimum energy paths between minima (Draxler et al. 2018). Alone, on a
    terminal: pick a session and follow it live."""
    if ctx.invoked_subcommand is None:
        pick_session(ctx)


def main() -> None:
    # before anything imports torch: OpenMP threads that sleep while they wait
    # (see sessions.processes.spawn.cpu_friendly_env)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except KeyboardInterrupt:
        print("nebtui: interrupted", file=sys.stderr)
        sys.exit(130)
