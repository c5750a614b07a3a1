"""Several pairs in flight: the energy pane keeps following one of them while the
others step, a key (and the palette) moves it to the next, and the MST pane marks
which one it is."""

from __future__ import annotations

import pytest
from tui_fakes import CONFIG, Events, FakeSource, FixedStatus, app_test, wait_until

from engine.events import PairChosen
from nebtui.app import SessionApp
from nebtui.app.panes import EnergyPane, MSTPane
from sessions.events import RunnerStarted, WorkerStarted

pytestmark = pytest.mark.timeout(60)


def two_in_flight() -> list:
    e = Events()
    e.add(RunnerStarted(pid=4242, devices=["cpu", "cpu"], resumed=False, pairs_done=0))
    for worker in (0, 1):
        e.add(WorkerStarted(worker=worker, device="cpu", pid=4243 + worker))
    e.add(PairChosen(pair=(0, 1), reason="initial", attacked_edge=None))
    e.add(PairChosen(pair=(0, 2), reason="initial", attacked_edge=None))
    e.connection((0, 1), stop_after=(2, 10))
    e.connection((0, 2), stop_after=(1, 20))  # stepped last
    return e.events


@app_test
async def test_the_energy_pane_follows_one_pair_and_n_moves_to_the_next():
    events = two_in_flight()
    source = FakeSource(events)
    app = SessionApp(source, None, session_id="two", config=CONFIG, status_probe=FixedStatus(),
                     clock=lambda: 0.0, pairs_total=3)
    async with app.run_test(size=(160, 48)) as pilot:
        energy, mst = app.query_one(EnergyPane), app.query_one(MSTPane)

        def follows(pair) -> bool:
            return app.model.view.events >= len(events) and f"pair {pair}" in str(energy.border_title)

        await wait_until(pilot, lambda: follows((0, 1)), what="the energy pane on the first pair in flight")
        assert "cycle 2/3 step 10/20" in energy.render().plain  # not (0, 2)'s, which stepped last
        lines = mst.render().plain.splitlines()
        shown = [line for line in lines if "◀ energy pane" in line]
        assert len(shown) == 1 and "computing (0, 1)" in shown[0]
        # every pair in flight with its own progress and ETA (20 steps of 60 at 20 steps a second)
        assert any(line.startswith("computing (0, 1) · cycle 2/3 step 10/20 · 7 pivots · ETA 0:") for line in lines)
        assert any(line.startswith("computing (0, 2) · cycle 1/3 step 20/20 · 5 pivots · ETA 0:") for line in lines)

        # (0, 2) steps again: the pane stays on (0, 1) until asked
        more = Events()
        more.events = list(events)
        more.connection((0, 2), stop_after=(1, 10))  # a later restart of (0, 2)'s events: still in flight
        source.feed(more.events[len(events):])
        await wait_until(pilot, lambda: app.model.view.events == len(more.events), what="the new events")
        assert follows((0, 1))
        await pilot.press("n")
        await wait_until(pilot, lambda: follows((0, 2)), what="the energy pane on the next pair")
        await wait_until(pilot, lambda: "computing (0, 2)" in next(
            (line for line in mst.render().plain.splitlines() if "◀ energy pane" in line), ""),
            what="the MST pane marking the followed pair")
        await pilot.press("n")
        await wait_until(pilot, lambda: follows((0, 1)), what="round to the first pair again")


@app_test
async def test_the_palette_offers_next_pair():
    app = SessionApp(FakeSource(two_in_flight()), None, session_id="two", config=CONFIG,
                     status_probe=FixedStatus(), clock=lambda: 0.0, pairs_total=3)
    async with app.run_test(size=(160, 48)):
        titles = [title for title, _ in app.PALETTE.values()]
        assert "Next pair in flight" in titles
        assert any(b.action == "next_pair" and b.key == "n" and b.show for b in app.BINDINGS)
