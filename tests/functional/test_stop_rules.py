"""Stop rules keep their promise: whatever the rule, the minimum spanning tree spans
every minimum, and the output names the rule that ended the session."""

from __future__ import annotations

import json

from cli_runs import in_process
from engine.landscape.graph import Landscape
from nebtui.progress import describe


def test_max_pairs_below_the_tree_still_spans_every_minimum_and_says_so():
    """Himmelblau has 4 minima: a spanning tree needs 3 pairs, more than max-pairs=2."""
    done = in_process("demo", "himmelblau", "--scale", "0.1", "--device", "cpu", "--stop", "max-pairs=2",
                      "--headless", "--session", "budget")
    assert done.returncode == 0, done.stderr
    assert ("landscape: finished (max-pairs, after the first spanning tree: its 3 pairs connect all 4 minima, "
            "more than max-pairs allowed)") in done.stdout
    assert "session finished (max pairs after tree), 3 pairs" in done.stdout
    shown = in_process("sessions", "show", "budget", "--json")
    mst = json.loads(shown.stdout)["mst"]
    assert {m for edge in mst for m in (edge["a"], edge["b"])} == {0, 1, 2, 3} and len(mst) == 3


def test_a_relative_tolerance_is_named_relative():
    """Saddles 5, 4.5 and 4.75 below the largest of 5: within 0.1 x 5 of each other."""
    events = []
    landscape = Landscape([0.0, 1.0, 2.0, 3.0], stop="tolerance", tolerance=0.1, relative=True,
                          on_event=events.append)
    for pair, saddle in (((0, 1), 5.0), ((0, 2), 4.5), ((0, 3), 4.75)):
        assert landscape.next_pair() == pair
        landscape.add_path(*pair, saddle)
    assert describe(events[-1]) == ("landscape: finished (relative: the MST's saddle energies are within the "
                                    "tolerance times the largest)")
