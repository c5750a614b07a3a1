"""`nebtui serve` as a browser meets it: the page over HTTP, then the app through
the websocket (aiohttp as the client): the picker's first frame, and Enter hands
the tab to the session's app. And as a shared machine meets it: without the
printed token, or from a page of another origin, nothing answers and nothing
starts; the page names nothing outside the server; tabs past the cap are told so."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cli_runs import NEBTUI, assert_one_clear_line, in_process, wait_until

from nebtui.serve import page_message
from sessions.disk.folder import SessionFolder

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """A running ``nebtui serve``: its process, port, first line and the token of its link."""

    def __init__(self, process: subprocess.Popen, port: int, first: str) -> None:
        self.process, self.port, self.first = process, port, first
        self.token = re.search(r"/\?token=([\w-]+) ", first).group(1)

    def page(self, query: str = "", headers: dict[str, str] | None = None) -> tuple[int, str]:
        """The status and body of the page (or another path) over real HTTP."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{query}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    def app_processes(self) -> int:
        """The tabs' app processes now running (``python -m nebtui.serve``, in the server's group)."""
        count = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                group = os.getpgid(int(entry.name))
            except OSError:
                continue  # ended meanwhile
            count += group == self.process.pid and b"nebtui.serve" in argv
        return count


def start_server(home: Path, *args: str) -> Served:
    port = free_port()
    process = subprocess.Popen([NEBTUI, "serve", "--port", str(port), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "NEBTUI_HOME": str(home)},
                               start_new_session=True)
    first = process.stdout.readline()  # the server prints once it listens
    assert first.startswith("serving the nebtui session picker"), first + process.stdout.read()
    return Served(process, port, first)


def stop_server(served: Served) -> None:
    os.killpg(served.process.pid, signal.SIGTERM)  # the server and the apps it started for the tabs
    served.process.wait(timeout=30)


@pytest.fixture
def served_home(nebtui_home):
    """A data home with one session in it, for the picker to show."""
    nebtui_home.mkdir(parents=True, exist_ok=True)
    SessionFolder.create(nebtui_home, "served", {"problem": {"kind": "surface", "surface": "muller-brown"}})
    return nebtui_home


# What a browser sends that reached the server through ``ssh -L 9000:127.0.0.1:PORT``.
THROUGH_A_TUNNEL = {"Host": "localhost:9000", "Origin": "http://localhost:9000"}


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


def socket_url(served: Served, token: str | None = None) -> str:
    """Where the page opens its websocket: beside itself, the token in the path."""
    return f"ws://127.0.0.1:{served.port}/ws/{served.token if token is None else token}?width=120&height=36"


async def browse(served: Served) -> str:
    """Open the picker in a tab, wait for its first frame, attach with Enter; the session app's output."""
    import aiohttp

    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(socket_url(served), headers=THROUGH_A_TUNNEL) as ws:
            await frames_until(ws, "Enter attaches", 60)
            await ws.send_str(json.dumps(["stdin", "\r"]))
            return await frames_until(ws, "waiting for the first cycle", 60)


async def handshake_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """The HTTP status and body that refuse a websocket (101 where it opens: then it is closed at once)."""
    import aiohttp

    async with aiohttp.ClientSession() as client:
        async with client.get(url.replace("ws://", "http://", 1), headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **(headers or {})}) as answer:
            return answer.status, await answer.text() if answer.status != 101 else ""


@pytest.mark.parametrize("args, read_only", [((), False), (("--public",), True),
                                             (("--host", "0.0.0.0", "--public"), True)])
def test_serve_answers_the_page_and_its_websocket_runs_the_apps(args, read_only, served_home):
    served = start_server(served_home, *args)
    try:
        if "--host" not in args:
            assert served.process.stdout.readline().startswith(
                f"from your laptop: ssh -N -L {served.port}:127.0.0.1:{served.port} ")
        status, html = served.page(f"?token={served.token}")
        assert status == 200 and 'id="terminal"' in html
        shown = asyncio.run(browse(served))
        assert "served" in shown
        assert ("read-only" in shown) is read_only  # --public: read-only on the loopback address too
        wait_until(lambda: served.app_processes() == 0, 30, "end of the closed tab's app process")
    finally:
        stop_server(served)


def test_without_the_printed_token_neither_the_page_nor_its_websocket_answers(served_home):
    served = start_server(served_home)
    try:
        for query in ("", "?token=", "?token=guess", f"?token={served.token[:-1]}"):
            status, body = served.page(query)
            assert status == 403 and body.count("\n") == 1, (query, body)
            assert "open the link that nebtui serve printed" in body
        for url in (f"ws://127.0.0.1:{served.port}/ws?width=120&height=36", socket_url(served, "guess"),
                    f"ws://127.0.0.1:{served.port}/ws?token=guess"):
            for headers in (THROUGH_A_TUNNEL, {}):  # a browser's page, a client that sends no Origin
                status, body = asyncio.run(handshake_status(url, headers))
                assert status == 403 and "wrong or missing token" in body, (url, headers, status, body)
        assert served.app_processes() == 0
    finally:
        stop_server(served)


def test_a_websocket_opened_by_a_page_of_another_origin_is_refused(served_home):
    served = start_server(served_home)
    try:
        for origin in ("http://evil.example", "http://localhost:9001", "http://127.0.0.1:9000", "null"):
            status, body = asyncio.run(handshake_status(socket_url(served), {**THROUGH_A_TUNNEL, "Origin": origin}))
            assert status == 403 and f"a page from {origin} may not open" in body, (origin, status, body)
        assert served.app_processes() == 0
    finally:
        stop_server(served)


