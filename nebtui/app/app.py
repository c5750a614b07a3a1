"""The live session app: thin and fed from outside.

A reader worker polls the event source (and the status probe about once a
second) and posts EventsRead / StatusProbed; the app reduces the events into
a SessionModel and redraws the panes on a timer, at most REDRAW_HZ times a
second, never per event. Control commands go to the runner from a worker, so
nothing blocks the event loop. The app never starts processes.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Tab, Tabs
from rich.text import Text
from textual.worker import get_current_worker

from nebtui.app.chart import load_plots, plots_ready
from nebtui.app.messages import ControlAnswered, ControlFailed, EventsRead, SourceFailed, StatusProbed
from nebtui.app.model import ENDED, SessionModel
from nebtui.app.panes import EnergyPane, LogPane, MSTPane, SchedulePane, StatusLine
from nebtui.app.screens import ConfirmStop
from nebtui.app.sources import Control, EventSource
from nebtui.progress import clock_text
from sessions.events import STARTUP_PHASES
from sessions.view import SessionView, StartupPhase

if TYPE_CHECKING:
    from sessions.disk.config import SessionConfig

POLL_SECONDS = 0.05  # the reader's wait between polls of the source
PROBE_SECONDS = 1.0  # between status probes
REDRAW_HZ = 4.0  # most redraws per second
CHUNK = 2000  # events per message: a long replay never holds the event loop for long
NARROW = (120, 36)  # below this width or height the panes become tabs
PANES = ("energy", "schedule", "mst", "log")
EXPORT_NOTE = "no report exporter here: run nebtui report ID"

# control action -> the statuses in which it means something
CONTROL_ACTIONS = {
    "pause": ("running",),
    "resume": ("paused",),
    "stop": ("running", "paused"),
    "checkpoint": ("running", "paused"),
}
LIFECYCLE_STATUS = {"created": "starting"}  # the model's lifecycle when there is no probe


def phase_words(phase: StartupPhase) -> str:
    return STARTUP_PHASES.get(phase.phase, phase.phase) + (f" ({phase.detail})" if phase.detail else "")


def startup_now(view: SessionView, now: float) -> str:
    """The runner's start-up phase now and its time so far, for the status line."""
    phase = view.startup[-1]
    return f"{phase_words(phase)} {clock_text(max(0.0, now - phase.began)) if phase.began is not None else ''}".rstrip()


def startup_lines(view: SessionView, now: float) -> Text:
    """Every start-up phase so far, the finished ones with their durations, for the energy pane."""
    phases = view.startup
    text = Text()
    for i, phase in enumerate(phases):
        end = phases[i + 1].began if i + 1 < len(phases) else now
        took = clock_text(max(0.0, end - phase.began)) if phase.began is not None and end is not None else ""
        last = i == len(phases) - 1
        text.append(f"{'…' if last else '✓'} {phase_words(phase)}  {took}\n", style="bold" if last else "dim")
    text.append("the energy profile appears with the first step", style="dim")
    return text


class StartupEnergyPane(EnergyPane):
    """The energy pane that says what the runner is doing until the first cycle has a step."""

    startup: Text | None = None

    def render_key(self) -> object:
        return (super().render_key(), self.startup.plain if self.startup is not None else None)

    def draw(self, width: int, height: int) -> Text:
        if self.startup is not None and self.model.shown_pair() is None:
            self.border_title = "energy · starting"
            return self.startup
        return super().draw(width, height)


