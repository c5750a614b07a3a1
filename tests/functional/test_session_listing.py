"""`nebtui sessions list` tells sessions of different methods apart."""

from __future__ import annotations

from cli_runs import in_process
from sessions.disk.folder import SessionFolder


def test_the_list_shows_each_session_s_method(nebtui_home):
    nebtui_home.mkdir(parents=True, exist_ok=True)
    surface = {"kind": "surface", "surface": "himmelblau"}
    SessionFolder.create(nebtui_home, "neb", {"problem": surface, "method": "autoneb"})
    SessionFolder.create(nebtui_home, "curve", {"problem": surface, "method": "bezier", "align": True})
    listed = in_process("sessions", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()}
    assert rows["neb"][1:3] == ["created", "autoneb"]
    assert rows["curve"][1:4] == ["created", "bezier", "aligned"]
