"""``nebtui sessions``: list, show, attach to, pause, resume, stop and remove sessions.

`list`, `show` and `attach` never import torch."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from nebtui.failure import fail
from nebtui.progress import ProgressPrinter, clock_text, estimate_text, span_text, strategy_text

app = typer.Typer(help="Sessions under the data home (NEBTUI_HOME).", rich_markup_mode=None)


@app.callback(invoke_without_command=True)
def sessions_callback(ctx: typer.Context) -> None:
    """Alone, on a terminal: pick a session in the app and follow it."""
    if ctx.invoked_subcommand is None:
        pick_session(ctx)


def pick_session(ctx: typer.Context) -> None:
    """The session list app on a terminal; the help text elsewhere."""
    from nebtui.launch import use_app
    from sessions.disk.folder import SessionError
    from sessions.disk.home import data_home

    if not use_app(False, False):
        print(ctx.get_help())
        return
    try:
        home = data_home()
    except SessionError as error:
        fail(str(error))
    from nebtui.app import pick_and_run

    pick_and_run(home)

def complete_session_id(incomplete: str) -> list[str]:
    """Shell completion: the sessions under the data home whose names start with ``incomplete``
    (read from the folder names alone: completing never waits on a session)."""
    from sessions.disk.folder import SessionError, list_sessions
    from sessions.disk.home import data_home

    try:
        return [folder.id for folder in list_sessions(data_home(), []) if folder.id.startswith(incomplete)]
    except (SessionError, OSError):
        return []


SessionId = Annotated[str, typer.Argument(help="Session name (see nebtui sessions list).", show_default=False,
                                          autocompletion=complete_session_id)]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document instead of text.")]


def _open(session_id: str) -> Any:
    from sessions.disk.folder import SessionError, SessionFolder
    from sessions.disk.home import data_home

    try:
        return SessionFolder.open(data_home(), session_id)
    except SessionError as error:
        fail(str(error))


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """Every session with its status and progress."""
    from sessions.disk.folder import SessionError, list_sessions
    from sessions.disk.home import data_home
    from sessions.view import damaged_summary, method_text, summary

    try:
        home = data_home()
    except SessionError as error:
        fail(str(error))
    problems: list[SessionError] = []
    rows = []
    for folder in list_sessions(home, problems):
        try:
            rows.append(summary(folder))
        except SessionError as error:  # one damaged session: listed as such, the others as usual
            rows.append(damaged_summary(folder, str(error)))
    if as_json:
        print(json.dumps(rows))
    else:
        if not rows:
            print(f"no sessions in {home}: start one with nebtui demo muller-brown")
        for row in rows:
            if row["status"] == "damaged":
                print(f"{row['id']:<40} damaged: {row['damaged']}")
                continue
            current = " ".join(f"{tuple(c['pair'])} cycle {c['cycle']}/{c['cycles']}" for c in row["running"])
            why = f" ({row['stopped_because'].split(':')[0]})" if row["stopped_because"] else ""
            method = method_text(row["method"], row["align"], row.get("alignment"))
            print(f"{row['id']:<40} {row['status']:<12} {method:<17} pairs {row['pairs_done']}/{row['pairs_total']:<4} "
                  f"{row['created']}  {current}".rstrip() + why)
    for problem in problems:
        print(f"nebtui: skipped: {problem}", file=sys.stderr)


def cost_text(cost: dict[str, Any], seconds: float | None) -> str:
    """A finished path's cost account in one line: forward / backward passes of its steps,
    of its dense evaluation and of BatchNorm's recalibration (per sample; per point on a
    surface), and its seconds in the log."""
    from nebtui.report.writers import _count

    took = "-" if seconds is None else f"{seconds:.1f} s"
    unit = "points" if cost["units"] == "points" else "samples"
    phases = ", ".join(f"{name} {_count(cost[key]['forward'])} / {_count(cost[key]['backward'])}"
                       for key, name in (("steps", "steps"), ("evaluation", "dense evaluation"),
                                         ("recalibration", "BN recalibration")))
    return f"{phases} forward / backward {unit}; {took}"


@app.command()
def show(session_id: SessionId, as_json: AsJson = False) -> None:
    """One session: status, progress and the results so far."""
    from engine.events import event_from_dict
    from sessions.disk.folder import SessionError
    from sessions.events import SessionEstimated, StrategyChosen
    from sessions.view import summary

    try:
        row = summary(_open(session_id))
    except SessionError as error:
        fail(f"session {session_id} is damaged: {error}")
    if as_json:
        print(json.dumps(row))
        if row["damaged"]:
            raise typer.Exit(1)
        return
    for key in ("id", "status", "stopped_because", "pid", "created", "problem", "method", "schedule", "align", "alignment",
                "minima", "devices", "error"):
        if row[key] not in (None, []):
            print(f"{key:<10} {row[key]}")
        if key == "problem" and row.get("loss") is not None:
            print(f"{'loss':<10} {row['loss']}" + ("" if row["error_rate"] else f" (no error rate: the loss is "
                                                                               f"{row['loss']})"))
    for w in row.get("workers", []):
        print(f"{'worker':<10} {w['worker']}: {w['device']}" + (f" on {w['node']}" if w["node"] else "")
              + f" (pid {w['pid']})")
    print(f"{'pairs':<10} {row['pairs_done']} done of at most {row['pairs_total']}")
    if row["estimate"] is not None:
        estimate = event_from_dict(row["estimate"])
        if isinstance(estimate, SessionEstimated):
            print(f"{'estimate':<10} at the runner's start, {estimate.done} pairs done: {estimate_text(estimate)}")
    if row.get("strategy") is not None:
        chosen = event_from_dict(row["strategy"])
        if isinstance(chosen, StrategyChosen):
            print(f"{'pivots':<10} {strategy_text(chosen)}")
            if chosen.data is not None:
                print(f"{'data':<10} training set {chosen.data}")
    if row["eta_seconds"] is not None:
        print(f"{'ETA':<10} {span_text(*row['eta_seconds'])} (refined as pairs finish)")
    for c in row["running"]:
        eta = f", ETA {clock_text(c['eta_seconds'])}" if c["eta_seconds"] is not None else ""
        print(f"{'running':<10} pair {tuple(c['pair'])}: cycle {c['cycle']}/{c['cycles']}, step {c['step']}/{c['steps']}, "
              f"{c['pivots']} pivots{eta}")
    for p in row["paths"]:
        end = "" if p["saddle_at_end"] is None else f", at an end (minimum {p['saddle_at_end']})"
        print(f"{'path':<10} {p['a']} - {p['b']}: saddle {p['saddle_energy']:.4f} "
              f"(linear {p['linear_saddle_energy']:.4f}){end}")
        if "cost" in p:  # a log from before runs counted their work has none
            print(f"{'cost':<10} {p['a']} - {p['b']}: {cost_text(p['cost'], p['seconds'])}")
    for e in row["mst"]:
        print(f"{'mst':<10} {e['a']} - {e['b']}: saddle {e['saddle_energy']:.4f}")
    for p in row["paths"]:
        if p["saddle_at_end"] is not None:
            print(f"{'note':<10} pair {p['a']} - {p['b']}: {p['note']}")
    if row["damaged"]:
        fail(f"session {session_id} is damaged: {row['damaged']} (shown without it)")


@app.command()
def attach(
    session_id: SessionId,
    as_json: AsJson = False,
    headless: Annotated[bool, typer.Option("--headless", help="Plain progress lines instead of the app.")] = False,
) -> None:
    """Replay the session's history, then follow it live (q or Ctrl-C detaches; the run goes on)."""
    from nebtui.launch import finish_following, open_app, use_app

    folder = _open(session_id)
    if use_app(headless, as_json):
        open_app(folder)
        return
    finish_following(folder, ProgressPrinter(sys.stdout, enabled=not as_json), as_json=as_json)


