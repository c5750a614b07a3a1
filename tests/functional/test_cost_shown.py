"""A finished headless session's cost account, from the run to `sessions show` and the
report: per path the passes its steps, its dense evaluation and its recalibration made,
as the session's own log of cycles says they must be."""

from __future__ import annotations

import json

from cli_runs import QUICK_REPORT, in_process


def _cycles(folder):
    """(pair, pivots, steps, batch size) of every cycle the log says was started."""
    from engine.events import CycleStarted
    from sessions.disk.eventlog import read_log

    return [(e.event.pair, e.event.pivots, e.event.steps, e.event.batch_size)
            for e in read_log(folder / "events.jsonl") if isinstance(e.event, CycleStarted)]


def test_show_and_report_give_each_path_s_account_as_its_cycles_add_up(digits_session, tmp_path):
    home = digits_session.parent
    shown = in_process("sessions", "show", "dg", home=home)
    assert shown.returncode == 0, shown.stderr
    cost_lines = [line for line in shown.stdout.splitlines() if line.startswith("cost")]
    assert len(cost_lines) == 3 and all("steps" in line and "dense evaluation" in line for line in cost_lines)
    row = json.loads(in_process("sessions", "show", "dg", "--json", home=home).stdout)

    done = in_process("report", "dg", "--format", "json,md,csv", "--out", str(tmp_path), *QUICK_REPORT, home=home)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    cycles = _cycles(digits_session)
    logged = {(p["a"], p["b"]): p["cost"] for p in row["paths"]}
    for path in document["paths"]:
        pair = (path["a"], path["b"])
        account = path["cost"]["account"]
        mine = [c for c in cycles if tuple(c[0]) == pair]
        # the session runs the loop strategy: each step, every pivot forward, the interior backward
        assert account["steps"]["forward"] == sum(pivots * steps * batch for _, pivots, steps, batch in mine)
        assert account["steps"]["backward"] == sum((pivots - 2) * steps * batch for _, pivots, steps, batch in mine)
        assert account["evaluation"]["forward"] > 0 and account["recalibration"]["forward"] == 0  # no BatchNorm
        assert account["devices"] == ["cpu"] and account["seconds"] > 0
        assert logged[pair] == {k: v for k, v in account.items() if k not in ("seconds", "devices")}  # the saved run's
    markdown = (tmp_path / "report.md").read_text()
    assert "step passes fwd / bwd" in markdown and "s on cpu" in markdown
    assert any("steps_backward" in f.read_text() for f in tmp_path.rglob("*.csv"))


def test_a_report_of_paths_without_an_account_shows_a_dash(digits_session, tmp_path):
    """A report document of a session whose runs kept no account (saved before they did)."""
    from nebtui.report.writers import markdown, tables

    done = in_process("report", "dg", "--format", "json", "--out", str(tmp_path), *QUICK_REPORT,
                      home=digits_session.parent)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    for path in document["paths"]:
        del path["cost"]["account"]
    text = markdown(document, {})
    paths_table = text[text.index("## Paths"):].split("\n\n")[1].splitlines()
    assert all(row.rstrip(" |").endswith("| - | - | - | -") for row in paths_table[2:])
    assert all(row["steps_forward"] is None for row in tables(document)["paths"])
