"""The session app against fake sources: what each pane shows, what each key does."""

from __future__ import annotations

import pytest
from tui_fakes import (CONFIG, app_test, Events, FakeControl, FakeSource, FixedStatus, finished_events,
                       paused_events, running_events, wait_until)

from engine.events import CycleFinished, EdgeIgnored, MSTEdgeAdded, PairChosen
from nebtui.app import SessionApp
from nebtui.app.panes import EnergyPane, LogPane, MSTPane, SchedulePane, StatusLine
from nebtui.app.screens import ConfirmStop
from sessions.disk.control import ControlError

pytestmark = pytest.mark.timeout(60)


def make_app(events, control=None, status=None, size_hint=None):
    return SessionApp(FakeSource(events), control, session_id="test-session", config=CONFIG,
                      status_probe=status, clock=lambda: 0.0, pairs_total=3, minima_total=3)


def text(app, pane) -> str:
    widget = app.query_one(pane)
    if isinstance(widget, LogPane):  # its lines wrap at the pane's width: read them as one run of words
        return " ".join(" ".join(strip.text for strip in widget.lines).split())
    if isinstance(widget, StatusLine):
        return widget.plain
    return widget.render().plain


async def settled(pilot, app, events_count: int) -> None:
    """Every event applied and drawn: the status probed, no redraw due, the log pane's
    lines written and laid out (a fixed pause was not enough on a loaded machine)."""
    log = app.query_one(LogPane)

    def drawn() -> bool:
        return (app.model.view.events >= events_count and bool(app.query_one(StatusLine).plain)
                and not app.redraw_pending and log.written == app.model.log_count
                and (log.size.width == 0 or len(log.lines) > 0))  # a hidden pane (another tab) lays nothing out

    await wait_until(pilot, drawn, what=f"{events_count} events applied and drawn")
    await pilot.pause()


@app_test
async def test_running_session_panes_show_the_values():
    events = running_events()
    app = make_app(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(events))
        energy = text(app, EnergyPane)
        assert "pair (0, 2)" in str(app.query_one(EnergyPane).border_title)
        assert "cycle 2/3 step 10/20 · 7 pivots" in energy
        # the latest finished cycle of (0, 2) is cycle 1: its saddle is in the header
        cycle1 = next(e.event for e in events if isinstance(e.event, CycleFinished) and e.event.pair == (0, 2))
        assert f"latest cycle 1: saddle {cycle1.saddle_energy:.4f} at {cycle1.saddle_position:.3f}" in energy
        assert "o" in energy and "▲" in energy and "+" in energy  # pivots, saddle, the latest step's pivots

        schedule = text(app, SchedulePane)
        assert "now: pair (0, 2) cycle 2/3 step 10/20" in schedule
        assert "▶ 1-2" in schedule and "0.01" in schedule and "SGD(momentum=0.9)" in schedule
        # (0, 2) reached 10 steps, then 30 steps five events (2.5 s) later: 8 steps/s;
        # 30 steps left in the pair (3.75 s), then (1, 2) with 60 steps (7.5 s)
        assert "8 steps/s" in schedule
        assert "ETA pair 0:04" in schedule and "session 0:11" in schedule
        assert "elapsed 0:" in schedule

        mst = text(app, MSTPane)
        s01 = next(e.event for e in events if isinstance(e.event, MSTEdgeAdded)).saddle_energy
        assert "minima 3 · pairs done 1/3" in mst
        assert "computing (0, 2) · cycle 2/3 step 10/20 · 7 pivots · ETA 0:04\n" in mst  # initial: attacks no edge
        assert "attacked" not in mst  # the app predicts no choice of the engine
        assert f"minimum 0 (E -10.0000)\n└─ saddle {s01:.4f} ─ minimum 1 (E -8.0000)" in mst

        log = text(app, LogPane)
        assert "runner 4242 started on cpu" in log
        assert f"pair (0, 1): saddle {s01:.4f} (linear segment 5.0000), 9 pivots" in log

        status = text(app, StatusLine)
        assert status.startswith("● RUNNING  test-session  cpu  pair (0, 2)  7 pivots  elapsed")
        assert "read-only" in status


