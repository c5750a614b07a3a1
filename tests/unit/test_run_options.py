"""--stop and --workers: the paper's stop rules and the CPU workers from the command
line; a bad value is one clear line before any session exists."""

from __future__ import annotations

import pytest

from cli_runs import assert_one_clear_line, in_process
from engine.landscape.graph import Landscape, LandscapeOptions, parse_stop_rule


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("all-pairs", {"stop": "all_pairs"}),
        ("tolerance=0.5", {"stop": "tolerance", "tolerance": 0.5, "relative": False}),
        ("relative=0.1", {"stop": "tolerance", "tolerance": 0.1, "relative": True}),
        ("max-pairs=20", {"stop": "all_pairs", "max_pairs": 20}),
    ],
)
def test_stop_rules_name_the_landscape_options(text, options):
    assert parse_stop_rule(text).given() == options  # as config.json keeps them
    Landscape([0.0, 1.0, 2.0], parse_stop_rule(text))  # the landscape takes them as they are


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stop", "tolerance=-1"], r"--stop: stop rule 'tolerance=-1': tolerance needs a number >= 0"),
        (["--stop", "nonsense"], r"--stop: unknown stop rule 'nonsense': use all-pairs, tolerance=VALUE"),
        (["--stop", "max-pairs=0"], r"max-pairs needs a whole number >= 1"),
        (["--workers", "0"], r"--workers '0': give a whole number >= 1 of CPU workers, or auto"),
        (["--workers", "two"], r"--workers 'two': give a whole number >= 1"),
        (["--workers", "2", "--device", "cuda:0,1"], r"with --device cuda:0,1 there is one worker per GPU"),
    ],
)
def test_bad_stop_or_workers_is_one_clear_line_and_no_session(argv, message, nebtui_home):
    done = in_process("demo", "muller-brown", *argv, "--detach", home=nebtui_home)
    assert done.returncode == 2
    assert_one_clear_line(done, message)
    assert not nebtui_home.exists() or not any(nebtui_home.iterdir())


def test_stop_and_workers_reach_the_session_config():
    from nebtui.launch import session_config
    from nebtui.options import RunOptions
    from sessions.disk.config import Problem, SessionConfig

    from engine.paths.schedule import load_schedule

    problem = Problem(kind="surface", surface="himmelblau")
    schedule = load_schedule("surface")
    config = session_config(RunOptions(stop="relative=0.1", workers="3"), problem, schedule)
    assert config.landscape == LandscapeOptions(stop="tolerance", tolerance=0.1, relative=True) and config.workers == 3
    assert config.to_dict()["landscape"] == {"stop": "tolerance", "tolerance": 0.1, "relative": True}  # as given
    again = SessionConfig.from_dict(config.to_dict())  # as the runner reads config.json
    assert again == config and again.to_dict() == config.to_dict()
    star = session_config(RunOptions(star=True, stop="max-pairs=5"), problem, schedule)
    assert star.to_dict()["landscape"] == {"stop": "all_pairs", "max_pairs": 5, "variant": "star"}
    assert star.landscape.variant == "star" and star.workers == 1
