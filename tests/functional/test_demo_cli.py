"""The demo command as a user runs it: the installed script in a real process for whole
demos, the command line in this process for what it refuses."""

from __future__ import annotations

import json
import re
import resource
import subprocess

import pytest
from cli_runs import NEBTUI, in_process, wait_until
from sessions.disk.lock import holder


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_headless_demo_with_climbing_image_prints_progress_and_reaches_both_saddles(nebtui_home):
    # a fifth of the demo's steps: the climbing image still ends on both saddles to 1e-4 (so from 0.15 up)
    done = run("demo", "muller-brown", "--headless", "--climb", "--seed", "1", "--session", "climb", "--scale", "0.2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("pair (0, 1) restart 1 cycle 1:") for line in lines)
    assert "session finished (all pairs), 3 pairs" in lines
    tree = lines[lines.index("minimum spanning tree (saddle energies)") + 1 :]
    assert len(tree) == 2
    printed = sorted(float(line.split("saddle")[1].split()[0]) for line in tree)
    assert printed == pytest.approx([-72.2489, -40.6648], abs=0.01)

    # the result (what --json prints: see test_digits_demo_trains_its_minima_once_and_survives_a_full_disk)
    result = json.loads((nebtui_home / "climb" / "results" / "result.json").read_text())
    assert [m["id"] for m in result["minima"]] == [0, 1, 2]
    assert result["minima"][0]["energy"] == pytest.approx(-146.6995, abs=1e-3)
    assert result["minima"][0]["position"] == pytest.approx([-0.55822, 1.44173], abs=1e-4)
    assert {(p["a"], p["b"]) for p in result["paths"]} == {(0, 1), (0, 2), (1, 2)}
    for path in result["paths"]:
        assert set(path) >= {"saddle_energy", "saddle_position", "linear_saddle_energy", "pivots"}
        assert path["pivots"][0] == result["minima"][path["a"]]["position"]
        assert path["saddle_energy"] <= path["linear_saddle_energy"] + 0.01  # (1, 2): the segment is nearly the MEP
    saddles = sorted(edge["saddle_energy"] for edge in result["mst"])
    assert saddles == pytest.approx([-72.2489, -40.6648], abs=0.01)
    assert printed == pytest.approx(saddles, abs=1e-4)  # the printed tree is the result's


def test_paper_schedule_is_rescaled_for_the_surface():
    # one pair is enough to show that the rescaled schedule runs to the end
    done = in_process("demo", "muller-brown", "--headless", "--schedule", "paper", "--scale", "0.02",
                      "--stop", "max-pairs=1")
    assert done.returncode == 0, done.stderr
    assert "note: lr scaled by 0.003" in done.stdout
    assert "session finished" in done.stdout


@pytest.mark.parametrize(
    "args, message, code",
    [
        (("demo", "nowhere"), "nebtui: unknown demo 'nowhere': choose one of muller-brown, himmelblau, digits", 1),
        (("demo", "muller-brown", "--schedule", "/no/such.toml"), "/no/such.toml: no such schedule file", 2),
        (("demo", "muller-brown", "--scale", "0"), "factor must be a finite number > 0, got 0.0", 2),
        (("demo", "muller-brown", "--seed", "x"), "Invalid value for '--seed'", 2),
        (("demo", "muller-brown", "--converge", "2"), "--converge '2': give CHANGE[:CYCLES], a fraction in (0, 1)", 2),
        (("demo", "muller-brown", "--converge", "0.01:x"), "e.g. --converge 0.01:2", 2),
        (("demo", "muller-brown", "--converge", "0.01", "--method", "bezier"),
         "--converge ends AutoNEB's cycles early; a bezier curve has none to end", 2),
    ],
)
def test_bad_input_is_one_clear_line(args, message, code):
    done = in_process(*args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_bad_schedule_file_names_every_bad_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[band]\ninitial_pivots = 0\n\n[[phase]]\nsteps = -5\nlr = 0.1\noptimiser = 'SDG'\n")
    done = in_process("demo", "muller-brown", "--schedule", str(bad))
    assert done.returncode == 2
    assert "initial_pivots" in done.stderr and "steps must be a positive integer, got -5" in done.stderr
    assert "did you mean 'SGD'" in done.stderr
    assert "Traceback" not in done.stderr


def test_diverging_band_says_what_to_do(tmp_path):
    hot = tmp_path / "hot.toml"
    hot.write_text("[[phase]]\nsteps = 20\nlr = 1.0\n")
    done = in_process("demo", "muller-brown", "--schedule", str(hot))
    assert done.returncode == 1
    assert "lower the learning rate" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_digits_demo_trains_its_minima_once_and_survives_a_full_disk(nebtui_home):
    """The README's main job, scaled down: four digits MLP minima trained into the
    data home (a fresh one per test), then connected (the three pairs of the first
    spanning tree); with --json stdout is the result only. Then a session under a
    file size limit its first finished path cannot be saved under (about 100 kB):
    one line saying how to go on, and resuming without the limit finishes the session."""
    done = run("demo", "digits", "--json", "--scale", "0.05", "--strategy", "batched", "--stop", "max-pairs=3",
               timeout=280)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["minima"]) == 4 and len(result["mst"]) == 3
    assert max(m["energy"] for m in result["minima"]) < 0.05  # trained minima
    assert all(path["saddle_energy"] < path["linear_saddle_energy"] for path in result["paths"])

    def tight() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (90_000, 90_000))  # inherited by the detached runner

    # one pair is enough here: its path is the one that cannot be saved
    full = subprocess.run([NEBTUI, "demo", "digits", "--headless", "--scale", "0.05", "--strategy", "batched",
                           "--stop", "max-pairs=1", "--session", "tight"], capture_output=True, text=True,
                          timeout=280, preexec_fn=tight)
    assert full.returncode != 0
    assert "of the digits MLP: train loss" not in full.stdout  # the minima were kept, not trained again
    assert "Traceback" not in full.stdout + full.stderr
    assert re.search(r"session tight failed: cannot save the path of pair \(\d, \d\) to \S+/tight/results/paths "
                     r"\(File too large\): free space \(or raise ulimit -f\), then nebtui sessions resume tight "
                     r"continues from the last checkpoint", full.stderr), full.stderr
    # detached: following it to the end would add the Table 1 row's evaluation, which this is not about
    resumed = in_process("sessions", "resume", "tight", "--detach")  # the runner it starts is the real one
    assert resumed.returncode == 0, resumed.stderr
    assert "continues from the last checkpoint" in resumed.stdout
    folder = nebtui_home / "tight"
    wait_until(lambda: holder(folder / "lock") is None, 240, "the resumed session's runner to end")
    shown = in_process("sessions", "show", "tight", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "finished"
