"""Session folders written by an earlier nebtui still resume and report. The folder in
tests/functional/data/sessions-2026-12 is a Mueller-Brown session (`demo muller-brown
--device cpu --scale 0.1 --checkpoint-every 0.2`) stopped after its first pair, as
December 2026's nebtui wrote it; finished-result.json is the same command's
uninterrupted result. Keep both as they are: they stand for the users' folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cli_runs import copy_session, in_process, nebtui

DATA = Path(__file__).parent / "data" / "sessions-2026-12"

pytestmark = pytest.mark.timeout(120)


def test_a_session_written_before_resumes_to_its_uninterrupted_result_and_reports(tmp_path):
    home = tmp_path / "home"
    folder = copy_session(DATA / "stopped", home)
    for path in [folder, *folder.rglob("*")]:  # a checkout keeps no modes: the user's folder is private
        path.chmod(0o700 if path.is_dir() else 0o600)
    assert "stopped" in in_process("sessions", "show", "stopped", home=home).stdout

    done = nebtui(home, "sessions", "resume", "stopped")
    assert done.returncode == 0, done.stderr
    assert "session finished (all pairs), 3 pairs" in done.stdout
    mine = json.loads((folder / "results" / "result.json").read_text())
    theirs = json.loads((DATA / "finished-result.json").read_text())
    # The same command to its end: the same tree and pairs; the numbers the same bits on the
    # CPU that wrote the folder, and to float64 rounding on others (their exp rounds apart).
    assert [(e["a"], e["b"]) for e in mine["mst"]] == [(e["a"], e["b"]) for e in theirs["mst"]]
    assert [(p["a"], p["b"]) for p in mine["paths"]] == [(p["a"], p["b"]) for p in theirs["paths"]]
    for ours, reference in zip(mine["paths"], theirs["paths"]):
        assert math.isclose(ours["saddle_energy"], reference["saddle_energy"], rel_tol=1e-9)

    report = in_process("report", "stopped", home=home)
    assert report.returncode == 0, report.stderr
    written = folder / "results" / "report"
    assert {"report.md", "report.html", "report.json"} <= {p.name for p in written.iterdir()}
    assert len(json.loads((written / "report.json").read_text())["mst"]) == 2
