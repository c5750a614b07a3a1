"""The session storage layer on real files and real processes: data home, session
folders, the event log, checkpoints and the runner lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from sessions.disk import statefile
from sessions.disk.atomic import write_atomic
from sessions.disk.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sessions.disk.config import SessionConfig
from engine.events import UnknownEvent
from sessions.disk.eventlog import EventLogError, EventLogReader, EventLogWriter, LoggedEvent, read_log
from sessions.disk.folder import (
    CHECKPOINT_FILE,
    EVENTS_FILE,
    PREVIOUS_CHECKPOINT_FILE,
    SCHEMA_VERSION,
    SESSION_FILE,
    SessionError,
    SessionFolder,
    list_sessions,
)
from sessions.disk.home import data_home
from sessions.disk.lock import LockedError, RunnerLock, holder, holder_info
from sessions.disk.statepack import pack_state, read_state, unpack_state

REPO = Path(__file__).resolve().parents[3]
MINIMUM = {"path": "minima/a.safetensors", "sha256": "ab" * 32, "parameters": 1234}


def _python(script: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, text=True, **kwargs)


def _raw_append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


# ---------------------------------------------------------------- data home


def test_session_error_is_its_own_kind():
    assert issubclass(SessionError, Exception)
    assert not issubclass(SessionError, (ValueError, OSError))
    assert issubclass(CheckpointError, SessionError) and issubclass(LockedError, SessionError)


def test_lock_and_folder_do_not_import_each_other():
    code = "import sys, sessions.disk.lock; print('sessions.disk.folder' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"


def test_data_home_from_variable_is_created_private(tmp_path):
    home = data_home({"NEBTUI_HOME": str(tmp_path / "deep" / "home")})
    assert home == tmp_path / "deep" / "home"
    assert home.is_dir()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert list(home.iterdir()) == []  # the write probe is cleaned up


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_DATA_HOME is the Linux user data folder")
def test_data_home_defaults_to_the_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NEBTUI_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "nebtui"
    assert data_home({"NEBTUI_HOME": ""}) == tmp_path / "xdg" / "nebtui"


def test_data_home_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    # Root bypasses permission bits, so these are the failures that hold for everyone.
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(SessionError, match=r"is not a folder: set NEBTUI_HOME to a writable folder"):
        data_home({"NEBTUI_HOME": str(a_file)})
    with pytest.raises(SessionError, match=r"cannot be created .*: set NEBTUI_HOME to a writable folder"):
        data_home({"NEBTUI_HOME": str(a_file / "home")})


# Root writes through permission bits: a check of them runs in a child process that holds
# no capability (setpriv empties root's bounding set, so the bits apply to it as to anyone).
WITHOUT_PRIVILEGES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []


def run_without_privileges(code: str, *args: str) -> None:
    """Runs ``code`` (asserts of its own) in a Python that permission bits bind."""
    done = subprocess.run([*WITHOUT_PRIVILEGES, sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_data_home_in_a_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        run_without_privileges("""
            import re, sys
            from sessions.errors import SessionError
            from sessions.disk.home import data_home

            for home, wanted in ((sys.argv[1], r"is not writable .*: set NEBTUI_HOME"),
                                 (sys.argv[1] + "/home", r"cannot be created")):
                try:
                    data_home({"NEBTUI_HOME": home})
                except SessionError as error:
                    assert re.search(wanted, str(error)), error
                else:
                    raise AssertionError(f"{home} was accepted")
        """, str(locked))
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------- session folders


def test_create_then_open_round_trips(tmp_path):
    config = {"preset": "paper", "pairs": [[0, 1]], "lr": 0.1}
    made = SessionFolder.create(tmp_path, "run-1_a.b", config)
    assert made.path == tmp_path / "run-1_a.b"
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o700
    assert sorted(os.listdir(tmp_path)) == ["run-1_a.b"]  # no temp folder left

    opened = SessionFolder.open(tmp_path, "run-1_a.b")
    assert opened.info == made.info
    assert opened.info.schema == SCHEMA_VERSION and opened.id == "run-1_a.b"
    assert abs(opened.created - time.time()) < 60
    assert opened.config_json() == config
    assert opened.events_path.read_bytes() == b""
    assert opened.results_path.is_dir()
    assert (opened.path / SESSION_FILE).is_file()
    names = [
        opened.config_path, opened.events_path, opened.runner_log_path, opened.lock_path,
        opened.heartbeat_path, opened.control_socket_path, opened.results_path,
    ]
    assert [p.name for p in names] == [
        "config.json", "events.jsonl", "runner.log", "lock", "heartbeat", "control.sock", "results",
    ]
    assert all(p.parent == opened.path for p in names)


def test_taken_name_is_refused_and_keeps_the_first(tmp_path):
    SessionFolder.create(tmp_path, "x", {"n": 1})
    with pytest.raises(SessionError) as err:
        SessionFolder.create(tmp_path, "x", {"n": 2})
    assert str(err.value) == (
        "session 'x' already exists: choose another --session name or remove it with nebtui sessions rm x"
    )
    assert SessionFolder.open(tmp_path, "x").config_json() == {"n": 1}
    assert sorted(os.listdir(tmp_path)) == ["x"]


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "x" * 65, "sp ace", "é"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(SessionError, match="invalid session name"):
        SessionFolder.create(tmp_path, name, {})
    assert os.listdir(tmp_path) == []


def test_longest_name_is_accepted(tmp_path):
    assert SessionFolder.create(tmp_path, "x" * 64, {}).id == "x" * 64


def test_unjsonable_config_leaves_nothing(tmp_path):
    with pytest.raises(SessionError, match="not JSON-able"):
        SessionFolder.create(tmp_path, "a", {"f": object()})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("entry, wanted", [
    ({**MINIMUM, "sha256": "nothex"}, "problem.minima[1].sha256 must be 64 lowercase hex digits, got 'nothex'"),
    ({**MINIMUM, "parameters": -1}, "problem.minima[1].parameters must be a count >= 0, got -1"),
    ({**MINIMUM, "path": ""}, "problem.minima[1] is not an entry with a path"),
])
def test_a_bad_minimum_record_is_one_line(entry, wanted):
    problem = {"kind": "network", "model": "mlp", "data": "digits", "minima": [MINIMUM, entry]}
    with pytest.raises(SessionError) as err:
        SessionConfig.from_dict({"problem": problem})
    assert str(err.value).endswith(wanted)


def test_open_missing_session_says_how_to_list(tmp_path):
    with pytest.raises(SessionError, match=r"no session 'nope' in .*: see the sessions with nebtui sessions list"):
        SessionFolder.open(tmp_path, "nope")
    with pytest.raises(SessionError, match="no session"):
        SessionFolder.open(tmp_path, "../etc")


def test_schema_too_new_says_upgrade(tmp_path):
    folder = SessionFolder.create(tmp_path, "x", {})
    info = json.loads((folder.path / SESSION_FILE).read_text())
    (folder.path / SESSION_FILE).write_text(json.dumps({**info, "schema": SCHEMA_VERSION + 1}))
    with pytest.raises(SessionError) as err:
        SessionFolder.open(tmp_path, "x")
    assert str(err.value) == "session x was written by a newer nebtui (schema 2, this one reads 1): upgrade nebtui"


@pytest.mark.parametrize("content", ['{"schema": 1, "id": "x"', "[]", '{"schema": 1, "id": "y", "created": 1.0, '
                                     '"nebtui_version": "0"}', '{"schema": "1"}', ""])
def test_corrupt_session_file_is_an_error(tmp_path, content):
    folder = SessionFolder.create(tmp_path, "x", {})
    (folder.path / SESSION_FILE).write_text(content)
    with pytest.raises(SessionError, match=r"session 'x' is corrupt \(session.json: .*\): remove it with nebtui sessions rm x"):
        SessionFolder.open(tmp_path, "x")


def test_list_sessions_by_creation_and_reports_broken_ones(tmp_path):
    for name in ["c", "a", "b"]:
        SessionFolder.create(tmp_path, name, {})
    (tmp_path / ".creating-d-123").mkdir()  # an interrupted create
    (tmp_path / "stray.txt").write_text("not a session")
    broken = SessionFolder.create(tmp_path, "broken", {})
    (broken.path / SESSION_FILE).write_text("{")
    errors: list[SessionError] = []
    assert [s.id for s in list_sessions(tmp_path, errors)] == ["c", "a", "b"]
    assert [str(e).split(" (")[0] for e in errors] == ["session 'broken' is corrupt"]
    assert list_sessions(tmp_path / "absent") == []


def test_remove_deletes_and_is_refused_while_a_runner_holds_it(tmp_path):
    folder = SessionFolder.create(tmp_path, "x", {})
    with RunnerLock(folder.lock_path):
        with pytest.raises(SessionError, match=rf"being run by pid {os.getpid()}: stop it with nebtui sessions stop x"):
            folder.remove()
        assert folder.path.is_dir()
    folder.remove()
    assert os.listdir(tmp_path) == []
    assert list_sessions(tmp_path) == []


def test_heartbeat(tmp_path):
    folder = SessionFolder.create(tmp_path, "x", {})
    assert folder.heartbeat_age() is None
    folder.beat(now=100.0)
    assert folder.heartbeat_age(now=103.5) == pytest.approx(3.5)
    folder.beat()
    assert 0.0 <= folder.heartbeat_age() < 5.0
    folder.heartbeat_path.write_text("garbage")
    assert folder.heartbeat_age() is None
    assert not [n for n in os.listdir(folder.path) if ".tmp" in n]


# ---------------------------------------------------------------- event log


def _event(kind: str | None = None, **fields) -> UnknownEvent:
    """An event of any fields (the log layer does not care which kind it is)."""
    return UnknownEvent({"kind": kind, **fields} if kind is not None else fields)


def test_append_and_read_back(tmp_path):
    log = tmp_path / EVENTS_FILE
    with EventLogWriter(log) as writer:
        assert [writer.append(_event("step", i=i)) for i in range(3)] == [0, 1, 2]
    events = read_log(log)
    assert [(e.seq, e.event.kind, e.event.data["i"]) for e in events] == [(0, "step", 0), (1, "step", 1), (2, "step", 2)]
    assert all(abs(e.time - time.time()) < 60 for e in events)
    assert log.read_bytes().count(b"\n") == 3
    with EventLogWriter(log) as writer:  # reopening continues the sequence
        assert writer.append(_event("again")) == 3
    assert read_log(tmp_path / "missing.jsonl") == []


def test_reserved_fields_and_second_writer_are_refused(tmp_path):
    log = tmp_path / EVENTS_FILE
    with EventLogWriter(log) as writer:
        with pytest.raises(ValueError, match="set by the log"):
            writer.append(_event(seq=5))
        with pytest.raises(EventLogError, match="already has a writer"):
            EventLogWriter(log)
    EventLogWriter(log).close()  # free again once the first is closed


def test_torn_last_line_is_never_read_and_is_cut_by_the_next_writer(tmp_path):
    log = tmp_path / EVENTS_FILE
    with EventLogWriter(log) as writer:
        for i in range(3):
            writer.append(_event("step", i=i))
    whole = log.read_bytes()
    _raw_append(log, b'{"seq":3,"time":1.0,"ki')  # a crash mid-write
    reader = EventLogReader(log)
    assert [e.seq for e in reader.poll()] == [0, 1, 2]
    assert reader.skipped == 0

    with EventLogWriter(log) as writer:
        assert log.read_bytes() == whole
        assert writer.append(_event("resumed")) == 3
    assert [e.seq for e in read_log(log)] == [0, 1, 2, 3]
    # The reader had seen the torn bytes; it now gets the new line, not a mix of both.
    assert [(e.seq, e.event.kind) for e in reader.poll()] == [(3, "resumed")]
    assert reader.skipped == 0


def test_a_log_that_is_only_a_torn_line_restarts_at_zero(tmp_path):
    log = tmp_path / EVENTS_FILE
    log.write_bytes(b'{"seq":0,"ti')
    with EventLogWriter(log) as writer:
        assert log.read_bytes() == b""
        assert writer.append(_event("first")) == 0


def test_garbage_lines_are_skipped_and_counted(tmp_path):
    log = tmp_path / EVENTS_FILE
    with EventLogWriter(log) as writer:
        writer.append(_event("a"))
    _raw_append(log, b'not json\n{"no_seq": 1}\n[1, 2]\n{"seq": "7"}\n\xff\xfe\n')
    with EventLogWriter(log) as writer:
        assert writer.append(_event("b")) == 1  # garbage last lines: continue after the last event
    _raw_append(log, b"garbage at the end\n")
    with EventLogWriter(log) as writer:
        assert writer.append(_event("c")) == 2
    reader = EventLogReader(log)
    assert [e.event.kind for e in reader.poll()] == ["a", "b", "c"]
    assert reader.skipped == 6


def test_gaps_and_duplicates_in_seq_are_passed_through(tmp_path):
    log = tmp_path / EVENTS_FILE
    log.write_bytes(b"".join(json.dumps({"seq": s, "time": 0.0}).encode() + b"\n" for s in [0, 1, 1, 5]))
    reader = EventLogReader(log)
    assert [e.seq for e in reader.poll()] == [0, 1, 1, 5]
    assert reader.skipped == 0
    with EventLogWriter(log) as writer:
        assert writer.append(_event()) == 6


def test_partial_line_waits_for_its_newline(tmp_path):
    log = tmp_path / EVENTS_FILE
    log.write_bytes(b"")
    reader = EventLogReader(log)
    line = json.dumps({"seq": 0, "time": 0.0, "kind": "x"}).encode()
    _raw_append(log, line[:10])
    assert reader.poll() == []
    _raw_append(log, line[10:])
    assert reader.poll() == []
    _raw_append(log, b"\n")
    assert reader.poll() == [LoggedEvent(0, 0.0, UnknownEvent({"kind": "x"}))]
    assert reader.poll() == []
    assert reader.skipped == 0


@pytest.mark.timeout(60)
def test_readers_follow_a_writer_process(tmp_path):
    log = tmp_path / EVENTS_FILE
    count = 2000
    child = _python(
        f"""
        import time
        from engine.events import UnknownEvent
        from sessions.disk.eventlog import EventLogWriter
        with EventLogWriter({str(log)!r}) as w:
            for i in range({count}):
                w.append(UnknownEvent({{"kind": "step", "i": i, "energies": [0.5] * 20}}))
                if i % 100 == 0:
                    time.sleep(0.01)
        """
    )
    readers = [EventLogReader(log) for _ in range(3)]
    got: list[list[LoggedEvent]] = [[] for _ in readers]
    deadline = time.monotonic() + 50
    while any(len(g) < count for g in got) and time.monotonic() < deadline:
        for reader, g in zip(readers, got):
            g.extend(reader.poll())
        time.sleep(0.001)
    assert child.wait(timeout=30) == 0
    for reader, g in zip(readers, got):
        assert [e.seq for e in g] == list(range(count))
        assert [e.event.data["i"] for e in g] == list(range(count))
        assert reader.skipped == 0


@pytest.mark.timeout(60)
def test_kill_9_after_append_loses_nothing(tmp_path):
    log = tmp_path / EVENTS_FILE
    child = _python(
        f"""
        import sys, time
        from engine.events import UnknownEvent
        from sessions.disk.eventlog import EventLogWriter
        w = EventLogWriter({str(log)!r})
        for i in range(500):
            w.append(UnknownEvent({{"kind": "step", "i": i}}))
        print("written", flush=True)
        time.sleep(60)
        """,
        stdout=subprocess.PIPE,
    )
    assert child.stdout.readline().strip() == "written"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert [e.event.data["i"] for e in read_log(log)] == list(range(500))
    with EventLogWriter(log) as writer:  # the dead writer's flock is gone
        assert writer.append(_event("after")) == 500


@pytest.mark.timeout(30)
def test_follow_stops_on_timeout_or_stop(tmp_path):
    log = tmp_path / EVENTS_FILE
    with EventLogWriter(log) as writer:
        for i in range(3):
            writer.append(_event(i=i))
        reader = EventLogReader(log)
        seen, asked = [], []

        def not_yet() -> bool:
            """Never stops; writes event 3 once the reader has caught up and polled in vain."""
            asked.append(len(seen))
            if asked[-1] == 3 and asked.count(3) == 2:  # asked again after the poll that found nothing new
                writer.append(_event(i=3))
            return False

        # caught up, it waits for the timeout and takes what comes meanwhile, then ends on its own
        for e in reader.follow(not_yet, timeout=1.0, interval=0.01):
            seen.append(e.event.data["i"])
        assert seen == [0, 1, 2, 3]

        # with a stop, it ends once stop is set, long before its timeout (the test's own is 30 s)
        writer.append(_event(i=4))
        stop = threading.Event()
        seen = []
        for e in reader.follow(stop, timeout=600, interval=0.01):
            seen.append(e.event.data["i"])
            stop.set()
        assert seen == [4]


# ---------------------------------------------------------------- checkpoints


def _tensors(scale: float) -> dict[str, torch.Tensor]:
    base = torch.arange(12, dtype=torch.float32) * scale
    return {
        "pivots": base.reshape(3, 4),  # (N, D)
        "row": base.reshape(3, 4)[1],  # shares storage with pivots
        "columns": base.reshape(3, 4).t(),  # not contiguous
        "steps": torch.tensor([7], dtype=torch.int64),
    }


def test_checkpoint_round_trip(tmp_path):
    tensors = _tensors(1.0)
    path = save_checkpoint(tmp_path, tensors, {"cycle": 3, "pair": [0, 1]})
    assert path == tmp_path / CHECKPOINT_FILE
    loaded = load_checkpoint(tmp_path)
    assert loaded.source == "current" and loaded.fallback_reason is None
    got, meta = loaded
    assert meta == {"cycle": 3, "pair": [0, 1]}
    assert got.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(got[name], tensor) and got[name].dtype == tensor.dtype
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_FILE]  # no temp file left
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_checkpoint(empty) is None


def test_second_save_keeps_the_first_as_previous(tmp_path):
    save_checkpoint(tmp_path, _tensors(1.0), {"cycle": 1})
    first = (tmp_path / CHECKPOINT_FILE).read_bytes()
    save_checkpoint(tmp_path, _tensors(2.0), {"cycle": 2})
    assert (tmp_path / PREVIOUS_CHECKPOINT_FILE).read_bytes() == first
    tensors, meta = load_checkpoint(tmp_path)
    assert meta == {"cycle": 2} and torch.equal(tensors["pivots"], _tensors(2.0)["pivots"])
    assert sorted(os.listdir(tmp_path)) == sorted([CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE])


@pytest.mark.parametrize("damage", ["truncate", "header", "pickle", "delete"])
def test_damaged_current_falls_back_to_previous(tmp_path, damage):
    save_checkpoint(tmp_path, _tensors(1.0), {"cycle": 1})
    save_checkpoint(tmp_path, _tensors(2.0), {"cycle": 2})
    current = tmp_path / CHECKPOINT_FILE
    data = current.read_bytes()
    if damage == "truncate":
        current.write_bytes(data[: len(data) // 2])
    elif damage == "header":
        current.write_bytes(b"\x00" * 8 + data[8:])
    elif damage == "pickle":  # never unpickled: a torch.save file is just unreadable here
        torch.save({"pivots": torch.zeros(3)}, current)
    else:
        current.unlink()
    loaded = load_checkpoint(tmp_path)
    assert loaded.source == "previous" and loaded.path == tmp_path / PREVIOUS_CHECKPOINT_FILE
    assert CHECKPOINT_FILE in loaded.fallback_reason
    assert loaded.meta == {"cycle": 1}
    assert torch.equal(loaded.tensors["pivots"], _tensors(1.0)["pivots"])


def test_both_damaged_or_no_previous_is_an_error(tmp_path):
    save_checkpoint(tmp_path, _tensors(1.0), {"cycle": 1})
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="damaged .* and there is no previous one"):
        load_checkpoint(tmp_path)
    (tmp_path / PREVIOUS_CHECKPOINT_FILE).write_bytes(b"junk too")
    with pytest.raises(CheckpointError, match="both checkpoints of session .* are damaged"):
        load_checkpoint(tmp_path)


def test_meta_must_be_json(tmp_path):
    with pytest.raises(CheckpointError, match="not JSON-able"):
        save_checkpoint(tmp_path, _tensors(1.0), {"x": object()})
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(120)
def test_full_disk_keeps_the_previous_checkpoint(tmp_path):
    # A real write failure without mounts (CI may not allow them): a file size limit
    # (RLIMIT_FSIZE) in a child process, with SIGXFSZ ignored, makes the kernel fail the
    # write with EFBIG part-way through, exactly where ENOSPC would strike on a full disk.
    folder = tmp_path / "sess"
    folder.mkdir()
    save_checkpoint(folder, _tensors(1.0), {"cycle": 1})
    save_checkpoint(folder, _tensors(2.0), {"cycle": 2})
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    child = _python(
        f"""
        import json, resource, signal, torch
        from sessions.disk.checkpoint import CheckpointError, save_checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            save_checkpoint({str(folder)!r}, {{"pivots": torch.ones(8, 65536)}}, {{"cycle": 3}})
            print(json.dumps({{"error": None}}))
        except CheckpointError as exc:
            print(json.dumps({{"error": str(exc), "errno": exc.__cause__.errno}}))
        """,
        stdout=subprocess.PIPE,
    )
    out, _ = child.communicate(timeout=100)
    assert child.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errno"] == 27  # EFBIG
    assert result["error"].startswith("file size limit reached while checkpointing session sess")
    assert result["error"].endswith("the previous checkpoint is intact")
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before  # no temp file left
    tensors, meta = load_checkpoint(folder)
    assert meta == {"cycle": 2}


def test_read_only_folder_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _tensors(1.0), {"cycle": 1})
    tmp_path.chmod(0o500)
    try:
        run_without_privileges("""
            import re, sys, torch
            from sessions.disk.checkpoint import CheckpointError, save_checkpoint

            try:
                save_checkpoint(sys.argv[1], {"x": torch.full((4,), 2.0)}, {"cycle": 2})
            except CheckpointError as error:
                assert re.search("cannot write the checkpoint .*the previous checkpoint is intact", str(error)), error
            else:
                raise AssertionError("a read-only folder took the checkpoint")
        """, str(tmp_path))
    finally:
        tmp_path.chmod(0o700)
    assert load_checkpoint(tmp_path).meta == {"cycle": 1}


# ---------------------------------------------------------------- atomic writes and state files


def test_write_atomic_replaces_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "result.json"
    write_atomic(target, b"first\n")
    write_atomic(target, b"second\n" * 1000)
    assert target.read_bytes() == b"second\n" * 1000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["result.json"]


def test_write_atomic_that_fails_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    write_atomic(target, b"old")

    def refuse() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new", before_replace=refuse)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_state_file_round_trips_in_bytes_and_on_disk(tmp_path):
    tensors = _tensors(1.5)
    meta = {"cycle": 2, "pairs": {"0-10": 1, "0-2": 2}}
    state = unpack_state(pack_state({"tensors": tensors, "meta": meta}))
    assert list(state["meta"]["pairs"]) == ["0-10", "0-2"]  # insertion order kept
    statefile.write(tmp_path / "s.safetensors", tensors, meta, key="k", tags={"kind": "test"})
    got, got_meta, header = statefile.read(tmp_path / "s.safetensors", key="k")
    assert got_meta == meta == state["meta"] and header == {"kind": "test"}
    for name, tensor in tensors.items():
        assert torch.equal(got[name], tensor) and torch.equal(state["tensors"][name], tensor)


def test_state_bytes_are_read_without_writing_a_file():
    """A runner under a file size limit (a full disk) still reads the states its workers send:
    unpacking a 400 kB state writes nothing, so a 64 kB limit cannot stop it."""
    script = textwrap.dedent("""
        import resource, torch
        from sessions.disk.statepack import pack_state, unpack_state
        data = pack_state({"tensors": {"pivots": torch.arange(100_000.0)}, "meta": {"cycle": 3}})
        resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))
        state = unpack_state(data)
        assert state["meta"] == {"cycle": 3} and state["tensors"]["pivots"][-1] == 99_999.0
        print("read")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "read", done.stderr


