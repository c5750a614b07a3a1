"""The append-only event log: one JSON object per line, ``{"seq": n, "time": t, ...event fields}``.

Events go in and come out typed: the writer appends an ``Event`` (``to_dict``
plus the log's own ``seq`` and ``time``); readers return ``LoggedEvent`` records,
the event rebuilt by ``engine.events.event_from_dict`` (engine and session
kinds, one registry) together with its ``seq`` and ``time``. A kind this
version does not know is kept as an ``UnknownEvent`` with its fields as written.

One writer (the runner) appends; any number of readers replay and follow it.
Each event is one ``os.write`` of a whole line, so what a killed writer had
appended is already in the kernel's hands; a line cut short by a crash (no
trailing newline) is never returned by a reader and is cut off by the next
writer before it appends. A line that is not an event (not JSON, or no integer
``seq``) is skipped and counted, never fatal.
"""

from __future__ import annotations

import fcntl
import gc
import json
import json.scanner
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from engine.events import Event, UnknownEvent, event_from_dict
from sessions import events as lifecycle  # noqa: F401 - registers the session's event kinds
from sessions.disk.atomic import write_all
from sessions.errors import SessionError
from sessions.disk.lock import open_unfollowed

_TAIL_CHUNK = 64 * 1024
_LOG_FIELDS = ("seq", "time")


class EventLogError(SessionError):
    """The event log cannot be written."""


class LoggedEvent(NamedTuple):
    """One line of the log: the event, and the fields the log adds to it. A named
    tuple rather than a dataclass: a replay builds one per line, and this is cheaper."""

    seq: int  # 0, 1, 2, ... in the order written (a crash and resume continue it)
    time: float | None  # the writer's clock (time.time()) when it appended the event; None if the line has none
    event: Event


def _logged(record: dict[str, Any]) -> LoggedEvent:
    event = event_from_dict(record)
    if type(event) is UnknownEvent:  # keep what the event wrote, not what the log added
        event = UnknownEvent({k: v for k, v in record.items() if k not in _LOG_FIELDS}, event.problem)
    stamp = record.get("time")
    return LoggedEvent(record["seq"], stamp if type(stamp) is float or type(stamp) is int else None, event)


class PassedSteps(NamedTuple):
    """Steps a thinning reader passed over without parsing them (see ``EventLogReader``):
    how many, and the earliest and latest of their times."""

    count: int
    earliest: float
    latest: float


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # json.loads without its per-call wrapping

# A whole step line as the writer writes it: such a line is a StepEnergies event, known
# without parsing it. The head is matched field by field (its groups: the time, then the
# pair); the losses and the positions (absent from logs written before steps carried
# them), whose values a thinning reader never reads, only as comma-separated
# runs of the characters of JSON numbers (NaN and Infinity included): checking each
# number's grammar took two thirds of the time of reading a long log.
_UINT = r"(?:0|[1-9]\d*)"
_STEP_HEAD = re.compile(
    r'\{"seq":' + _UINT + r',"time":(-?(?:0|[1-9]\d*)\.\d+(?:[eE][-+]?\d+)?),"kind":"step_energies","pair":\[('
    + _UINT + "," + _UINT + r')\],"restart":' + _UINT + ',"cycle":' + _UINT + ',"step":' + _UINT + r',"losses":\[')
_LOSS = r"[-+0-9.eEaNIfinty]+"
_NUMBERS = r"(?:" + _LOSS + "(?:," + _LOSS + r")*)?"
_STEP_TAIL = re.compile(_NUMBERS + r'\](?:,"positions":\[' + _NUMBERS + r'\])?\}')


# A whole line that is a step as the writer writes it, found in the text of many lines at
# once (one scan in C instead of a match per line from Python).
_STEP_LINE = re.compile("^" + _STEP_HEAD.pattern + _STEP_TAIL.pattern + "$", re.MULTILINE)


def _parse_line(line: bytes | str) -> dict[str, Any] | None:
    """The event on one line (without its newline), or None if the line is not an event."""
    try:
        try:  # the common case, a line as the writer wrote it, straight to the scanner
            event, end = _scan_json(line, 0) if type(line) is str else (None, -1)
        except StopIteration:
            end = -1
        if end != len(line):  # bytes, spaces around, or anything odd: json.loads's full rules decide
            event = json.loads(line)
    except (ValueError, RecursionError):  # ValueError includes UnicodeDecodeError
        return None
    if not isinstance(event, dict) or type(event.get("seq")) is not int:
        return None
    return event


# The start of a line as the writer writes it: its kind is known without parsing the rest.
_WRITTEN_KIND = re.compile(r'\{"seq":\d+,"time":[-+.\deE]+,"kind":"([a-z_0-9]+)"')


