"""The runner's control socket: a Unix socket (mode 0600) in the session folder
that takes one JSON line per connection, {"command": "pause", "expires": t},
and answers one JSON line. Commands: pause, resume, stop, checkpoint, status.

A command expires: ``expires`` (unix time) is when the client stops waiting,
less a margin for the reply to travel. A runner that has not taken the command
by then (stopped with SIGSTOP, or its loop busy) drops it, so a client told
"no answer" can trust that nothing changed, even if the runner wakes up later.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

COMMANDS = ("pause", "resume", "stop", "checkpoint", "status")
_MAX_PATH = 100  # sun_path holds 108 bytes
_REPLY_MARGIN_S = 2.0  # of a client's wait, kept for the reply to reach it (at most half the wait)
EXPIRED = "the runner did not take the command before it expired: nothing was applied"


class ControlError(Exception):
    """The runner could not be reached or refused the command: one clear line."""


@contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """A socket path short enough for sun_path: the path itself, or the same file
    reached through an open descriptor of its folder (/proc/self/fd/N/name)."""
    if len(os.fsencode(path)) <= _MAX_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def expired(expires: float | None) -> bool:
    """Whether a command that expires at ``expires`` (unix time; None: never) has expired."""
    return expires is not None and time.time() > expires


class ControlServer:
    """Serves ``handler(command, expires) -> reply dict`` on a background thread;
    ``expires`` is the unix time after which the command must not be applied (None: never)."""

    def __init__(self, path: Path, handler: Callable[[str, float | None], dict[str, Any]]):
        self.path = Path(path)
        self.handler = handler
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # a dead runner's socket
        old_umask = os.umask(0o177)
        try:
            with _short_path(self.path) as address:
                self._socket.bind(address)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._socket.listen(8)
        self._socket.settimeout(0.5)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(5.0)
                try:
                    request = json.loads(_read_line(connection))
                    command = request.get("command") if isinstance(request, dict) else None
                    expires = request.get("expires") if isinstance(request, dict) else None
                    if command not in COMMANDS:
                        reply: dict[str, Any] = {"ok": False, "error": f"unknown command {command!r}"}
                    elif expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))):
                        reply = {"ok": False, "error": f"bad expiry time {expires!r}"}
                    elif expired(expires):
                        reply = {"ok": False, "error": EXPIRED}
                    else:
                        reply = self.handler(command, expires)
                except (ValueError, OSError) as error:
                    reply = {"ok": False, "error": f"bad request: {error}"}
                try:
                    connection.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass

    def close(self) -> None:
        """Stop serving; a reply being written is let finish (briefly) so its client is not left without one."""
        self._closing.set()
        try:
            try:  # wakes the serving thread's accept() now (close() alone leaves it to its 0.5 s timeout)
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._socket.close()
        finally:
            if self.path.exists():
                self.path.unlink()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


def _read_line(connection: socket.socket, limit: int = 1 << 16) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("request too long")
    return data.decode()


def send_command(path: Path, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send one command to the runner listening on ``path``; returns its reply.

    Waits at most ``timeout`` seconds. The command expires before that (see the
    module's docstring): when no reply comes in time, the runner drops it."""
    path = Path(path)
    if command not in COMMANDS:
        raise ControlError(f"unknown command {command!r}: use one of {', '.join(COMMANDS)}")
    if not path.exists():
        raise ControlError("its runner is not running (no control socket)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        expires = time.time() + max(timeout - _REPLY_MARGIN_S, timeout / 2)
        try:
            with _short_path(path) as address:
                client.connect(address)
            client.sendall((json.dumps({"command": command, "expires": expires}) + "\n").encode())
            line = _read_line(client)
        except (ConnectionRefusedError, FileNotFoundError):
            raise ControlError("its runner is not running (nobody answers on the control socket)") from None
        except TimeoutError:
            raise ControlError(f"its runner did not answer within {timeout:g} s (stopped or overloaded?): the "
                               f"{command} command expired unapplied; try again") from None
        except OSError as error:
            raise ControlError(f"its control socket failed ({error.strerror or error})") from None
    if not line:
        raise ControlError("its runner closed the connection without answering (it may have just exited)")
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError("its runner answered garbage on the control socket") from None
    if not reply.get("ok", False):
        raise ControlError(reply.get("error", "the runner refused the command"))
    return reply
