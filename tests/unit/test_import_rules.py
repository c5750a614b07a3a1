"""Imports flow one way (nebtui -> sessions -> engine); the core never pulls in
the terminal UI stack, and the CLI starts without torch.

Every module of engine/ and sessions/ is imported, not only the packages: a
module that nothing imports at package level (sessions/processes/runner.py, say) would
otherwise hide a wrong import. One fresh interpreter imports them one by one,
engine's first, and records what each one brought into sys.modules.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UI = ("textual", "rich", "nebtui")


def modules_of(package: str) -> list[str]:
    """Every module under ``package``, found on disk without importing anything."""
    found = [package]
    for info in pkgutil.iter_modules([str(ROOT / package.replace(".", "/"))]):
        name = f"{package}.{info.name}"
        found.extend(modules_of(name) if info.ispkg else [name])
    return found


ENGINE = modules_of("engine")
SESSIONS = modules_of("sessions")

_IMPORT_EACH = """
import importlib, json, sys
brought = {}
for name in json.loads(sys.argv[1]):
    before = set(sys.modules)
    importlib.import_module(name)
    brought[name] = sorted(set(sys.modules) - before)
print(json.dumps(brought))
"""


def _run(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def brought() -> dict[str, list[str]]:
    """{module: the modules its import added}, engine's modules before any of sessions'."""
    return json.loads(_run(_IMPORT_EACH, json.dumps(ENGINE + SESSIONS)))


def _tops(names: list[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("module", ENGINE)
def test_engine_modules_import_neither_the_ui_nor_sessions(module, brought):
    # engine's modules come first, so a sessions module loaded here was loaded by this one
    assert not _tops(brought[module]) & {*UI, "sessions"}, brought[module]


@pytest.mark.parametrize("module", SESSIONS)
def test_sessions_modules_import_no_ui(module, brought):
    assert not _tops(brought[module]) & set(UI), brought[module]


def _modules_after(code: str) -> set[str]:
    return set(json.loads(_run(f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")))


# what `nebtui --help` and `nebtui sessions list/show/attach` load: all without torch
TORCH_FREE_CLI = ["nebtui.cli", "nebtui.sessions_cmd", "nebtui.follow", "nebtui.progress", "nebtui.launch",
                  "nebtui.options", "nebtui.failure", "nebtui.explore", "nebtui.demo", "nebtui.startup",
                  "nebtui.serve", "nebtui.app", "nebtui.app.app", "nebtui.app.picker"]


def test_cli_modules_import_without_torch():
    loaded = _modules_after("\n".join(f"import {name}" for name in TORCH_FREE_CLI))
    assert "torch" not in loaded


@pytest.mark.parametrize("argv", [["--help"], ["sessions", "list"], ["sessions", "list", "--json"],
                                  ["sessions", "show", "quiet"], ["sessions", "attach", "quiet"]])
def test_fast_commands_never_import_torch(argv, nebtui_home):
    from sessions.disk.folder import SessionFolder

    nebtui_home.mkdir(parents=True, exist_ok=True)
    SessionFolder.create(nebtui_home, "quiet", {"problem": {"kind": "surface", "surface": "muller-brown"}})
    code = (
        "import sys\n"
        "from nebtui.cli import app\n"
        f"sys.argv = ['nebtui', *{argv!r}]\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass"
    )
    loaded = _modules_after(code)
    assert "torch" not in loaded


def _cli_in_fresh_interpreter(argv: list[str]) -> tuple[int, set[str]]:
    """Run the command line in a fresh interpreter: its exit code and every module it loaded."""
    code = (
        "import json, sys\n"
        "from nebtui.cli import app\n"
        f"sys.argv = ['nebtui', *{argv!r}]\n"
        "try:\n"
        "    app()\n"
        "    code = 0\n"
        "except SystemExit as exit:\n"
        "    code = exit.code or 0\n"
        "print(json.dumps([code, sorted(sys.modules)]))"
    )
    code, loaded = json.loads(_run(code))
    return code, set(loaded)


def _stop_runner(home: Path) -> None:
    """Stop (SIGTERM) the detached runner of the one session under ``home`` and wait for it to leave."""
    import os
    import signal
    import time

    from sessions.disk.folder import list_sessions
    from sessions.disk.lock import holder

    for folder in list_sessions(home):
        pid = holder(folder.lock_path)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while holder(folder.lock_path) is not None:
            assert time.monotonic() < deadline, "the runner did not stop within 60 s"
            time.sleep(0.1)


def test_demo_starts_a_session_without_torch(nebtui_home):
    """The CLI creates the session and sees its runner accept it: the runner imports torch, the CLI never."""
    try:
        code, loaded = _cli_in_fresh_interpreter(["demo", "muller-brown", "--detach", "--session", "quick"])
    finally:
        _stop_runner(nebtui_home)
    assert code == 0
    assert "torch" not in loaded
    assert (nebtui_home / "quick").is_dir()


def test_explore_refusal_comes_from_the_runner_without_torch_here(nebtui_home, tmp_path):
    """Minima that do not fit the model: the runner refuses them, the CLI exits with code 2
    and leaves no session behind, and never imports torch."""
    import numpy as np
    from safetensors.numpy import save_file

    minima = tmp_path / "minima"
    minima.mkdir()
    for i in range(2):
        save_file({"weight": np.full((3, 2), float(i), dtype=np.float32)}, str(minima / f"m{i}.safetensors"))
    code, loaded = _cli_in_fresh_interpreter(["explore", str(minima), "--model", "mlp", "--data", "digits",
                                              "--detach"])
    assert code == 2
    assert "torch" not in loaded
    assert not [p for p in nebtui_home.iterdir() if not p.name.startswith(".")] if nebtui_home.exists() else True
