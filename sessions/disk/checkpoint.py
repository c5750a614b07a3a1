"""Checkpoints: tensors + a JSON meta dict in one state file (sessions.disk.statefile), replaced atomically.

Saving writes a temp file in the session folder, fsyncs it, keeps the current
checkpoint as the previous one, renames the temp file to current and fsyncs
the folder. At every moment the folder holds at least one complete checkpoint.
Loading never unpickles: safetensors holds raw tensor bytes and JSON only.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from sessions.disk import statefile
from sessions.errors import SessionError
from sessions.disk.folder import CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE

META_KEY = "nebtui.meta"
FORMAT_KEY = "nebtui.checkpoint"
FORMAT_VERSION = "1"
TEMP_PREFIX = ".checkpoint-"


class CheckpointError(SessionError):
    """A checkpoint cannot be written or read."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read back. Unpacks as ``tensors, meta = load_checkpoint(...)``.

    ``source`` is "current" or "previous"; ``fallback_reason`` says why the
    current one was not used (None when it was).
    """

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    source: str
    path: Path
    fallback_reason: str | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.tensors, self.meta))


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    device = os.stat(path).st_dev
    while path.parent != path and os.stat(path.parent).st_dev == device:
        path = path.parent
    return path


def _write_error(folder: Path, exc: OSError) -> CheckpointError:
    session = folder.name
    intact = "the previous checkpoint is intact"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CheckpointError(
            f"disk full while checkpointing session {session}: free space on {_mount_point(folder)} "
            f"(folder {folder}); {intact}"
        )
    if exc.errno == errno.EFBIG:
        return CheckpointError(
            f"file size limit reached while checkpointing session {session}: raise the limit (ulimit -f) "
            f"or free space in {folder}; {intact}"
        )
    return CheckpointError(
        f"cannot write the checkpoint of session {session} in {folder} ({exc.strerror}): fix the folder "
        f"and resume; {intact}"
    )


def save_checkpoint(folder_path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``tensors`` and ``meta`` as the session's current checkpoint; return its path."""
    folder = Path(folder_path)
    current, previous = folder / CHECKPOINT_FILE, folder / PREVIOUS_CHECKPOINT_FILE

    def keep_previous() -> None:
        if current.exists():
            _keep_as_previous(current, previous, folder)

    try:
        statefile.write(current, tensors, dict(meta), key=META_KEY, tags={FORMAT_KEY: FORMAT_VERSION}, sort_keys=True,
                        temp_prefix=TEMP_PREFIX, before_replace=keep_previous)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {exc}: give plain dicts, lists, str and numbers") from None
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    return current


def _keep_as_previous(current: Path, previous: Path, folder: Path) -> None:
    """Make ``previous`` the current file's content. A hard link keeps ``current`` in place
    throughout; where links are not supported, a rename leaves only a short window
    in which ``previous`` alone exists (load_checkpoint falls back to it)."""
    link = folder / f"{TEMP_PREFIX}previous-{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    try:
        os.link(current, link)
    except OSError:
        os.replace(current, previous)
        return
    try:
        os.replace(link, previous)
    except OSError:
        link.unlink(missing_ok=True)
        raise


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and meta of one checkpoint file; any damage is a ValueError naming it."""
    tensors, meta, _ = statefile.read(path, key=META_KEY)
    if not isinstance(meta, dict):
        raise ValueError(f"{path.name} has no meta dict")
    return tensors, meta


def load_checkpoint(folder_path: Path) -> LoadedCheckpoint | None:
    """The current checkpoint, else the previous one if the current is corrupt or missing; None if neither exists."""
    folder = Path(folder_path)
    current, previous = folder / CHECKPOINT_FILE, folder / PREVIOUS_CHECKPOINT_FILE
    if not current.exists() and not previous.exists():
        return None
    problem = f"{CHECKPOINT_FILE} is missing"
    if current.exists():
        try:
            tensors, meta = _read(current)
            return LoadedCheckpoint(tensors, meta, "current", current)
        except ValueError as exc:
            problem = str(exc)
    if not previous.exists():
        raise CheckpointError(
            f"the checkpoint of session {folder.name} is damaged ({problem}) and there is no previous one: "
            "restart the session from its minima"
        )
    try:
        tensors, meta = _read(previous)
    except ValueError as exc:
        raise CheckpointError(
            f"both checkpoints of session {folder.name} are damaged ({problem}; {exc}): restart the session from its minima"
        ) from None
    return LoadedCheckpoint(tensors, meta, "previous", previous, fallback_reason=problem)
