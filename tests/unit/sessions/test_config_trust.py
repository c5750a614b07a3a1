"""A config read back from JSON is checked field by field, and a model factory's
vouch holds for this user, this session, this factory and its arguments only."""

from __future__ import annotations

import stat

import pytest

from sessions.problem import trust
from sessions.disk.config import SessionConfig
from sessions.errors import SessionError

SURFACE = {"kind": "surface", "surface": "muller-brown"}
SCHEDULE = {"name": "one", "phase": [{"steps": 10, "lr": 0.1}]}


def test_the_zoo_names_are_the_engine_zoo():
    from engine.networks.models import ZOO

    assert trust.ZOO_NAMES == tuple(ZOO)


@pytest.mark.parametrize("fields, what", [
    ({"seed": "3"}, 'seed is "3", not a whole number'),
    ({"workers": True}, "workers is true, not a whole number"),
    ({"landscape": {"stop": 5}}, "landscape.stop is 5, not text"),
    ({"problem": {"kind": "network", "model": "mlp", "data": "digits", "minima": [1, 2]}},
     "problem.minima[0] is not an entry with a path"),
    ({"seeds": 3}, "unknown field 'seeds' (did you mean 'seed'?)"),
])
def test_a_config_with_a_wrong_field_is_one_line(fields, what):
    with pytest.raises(SessionError) as raised:
        SessionConfig.from_dict({"problem": SURFACE, "schedule": SCHEDULE, **fields})
    assert str(raised.value) == what


def test_a_vouch_holds_for_its_session_factory_and_arguments_only(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir(), theirs.mkdir()
    given = trust.tag(mine, "s1", "lab.nets:wide", {"width": 4})

    assert stat.S_IMODE((mine / trust.KEY_FILE).stat().st_mode) == 0o600
    assert trust.vouched(mine, "s1", "lab.nets:wide", {"width": 4}, given)
    assert not trust.vouched(mine, "s2", "lab.nets:wide", {"width": 4}, given)
    assert not trust.vouched(mine, "s1", "lab.nets:narrow", {"width": 4}, given)
    assert not trust.vouched(mine, "s1", "lab.nets:wide", {"width": 5}, given)
    assert not trust.vouched(theirs, "s1", "lab.nets:wide", {"width": 4}, given)  # another user's key, or none
    assert not (theirs / trust.KEY_FILE).exists()  # checking a vouch never makes a key


def test_config_json_reads_back_to_the_same_keys_and_values():
    """An older session's config.json (checked in) and one the command line makes: read
    back and written out again, the same JSON, so sessions written before resume as they were."""
    import json
    from pathlib import Path

    from engine.landscape.graph import parse_stop_rule
    from engine.paths.schedule import load_schedule

    old = json.loads((Path(__file__).parents[2] / "functional/data/sessions-2026-12/stopped/config.json").read_text())
    assert SessionConfig.from_dict(old).to_dict() == old
    made = SessionConfig(problem={"kind": "surface", "surface": "himmelblau"}, schedule=load_schedule("surface"),
                         landscape=parse_stop_rule("relative=0.1"))
    assert made.to_dict()["landscape"] == {"stop": "tolerance", "tolerance": 0.1, "relative": True}
    assert SessionConfig.from_dict(json.loads(json.dumps(made.to_dict()))) == made


def test_a_listing_reads_what_a_config_has_and_skips_what_a_newer_nebtui_wrote():
    from sessions.disk.config import PartialConfig

    listed = PartialConfig.from_dict({"problem": {**SURFACE, "colour": 1}, "landscape": {"variant": "star", "ring": 2},
                                      "method": "bezier", "future": True})
    assert listed.problem.surface == "muller-brown" and listed.schedule is None
    assert listed.landscape.variant == "star" and listed.method == "bezier"
    assert PartialConfig.from_dict({}).problem is None
    with pytest.raises(SessionError, match=r"^problem.surface is 5, not text$"):
        PartialConfig.from_dict({"problem": {"kind": "surface", "surface": 5}})
