"""`nebtui serve` as a browser meets it: the page over HTTP, then the app through
the websocket (aiohttp as the client): the picker's first frame, and Enter hands
the tab to the session's app."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cli_runs import NEBTUI, assert_one_clear_line, in_process

from sessions.folder import SessionFolder

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Path, *args: str) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    process = subprocess.Popen([NEBTUI, "serve", "--port", str(port), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "NEBTUI_HOME": str(home)},
                               start_new_session=True)
    first = process.stdout.readline()  # the server prints once it listens
    assert first.startswith("serving the nebtui session picker"), first + process.stdout.read()
    return process, port, first


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the server and the apps it started for the tabs
    process.wait(timeout=30)


async def frames_until(ws, wanted: str, timeout: float) -> str:
    """What the app wrote to the tab until ``wanted`` appears in it."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not in the app's output within {timeout:g} s: {seen[-400:]!r}"
        try:
            message = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            raise AssertionError(f"{wanted!r} not in the app's output within {timeout:g} s: {seen[-400:]!r}") from None
        assert message.type.name in ("BINARY", "TEXT"), message
        seen += message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) else message.data
    return seen


async def browse(port: int) -> str:
    """Open the picker in a tab, wait for its first frame, attach with Enter; the session app's output."""
    import aiohttp

    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"ws://127.0.0.1:{port}/ws?width=120&height=36") as ws:
            await frames_until(ws, "Enter attaches", 60)
            await ws.send_str(json.dumps(["stdin", "\r"]))
            return await frames_until(ws, "waiting for the first cycle", 60)


@pytest.mark.parametrize("args, read_only", [((), False), (("--host", "0.0.0.0", "--public"), True)])
def test_serve_answers_the_page_and_its_websocket_runs_the_apps(args, read_only, nebtui_home):
    nebtui_home.mkdir(parents=True, exist_ok=True)
    SessionFolder.create(nebtui_home, "served", {"problem": {"kind": "surface", "surface": "muller-brown"}}, [])
    process, port, first = start_server(nebtui_home, *args)
    try:
        if not read_only:
            assert process.stdout.readline().startswith(f"from your laptop: ssh -N -L {port}:127.0.0.1:{port} ")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200
            html = page.read().decode()
        assert f"ws://127.0.0.1:{port}/ws" in html  # the websocket where the browser found the page
        shown = asyncio.run(browse(port))
        assert "served" in shown
        assert ("read-only" in shown) is read_only
    finally:
        stop_server(process)


def test_a_public_host_without_public_is_refused_in_one_line():
    done = in_process("serve", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert_one_clear_line(done, "--host 0.0.0.0 is not a loopback address")