class SessionApp(App[None]):
    """Follow one session: energy, schedule, MST and log panes, a status line and control keys."""

    CSS_PATH = "app.tcss"
    TITLE = "nebtui"
    BINDINGS = [
        Binding("p", "pause", "Pause", id="pause", tooltip="Pause at the next step boundary, with a checkpoint"),
        Binding("r", "resume", "Resume", id="resume", tooltip="Resume a paused session"),
        Binding("s", "stop", "Stop", id="stop", tooltip="Stop the session (asks first)"),
        Binding("c", "checkpoint", "Checkpoint", id="checkpoint", tooltip="Write a checkpoint now"),
        Binding("l", "log_scale", "Log scale", id="log-scale", tooltip="Energy on a log scale of loss - min + eps"),
        Binding("n", "next_pair", "Next pair", id="next-pair", tooltip="Energy pane: follow the next pair in flight"),
        Binding("tab", "next_pane", "Next pane", id="next-pane", priority=True, show=False),
        Binding("shift+tab", "previous_pane", "Previous pane", id="previous-pane", priority=True, show=False),
        Binding("e", "export", "Export", id="export", tooltip="Export a report"),
        Binding("q", "detach", "Detach", id="detach", tooltip="Quit the app; the run goes on"),
    ]
    # action -> (palette title, help)
    PALETTE = {
        "pause": ("Pause session", "Pause at the next step boundary, with a checkpoint (p)"),
        "resume": ("Resume session", "Continue a paused session (r)"),
        "stop": ("Stop session", "Checkpoint and end the session; asks first (s)"),
        "checkpoint": ("Checkpoint now", "Ask the runner for a checkpoint (c)"),
        "log_scale": ("Toggle log scale", "Energy pane: log10(loss - min + eps) or linear (l)"),
        "next_pair": ("Next pair in flight", "Energy pane: follow the next pair being computed (n)"),
        "next_pane": ("Next pane", "Move to the next pane (tab)"),
        "export": ("Export report", "Export a report of the session (e)"),
        "detach": ("Detach", "Quit the app; the run goes on (q)"),
    }

    def __init__(
        self,
        source: EventSource,
        control: Control | None,
        *,
        session_id: str,
        config: SessionConfig | None,
        status_probe: Callable[[], tuple[str, int | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pairs_total: int | None = None,
        minima_total: int | None = None,
        exporter: Callable[[], str] | None = None,
        view: SessionView | None = None,
    ) -> None:
        """``view``: the SessionView the app reduces the source's events into, when the
        status probe reads it too (FolderFeed.view); a new one otherwise."""
        super().__init__()
        self.exporter = exporter  # writes a report, returns where (blocking: run on a worker thread)
        self.exporting = False
        self.source = source
        self.control = control
        self.session_id = session_id
        self.status_probe = status_probe
        self.clock = clock
        self.model = SessionModel(config, pairs_total=pairs_total, minima_total=minima_total, view=view)
        self.probed: tuple[str, int | None] | None = None
        self.pending: str | None = None  # a command sent and not yet answered
        self._arrival = clock()  # clock() when the newest events arrived
        self._posted = 0  # EventsRead messages the reader posted (read on its thread)
        self._applied = 0  # of those, the ones the app has reduced into its view
        self._stop_reading = threading.Event()
        self._redraw_timer: Timer | bool | None = None  # a redraw is due
        self._last_redraw = 0.0
        self._status_shown: str | None = None
        self.title = f"nebtui · {session_id}"
        problem = getattr(config, "problem", None)
        if getattr(problem, "kind", None) == "network" and problem.loss not in ("cross_entropy", "bce"):  # type: ignore[union-attr]
            self.model.note(f"no error rate: the loss is {problem.loss}; the panes show its losses")  # type: ignore[union-attr]
        self.tabs = Tabs(*(Tab(name, id=f"tab-{name}") for name in PANES), id="pane-tabs")
        self.pane_box = Container(id="panes")
        self.energy = StartupEnergyPane(self.model)
        self.close_on_refusal = False  # a new session's app: the runner refusing the problem closes it
        self.schedule_pane = SchedulePane(self.model)
        self.mst = MSTPane(self.model)
        self.log_pane = LogPane(self.model)
        self.status_line = StatusLine(id="status")
        self.shown = "energy"  # the current pane (the one shown when the panes are tabs)
        self.panes = {"energy": self.energy, "schedule": self.schedule_pane, "mst": self.mst, "log": self.log_pane}

    # ---- layout

    def compose(self) -> ComposeResult:
        yield self.tabs
        with self.pane_box:
            yield self.energy
            yield self.schedule_pane
            yield self.mst
            yield self.log_pane
        yield self.status_line
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._refused():  # read_now found the refusal already: the reader will not see it again
            return
        self._fit(self.size.width, self.size.height)
        self.energy.focus()
        self._show_pane("energy")
        self._redraw()
        self.set_interval(1.0, self._tick)  # elapsed time moves without events
        self._read_events()
        if not plots_ready():
            self.call_after_refresh(self._load_plots)  # the first frame is on its way without them

    def on_unmount(self) -> None:
        self._stop_reading.set()

    def on_resize(self, event) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        narrow = width < NARROW[0] or height < NARROW[1]
        self.pane_box.set_class(narrow, "-narrow")
        self.tabs.display = narrow

    @property
    def narrow(self) -> bool:
        return self.pane_box.has_class("-narrow")

    def _pane_names(self) -> list[str]:
        return list(PANES)

    def _current_pane(self) -> str:
        return self.shown

    def on_descendant_focus(self, event) -> None:
        if event.widget.id in self.panes and event.widget.id != self.shown:
            self._show_pane(event.widget.id)  # a click on a pane makes it the current one

    def _show_pane(self, name: str) -> None:
        self.shown = name
        for pane, widget in self.panes.items():
            widget.set_class(pane == name, "-shown")
        if self.tabs.active != f"tab-{name}":
            self.tabs.active = f"tab-{name}"
        self.panes[name].focus()

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        name = (event.tab.id or "tab-energy").removeprefix("tab-")
        if name in PANES and self._current_pane() != name:
            self._show_pane(name)

    def read_now(self) -> None:
        """Take in what the source and the probe say now, before the app runs: for a session
        whose runner has just started, a line or two, and the first frame shows its start-up
        phase instead of waiting for the reader's first poll."""
        self._take(self.source.poll())
        if self.status_probe is not None:
            self.probed = self.status_probe()

    def _take(self, events: list[Any]) -> None:
        self.model.apply_all(events)

    def _refused(self) -> bool:
        """A new session's runner refused its problem: the app closes (the CLI says why, in one line)."""
        if self.close_on_refusal and self.model.view.refusal is not None:
            self.exit()
            return True
        return False

    @work(thread=True, group="plots", exit_on_error=False, name="plot loader")
    def _load_plots(self) -> None:
        load_plots()
        self.call_from_thread(self._plots_loaded)

    def _plots_loaded(self) -> None:
        self.energy.refresh()
        self.schedule_pane.refresh()

    # ---- the reader

    @work(thread=True, group="reader", exclusive=True, exit_on_error=False, name="event reader")
    def _read_events(self) -> None:
        worker = get_current_worker()
        next_probe = 0.0
        polled = False
        while not (worker.is_cancelled or self._stop_reading.is_set()):
            # the probe reads the view the app reduces into: only once it holds every event read
            if polled and self.status_probe is not None and time.monotonic() >= next_probe \
                    and self._applied == self._posted:
                next_probe = time.monotonic() + PROBE_SECONDS
                if not self._probe():
                    next_probe = 0.0  # the runner's last words first: probe again once they are in
            self._post(self._poll())
            polled = True
            self._stop_reading.wait(POLL_SECONDS)

    def _poll(self) -> list[Any]:
        try:
            return self.source.poll()
        except Exception as error:  # noqa: BLE001 - shown in the log; the reader goes on
            self.post_message(SourceFailed(f"{type(error).__name__}: {error}"))
            self._stop_reading.wait(1.0)
            return []

    def _post(self, events: list[Any]) -> None:
        for start in range(0, len(events), CHUNK):
            self._posted += 1
            self.post_message(EventsRead(events[start:start + CHUNK]))

    def _probe(self) -> bool:
        """Post the session's status; False, and the events that came with it instead, when the
        runner seems to have crashed but wrote more events (it may have ended and left just now)."""
        assert self.status_probe is not None
        try:
            probed = self.status_probe()
        except Exception as error:  # noqa: BLE001
            self.post_message(SourceFailed(f"status probe: {type(error).__name__}: {error}"))
            return True
        if probed[0] == "crashed":
            last = self._poll()
            if last:
                self._post(last)
                return False
        self.post_message(StatusProbed(*probed))
        return True

    @on(EventsRead)
    def _events_read(self, message: EventsRead) -> None:
        before = self.status
        self._take(message.events)
        self._applied += 1
        if self._refused():
            return
        self._arrival = self.clock()
        if self.status != before:
            self.refresh_bindings()
        self._request_redraw()

    @on(SourceFailed)
    def _source_failed(self, message: SourceFailed) -> None:
        self.model.note(f"reading the session failed: {message.error}", "error")
        self._request_redraw()

    @on(StatusProbed)
    def _status_probed(self, message: StatusProbed) -> None:
        before = self.status
        self.probed = (message.status, message.pid)
        if self.status != before:
            self.refresh_bindings()
            self._request_redraw()

    @property
    def status(self) -> str:
        """running / paused / stopped / crashed / finished / ...: from the probe when there is one."""
        if self.probed is not None:
            return self.probed[0]
        lifecycle = self.model.view.lifecycle
        return LIFECYCLE_STATUS.get(lifecycle, lifecycle)

    # ---- redrawing (rate-limited)

    @property
    def redraw_pending(self) -> bool:
        """A redraw is scheduled and has not run yet (tests wait for the screen to settle)."""
        return self._redraw_timer is not None

    def _request_redraw(self) -> None:
        if self._redraw_timer is not None:
            return
        delay = self._last_redraw + 1.0 / REDRAW_HZ - time.monotonic()
        if delay < 0.01:  # due already (a zero-delay Timer divides by zero in textual 8)
            self._redraw_timer = True
            self.call_later(self._redraw)
        else:
            self._redraw_timer = self.set_timer(delay, self._redraw, name="redraw")

    def _redraw(self) -> None:
        """Redraw what changed; at most REDRAW_HZ times a second."""
        self._redraw_timer = None
        self._last_redraw = time.monotonic()
        if not self.status_line.is_attached:  # the app is closing
            return
        for pane in self.panes.values():
            pane.sync()
        self._tick()

    def _tick(self) -> None:
        """The parts that move with time alone: elapsed, ETA, the status line (once a second)."""
        if not self.status_line.is_attached:
            return
        elapsed = self.model.elapsed()
        if self.status == "running":
            elapsed += max(0.0, self.clock() - self._arrival)
        schedule = self.schedule_pane
        if int(schedule.elapsed) != int(elapsed):
            schedule.elapsed = elapsed
            schedule.refresh()
        trace = self.model.shown_pair()
        now = time.time()
        view = self.model.view
        starting = view.starting and self.status == "running"  # the runner is up and before its first step
        startup = startup_lines(view, now) if starting else None
        if (startup.plain if startup else None) != (self.energy.startup.plain if self.energy.startup else None):
            self.energy.startup = startup
            self.energy.refresh()
        self.status_line.show(
            status="starting" if starting else self.status, phase=startup_now(view, now) if starting else None,
            session_id=self.session_id, devices=view.devices,
            pivots=trace.pivots if trace is not None else None,
            pair=trace.pair if trace is not None and not trace.finished else None,
            elapsed=elapsed, read_only=self.control is None, pending=self.pending,
        )

    # ---- keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CONTROL_ACTIONS:
            if self.control is None or self.pending is not None:
                return None
            return True if self.status in CONTROL_ACTIONS[action] else None
        if action in ("next_pane", "previous_pane") and not self._on_main_screen():
            return False  # a dialog is open: tab moves between its buttons
        return True

    def _on_main_screen(self) -> bool:
        return len(self.screen_stack) <= 1

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for action, (title, help_text) in self.PALETTE.items():
            if self.check_action(action, ()) is True:
                yield SystemCommand(title, help_text, partial(self.run_action, action))
        yield from super().get_system_commands(screen)

    def action_pause(self) -> None:
        self._send("pause")

    def action_resume(self) -> None:
        self._send("resume")

    def action_checkpoint(self) -> None:
        self._send("checkpoint")

    def action_stop(self) -> None:
        def answered(stop: bool | None) -> None:
            if stop and self.check_action("stop", ()) is True:
                self._send("stop")

        self.push_screen(ConfirmStop(self.session_id), answered)

    def action_log_scale(self) -> None:
        pane = self.energy
        pane.toggle_log_scale()
        self.notify("energy: log10(loss - min + eps)" if pane.log_scale else "energy: linear scale", timeout=2)

    def action_next_pair(self) -> None:
        pair = self.model.follow_next()
        self.energy.selected = None  # the new pair's newest cycle
        self._request_redraw()
        self.notify(f"energy: pair {pair}" if pair is not None else "no pair in flight", timeout=2)

    def action_next_pane(self) -> None:
        self._step_pane(+1)

    def action_previous_pane(self) -> None:
        self._step_pane(-1)

    def _step_pane(self, step: int) -> None:
        names = self._pane_names()
        index = names.index(self._current_pane())
        self._show_pane(names[(index + step) % len(names)])

    def action_export(self) -> None:
        if self.exporter is None:
            self.notify(EXPORT_NOTE, title="export")
            self.model.note(f"export: {EXPORT_NOTE}")
            self._request_redraw()
            return
        if self.exporting:
            self.notify("a report is being written already", title="export")
            return
        self.exporting = True
        self.model.note("export: writing the report (the run goes on)")
        self._request_redraw()
        self._export()

    @work(thread=True, group="export", exclusive=True, exit_on_error=False, name="export")
    def _export(self) -> None:
        assert self.exporter is not None
        try:
            where = self.exporter()
        except Exception as error:  # noqa: BLE001 - shown as one line
            self.call_from_thread(self._exported, None, str(error) or type(error).__name__)
        else:
            self.call_from_thread(self._exported, where, None)

    def _exported(self, where: str | None, error: str | None) -> None:
        self.exporting = False
        if error is not None:
            self.model.note(f"export failed: {error}", "error")
            self.notify(f"export failed: {error}", severity="error")
        else:
            self.model.note(f"export: report written to {where}")
            self.notify(f"report written to {where}", title="export")
        self._request_redraw()

    def action_detach(self) -> None:
        self.exit()

    # ---- control

    def _send(self, command: str) -> None:
        if self.control is None:
            return
        self.pending = command
        self.refresh_bindings()
        self._request_redraw()
        self._run_command(command)

    @work(thread=True, group="control", exclusive=False, exit_on_error=False, name="control")
    def _run_command(self, command: str) -> None:
        assert self.control is not None
        try:
            reply = self.control.send(command)
        except Exception as error:  # noqa: BLE001 - the message is the one line shown
            self.post_message(ControlFailed(command, str(error) or type(error).__name__))
        else:
            self.post_message(ControlAnswered(command, reply))

    @on(ControlAnswered)
    def _control_answered(self, message: ControlAnswered) -> None:
        reply = message.reply
        if not reply.get("accepted", True):  # an accepted command shows as the runner's control_received event
            self.model.note(f"{message.command} refused: {reply.get('detail', '')}", "warning")
        self._command_done()

    @on(ControlFailed)
    def _control_failed(self, message: ControlFailed) -> None:
        self.model.note(f"{message.command} failed: {message.error}", "error")
        self.notify(f"{message.command} failed: {message.error}", severity="error")
        self._command_done()

    def _command_done(self) -> None:
        self.pending = None
        self.refresh_bindings()
        self._request_redraw()

    @property
    def ended(self) -> bool:
        return self.status in ENDED