@app_test
async def test_the_attacked_edge_is_the_one_the_engine_chose():
    """The engine passed over the highest edge (0, 1) and attacked (0, 2): the pane shows its
    choice, from the events, whatever order the app would have put the edges in."""
    e = Events()
    e.events = [entry for entry in finished_events() if not isinstance(entry.event, PairChosen)]
    e.events = e.events[: next(i for i, x in enumerate(e.events) if getattr(x.event, "pair", None) == (1, 2))]
    e.add(EdgeIgnored(a=0, b=1, saddle_energy=-1.0))
    e.add(PairChosen(pair=(1, 2), reason="replace", attacked_edge=[0, 2]))
    e.connection((1, 2), stop_after=(1, 10))
    app = make_app(e.events)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(e.events))
        mst = text(app, MSTPane)
        assert "computing (1, 2) (may replace edge (0, 2))" in mst
        marked = [line for line in mst.splitlines() if "◀ attacked" in line]
        assert len(marked) == 1 and "minimum 2" in marked[0]  # the edge 0 - 2
        assert "MST: edge (0, 1) kept: every pair across it is known" in text(app, LogPane)


@app_test
async def test_events_fed_in_steps_follow_the_session():
    events = finished_events()
    source = FakeSource(events[:10])
    app = SessionApp(source, None, session_id="s", config=CONFIG, clock=lambda: 0.0, pairs_total=3)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, 10)
        assert "pairs done 0/3" in text(app, MSTPane)
        source.feed(events[10:])
        await wait_until(pilot, lambda: "finished (all pairs)" in text(app, MSTPane), what="the MST pane to finish")
        await wait_until(pilot, lambda: "FINISHED" in text(app, StatusLine), what="the status line to finish")
        mst = text(app, MSTPane)
        assert "pairs done 3/3" in mst
        # rooted at minimum 0 (the lowest); 2 hangs from 0, 1 from 2
        assert "minimum 0 (E -10.0000)\n└─ saddle" in mst and "─ minimum 2 (E -6.0000)\n   └─ saddle" in mst
        assert "session finished (all pairs), 3 pairs" in text(app, LogPane)
        assert "pair (1, 2) finished" in text(app, SchedulePane)


@app_test
async def test_log_scale_key_switches_the_energy_axis():
    app = make_app(running_events())
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(running_events()))
        assert "scale linear" in text(app, EnergyPane)
        await pilot.press("l")
        assert "scale log10(loss - min + eps)" in text(app, EnergyPane)
        # the ticks are the losses themselves: the lowest shown (minimum 0, -10) at the bottom
        ticks = [line.split("┤")[0].strip() for line in text(app, EnergyPane).splitlines() if "┤" in line]
        assert ticks[-1] == "-10" and all(float(t) >= -10 for t in ticks) and "+" not in "".join(ticks)
        await pilot.press("l")
        assert "scale linear" in text(app, EnergyPane)


@app_test
async def test_earlier_cycles_are_selectable():
    events = finished_events()
    app = make_app(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(events))
        assert "latest cycle 3" in text(app, EnergyPane)
        await pilot.press("left_square_bracket")
        assert "selected cycle 2" in text(app, EnergyPane)
        await pilot.press("right_square_bracket")
        assert "latest cycle 3" in text(app, EnergyPane)


@app_test
async def test_pause_sends_pause_and_resume_is_disabled_while_running():
    control, status = FakeControl(), FixedStatus("running")
    app = make_app(running_events(), control, status)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(running_events()))
        await wait_until(pilot, lambda: app.probed is not None, what="the first status probe")
        assert app.check_action("resume", ()) is None
        await pilot.press("r")
        await pilot.press("p")
        await wait_until(pilot, lambda: control.sent == ["pause"] and app.pending is None, what="the pause reply")
        status.status = "paused"
        await wait_until(pilot, lambda: app.status == "paused", what="the paused status")
        assert app.check_action("pause", ()) is None and app.check_action("resume", ()) is True
        await pilot.press("p")
        await pilot.press("r")
        await wait_until(pilot, lambda: control.sent == ["pause", "resume"], what="resume sent")