@pytest.mark.parametrize("data", [b"", b"junk", b"\xff" * 8 + b"{}", None])
def test_damaged_state_bytes_are_one_error(tmp_path, data):
    if data is None:  # a pickle (torch.save) is never unpickled: it is just not a state
        torch.save({"pivots": torch.zeros(3)}, tmp_path / "p.pt")
        data = (tmp_path / "p.pt").read_bytes()
    with pytest.raises(statefile.StateFileError, match="the state is unreadable"):
        unpack_state(data)
    with pytest.raises(ValueError, match="no 'meta' entry"):  # a plain state dict has no meta
        unpack_state(statefile.to_bytes({"x": torch.zeros(2)}, {}, key="other"))


def test_files_in_the_earlier_layout_still_load(tmp_path):
    """Checkpoints and finished paths as the earlier code wrote them, built here with safetensors itself."""
    from safetensors.torch import save, save_file

    tensors = {"pivots": torch.arange(6, dtype=torch.float32).reshape(3, 2), "steps": torch.tensor([4])}
    meta = {"cycle": 5, "running": {}}
    save_file(tensors, str(tmp_path / CHECKPOINT_FILE),
              metadata={"nebtui.checkpoint": "1", "nebtui.meta": json.dumps(meta, sort_keys=True)})
    loaded = load_checkpoint(tmp_path)
    assert loaded.source == "current" and loaded.meta == meta
    assert torch.equal(loaded.tensors["pivots"], tensors["pivots"]) and torch.equal(loaded.tensors["steps"], tensors["steps"])

    path = save(tensors, metadata={"meta": json.dumps({"pair": [0, 1], "done": True})})
    (tmp_path / "0-1.safetensors").write_bytes(path)
    for state in (unpack_state(path), read_state(tmp_path / "0-1.safetensors")):
        assert state["meta"] == {"pair": [0, 1], "done": True}
        assert torch.equal(state["tensors"]["pivots"], tensors["pivots"])


