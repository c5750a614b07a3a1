"""--method and --align from the command line to the report: a session connects its
minima by the method it names (after aligning them when asked), says so in
`sessions show` and in its report, and sets every path beside the straight lines
before and after alignment; `report A B` compares sessions over the same minima."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runs import QUICK_REPORT, assert_one_clear_line, copy_session, in_process


def test_method_and_alignment_reach_the_session_and_show(bezier_session, digits_minima):
    import torch

    from engine.networks.layout import ParameterLayout
    from engine.networks.models import mlp
    from sessions.disk.checkpoint import load_checkpoint
    from sessions.problem.minima import flat_minimum, sha256
    from sessions.disk.statepack import read_state

    config = json.loads((bezier_session / "config.json").read_text())
    assert (config["method"], config["align"]) == ("bezier", True)
    home = bezier_session.parent
    shown = in_process("sessions", "show", "bz", home=home)
    assert shown.returncode == 0 and "method     bezier" in shown.stdout and "align      True" in shown.stdout
    row = json.loads(in_process("sessions", "show", "bz", "--json", home=home).stdout)
    assert (row["method"], row["align"]) == ("bezier", True)
    # every path is a curve
    for path in (bezier_session / "results" / "paths").glob("*.safetensors"):
        assert read_state(path)["meta"]["method"] == "bezier"
    # the minima it connected are the files' minima aligned to the lowest; the files are unchanged
    assert all(sha256(Path(m["path"])) == m["sha256"] for m in config["problem"]["minima"])
    layout = ParameterLayout.from_module(mlp())
    files = torch.stack([flat_minimum(Path(m["path"]), layout) for m in config["problem"]["minima"]])
    connected = load_checkpoint(bezier_session).tensors["minima"]
    energies = [m["energy"] for m in json.loads((bezier_session / "results" / "result.json").read_text())["minima"]]
    lowest = min(range(3), key=lambda i: energies[i])
    assert torch.equal(connected[lowest], files[lowest])
    for i in set(range(3)) - {lowest}:
        assert (connected[i] - files[lowest]).norm() < (files[i] - files[lowest]).norm()
        assert torch.allclose(connected[i].sort().values, files[i].sort().values)  # the same numbers, moved


def test_a_bezier_session_reports_its_method_costs_and_straight_lines(bezier_session, tmp_path):
    done = in_process("report", "bz", "--format", "json,md", "--out", str(tmp_path), *QUICK_REPORT,
                      home=bezier_session.parent)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    session = document["session"]
    assert (session["method"], session["align"]) == ("bezier", True)
    curve = session["curve"]
    assert curve["kind"] == "bezier" and curve["gradient_evaluations"] == curve["steps"] * curve["points"]
    assert session["alignment"]["reference"] in range(3)
    assert len(document["paths"]) == 3
    for path in document["paths"]:
        assert path["method"] == "bezier" and path["cost"]["gradient_evaluations"] == curve["gradient_evaluations"]
        straight, aligned = path["lines"]["straight"], path["lines"]["aligned"]
        assert aligned["distance_after"] < aligned["distance_before"]
        assert aligned["saddle"] < straight["saddle"]  # alignment lowers the straight line's barrier
        assert path["saddle"]["train"]["loss"] < straight["saddle"]
    text = (tmp_path / "report.md").read_text()
    assert "Method: quadratic Bezier curves" in text and "Aligned: the minima were connected after" in text


def test_two_sessions_over_the_same_minima_give_one_comparison(bezier_session, digits_session, tmp_path):
    from nebtui.report.figures import total_passes

    home = tmp_path / "home"
    copy_session(digits_session, home)
    copy_session(bezier_session, home)
    out = tmp_path / "comparison"
    done = in_process("report", "dg", "bz", "--out", str(out), home=home)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"comparison.json", "comparison.csv", "comparison.md",
                                                "comparison.html", "figures"}
    assert (out / "figures" / "compare-profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "figures" / "compare-cost.png").read_bytes()[:4] == b"\x89PNG"
    assert "figures/compare-cost.png" in (out / "comparison.md").read_text()
    document = json.loads((out / "comparison.json").read_text())
    assert [s["label"] for s in document["sessions"]] == ["autoneb", "bezier aligned"]
    assert document["common_pairs"] == [[0, 1], [0, 2], [1, 2]]
    curve = document["sessions"][1]["curve"]
    for pair in document["pairs"]:
        straight = pair["lines"]["straight"]["saddle"]
        assert pair["lines"]["aligned"]["saddle"] < straight
        by_label = {m["label"]: m for m in pair["methods"]}
        for method in by_label.values():
            assert method["saddle_train_loss"] < straight / 2  # every method's path far below the straight line
            assert 0 <= method["max_test_error"] < 1 and method["seconds"] > 0
        assert by_label["bezier aligned"]["gradient_evaluations"] == curve["gradient_evaluations"]
        assert by_label["autoneb"]["gradient_evaluations"] >= 150 * 5  # the tiny schedule's band at its first size
        for method in by_label.values():  # where the cost figure puts the pair: all the passes its run computed
            steps, evaluation = method["account"]["steps"], method["account"]["evaluation"]
            assert steps["backward"] > 0 and evaluation["forward"] > 0  # both methods evaluate their paths
            assert total_passes(method["account"]) >= steps["forward"] + 2 * steps["backward"] + evaluation["forward"]
    means = {m["label"]: m for m in document["means"]}
    assert set(means) == {"autoneb", "bezier aligned", "straight line", "straight line after alignment"}
    assert "## Means" in (out / "comparison.md").read_text()


def test_sessions_over_different_minima_are_not_compared(bezier_session, digits_session, tmp_path):
    home = tmp_path / "home"
    copy_session(digits_session, home)
    other = copy_session(bezier_session, home)
    config = json.loads((other / "config.json").read_text())
    config["problem"]["minima"][0]["sha256"] = "0" * 64
    (other / "config.json").write_text(json.dumps(config))
    done = in_process("report", "dg", "bz", "--out", str(tmp_path / "out"), home=home)
    assert_one_clear_line(done, "sessions dg and bz explore different minima")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "neb"], "unknown method 'neb': use autoneb, bezier or polychain"),
    (["--align"], "--align permutes the hidden units of networks: a surface has none"),
])
def test_a_bad_method_or_alignment_is_one_clear_line_and_no_session(argv, message, nebtui_home):
    done = in_process("demo", "muller-brown", *argv, "--detach", home=nebtui_home)
    assert done.returncode == 2
    assert_one_clear_line(done, message)
    assert not nebtui_home.exists() or not any(nebtui_home.iterdir())
