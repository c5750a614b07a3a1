"""Checkpoints: tensors + a JSON meta dict in one safetensors file, replaced atomically.

Saving writes a temp file in the session folder, fsyncs it, keeps the current
checkpoint as the previous one, renames the temp file to current and fsyncs
the folder. At every moment the folder holds at least one complete checkpoint.
Loading never unpickles: safetensors holds raw tensor bytes and JSON only.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import safetensors
import safetensors.torch
import torch

from sessions.folder import CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, SessionError, fsync_folder

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


def _standalone(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that own their storage alone (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"checkpoint entries must be str -> Tensor, got {name!r}: {type(tensor).__name__}")
        t = tensor.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        whole = t.storage_offset() == 0 and t.numel() * t.element_size() == storage.nbytes()
        if storage.data_ptr() in seen or not whole:
            t = t.clone()
            storage = t.untyped_storage()
        seen.add(storage.data_ptr())
        out[name] = t
    return out


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
    try:
        meta_json = json.dumps(dict(meta), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint meta is not JSON-able ({exc}): give plain dicts, lists, str and numbers") from None
    data = safetensors.torch.save(_standalone(tensors), metadata={FORMAT_KEY: FORMAT_VERSION, META_KEY: meta_json})
    current, previous = folder / CHECKPOINT_FILE, folder / PREVIOUS_CHECKPOINT_FILE
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=folder)
        tmp = Path(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if current.exists():
            _keep_as_previous(current, previous, folder)
        os.replace(tmp, current)
        tmp = None
        fsync_folder(folder)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
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
    try:
        data = path.read_bytes()
        tensors = safetensors.torch.load(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (OSError, safetensors.SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} is unreadable ({type(exc).__name__}: {exc})") from None
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
