"""--align-pairwise: each pair's second minimum weight matched to its first, pair by
pair, before the pair is connected. The session connects exactly those ends, says so in
`sessions show`, its report sets every path beside the straight line between the same
ends, and a comparison never mixes the two alignments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runs import QUICK_REPORT, assert_one_clear_line, copy_session, digits_args, in_process, nebtui


@pytest.fixture(scope="module")
def pairwise_session(tmp_path_factory, digits_minima, digits_schedule) -> Path:
    """A finished polychain session over ``digits_minima``, aligned pair by pair, at a quarter of the
    tiny schedule's budget."""
    home = tmp_path_factory.mktemp("pairwise-home")
    done = nebtui(home, *digits_args(digits_minima, digits_schedule), "--scale", "0.25", "--method", "polychain",
                  "--align-pairwise", "--headless", "--session", "pw")
    assert done.returncode == 0, done.stderr
    return home / "pw"


def test_each_pair_connects_its_first_minimum_and_its_second_matched_to_it(pairwise_session):
    import torch

    from engine.alignment.weight_matching import align
    from engine.networks.layout import ParameterLayout
    from engine.networks.models import mlp
    from sessions.disk.statepack import read_state
    from sessions.problem.minima import flat_minimum, sha256

    config = json.loads((pairwise_session / "config.json").read_text())
    assert (config["method"], config["align"], config["alignment"]) == ("polychain", True, "pairwise")
    assert all(sha256(Path(m["path"])) == m["sha256"] for m in config["problem"]["minima"])  # files unchanged
    layout = ParameterLayout.from_module(mlp())
    files = [flat_minimum(Path(m["path"]), layout) for m in config["problem"]["minima"]]
    paths = sorted((pairwise_session / "results" / "paths").glob("*.safetensors"))
    assert len(paths) == 3
    for path in paths:
        state = read_state(path)
        a, b = state["meta"]["pair"]
        moved = align(mlp(), files[a], files[b], seed=config["seed"])
        assert torch.equal(state["tensors"]["start"], files[a])
        assert torch.equal(state["tensors"]["end"], moved.params.to(files[b].dtype))
        assert moved.distance_after < moved.distance_before
        assert torch.equal(state["tensors"]["end"].sort().values, files[b].sort().values)  # the same numbers, moved


def test_show_and_list_say_pairwise(pairwise_session):
    home = pairwise_session.parent
    row = json.loads(in_process("sessions", "show", "pw", "--json", home=home).stdout)
    assert (row["method"], row["align"], row["alignment"]) == ("polychain", True, "pairwise")
    assert "alignment  pairwise" in in_process("sessions", "show", "pw", home=home).stdout
    assert "polychain aligned pairwise" in in_process("sessions", "list", home=home).stdout


def test_the_report_sets_each_path_beside_the_straight_line_between_its_own_ends(pairwise_session, tmp_path):
    from sessions.disk.statepack import read_state

    done = in_process("report", "pw", "--format", "json,md", "--out", str(tmp_path), *QUICK_REPORT,
                      home=pairwise_session.parent)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    session = document["session"]
    assert session["alignment"]["mode"] == session["line_alignment"]["mode"] == "pairwise"
    assert {tuple(d["pair"]) for d in session["alignment"]["distances"]} == {(0, 1), (0, 2), (1, 2)}
    for path in document["paths"]:
        state = read_state(pairwise_session / "results" / "paths" / f"{path['a']}-{path['b']}.safetensors")
        ends = (state["tensors"]["start"].double() - state["tensors"]["end"].double()).norm().item()
        aligned = path["lines"]["aligned"]
        assert aligned["mode"] == "pairwise" and aligned["distance_after"] == pytest.approx(ends, rel=1e-8)  # report.json keeps 9 digits
        assert aligned["distance_after"] < aligned["distance_before"]
    assert "Aligned pair by pair" in (tmp_path / "report.md").read_text()


def test_a_comparison_takes_the_pairwise_lines_and_never_mixes_alignments(pairwise_session, bezier_session,
                                                                          digits_session, tmp_path):
    home = tmp_path / "home"
    for session in (digits_session, bezier_session, pairwise_session):
        copy_session(session, home)
    done = in_process("report", "dg", "pw", "--format", "json", "--out", str(tmp_path / "two"), home=home)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "two" / "comparison.json").read_text())
    assert [s["label"] for s in document["sessions"]] == ["autoneb", "polychain aligned pairwise"]
    assert all(p["lines"]["aligned"]["mode"] == "pairwise" for p in document["pairs"])
    assert any("after weight matching its second to its first" in note for note in document["notes"])
    mixed = in_process("report", "bz", "pw", "--out", str(tmp_path / "mixed"), home=home)
    assert_one_clear_line(mixed, "sessions bz and pw align their minima differently (to the lowest, pair by pair)")


def test_both_alignments_at_once_is_one_clear_line(digits_minima, digits_schedule, nebtui_home):
    done = in_process(*digits_args(digits_minima, digits_schedule), "--align", "--align-pairwise", "--detach",
                      home=nebtui_home)
    assert done.returncode == 2
    assert_one_clear_line(done, "--align aligns every minimum to the lowest, --align-pairwise each pair's second")
