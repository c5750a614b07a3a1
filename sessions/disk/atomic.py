"""Writing files so that a crash, a kill or a full disk never leaves half of one.

``write_atomic`` writes a temp file beside the target, fsyncs it, renames it
over the target and fsyncs the folder: readers see the old file or the new
one, never a mix, and the new one survives a power loss once it returns.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_folder(folder: Path) -> None:
    """Make renames and new names inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    data: bytes,
    *,
    durable: bool = True,
    temp_prefix: str | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` by ``data`` at once (mode 0600).

    ``durable`` fsyncs the file and its folder so the new content survives a
    power loss (a heartbeat or a report needs no such care). ``before_replace``
    runs once the new content is complete on disk, just before the rename (the
    checkpoint keeps its previous file there). The temp file is named
    ``temp_prefix`` + random (default ``.<name>.``) + ``.tmp`` and is removed
    on any failure; the OSError is raised as it came.
    """
    path = Path(path)
    prefix = temp_prefix if temp_prefix is not None else f".{path.name}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)
