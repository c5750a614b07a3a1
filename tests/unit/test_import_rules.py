"""Imports flow one way (nebtui -> sessions -> engine); the core never pulls in
the terminal UI stack, and the CLI starts without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import engine",
        "import engine.energy.network, engine.neb.exploration, engine.neb.landscape, engine.neb.schedule",
        "import sessions",
    ],
)
def test_core_imports_no_ui(code):
    loaded = _modules_after(code)
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "rich", "nebtui")}
    if code.startswith("import engine"):
        assert "sessions" not in loaded


def test_cli_starts_without_torch():
    loaded = _modules_after("import nebtui.cli")
    assert "torch" not in loaded


@pytest.mark.parametrize("argv", [["--help"], ["sessions", "list"], ["sessions", "list", "--json"],
                                  ["sessions", "show", "quiet"], ["sessions", "attach", "quiet"]])
def test_fast_commands_never_import_torch(argv, nebtui_home):
    from sessions.folder import SessionFolder

    nebtui_home.mkdir(parents=True, exist_ok=True)
    SessionFolder.create(nebtui_home, "quiet", {"problem": {"kind": "surface", "surface": "muller-brown"}}, [])
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
