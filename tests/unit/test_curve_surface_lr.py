"""A curve's lr follows the AutoNEB schedule's scale (engine.paths.registry.curve_schedule):
on Mueller-Brown, whose gradients are in the hundreds, the curves derived from the
surface preset train without diverging and find the saddle between the two upper
minima that AutoNEB finds; on networks they keep CurveSchedule's own lr."""

import pytest

from engine.energy.surfaces import MuellerBrown
from engine.paths.curve_schedule import CURVE_KINDS, CurveSchedule
from engine.paths.registry import method_schedule, new_run
from engine.paths.schedule import load_schedule


def test_network_schedule_keeps_the_curve_lr() -> None:
    for kind in CURVE_KINDS:
        assert method_schedule(kind, load_schedule("paper")).lr == CurveSchedule.lr


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_curves_on_mueller_brown_reach_autonebs_saddle(kind: str) -> None:
    surface = MuellerBrown()
    minima = surface.minimum_positions()
    schedule = load_schedule("surface").scaled(0.2)
    curve = method_schedule(kind, schedule)
    assert curve.lr == max(c.lr for c in schedule.cycles)  # the surface's own, as its band's
    known = surface.saddles[1].energy  # between minima 1 and 2 (-72.2489)
    autoneb = new_run(surface, schedule, minima[1], minima[2]).run()
    fitted = new_run(surface, curve, minima[1], minima[2]).run()
    # both paths cross the saddle's basin boundary at a sampled point within 0.01 of the saddle; the
    # surface's gradient vanishes there, so their peaks lie within a few hundredths of its energy
    assert fitted.saddle_energy == pytest.approx(known, abs=0.05)
    assert fitted.saddle_energy == pytest.approx(autoneb.saddle_energy, abs=0.05)
    # the pair whose path bends round the third minimum: the curve trains to its end, finite
    far = new_run(surface, curve, minima[0], minima[2]).run()
    assert far.saddle_energy >= surface.saddles[0].energy - 0.05
