"""One session on disk: a folder under the data home.

Layout (names are the constants below)::

    <home>/<id>/
        session.json             schema version, id, created time, nebtui version
        config.json              the run's config, a JSON-able dict
        events.jsonl             append-only event log (sessions.disk.eventlog)
        checkpoint.safetensors   newest checkpoint (sessions.disk.checkpoint)
        checkpoint.previous.safetensors
        runner.log               the runner's stdout/stderr
        lock                     one runner per session (sessions.disk.lock)
        heartbeat                the runner's last sign of life (unix time)
        control.sock             the runner's control socket
        results/                 reports and exports

A folder is created whole or not at all (written under a temporary name inside
the home, then renamed), so a half-written session is never listed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sessions.disk.atomic import fsync_folder, write_all, write_atomic
from sessions.errors import SessionError  # also imported from here throughout nebtui/
from sessions.disk.lock import holder

SCHEMA_VERSION = 1

SESSION_FILE = "session.json"
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
CHECKPOINT_FILE = "checkpoint.safetensors"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.previous.safetensors"
RUNNER_LOG_FILE = "runner.log"
LOCK_FILE = "lock"
HEARTBEAT_FILE = "heartbeat"
CONTROL_SOCKET_FILE = "control.sock"
RESULTS_DIR = "results"

# Folders being created or removed carry these prefixes; names may not start with ".".
CREATING_PREFIX = ".creating-"
REMOVING_PREFIX = ".removing-"

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def nebtui_version() -> str:
    """The installed nebtui version, or "unknown" when running from a bare source tree."""
    try:
        return metadata.version("nebtui")
    except metadata.PackageNotFoundError:
        return "unknown"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid session id (letters, digits, -, _, .; 1-64 chars; no leading dot)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name.startswith("."):
        raise SessionError(
            f"invalid session name {name!r}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        )
    return name


@dataclass(frozen=True)
class SessionInfo:
    """The contents of session.json."""

    schema: int
    id: str
    created: float  # unix time
    nebtui_version: str

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "id": self.id, "created": self.created, "nebtui_version": self.nebtui_version}


def _dump_json(obj: Any, what: str) -> bytes:
    try:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise SessionError(f"the session {what} is not JSON-able ({exc}): give plain dicts, lists, str and numbers") from None


class SessionFolder:
    """One session folder: its paths, its metadata files and the runner's heartbeat."""

    def __init__(self, path: Path, info: SessionInfo) -> None:
        self.path = path
        self.info = info

    # ---- creating, opening, removing

    @classmethod
    def create(
        cls,
        home: Path,
        name: str,
        config: Any,
    ) -> "SessionFolder":
        """Create ``home/name`` with its metadata, atomically; a taken name is a SessionError.
        ``config``: a SessionConfig (config.json gets its ``to_dict()``), or the JSON itself."""
        validate_name(name)
        home = Path(home)
        target = home / name
        info = SessionInfo(SCHEMA_VERSION, name, time.time(), nebtui_version())
        files = {
            SESSION_FILE: _dump_json(info.to_dict(), "info"),
            CONFIG_FILE: _dump_json(config.to_dict() if hasattr(config, "to_dict") else dict(config), "config"),
            EVENTS_FILE: b"",
        }
        taken = (
            f"session {name!r} already exists: choose another --session name or remove it with nebtui sessions rm {name}"
        )
        if os.path.lexists(target):
            raise SessionError(taken)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{CREATING_PREFIX}{name}-", dir=home))  # mode 0700
        except OSError as exc:
            raise SessionError(f"cannot create session {name!r} in {home} ({exc.strerror}): check the data home") from None
        try:
            for filename, data in files.items():
                fd = os.open(tmp / filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            (tmp / RESULTS_DIR).mkdir(mode=0o700)
            fsync_folder(tmp)
            # rename() replaces an existing *empty* folder, so look again right before it.
            if os.path.lexists(target):
                raise SessionError(taken)
            os.rename(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if os.path.lexists(target):
                raise SessionError(taken) from None
            raise SessionError(f"cannot create session {name!r} in {home} ({exc.strerror}): check the data home") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_folder(home)
        return cls(target, info)

    @classmethod
    def open(cls, home: Path, id: str) -> "SessionFolder":
        """Open an existing session; missing, corrupt or too new is a SessionError."""
        home = Path(home)
        missing = f"no session {id!r} in {home}: see the sessions with nebtui sessions list"
        try:
            validate_name(id)
        except SessionError:
            raise SessionError(missing) from None
        path = home / id
        if not path.is_dir():
            raise SessionError(missing)
        return cls(path, _read_info(path, id))

    def remove(self) -> None:
        """Delete the session folder; refused while a runner holds it. The folder first moves
        aside, so a half-removed session is never listed."""
        pid = holder(self.lock_path)
        if pid is not None:
            raise SessionError(
                f"session {self.id} is being run by pid {pid}: stop it with nebtui sessions stop {self.id} first"
            )
        aside = Path(tempfile.mkdtemp(prefix=f"{REMOVING_PREFIX}{self.id}-", dir=self.path.parent))
        os.rename(self.path, aside / self.id)
        shutil.rmtree(aside)

    # ---- metadata

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def created(self) -> float:
        return self.info.created

    def config(self) -> Any:
        """config.json as a sessions.disk.config.PartialConfig: the fields there are, typed (a
        listing reads what there is; sessions.disk.config.read_config wants every field)."""
        from sessions.disk.config import PartialConfig

        try:
            return PartialConfig.from_dict(self.config_json())
        except SessionError as error:
            raise damaged_config(self.id, str(error)) from None

    def config_json(self) -> Any:
        """config.json as JSON gives it, unchecked: for sessions.disk.config to read, and to rewrite."""
        return _read_json(self.config_path, self.id)

    # ---- paths

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def runner_log_path(self) -> Path:
        return self.path / RUNNER_LOG_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def heartbeat_path(self) -> Path:
        return self.path / HEARTBEAT_FILE

    @property
    def control_socket_path(self) -> Path:
        """Note: AF_UNIX paths are limited to about 107 bytes; bind via a relative path if longer."""
        return self.path / CONTROL_SOCKET_FILE

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_DIR

    # ---- heartbeat

    def beat(self, now: float | None = None) -> None:
        """Record that the runner is alive (atomic replace; not fsynced: liveness, not history)."""
        stamp = time.time() if now is None else now
        write_atomic(self.heartbeat_path, f"{stamp!r}\n".encode(), durable=False)

    def heartbeat_age(self, now: float | None = None) -> float | None:
        """Seconds since the last beat, or None if there never was one (or it is unreadable)."""
        try:
            stamp = float(self.heartbeat_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return max(0.0, (time.time() if now is None else now) - stamp)

    def __repr__(self) -> str:
        return f"SessionFolder({str(self.path)!r})"


def list_sessions(home: Path, errors: list[SessionError] | None = None) -> list[SessionFolder]:
    """The sessions under ``home``, oldest first. Unreadable ones are skipped and, if given, added to ``errors``."""
    home = Path(home)
    found: list[SessionFolder] = []
    try:
        entries = sorted(os.scandir(home), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            found.append(SessionFolder.open(home, entry.name))
        except SessionError as exc:
            if errors is not None:
                errors.append(exc)
    return sorted(found, key=lambda s: (s.created, s.id))


def damaged_config(id: str, what: str) -> SessionError:
    """The one line for a config.json that cannot be used as it is."""
    return SessionError(f"{CONFIG_FILE} of session {id} is damaged: {what}: restore it from a copy, or remove "
                        f"the session with nebtui sessions rm {id}")


def _corrupt(id: str, filename: str, why: str) -> SessionError:
    return SessionError(f"session {id!r} is corrupt ({filename}: {why}): remove it with nebtui sessions rm {id}")


def _read_json(path: Path, id: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise _corrupt(id, path.name, "missing") from None
    except (OSError, ValueError) as exc:
        raise _corrupt(id, path.name, str(exc)) from None


def _read_info(path: Path, id: str) -> SessionInfo:
    raw = _read_json(path / SESSION_FILE, id)
    if not isinstance(raw, dict):
        raise _corrupt(id, SESSION_FILE, "not an object")
    schema = raw.get("schema")
    if type(schema) is not int or schema < 1:
        raise _corrupt(id, SESSION_FILE, f"bad schema {schema!r}")
    if schema > SCHEMA_VERSION:
        raise SessionError(
            f"session {id} was written by a newer nebtui (schema {schema}, this one reads {SCHEMA_VERSION}): "
            "upgrade nebtui"
        )
    created, version = raw.get("created"), raw.get("nebtui_version")
    if raw.get("id") != id:
        raise _corrupt(id, SESSION_FILE, f"id {raw.get('id')!r} does not match the folder name")
    if not isinstance(created, (int, float)) or isinstance(created, bool):
        raise _corrupt(id, SESSION_FILE, f"bad created time {created!r}")
    if not isinstance(version, str):
        raise _corrupt(id, SESSION_FILE, f"bad nebtui version {version!r}")
    return SessionInfo(schema, id, float(created), version)
