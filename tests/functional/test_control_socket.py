"""The control socket against hostile clients: whatever one sends, or however slowly,
it gets one error reply, and every other client's command is still answered."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from cli_runs import nebtui, wait_until
from sessions.disk.control import MAX_CONNECTIONS, ControlError, ControlServer, send_command
from sessions.disk.lock import holder


def answer(command: str, expires: float | None) -> dict[str, Any]:
    return {"ok": True, "status": "running", "command": command}


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


def serving(path: Path, **options: Any) -> ControlServer:
    return ControlServer(path, answer, **options).start()


def connected(path: Path) -> socket.socket:
    """A client connected to the socket at ``path``, reached through an open descriptor of
    its folder: a Unix socket's address holds at most 107 bytes, and a test's data home
    under a deep TMPDIR is longer."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(30)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        client.connect(f"/proc/self/fd/{folder}/{path.name}")
    except BaseException:
        client.close()
        raise
    finally:
        os.close(folder)
    return client


def reply_to(path: Path, raw: bytes) -> dict[str, Any]:
    """The server's reply to the bytes ``raw`` sent on one connection (which then half-closes)."""
    with connected(path) as client:
        try:
            client.sendall(raw)
            client.shutdown(socket.SHUT_WR)
        except OSError:  # the server stopped reading (too long) and closed: its reply is queued all the same
            pass
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.count(b"\n") == 1, data
    return json.loads(data)


def answered(client: socket.socket) -> bool:
    """Whether the server has replied on (or closed) ``client``'s connection, without waiting."""
    client.setblocking(False)
    try:
        client.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    finally:
        client.settimeout(30)
    return True


MALFORMED = {
    "infinite expiry": b'{"command": "status", "expires": Infinity}\n',
    "NaN expiry": b'{"command": "status", "expires": NaN}\n',
    "expiry too far for a float": b'{"command": "status", "expires": 1' + b"0" * 400 + b"}\n",
    "expiry centuries ahead": b'{"command": "status", "expires": 1e300}\n',
    "text expiry": b'{"command": "status", "expires": "soon"}\n',
    "boolean expiry": b'{"command": "status", "expires": true}\n',
    "deep nesting": b"[" * 3000 + b"\n",
    "deep nesting, too long": b"[" * 60000,
    "too long": b'{"command": "status", "pad": "' + b"x" * 100000 + b'"}\n',
    "not JSON": b"status please\n",
    "not UTF-8": b'{"command": "st\xff\xfeatus"}\n',
    "not an object": b'["status"]\n',
    "unknown command": b'{"command": "explode"}\n',
    "list command": b'{"command": ["status"]}\n',
    "nothing": b"",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_an_error_reply_and_the_next_command_is_answered(socket_path, raw):
    server = serving(socket_path)
    try:
        reply = reply_to(socket_path, raw)
        assert reply["ok"] is False and reply["error"].startswith("bad request: ")
        assert "\n" not in reply["error"]
        assert send_command(socket_path, "status")["status"] == "running"
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_a_command_whose_handler_fails_gets_an_error_reply_and_the_next_is_answered(socket_path):
    def flaky(command: str, expires: float | None) -> dict[str, Any]:
        if command == "checkpoint":
            raise OSError("disk full")
        return answer(command, expires)

    server = ControlServer(socket_path, flaky).start()
    try:
        with pytest.raises(ControlError, match="failed to handle checkpoint"):
            send_command(socket_path, "checkpoint")
        assert send_command(socket_path, "status")["status"] == "running"
    finally:
        server.close()


@pytest.fixture
def trickling(socket_path: Path) -> Iterator[Any]:
    """Opens clients that send a request one byte now and then, never finishing it."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def trickle(client: socket.socket) -> None:
        for byte in b'{"command": "status"' * 1000:
            if stop.wait(0.2):
                return
            try:
                client.sendall(bytes([byte]))
            except OSError:
                return

    def start(client: socket.socket) -> socket.socket:
        threads.append(threading.Thread(target=trickle, args=(client,), daemon=True))
        threads[-1].start()
        return client

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


@pytest.mark.timeout(60)
def test_idle_and_trickling_clients_do_not_delay_another_clients_command(socket_path, trickling):
    server = serving(socket_path, request_seconds=120)
    try:
        with connected(socket_path) as idle, trickling(connected(socket_path)) as slow:
            assert send_command(socket_path, "status", timeout=30)["status"] == "running"
            assert not answered(idle) and not answered(slow)  # both still waited on, neither in the way
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_a_client_too_slow_to_send_its_request_is_told_so(socket_path, trickling):
    server = serving(socket_path, request_seconds=0.5)
    try:
        with connected(socket_path) as idle, trickling(connected(socket_path)) as slow:
            for client in (idle, slow):
                reply = json.loads(client.recv(4096))
                assert reply["ok"] is False and "no whole line within 0.5 s" in reply["error"]
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_connections_beyond_the_bound_are_told_to_try_again_and_a_freed_one_serves(socket_path):
    server = serving(socket_path, request_seconds=120)
    idle = [connected(socket_path) for _ in range(MAX_CONNECTIONS)]
    try:
        with pytest.raises(ControlError, match="other connections on its control socket: try again"):
            send_command(socket_path, "status", timeout=30)
        idle.pop().close()
        wait_until(lambda: _status(socket_path) == "running", 30, "a status answered once a connection freed")
    finally:
        for client in idle:
            client.close()
        server.close()


def _status(path: Path) -> str | None:
    try:
        return send_command(path, "status", timeout=30)["status"]
    except ControlError:
        return None


@pytest.mark.timeout(120)
def test_a_running_session_survives_hostile_messages_and_still_stops(nebtui_home):
    done = nebtui(nebtui_home, "demo", "muller-brown", "--detach", "--device", "cpu", "--scale", "50",
                  "--session", "target", timeout=90)
    assert done.returncode == 0, done.stderr
    folder = nebtui_home / "target"
    wait_until(lambda: _status(folder / "control.sock") == "running", 60, "a running session answering")
    for raw in (MALFORMED["infinite expiry"], MALFORMED["deep nesting, too long"]):
        assert reply_to(folder / "control.sock", raw)["ok"] is False
    stopped = nebtui(nebtui_home, "sessions", "stop", "target", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    wait_until(lambda: holder(folder / "lock") is None, 60, "the runner gone after stop")
