"""A session's results on disk: ``results/paths/A-B.safetensors`` (each finished
connection's packed state, written once), ``results/result.json`` (the exploration's
result) and, for a network, ``results/table1.json`` (the paper's Table 1 row, which the
runner evaluates as it finishes, on its device). The runner writes them as pairs
finish; ``nebtui.connect`` writes the same files for a run made in the user's own process."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from sessions.disk.atomic import write_atomic
from sessions.errors import SessionError

PATHS_DIR = "paths"
RESULT_FILE = "result.json"
TABLE1_FILE = "table1.json"  # a finished network session's Table 1 row, as its runner evaluated it
MAX_PIVOTS_DIM = 64  # result.json holds the positions and pivots of problems up to this many dimensions


def path_file(results: Path, pair: tuple[int, int]) -> Path:
    """Where the finished connection of ``pair`` (a < b) is kept."""
    return Path(results) / PATHS_DIR / f"{pair[0]}-{pair[1]}.safetensors"


def result_document(result: Any) -> bytes:
    """result.json's bytes for an engine ExplorationResult: positions and pivots only for
    problems of at most MAX_PIVOTS_DIM dimensions (a network's would be megabytes)."""
    data = result.to_dict(with_pivots=result.minima.shape[1] <= MAX_PIVOTS_DIM)
    return (json.dumps(data) + "\n").encode()


def save_result(path: Path, data: bytes, what: str, then: str) -> None:
    """Write a result file atomically; a full disk (or file size limit) is one SessionError
    that says what could not be saved, to free space, and ``then`` (how to go on)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as error:
        limit = " (or raise ulimit -f)" if error.errno == errno.EFBIG else ""
        raise SessionError(
            f"cannot save {what} to {path.parent} ({error.strerror or error}): free space{limit}, then {then}"
        ) from None
