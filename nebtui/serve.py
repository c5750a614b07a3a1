"""``nebtui serve``: the session picker and the session app in a browser (textual-serve).

Each browser tab runs its own app process (``python -m nebtui.serve``): the
picker, then the chosen session's app in the same tab. Apps only read a
session's log and send control commands, so closing a tab never touches a run.
The server has no authentication: it binds to the loopback address unless told
``--public``, and then every app it serves is read-only (no pause, stop or rm).
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import shlex
import socket
import sys
from typing import Annotated, Any

import typer

from nebtui.failure import fail

READ_ONLY_FLAG = "--read-only"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tunnel_line(port: int) -> str:
    """How to reach a loopback server from a laptop: an SSH tunnel to this machine."""
    return (f"from your laptop: ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()} "
            f"then open http://localhost:{port}")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; a non-loopback one needs --public.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    public: Annotated[bool, typer.Option(
        "--public", help="Allow a non-loopback --host. The server has no authentication: its apps are then "
                         "read-only (no pause, stop or rm).")] = False,
) -> None:
    """The session picker and the session app in a browser (one app per tab; closing a tab leaves the run going)."""
    from sessions.folder import SessionError
    from sessions.home import data_home

    if not is_loopback(host) and not public:
        fail(f"--host {host} is not a loopback address and the server has no authentication: serve on 127.0.0.1 "
             "and reach it through ssh -L, or add --public to serve read-only apps to anyone who reaches it", code=2)
    try:
        home = data_home()
    except SessionError as error:
        fail(str(error))
    os.environ["NEBTUI_HOME"] = str(home)  # the apps' processes read the same sessions
    read_only = public and not is_loopback(host)
    command = " ".join([shlex.quote(sys.executable), "-m", "nebtui.serve", *([READ_ONLY_FLAG] if read_only else [])])
    server = _server(command, host, port, read_only)
    try:
        server.serve()
    except OSError as error:
        fail(f"cannot listen on {host}:{port} ({error.strerror or error}): choose another --port or --host", code=2)


def _server(command: str, host: str, port: int, read_only: bool) -> Any:
    from aiohttp import web
    from textual_serve.server import Server

    class SessionServer(Server):
        async def handle_index(self, request: web.Request) -> Any:
            # the page points its websocket back where the browser found it (a tunnel's port included)
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

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

    def announce() -> None:
        where = f"http://{'localhost' if is_loopback(host) else host}:{port}"
        print(f"serving the nebtui session picker on {where} ({'read-only apps' if read_only else 'apps with control keys'}; "
              "Ctrl-C stops serving, the runs go on)", flush=True)
        if is_loopback(host):
            print(tunnel_line(port), flush=True)

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
    from sessions.home import data_home

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