def _control(session_id: str, command: str) -> dict[str, Any]:
    from sessions.disk.control import ControlError, send_command

    folder = _open(session_id)
    try:
        reply = send_command(folder.control_socket_path, command)
    except ControlError as error:
        from sessions.disk.lock import holder

        pid = holder(folder.lock_path)
        if pid is not None and not folder.control_socket_path.exists():
            fail(f"session {session_id}: its runner (pid {pid}) is starting and not answering yet: try again in a few seconds")
        hint = f"nebtui sessions resume {session_id}" if command in ("pause", "stop", "checkpoint") else ""
        fail(f"session {session_id}: {error}" + (f"; to continue it: {hint}" if hint else ""))
    if not reply.get("accepted", True):
        fail(f"session {session_id} ({reply.get('status')}): {command} refused: {reply.get('detail')}")
    return reply


@app.command()
def pause(session_id: SessionId) -> None:
    """Pause at the next step boundary, with a checkpoint."""
    reply = _control(session_id, "pause")
    print(f"session {session_id}: {reply['detail']}")


@app.command()
def stop(session_id: SessionId) -> None:
    """Stop at the next step boundary, with a checkpoint; the runner exits."""
    reply = _control(session_id, "stop")
    print(f"session {session_id}: {reply['detail']}")


@app.command()
def checkpoint(session_id: SessionId) -> None:
    """Write a checkpoint now."""
    reply = _control(session_id, "checkpoint")
    print(f"session {session_id}: {reply['detail']}")


@app.command()
def resume(
    session_id: SessionId,
    detach: Annotated[bool, typer.Option("--detach", help="Return at once instead of following.")] = False,
) -> None:
    """Resume a paused session, or restart the runner of one whose runner is gone; either way
    follow it to its end (Ctrl-C detaches), unless --detach."""
    from nebtui.launch import finish_following
    from sessions.disk.folder import SessionError
    from sessions.processes.spawn import start_runner
    from sessions.view import read_view, status

    folder = _open(session_id)
    state, pid = status(folder, read_view(folder))
    if state == "finished":
        fail(f"session {session_id} is finished: nothing to resume (see nebtui sessions show {session_id})")
    if pid is not None:
        reply = _control(session_id, "resume")
        print(f"session {session_id}: {reply['detail']}", flush=True)
        if not detach:  # as for a session whose runner is restarted: one behaviour
            finish_following(folder, ProgressPrinter(sys.stdout), as_json=False)
        return
    try:
        pid = start_runner(folder)
    except SessionError as error:
        fail(str(error))
    printer = ProgressPrinter(sys.stdout)
    printer.line(f"session {session_id}: runner pid {pid} continues from the last checkpoint")
    if not detach:
        finish_following(folder, printer, as_json=False)


@app.command()
def rm(session_id: SessionId) -> None:
    """Remove a session and everything in its folder (refused while its runner runs)."""
    from sessions.disk.folder import SessionError

    folder = _open(session_id)
    try:
        folder.remove()
    except SessionError as error:
        fail(str(error))
    print(f"session {session_id} removed")