def _parse_each(lines: list[bytes] | list[str], ignore: frozenset[str],
                events: list[LoggedEvent | PassedSteps]) -> tuple[int, int]:
    """Appends the events of ``lines`` to ``events``; (lines that are not events, events passed over)."""
    passed = not_events = 0
    match_kind = _WRITTEN_KIND.match
    for line in lines:
        if ignore and type(line) is str:
            written = match_kind(line)
            if written is not None and written.group(1) in ignore:
                passed += 1
                continue
        record = _parse_line(line)
        if record is None:
            not_events += 1
            continue
        if ignore and record.get("kind") in ignore:
            passed += 1
        else:
            events.append(_logged(record))
    return not_events, passed


def _thin_run(run: list[re.Match[str]], keep: int, events: list[LoggedEvent | PassedSteps]) -> None:
    """Appends the events of a run of consecutive step lines: of each pair's steps, the first
    and the last ``keep`` parsed, the others passed over as one PassedSteps after the run."""
    by_pair: dict[str, list[int]] = {}
    for index, step in enumerate(run):
        by_pair.setdefault(step.group(2), []).append(index)
    passing = {index for indices in by_pair.values() for index in indices[1:-keep]}
    stamps = []
    for index, step in enumerate(run):
        if index in passing:
            stamps.append(float(step.group(1)))
        else:
            events.append(_logged(_parse_line(step.group(0))))  # type: ignore[arg-type]
    if stamps:
        events.append(PassedSteps(len(stamps), min(stamps), max(stamps)))


def _parse_lines(data: bytes, ignore: frozenset[str] = frozenset(),
                 keep_steps: int = 0) -> tuple[list[LoggedEvent | PassedSteps], int, int]:
    """(events, number of lines that are not events, number of events passed over) in
    complete lines ``data`` (no final newline). Events of a kind in ``ignore`` are
    counted, not returned; a line the writer wrote is then passed over unparsed. With
    ``keep_steps``, of each run of consecutive lines that are steps in the writer's layout,
    a pair's steps but its first and its last ``keep_steps`` come back unparsed, as one
    ``PassedSteps`` at the end of their run."""
    events: list[LoggedEvent | PassedSteps] = []
    # Building many small objects triggers the cyclic GC again and again; none of them
    # can be cyclic garbage, so pausing it makes a long replay about a third faster.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:  # decoding once is faster than per line; a bad byte anywhere sends us line by line
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return (events, *_parse_each(data.split(b"\n"), ignore, events))
        if keep_steps <= 0 or "step_energies" in ignore:
            return (events, *_parse_each(text.split("\n"), ignore, events))
        not_events = passed = 0
        run: list[re.Match[str]] = []  # the current run of consecutive step lines
        position = 0  # the start of the first line not yet taken
        for step in _STEP_LINE.finditer(text):
            if step.start() != position:  # other lines between: they end the run
                if run:
                    _thin_run(run, keep_steps, events)
                    run = []
                counts = _parse_each(text[position:step.start() - 1].split("\n"), ignore, events)
                not_events, passed = not_events + counts[0], passed + counts[1]
            run.append(step)
            position = step.end() + 1
        if run:
            _thin_run(run, keep_steps, events)
        if position <= len(text):  # the lines after the last step (or the only ones)
            counts = _parse_each(text[position:].split("\n"), ignore, events)
            not_events, passed = not_events + counts[0], passed + counts[1]
        return events, not_events, passed
    finally:
        if was_enabled:
            gc.enable()


def _recover(fd: int) -> tuple[int, int]:
    """(length of the complete lines, seq of the last event in them or -1), reading from the end."""
    size = os.fstat(fd).st_size
    end = size  # the complete lines end at the last newline
    position = size
    tail = b""
    found_newline = False
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(fd, position - start, start)
        tail = chunk + tail
        position = start
        if not found_newline:
            cut = tail.rfind(b"\n")
            if cut < 0:
                continue
            found_newline = True
            end = position + cut + 1
            tail = tail[: cut + 1]
        # Look for the last event among the complete lines read so far (the first may be partial).
        lines = tail.split(b"\n")
        for line in reversed(lines[1:] if position > 0 else lines):
            event = _parse_line(line)
            if event is not None:
                return end, event["seq"]
        if position > 0:
            tail = lines[0]
    return (end if found_newline else 0), -1


