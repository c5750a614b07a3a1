"""Readers that pass over the steps: the status probe and the session picker read a long
log without parsing its steps and cycle profiles, and still see what the full replay sees
of the lifecycle, the pairs done, the MST and the number of events."""

from __future__ import annotations

from test_event_replay import OLD_LOG, _folder

from sessions.disk.eventlog import EventLogReader, read_log
from sessions.view import PROGRESS_KINDS, listing_view, read_view, summary

LISTED = ("status", "pid", "problem", "minima", "pairs_done", "pairs_total", "devices", "workers", "paths", "mst",
          "error", "events", "worker_deaths")


def test_passed_over_kinds_are_counted_and_the_rest_read_as_in_full(tmp_path):
    folder = _folder(tmp_path)
    # a step written by hand (spaces after the separators): parsed, then passed over by its kind
    with folder.events_path.open("a") as log:
        log.write('{"seq": 23, "time": 1010.0, "kind": "step_energies", "pair": [1, 2], "restart": 0, "cycle": 2, '
                  '"step": 5, "losses": [-108.2, -90.0, -72.0, -75.0, -80.8]}\nnot an event\n')
    full = read_log(folder.events_path)
    with EventLogReader(folder.events_path, ignore=PROGRESS_KINDS) as reader:
        kept = reader.poll()
        assert reader.skipped == 1
        assert reader.passed == sum(entry.event.kind in PROGRESS_KINDS for entry in full) == 4
    assert kept == [entry for entry in full if entry.event.kind not in PROGRESS_KINDS]


def test_the_listing_view_summarises_the_session_as_the_full_replay(tmp_path):
    folder = _folder(tmp_path)
    full, listed = summary(folder, read_view(folder)), summary(folder, listing_view(folder))
    assert {key: listed[key] for key in LISTED} == {key: full[key] for key in LISTED}
    assert listed["pairs_done"] == 2 and listed["events"] == len(OLD_LOG.splitlines())


def test_a_reader_passing_over_steps_follows_appended_lines(tmp_path):
    folder = _folder(tmp_path)
    with EventLogReader(folder.events_path, ignore=PROGRESS_KINDS) as reader:
        first = reader.poll()
        with folder.events_path.open("a") as log:
            log.write('{"seq":23,"time":1010.0,"kind":"step_energies","pair":[1,2],"restart":0,"cycle":2,"step":5,'
                      '"losses":[-1.0,-2.0]}\n{"seq":24,"time":1011.0,"kind":"session_stopped","pairs_done":2}\n{"seq":25')
        more = reader.poll()
        assert [entry.seq for entry in more] == [24] and reader.passed == 4
        assert type(more[0].event).__name__ == "SessionStopped"
    assert first[-1].seq == 22