def test_the_page_names_nothing_outside_the_server_and_echoes_no_request_header(served_home):
    served = start_server(served_home)
    try:
        status, html = served.page(f"?token={served.token}", {"Host": "evil.example:4444"})
        assert status == 200
        assert "evil.example" not in html and "4444" not in html
        assert not re.search(r"wss?://", html)  # the websocket's address is made from the page's own
        assert not re.search(r"https?://", html)  # no font service: nodes are often offline
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r'url\("([^"]+)"\)', html)
        assert assets
        for asset in assets:
            assert served.page(asset)[0] == 200, asset  # relative to the page, served here
    finally:
        stop_server(served)


async def over_the_cap(served: Served) -> None:
    """One tab holds the only place; a second is told so and closed; closing the first ends its
    app, and then a new tab gets the place."""
    import aiohttp

    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(socket_url(served), headers=THROUGH_A_TUNNEL) as first:
            await frames_until(first, "Enter attaches", 60)
            async with client.ws_connect(socket_url(served), headers=THROUGH_A_TUNNEL) as second:
                told = await frames_until(second, "close one, then reload this page", 30)
                assert "nebtui serve: 1 tab already open, the most --max-viewers 1 allows" in told
                closing = await second.receive(timeout=30)
                assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1013, closing
                assert "--max-viewers 1" in closing.extra
            assert served.app_processes() == 1
        wait_until(lambda: served.app_processes() == 0, 30, "end of the closed tab's app process")
        # The place is given back once the server has seen the old tab's app end, a moment
        # after its process is gone: a new tab gets it then.
        deadline = time.monotonic() + 30
        while True:
            async with client.ws_connect(socket_url(served), headers=THROUGH_A_TUNNEL) as again:
                turned_away = await picker_or_close(again, 60)
                if turned_away is None:
                    break
                # turned away (told so in a frame or two, then closed): the old tab's place is not free yet
                assert turned_away.data == 1013 and time.monotonic() < deadline, turned_away
            await asyncio.sleep(0.1)


async def picker_or_close(ws, timeout: float):
    """None once the tab shows the picker; the closing message if the tab is closed first."""
    import aiohttp

    seen = ""
    deadline = time.monotonic() + timeout
    while "Enter attaches" not in seen:
        message = await ws.receive(timeout=max(0.0, deadline - time.monotonic()))
        if message.type == aiohttp.WSMsgType.CLOSE:
            return message
        assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
        seen += message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) else message.data
    return None


def test_a_tab_over_the_cap_is_told_so_and_a_closed_tab_ends_its_app(served_home):
    served = start_server(served_home, "--max-viewers", "1")
    try:
        asyncio.run(over_the_cap(served))
    finally:
        stop_server(served)


async def hostile_messages(served: Served) -> None:
    """Each message the page never sends closes its tab with the reason; a size no screen has is refused.
    A client that sends no Origin is no browser's page: with the token it gets as far as the page would."""
    import aiohttp

    async with aiohttp.ClientSession() as client:
        for message in ("not json", json.dumps(["resize", {"width": 10**9, "height": 24}])):
            async with client.ws_connect(socket_url(served)) as ws:
                await ws.send_str(message)
                closing = await ws.receive(timeout=30)
                while closing.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):  # the app's first frames
                    closing = await ws.receive(timeout=30)
                assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008, (message[:20], closing)
                assert closing.extra == "nebtui serve: not a message of nebtui's page: reload the page"
    status, body = await handshake_status(socket_url(served).replace("width=120", "width=1000000"), THROUGH_A_TUNNEL)
    assert status == 400
    assert body == "nebtui serve: width=1000000 is not a number of cells from 1 to 1000: reload the page\n"


def test_a_message_the_page_never_sends_closes_its_tab_in_one_line_without_a_traceback(served_home):
    served = start_server(served_home)
    try:
        served.process.stdout.readline()  # the ssh -L line
        asyncio.run(hostile_messages(served))
        wait_until(lambda: served.app_processes() == 0, 30, "end of the closed tabs' app processes")
    finally:
        stop_server(served)
    assert served.process.stdout.read() == ""  # no traceback, nor any line, on the server's terminal


@pytest.mark.parametrize("message", [
    "not json", "[" * 100_000, json.dumps({"stdin": "q"}), json.dumps([]), json.dumps(["stdin"]),
    json.dumps(["stdin", 7]), '["stdin", "\\ud800"]', json.dumps(["resize", {"width": 80}]),
    json.dumps(["resize", {"width": 0, "height": 24}]), json.dumps(["resize", {"width": True, "height": 24}]),
    json.dumps(["resize", {"width": 10**9, "height": 24}]), json.dumps(["ping"])],
    ids=["not-json", "nested-deep", "not-a-list", "empty", "stdin-alone", "stdin-number", "lone-surrogate",
         "no-height", "width-zero", "width-bool", "width-huge", "ping-alone"])
def test_messages_the_page_never_sends_are_told_apart(message):
    assert not page_message(message)


@pytest.mark.parametrize("message", [["stdin", "q\r"], ["resize", {"width": 120, "height": 36}], ["ping", "17"],
                                     ["blur"], ["focus"]])
def test_the_messages_the_page_sends_pass(message):
    assert page_message(json.dumps(message))


def test_a_public_host_without_public_is_refused_in_one_line():
    done = in_process("serve", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert_one_clear_line(done, "--host 0.0.0.0 is not a loopback address")


@pytest.mark.parametrize("args, message", [(("--max-viewers", "0"), "--max-viewers 0 would turn every tab away"),
                                           (("--port", "0"), "--port 0 is not a port")])
def test_a_bad_number_is_refused_in_one_line(args, message):
    done = in_process("serve", *args)
    assert done.returncode == 2
    assert_one_clear_line(done, message)
