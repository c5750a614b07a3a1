"""``nebtui serve``: the session picker and the session app in a browser (textual-serve).

Each browser tab runs its own app process (``python -m nebtui.serve``): the
picker, then the chosen session's app in the same tab. Apps only read a
session's log and send control commands, so closing a tab never touches a run.

The machine may be shared, and any page open in the user's browser can reach a
loopback port, so the server is guarded as Jupyter's is: a random token made at
each start, in the link it prints, without which neither the page nor its
websocket answers; a websocket opened by a page from another origin is refused;
the page loads nothing from the internet and nothing in it comes from the
request; a bounded number of tabs hold an app at once. It binds to the loopback
address unless told ``--public``, and then every app it serves is read-only (no
pause, stop, rm or export), wherever it listens.
"""

from __future__ import annotations

import getpass
import hmac
import ipaddress
import json
import os
import secrets
import shlex
import socket
import sys
from typing import Annotated, Any

import typer

from nebtui.failure import fail

READ_ONLY_FLAG = "--read-only"
MOST_CELLS = 1000  # a tab's most columns or rows: no screen is wider, and an app's memory grows with them

# The page a tab loads: textual-serve's terminal script and styles from this
# server, its own font (no font service on the internet: GPU nodes are often
# offline, and a third party would learn who is watching), and a websocket URL
# made in the browser from the page's own address, so that a tunnel to another
# local port or a proxy's path prefix works and no request header is echoed.
PAGE = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>nebtui</title>
    <link rel="stylesheet" href="static/css/xterm.css" />
    <script src="static/js/textual.js"></script>
    <style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("static/fonts/RobotoMono-VariableFont_wght.ttf");
      }
      body { background: #0c181f; }
      .ended {
        display: none; position: fixed; bottom: 0; left: 0; right: 0; padding: 8px 16px;
        background: #12232d; color: rgba(255, 255, 255, 0.95); font-family: "Roboto Mono", monospace;
      }
      body.-closed .ended { display: block; }
    </style>
  </head>
  <body>
    <div id="terminal" class="textual-terminal" data-font-size="16"></div>
    <div class="ended">This tab's app has ended: reload the page to pick a session again.</div>
    <script>
      const token = new URLSearchParams(location.search).get("token") || "";
      const socket = new URL("ws/" + encodeURIComponent(token), location.href);
      socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
      socket.search = "";
      socket.hash = "";
      document.getElementById("terminal").dataset.sessionWebsocketUrl = socket.href;
    </script>
  </body>
</html>
"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_link(base: str, token: str) -> str:
    """The link a user opens: the page, with the token it needs."""
    return f"{base}/?token={token}"


def tunnel_line(port: int, token: str) -> str:
    """How to reach a loopback server from a laptop: an SSH tunnel to this machine."""
    return (f"from your laptop: ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()} "
            f"then open {page_link(f'http://localhost:{port}', token)}")


def tabs(count: int) -> str:
    return f"{count} tab" if count == 1 else f"{count} tabs"


def token_matches(given: str | None, token: str) -> bool:
    """In constant time, so that the time of a refusal does not tell how much of a guess was right."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a websocket's Origin is the server's own address as the browser reached it
    (its Host header: through ``ssh -L 9000:...`` both say localhost:9000). A page from
    anywhere else must not drive the apps; a client that sends no Origin is not a
    browser page, and the token alone decides for it."""
    from yarl import URL

    if origin is None:
        return True
    if not host:
        return False
    try:
        page, server = URL(origin), URL(f"http://{host}")
        if page.scheme not in ("http", "https") or not page.host or page.path not in ("", "/"):
            return False
        server = server.with_scheme(page.scheme)  # the default port of the page's scheme
        return (page.host.lower(), page.port) == ((server.host or "").lower(), server.port)
    except ValueError:
        return False


def cells(value: Any) -> bool:
    """A terminal's width or height as a page gives it: a whole number of cells a screen can show."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MOST_CELLS


def page_message(text: str) -> bool:
    """Whether a websocket message is one the page sends (keys, a size, a ping, focus): textual-serve
    takes any other apart with a traceback, and whoever holds the token may send anything."""
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return False
    if not isinstance(envelope, list) or not envelope or not isinstance(envelope[0], str):
        return False
    kind, given = envelope[0], envelope[1:]
    if kind == "stdin":
        return len(given) == 1 and isinstance(given[0], str) and _encodes(given[0])
    if kind == "resize":
        return len(given) == 1 and isinstance(given[0], dict) and all(cells(given[0].get(side))
                                                                     for side in ("width", "height"))
    if kind == "ping":
        return len(given) == 1
    return True  # blur, focus and kinds textual-serve passes over


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        return False
    return True


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; a non-loopback one needs --public.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    public: Annotated[bool, typer.Option(
        "--public", help="Allow a non-loopback --host, and serve read-only apps (no pause, stop, rm or export) "
                         "to whoever has the printed link, wherever the server listens.")] = False,
    max_viewers: Annotated[int, typer.Option(
        help="How many browser tabs may show an app at once (each runs its own app process).")] = 4,
) -> None:
    """The session picker and the session app in a browser (one app per tab; closing a tab leaves the run going)."""
    from sessions.disk.folder import SessionError
    from sessions.disk.home import data_home

    if not 1 <= port <= 65535:
        fail(f"--port {port} is not a port: give one from 1 to 65535", code=2)
    if max_viewers < 1:
        fail(f"--max-viewers {max_viewers} would turn every tab away: give 1 or more", code=2)
    if not is_loopback(host) and not public:
        fail(f"--host {host} is not a loopback address: serve on 127.0.0.1 and reach it through ssh -L, "
             "or add --public to serve read-only apps to whoever has the printed link", code=2)
    try:
        home = data_home()
    except SessionError as error:
        fail(str(error))
    os.environ["NEBTUI_HOME"] = str(home)  # the apps' processes read the same sessions
    read_only = public  # a reverse proxy on the loopback address serves the world too
    command = " ".join([shlex.quote(sys.executable), "-m", "nebtui.serve", *([READ_ONLY_FLAG] if read_only else [])])
    server = _server(command, host, port, read_only, max_viewers)
    try:
        server.serve()
    except OSError as error:
        fail(f"cannot listen on {host}:{port} ({error.strerror or error}): choose another --port or --host", code=2)


def _server(command: str, host: str, port: int, read_only: bool, max_viewers: int) -> Any:
    from aiohttp import WSCloseCode, WSMsgType, web
    from textual_serve.server import Server

    token = secrets.token_urlsafe(32)
    turned_away = (f"nebtui serve: {tabs(max_viewers)} already open, the most --max-viewers {max_viewers} allows: "
                   "close one, then reload this page")

    def refuse(why: str) -> web.HTTPForbidden:
        return web.HTTPForbidden(text=f"nebtui serve: {why}\n", headers={"X-Content-Type-Options": "nosniff"})

    def check_token(request: web.Request) -> None:
        """The page takes the token from its address; the websocket from its path, where
        the page puts it, or from its address, as a client other than the page may."""
        given = request.match_info.get("token") or request.query.get("token")
        if not token_matches(given, token):
            raise refuse("wrong or missing token: open the link that nebtui serve printed (it ends in ?token=...)")

    class SessionServer(Server):
        viewers = 0  # tabs whose app is running

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.router.add_get("/ws/{token}", self.handle_websocket)  # where the page opens it
            return app

        async def handle_index(self, request: web.Request) -> web.Response:
            check_token(request)
            return web.Response(text=PAGE, content_type="text/html", headers={
                "Cache-Control": "no-store",  # the token is in its address
                "Referrer-Policy": "no-referrer",  # nor in the address sent to a site the app opens
                "Content-Security-Policy": "frame-ancestors 'none'",  # no other page shows it in a frame
            })

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            check_token(request)
            origin = request.headers.get("Origin")
            if not same_origin(origin, request.headers.get("Host")):
                raise refuse(f"a page from {origin} may not open this server's apps: open the link "
                             "that nebtui serve printed")
            check_size(request)
            if self.viewers >= max_viewers:
                return await turn_away(request)
            self.viewers += 1
            try:
                return await super().handle_websocket(request)  # until the tab closes and its app has ended
            finally:
                self.viewers -= 1

        async def _process_messages(self, websocket: web.WebSocketResponse, app_service: Any) -> None:
            await super()._process_messages(PageMessages(websocket), app_service)

        async def on_startup(self, app: web.Application) -> None:
            pass  # the server's banner: our lines come once it listens (announce)

        def serve(self, debug: bool = False) -> None:
            import asyncio
            import signal

            loop = asyncio.new_event_loop()
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, self.request_exit)
            web.run_app(self._make_app(), host=host, port=port, handle_signals=False, loop=loop,
                        print=lambda *_: announce())

        def initialize_logging(self) -> None:
            pass  # our lines only: the server's own log is not the user's business

    def check_size(request: web.Request) -> None:
        """The tab's first size, which textual-serve reads as a whole number (else its default)."""
        for side in ("width", "height"):
            given = request.query.get(side, "")
            try:
                number = int(given)
            except ValueError:
                continue
            if not cells(number):
                raise web.HTTPBadRequest(text=f"nebtui serve: {side}={given} is not a number of cells from 1 to "
                                              f"{MOST_CELLS}: reload the page\n")

    class PageMessages:
        """The tab's websocket as textual-serve reads it, but only what the page sends: the
        first other message closes the tab with the reason, and its app ends."""

        def __init__(self, websocket: web.WebSocketResponse) -> None:
            self.websocket = websocket

        async def __aiter__(self) -> Any:
            async for message in self.websocket:
                if message.type == WSMsgType.TEXT and not page_message(message.data):
                    await self.websocket.close(code=WSCloseCode.POLICY_VIOLATION,
                                               message=b"nebtui serve: not a message of nebtui's page: reload the page")
                    return
                yield message

        async def send_json(self, data: Any) -> None:
            await self.websocket.send_json(data)  # the answer to a ping

    async def turn_away(request: web.Request) -> web.WebSocketResponse:
        """A tab over the cap: the reason in its terminal, where the user looks, and as the
        close reason; no app process."""
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        await websocket.send_bytes(f"\r\n{turned_away}\r\n".encode())
        await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=turned_away.encode()[:123])
        return websocket

    def announce() -> None:
        name = "localhost" if is_loopback(host) else socket.gethostname() if host in ("0.0.0.0", "::") else host
        where = f"http://{f'[{name}]' if ':' in name else name}:{port}"
        apps = "read-only apps" if read_only else "apps with control keys"
        print(f"serving the nebtui session picker on {page_link(where, token)} ({apps}, in at most {tabs(max_viewers)} "
              "at once; Ctrl-C stops serving, the runs go on)", flush=True)
        if is_loopback(host):
            print(tunnel_line(port, token), flush=True)

    return SessionServer(command, host=host, port=port, title="nebtui")


