"""The app's reader thins long runs of steps (a pair's first and last RATE_WINDOW + 1
steps parsed, the rest counted and timed): the model it leaves is the one a full
replay leaves, however the steps of the pairs interleave with pauses, restarts and
new cycles, with or without their positions, and wherever the polls cut the log."""

from __future__ import annotations

import copy
import random

import pytest

from engine.events import CycleStarted, StepEnergies
from nebtui.app.model import RATE_WINDOW, SessionModel
from sessions.disk.eventlog import EventLogReader, EventLogWriter, LoggedEvent, PassedSteps
from sessions.events import RunnerStarted, SessionPaused, SessionResumed

PAIRS = [(0, 1), (0, 2), (1, 2)]
KEEP = RATE_WINDOW + 1


def write_log(path, seed: int, gaps: float) -> None:
    """A log of steps of three pairs (their steps now and then going back, as a new cycle's
    do), with pauses, resumes, runner restarts and cycle starts at the rate ``gaps``."""
    rng = random.Random(seed)
    placing = random.Random(-seed - 1)  # the steps' positions: draws of their own, the log's events as before
    done = {pair: 0 for pair in PAIRS}
    with EventLogWriter(path) as log:
        for _ in range(rng.randint(200, 1500)):
            pair, draw = rng.choice(PAIRS), rng.random()
            if draw < gaps * 0.3:
                log.append(RunnerStarted(pid=1, devices=["cpu"], resumed=True))
            elif draw < gaps * 0.5:
                log.append(SessionPaused(running=[list(pair)]))
            elif draw < gaps * 0.7:
                log.append(SessionResumed())
            elif draw < gaps:
                log.append(CycleStarted(pair=pair, restart=rng.randint(0, 1), cycle=rng.randint(1, 3), cycles=3,
                                        steps=50, lr=0.1, optimiser="SGD", batch_size=None, insert=False,
                                        climb=False, pivots=5))
            else:
                done[pair] = max(1, done[pair] + rng.choice([1, 1, 1, 1, -5]))
                losses = [rng.uniform(-150.0, 0.0) for _ in range(rng.randint(1, 6))]
                inner = sorted(placing.random() for _ in range(len(losses) - 2))
                positions = [0.0, *inner, 1.0] if len(losses) > 1 and placing.random() < 0.5 else None  # older: none
                log.append(StepEnergies(pair=pair, restart=0, cycle=1, step=done[pair], losses=losses,
                                        positions=positions))


def replayed(path, keep_steps: int, cut: int | None = None) -> tuple[SessionModel, int]:
    """The model after reading the log (in two polls when ``cut`` bytes are there first), and
    how many records the reader returned."""
    data = path.read_bytes()
    shown = path.with_name("shown.jsonl")
    shown.write_bytes(data if cut is None else data[:cut])
    model, records = SessionModel(None), 0
    with EventLogReader(shown, keep_steps=keep_steps) as reader:
        for _ in range(2):
            entries = reader.poll()
            records += len(entries)
            model.apply_all(entries)
            shown.write_bytes(data)
    return model, records


def rates_ahead(model: SessionModel) -> list[float | None]:
    """The step rate after each of RATE_WINDOW more steps of the pair shown, a second apart,
    on a copy of the model: each rate is measured from one more of the steps the model's rate
    held when the replay ended, so the same rates ahead mean the same steps held."""
    model = copy.deepcopy(model)
    trace = model.shown_pair()
    if trace is None:
        return []
    now, rates = model.view.last_time or 0.0, []
    for ahead in range(1, RATE_WINDOW + 1):
        model.apply(LoggedEvent(10**6 + ahead, now + ahead, StepEnergies(
            pair=trace.pair, restart=trace.restart, cycle=trace.cycle, step=trace.step + ahead, losses=[0.0])))
        rates.append(model.rate.rate)
    return rates


def state(model: SessionModel) -> tuple:
    live = {pair: model.live_positions(trace) for pair, trace in model.view.progress.items()}
    return model.view, model.rate.rate, rates_ahead(model), model.followed, list(model.log), model.eta(), live


@pytest.mark.parametrize("seed", range(8))
def test_a_thinned_replay_leaves_the_model_of_a_full_one(tmp_path, seed):
    path = tmp_path / "events.jsonl"
    write_log(path, seed, gaps=0.08 if seed % 2 else 0.004)
    full, events = replayed(path, 0)
    thinned, records = replayed(path, KEEP)
    assert state(thinned) == state(full) and thinned.view.events == events
    if seed % 2 == 0:  # long runs of steps: most of them passed over
        assert records < events / 2
    data = path.read_bytes()
    cut = data.index(b"\n", random.Random(seed).randrange(len(data) // 2)) + 1
    assert state(replayed(path, KEEP, cut)[0]) == state(full)


def test_steps_not_in_the_writers_layout_are_read_as_they_are(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [f'{{"seq":{i},"time":{1000.0 + i},"kind":"step_energies","pair":[0,1],"restart":0,"cycle":1,'
             f'"step":{i + 1},"losses":[-1.5,-2.0]}}' for i in range(60)]
    lines[30] = lines[30].replace('"restart":0', '"restart":"0"')  # not the writer's: an event all the same
    lines[31] = lines[31].replace('"losses":[-1.5,-2.0]', '"losses":[-1.5,,-2.0]')  # not JSON: skipped
    path.write_text("\n".join(lines) + "\n")
    with EventLogReader(path, keep_steps=KEEP) as reader:
        entries = reader.poll()
        assert reader.skipped == 1
    passed = [entry for entry in entries if type(entry) is PassedSteps]
    kept = [entry for entry in entries if type(entry) is not PassedSteps]
    assert sum(p.count for p in passed) + len(kept) == 59
    # read, as a full replay reads it: an event of the wrong types, which says what is wrong
    assert any("step_energies.restart is '0'" in getattr(entry.event, "problem", "") for entry in kept)
    assert [entry.seq for entry in kept][-KEEP:] == list(range(60 - KEEP, 60))
    assert passed[0].earliest == 1001.0  # the first of the run was kept