class EventLogWriter:
    """Appends events to a log; reopening an existing log continues its sequence.

    ``fsync`` (default off) forces each line to the disk. Without it a killed
    runner (kill -9, crash, SSH drop) still loses nothing, because every line
    is written to the kernel at once; only a power loss or kernel crash can
    lose the last events, and those are also covered by the fsynced
    checkpoints. fsync per event costs milliseconds on a real disk.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        # Not through a planted symbolic link: the recovery below truncates what it opens.
        self._fd = open_unfollowed(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, "the event log")
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EventLogError(
                    f"event log {self.path} already has a writer: only the session's runner writes it"
                ) from None
            self._size, last_seq = _recover(self._fd)
            if self._size != os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, self._size)  # drop a line torn by a crash
            self._next_seq = last_seq + 1
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(self, event: Event, stamp: float | None = None) -> int:
        """Write one event as one line and return its seq; ``stamp``: when it happened
        (time.time()), if not now (events of a run made elsewhere, written afterwards)."""
        if self._fd < 0:
            raise EventLogError(f"event log {self.path} is closed")
        fields = event.to_dict()
        clash = set(_LOG_FIELDS) & fields.keys()
        if clash:
            raise ValueError(f"event fields {sorted(clash)} are set by the log: rename them")
        seq = self._next_seq
        record = {"seq": seq, "time": time.time() if stamp is None else stamp, **fields}
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            write_all(self._fd, line)
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            try:  # take back a partial line so the next append starts clean
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise EventLogError(
                f"cannot append to the event log {self.path} ({exc.strerror}): free space or fix the folder, then resume"
            ) from exc
        self._size += len(line)
        self._next_seq = seq + 1
        return seq

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the writer's flock
            self._fd = -1

    def __enter__(self) -> "EventLogWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLogReader:
    """Reads complete events as they are appended. Never blocks, never returns half a line.

    ``skipped`` counts lines that were not events. Gaps and repeats in ``seq``
    are passed through as they are. Events whose kind is in ``ignore`` are not
    returned, only counted in ``passed`` (a reader that needs no steps skips the
    bulk of a long log without parsing it).

    ``keep_steps`` > 0 thins the steps of what one poll reads: of a pair's steps in a run
    of consecutive steps, only the first and the last ``keep_steps`` come back as events;
    the others, unparsed, come back as one ``PassedSteps`` after the run's last line. A
    reader that keeps only the latest step per pair (and the first, and a window of the
    last few) replays a long log in a fraction of the time.
    """

    def __init__(self, path: Path, ignore: frozenset[str] | set[str] = frozenset(), keep_steps: int = 0) -> None:
        self.path = Path(path)
        self.ignore = frozenset(ignore)
        self.keep_steps = keep_steps
        self.skipped = 0
        self.passed = 0
        self._file: Any = None
        self._inode: tuple[int, int] | None = None
        self._line_start = 0  # offset of the first byte not yet returned as part of a complete line

    def poll(self) -> list[LoggedEvent]:  # and PassedSteps with keep_steps
        """The complete events written since the last call (possibly none)."""
        if not self._reopen_if_replaced():
            return []
        size = os.fstat(self._file.fileno()).st_size
        if size < self._line_start:  # cut below what we returned: a new log in the same place
            self._line_start = 0
        # Re-read from the start of the pending partial line: if a new writer cut that line
        # off and appended, we see the new lines instead of a stale buffer.
        self._file.seek(self._line_start)
        data = self._file.read()
        cut = data.rfind(b"\n")
        if cut < 0:
            return []
        self._line_start += cut + 1
        events, skipped, passed = _parse_lines(data[:cut], self.ignore, self.keep_steps)
        self.skipped += skipped
        self.passed += passed
        return events  # type: ignore[return-value]

    def follow(
        self,
        stop: threading.Event | Callable[[], bool] | None = None,
        timeout: float | None = None,
        interval: float = 0.05,
    ) -> Iterator[LoggedEvent]:
        """Yield events as they arrive, until ``stop`` is set / returns True, or ``timeout``
        seconds pass without a new event (None: no timeout). Polls every ``interval`` seconds."""
        is_set = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
        last_event = time.monotonic()
        while not is_set():
            events = self.poll()
            if events:
                last_event = time.monotonic()
                yield from events
                continue
            if timeout is not None and time.monotonic() - last_event >= timeout:
                return
            if isinstance(stop, threading.Event):
                stop.wait(interval)
            else:
                time.sleep(interval)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EventLogReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reopen_if_replaced(self) -> bool:
        """Open the log (or reopen it if the path now names another file); False if it does not exist."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return self._file is not None
        inode = (stat.st_dev, stat.st_ino)
        if self._file is None or inode != self._inode:
            self.close()
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return False
            self._inode = (os.fstat(self._file.fileno()).st_dev, os.fstat(self._file.fileno()).st_ino)
            self._line_start = 0
        return True


def read_log(path: Path) -> list[LoggedEvent]:
    """Every complete event in the log (a missing log is empty)."""
    with EventLogReader(path) as reader:
        return reader.poll()