def test_checkpoints_and_paths_are_written_in_the_same_layout(tmp_path):
    from safetensors import safe_open

    save_checkpoint(tmp_path, _tensors(1.0), {"b": 1, "a": 2})
    with safe_open(str(tmp_path / CHECKPOINT_FILE), "pt") as opened:
        assert opened.metadata() == {"nebtui.checkpoint": "1", "nebtui.meta": '{"a": 2, "b": 1}'}
    (tmp_path / "0-1.safetensors").write_bytes(pack_state({"tensors": _tensors(1.0), "meta": {"b": 1, "a": 2}}))
    with safe_open(str(tmp_path / "0-1.safetensors"), "pt") as opened:
        assert opened.metadata() == {"meta": '{"b": 1, "a": 2}'}


# ---------------------------------------------------------------- runner lock


def test_lock_in_one_process(tmp_path):
    path = tmp_path / "x" / "lock"
    path.parent.mkdir()
    assert holder(path) is None  # no file yet
    lock = RunnerLock(path)
    lock.acquire()
    assert lock.held
    info = holder_info(path)
    assert info.pid == os.getpid() and abs(info.started - time.time()) < 60
    with pytest.raises(LockedError, match=rf"session x is being run by pid {os.getpid()} \(started .*\): "
                                          r"stop it with nebtui sessions stop x, or wait"):
        RunnerLock(path).acquire()
    lock.release()
    assert not lock.held and holder(path) is None
    with RunnerLock(path):
        assert holder(path) == os.getpid()
    assert holder(path) is None


def test_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    path = tmp_path / "lock"
    path.write_text(json.dumps({"pid": 2**22 + 17, "started": 1.0}))  # written, but nobody holds the flock
    assert holder(path) is None
    with RunnerLock(path):
        assert holder(path) == os.getpid()


@pytest.mark.timeout(60)
def test_lock_across_processes_and_kill_9(tmp_path):
    path = tmp_path / "sess" / "lock"
    path.parent.mkdir()
    child = _python(
        f"""
        import time
        from sessions.disk.lock import RunnerLock
        RunnerLock({str(path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
        """,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        assert holder(path) == child.pid
        with pytest.raises(LockedError, match=rf"session sess is being run by pid {child.pid} "):
            RunnerLock(path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert holder(path) is None
    lock = RunnerLock(path)
    lock.acquire()
    assert holder(path) == os.getpid()
    lock.release()
