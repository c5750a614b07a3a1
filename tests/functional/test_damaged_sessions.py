"""A damaged session (its log or its config changed by hand or by another program)
is one line wherever it is read, and never hides the others: `sessions list` lists
it as damaged and the others as usual, `sessions show` says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runs import copy_session, in_process
from sessions.disk.folder import SessionFolder

pytestmark = pytest.mark.timeout(120)


def _append_event(folder: Path, event: dict) -> int:
    """Appends ``event`` to the session's log as the next line; its seq."""
    log = folder / "events.jsonl"
    seq = json.loads(log.read_text().splitlines()[-1])["seq"] + 1
    with log.open("a") as out:
        out.write(json.dumps({"seq": seq, "time": 1.0e9, **event}) + "\n")
    return seq


DAMAGES = {
    "losses": ({"kind": "step_energies", "pair": [0, 1], "restart": 0, "cycle": 1, "step": 1, "losses": 5},
               "step_energies.losses is 5"),
    "mst": ({"kind": "session_finished", "reason": "all_pairs", "pairs_done": 3, "mst": "ab"},
            "session_finished.mst is 'ab'"),
    "edge": ({"kind": "mst_edge_replaced", "removed": [], "removed_energy": 1.0, "added": [0, 1],
              "added_energy": 0.5}, "mst_edge_replaced.removed is []"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_event_is_one_line_and_the_other_sessions_are_listed(mb_session, tmp_path, damage):
    home = tmp_path / "home"
    damaged = copy_session(mb_session, home)  # "mb"
    SessionFolder.create(home, "intact", {"problem": {"kind": "surface", "surface": "himmelblau"}})
    event, problem = DAMAGES[damage]
    seq = _append_event(damaged, event)

    listed = in_process("sessions", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert lines.keys() == {"intact", "mb"} and listed.stderr == ""
    assert "created" in lines["intact"] and "pairs 0/6" in lines["intact"]
    assert f"damaged: event {seq} of events.jsonl: {problem}" in lines["mb"]
    assert "repair or remove that line" in lines["mb"]

    rows = json.loads(in_process("sessions", "list", "--json", home=home).stdout)
    assert {row["id"]: row["status"] for row in rows} == {"mb": "damaged", "intact": "created"}

    shown = in_process("sessions", "show", "mb", home=home)
    assert shown.returncode == 1
    [line] = shown.stderr.splitlines()
    assert line.startswith("nebtui: session mb is damaged: ") and problem in line
    assert "status     damaged" in shown.stdout  # what could be read is shown all the same
    assert in_process("sessions", "show", "intact", home=home).returncode == 0
    saved = (mb_session / "events.jsonl").read_bytes()
    assert (damaged / "events.jsonl").read_bytes().startswith(saved)  # nothing saved was lost


@pytest.mark.parametrize("config", ["[]", '"a string"', '{"problem": 5}'])
def test_a_damaged_config_is_one_line_and_the_other_sessions_are_listed(mb_session, tmp_path, config):
    home = tmp_path / "home"
    damaged = copy_session(mb_session, home)  # "mb"
    SessionFolder.create(home, "intact", {"problem": {"kind": "surface", "surface": "himmelblau"}})
    (damaged / "config.json").write_text(config)

    listed = in_process("sessions", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "created" in lines["intact"]
    assert lines["mb"].split()[1] == "damaged:" and "config.json" in lines["mb"]

    shown = in_process("sessions", "show", "mb", home=home)
    assert shown.returncode != 0 and shown.stdout == ""
    [line] = shown.stderr.splitlines()
    assert line.startswith("nebtui: ") and "config.json" in line