@app_test
async def test_checkpoint_key_sends_checkpoint():
    control = FakeControl()
    app = make_app(running_events(), control, FixedStatus("running"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.probed is not None, what="the first status probe")
        await pilot.press("c")
        await wait_until(pilot, lambda: control.sent == ["checkpoint"], what="checkpoint sent")


@app_test
async def test_stop_asks_first():
    control = FakeControl()
    app = make_app(running_events(), control, FixedStatus("running"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.probed is not None, what="the first status probe")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmStop)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmStop) and control.sent == []
        await pilot.press("s")
        await pilot.press("y")
        await wait_until(pilot, lambda: control.sent == ["stop"], what="stop sent")


@app_test
async def test_control_keys_do_nothing_read_only_or_once_ended():
    control = FakeControl()
    app = make_app(finished_events(), control)  # no probe: the status comes from the log
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(finished_events()))
        assert app.status == "finished"
        for key in "prsc":
            await pilot.press(key)
        assert not isinstance(app.screen, ConfirmStop)
        assert control.sent == []
        assert all(app.check_action(a, ()) is None for a in ("pause", "resume", "stop", "checkpoint"))
    read_only = make_app(running_events(), None, FixedStatus("running"))
    async with read_only.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: read_only.probed is not None, what="the first status probe")
        assert all(read_only.check_action(a, ()) is None for a in ("pause", "stop", "checkpoint"))


@app_test
async def test_a_failed_command_is_shown_as_an_error():
    control = FakeControl(ControlError("its runner is not running (no control socket)"))
    app = make_app(running_events(), control, FixedStatus("running"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.probed is not None, what="the first status probe")
        await pilot.press("p")
        await wait_until(pilot, lambda: "!! pause failed: its runner is not running" in text(app, LogPane),
                         what="the error line")
        assert app.check_action("pause", ()) is True  # the key works again after the failure


@app_test
async def test_palette_offers_the_actions_that_mean_something_now():
    app = make_app(running_events(), FakeControl(), FixedStatus("paused"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.probed is not None, what="the first status probe")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Resume session", "Stop session", "Checkpoint now", "Toggle log scale", "Export report",
                "Detach", "Next pane"} <= set(titles)
        assert "Pause session" not in titles


@app_test
async def test_export_writes_a_report_off_the_event_loop_and_says_where():
    calls = []

    def exporter():
        calls.append("export")
        return "/reports/test-session"

    app = SessionApp(FakeSource(running_events()), None, session_id="test-session", config=CONFIG,
                     clock=lambda: 0.0, pairs_total=3, exporter=exporter)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("e")
        await wait_until(pilot, lambda: "export: report written to /reports/test-session" in text(app, LogPane),
                         what="the export result")
        assert calls == ["export"]

    def failing():
        raise RuntimeError("nothing finished yet")

    app = SessionApp(FakeSource(running_events()), None, session_id="test-session", config=CONFIG,
                     clock=lambda: 0.0, pairs_total=3, exporter=failing)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("e")
        await wait_until(pilot, lambda: "export failed: nothing finished yet" in text(app, LogPane),
                         what="the export error")


@app_test
async def test_export_without_an_exporter_says_how_and_q_detaches():
    app = make_app(running_events())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("e")
        await wait_until(pilot, lambda: "export: no report exporter here: run nebtui report ID" in text(app, LogPane),
                         what="the export note")
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")


@app_test
async def test_small_terminal_shows_one_pane_and_tab_moves_on():
    app = make_app(running_events())
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, app, len(running_events()))
        shown = lambda: [p for p in ("energy", "schedule", "mst", "log") if app.query_one(f"#{p}").display
                         and app.query_one(f"#{p}").region.area > 0]
        assert shown() == ["energy"]
        await pilot.press("tab")
        await wait_until(pilot, lambda: shown() == ["schedule"], what="the schedule pane alone")
        await pilot.press("shift+tab")
        await pilot.press("shift+tab")
        await wait_until(pilot, lambda: shown() == ["log"], what="the log pane alone")
    wide = make_app(running_events())
    async with wide.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: all(wide.query_one(f"#{p}").region.area > 0
                                            for p in ("energy", "schedule", "mst", "log")), what="all four panes")


@app_test
async def test_no_color_keeps_series_apart_by_glyph(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(finished_events())
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, app, len(finished_events()))
        assert app.no_color
        energy = text(app, EnergyPane)
        assert "•" in energy and "o" in energy and "▲" in energy and "·" in energy  # profile, pivots, saddle, older
