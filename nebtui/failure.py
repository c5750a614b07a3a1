"""One clear line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"nebtui: {message}", file=sys.stderr)
    raise typer.Exit(code)
