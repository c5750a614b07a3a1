"""The data home: the folder that holds one folder per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import platformdirs

from sessions.disk.folder import SessionError

HOME_VARIABLE = "NEBTUI_HOME"


def data_home(environ: Mapping[str, str] | None = None) -> Path:
    """$NEBTUI_HOME if set, else the platform's user data folder; created (mode 0700) and checked writable."""
    env = os.environ if environ is None else environ
    chosen = env.get(HOME_VARIABLE, "")
    if chosen:
        home = Path(chosen).expanduser().absolute()
        source = f"data home {home} (from {HOME_VARIABLE})"
    else:
        home = platformdirs.user_data_path("nebtui", appauthor=False)
        source = f"data home {home}"
    fix = f"set {HOME_VARIABLE} to a writable folder"
    if home.exists() and not home.is_dir():
        raise SessionError(f"{source} is not a folder: {fix}")
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionError(f"{source} cannot be created ({exc.strerror}): {fix}") from None
    # A real write, not os.access: it also catches read-only mounts and full disks' missing inodes.
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=home)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SessionError(f"{source} is not writable ({exc.strerror}): {fix}") from None
    return home