# ---- the app process of one browser tab


def _handing_over() -> Any:
    """Web drivers that let the picker hand the browser tab to the session's app in
    the same process: the picker's leaves the tab open, the app's skips the prelude
    the picker already sent."""
    from textual.drivers.web_driver import WebDriver

    class PickerDriver(WebDriver):
        threads: list[Any] = []

        def stop_application_mode(self) -> None:
            self.exit_event.set()
            self._input_reader.close()
            PickerDriver.threads.append(self._key_thread)  # the tab stays open for what comes next

    class HandedOverDriver(WebDriver):
        def start_application_mode(self) -> None:
            write = self._write
            self._write = lambda data: None if data == b"__GANGLION__\n" else write(data)
            try:
                super().start_application_mode()
            finally:
                self._write = write

    return PickerDriver, HandedOverDriver


def _close_tab() -> None:
    """What a web driver says when its app has ended: the server closes the tab's connection."""
    meta = json.dumps({"type": "exit"}).encode()
    os.write(sys.__stdout__.fileno(), b"M" + len(meta).to_bytes(4, "big") + meta)


def served_app(read_only: bool) -> None:
    """One browser tab: pick a session, then follow it (read-only: no control keys, no export)."""
    from nebtui.app import SessionListApp, build_app
    from sessions.disk.home import data_home

    picker_driver, app_driver = _handing_over()
    picker = SessionListApp(data_home(), driver_class=picker_driver)
    chosen = picker.run()
    for thread in picker_driver.threads:
        if thread.is_alive():
            thread.join(timeout=1.0)  # one reader of the tab's input at a time
    if chosen is None:
        _close_tab()
        return
    os.environ["COLUMNS"], os.environ["ROWS"] = str(picker.size.width), str(picker.size.height)
    app = build_app(chosen)
    app.driver_class = app_driver
    if read_only:
        app.control, app.exporter = None, None
    try:
        app.run()
    finally:
        app.source.close()  # type: ignore[attr-defined]
        app.status_probe.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    served_app(read_only=READ_ONLY_FLAG in sys.argv[1:])
