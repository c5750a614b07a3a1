"""The runner's control socket: a Unix socket (mode 0600) in the session folder
that takes one JSON line per connection, {"command": "pause", "expires": t},
and answers one JSON line. Commands: pause, resume, stop, checkpoint, status.

A command expires: ``expires`` (unix time) is when the client stops waiting,
less a margin for the reply to travel. A runner that has not taken the command
by then (stopped with SIGSTOP, or its loop busy) drops it, so a client told
"no answer" can trust that nothing changed, even if the runner wakes up later.

The socket is the session owner's alone (mode 0600), yet whatever arrives on it
is treated as hostile: each connection has its own thread and a deadline for
its whole request, so an idle or trickling client delays nobody else, and a
malformed request (not JSON, nested deep, too long, an unknown command, an
expiry that is not a finite time within a day) gets an error reply while the
server goes on.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

COMMANDS = ("pause", "resume", "stop", "checkpoint", "status")
_MAX_PATH = 100  # sun_path holds 108 bytes
_REPLY_MARGIN_S = 2.0  # of a client's wait, kept for the reply to reach it (at most half the wait)
REQUEST_SECONDS = 2.0  # a client has this long to send its whole request line
MAX_REQUEST_BYTES = 4096  # a request is one short JSON line
MAX_CONNECTIONS = 16  # answered at once; one more is told to try again
MAX_WAIT_SECONDS = 24 * 3600.0  # the furthest ahead a command's expiry may be
BUSY = (f"its runner is answering {MAX_CONNECTIONS} other connections on its control socket: "
        "try again in a few seconds")
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
    """Serves ``handler(command, expires) -> reply dict`` on background threads;
    ``expires`` is the unix time after which the command must not be applied (None: never).

    Each connection is answered on a thread of its own (at most ``MAX_CONNECTIONS`` at
    once; one more is told to try again), and has ``request_seconds`` to send its whole
    request: a client that sends nothing, or a byte now and then, holds its own
    connection only, never another client's command. ``handler`` may therefore be
    called from several threads at once. Whatever a client sends, it gets one reply
    and the server goes on serving."""

    def __init__(self, path: Path, handler: Callable[[str, float | None], dict[str, Any]], *,
                 request_seconds: float = REQUEST_SECONDS):
        self.path = Path(path)
        self.handler = handler
        self.request_seconds = request_seconds
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
        self._socket.listen(MAX_CONNECTIONS)
        self._socket.settimeout(0.5)
        self._closing = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
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
            if not self._slots.acquire(blocking=False):
                _refuse_busy(connection)
                continue
            try:
                threading.Thread(target=self._answer, args=(connection,), name="control-connection",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: the client hears so, the server goes on
                self._slots.release()
                _refuse_busy(connection)

    def _answer(self, connection: socket.socket) -> None:
        """One connection: read its request within the deadline, send one reply, close."""
        try:
            with connection:
                reply = self._reply_to(connection)
                try:
                    connection.settimeout(self.request_seconds)
                    connection.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass
        finally:
            self._slots.release()

    def _reply_to(self, connection: socket.socket) -> dict[str, Any]:
        try:
            command, expires = parse_request(_read_request(connection, self.request_seconds))
        except BadRequest as error:
            return {"ok": False, "error": f"bad request: {error}"}
        if expired(expires):
            return {"ok": False, "error": EXPIRED}
        try:
            return self.handler(command, expires)
        except Exception as error:  # noqa: BLE001 - a fault in one command must not end the serving
            traceback.print_exc()
            return {"ok": False, "error": f"the runner failed to handle {command} "
                                          f"({type(error).__name__}: {error}); see its runner.log"}

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


class BadRequest(ValueError):
    """What is wrong with a request, in words for its client."""


def _refuse_busy(connection: socket.socket) -> None:
    """Tell a client over the bound that the runner is busy, without ever waiting on it."""
    with connection:
        try:
            connection.setblocking(False)
            connection.sendall((json.dumps({"ok": False, "error": BUSY}) + "\n").encode())
        except OSError:
            pass


def _read_request(connection: socket.socket, seconds: float) -> bytes:
    """The request's line (without its newline), which must come whole within ``seconds``
    and ``MAX_REQUEST_BYTES``: the deadline is for all of it, not for each byte."""
    deadline = time.monotonic() + seconds
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BadRequest(f"no whole line within {seconds:g} s: send one JSON line at once")
        connection.settimeout(remaining)
        try:
            chunk = connection.recv(4096)
        except TimeoutError:
            continue
        except OSError as error:
            raise BadRequest(f"the connection failed ({error.strerror or error})") from None
        if not chunk:
            break
        data += chunk
        if len(data.partition(b"\n")[0]) > MAX_REQUEST_BYTES:
            raise BadRequest(f"longer than {MAX_REQUEST_BYTES} bytes: a request is one short JSON line")
    return data.partition(b"\n")[0]


def parse_request(line: bytes) -> tuple[str, float | None]:
    """The command and expiry time of a request line, or BadRequest saying what is wrong with it."""
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("not UTF-8 text: send one JSON line") from None
    except RecursionError:
        raise BadRequest("nested too deeply: send one flat JSON object") from None
    except ValueError as error:
        raise BadRequest(f"not JSON ({error})") from None
    if not isinstance(request, dict):
        raise BadRequest(f"a JSON {type(request).__name__}, not an object: send {{\"command\": ...}}")
    command = request.get("command")
    if command not in COMMANDS:
        shown = repr(command) if isinstance(command, str) else type(command).__name__
        raise BadRequest(f"unknown command {shown[:60]}: use one of {', '.join(COMMANDS)}")
    return command, _expiry(request.get("expires"))


def _expiry(expires: Any) -> float | None:
    """A request's ``expires`` as a unix time: None, or a finite number at most ``MAX_WAIT_SECONDS``
    ahead (a later one could only mean a client that never gives up, or a hostile one)."""
    if expires is None:
        return None
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        raise BadRequest(f"bad expiry time: a {type(expires).__name__}, not a unix time")
    try:
        when = float(expires)
    except OverflowError:
        when = math.inf
    if not math.isfinite(when):
        raise BadRequest("bad expiry time: not a finite unix time")
    if when > time.time() + MAX_WAIT_SECONDS:
        raise BadRequest(f"bad expiry time: more than {MAX_WAIT_SECONDS:g} s ahead")
    return when


def _read_reply(connection: socket.socket, limit: int = 1 << 16) -> bytes:
    """The reply's line; ValueError if it runs past ``limit`` bytes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("reply too long")
    return data


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
            line = _read_reply(client)
        except (ConnectionRefusedError, FileNotFoundError):
            raise ControlError("its runner is not running (nobody answers on the control socket)") from None
        except TimeoutError:
            raise ControlError(f"its runner did not answer within {timeout:g} s (stopped or overloaded?): the "
                               f"{command} command expired unapplied; try again") from None
        except OSError as error:
            raise ControlError(f"its control socket failed ({error.strerror or error})") from None
        except ValueError:
            raise ControlError("its runner answered garbage on the control socket") from None
    if not line:
        raise ControlError("its runner closed the connection without answering (it may have just exited)")
    try:
        reply = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise ControlError("its runner answered garbage on the control socket")
    if not reply.get("ok", False):
        raise ControlError(str(reply.get("error", "the runner refused the command"))[:500])
    return reply
