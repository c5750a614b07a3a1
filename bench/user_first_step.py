"""How soon a user's own problem takes its first NEB step, against the same problem built in.

Three digits MLP minima are trained once (``nebtui train``, outside the timing). A small
package of the user's own, in a folder of its own, builds the same problem: ``usernets:mlp``
(the MLP as a ``torch.nn.Sequential`` of the user's, the minima's shapes) and
``userdata:digits`` (the digits train/test split as map-style Datasets, from scikit-learn's
``load_digits``, as a user writes it). Then, interleaved over ``--runs`` rounds (the order
alternating), each contender's ``nebtui explore MINIMA ... --detach`` is launched from that
folder, as a user runs it, and timed from its launch to the first ``step_energies`` event in
the session's events.jsonl (the event's own time stamp; the log is polled, every wait with
a deadline), then left to finish before the next starts:

- ``builtin``: ``--model mlp --data digits``;
- ``user``: ``--model usernets:mlp --data userdata:digits``;
- ``user_saved``: ``--model usernets:mlp --data userdata:saved``, the same Datasets read from
  an .npz file written once before the timing (a user's data on disk), which takes
  scikit-learn's import (seconds, the user's own code) out of the comparison.

One JSON line: each contender's median and min-max (seconds), the ratios user / builtin and
user_saved / builtin, the median time between the start-up phases the runner logs (where a
difference comes from), and the load average at the start and the end; also written to
``--out``. A round whose contenders ran at very different loads is what the medians are for:
compare the ratios, from one run, not seconds across runs.

    python bench/user_first_step.py [--runs 5] [--strategy auto] [--out bench/results/user-first-step-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sessions.disk.lock import holder  # noqa: E402 - found through ROOT

NEBTUI = str(Path(sys.executable).with_name("nebtui"))
DEADLINE = 180.0  # seconds for any one wait
CONTENDERS = {
    "builtin": ("--model", "mlp", "--data", "digits"),
    "user": ("--model", "usernets:mlp", "--data", "userdata:digits"),
    "user_saved": ("--model", "usernets:mlp", "--data", "userdata:saved"),
}

# The minima of ``nebtui train --model mlp --data digits``: 64 inputs, 32 hidden, 10 classes.
USERNETS = '''
from torch import nn


def mlp(classes=10):
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))
'''

# The digits as nebtui's own split makes them (pixels / 16, a seeded permutation, a quarter
# held out), so that the three contenders explore the same problem.
USERDATA = '''
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.networks.datasets import UserData

SAVED = Path(__file__).with_name("digits.npz")


class Digits(Dataset):
    def __init__(self, pixels, labels):
        self.pixels, self.labels = pixels, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.pixels[i], int(self.labels[i])


def split(pixels, labels):
    inputs = torch.from_numpy((pixels / 16.0).astype(np.float32))
    targets = torch.from_numpy(labels.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(targets)))
    test, train = order[:449], order[449:]
    return UserData(Digits(inputs[train], targets[train]), Digits(inputs[test], targets[test]), classes=10)


def digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return split(bunch.data, bunch.target)


def saved():
    with np.load(SAVED) as table:
        return split(table["pixels"], table["labels"])
'''


def schedule_text() -> str:
    """A short SGD schedule (tests/cli_runs.py's kind): one inserting cycle and one settling, 10 steps each."""
    phases = [(0.1, "true"), (0.01, "false")]
    return ('name = "first-step"\n[band]\ninitial_pivots = 3\nmax_pivots = 6\n' + "".join(
        f"[[phase]]\nrepeat = 1\nsteps = 10\nlr = {lr}\noptimiser = \"SGD\"\n"
        f"optimiser_args = {{ momentum = 0.9 }}\nbatch_size = 128\ninsert = {insert}\n" for lr, insert in phases))


def nebtui(home: Path, *args: str, cwd: Path, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                            env={**os.environ, "NEBTUI_HOME": str(home)})
    if result.returncode != 0:
        raise RuntimeError(f"nebtui {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def prepare(work: Path) -> tuple[Path, Path, Path, Path]:
    """The data home, the minima, the user's folder (with digits.npz) and the schedule file."""
    home, minima, user = work / "home", work / "minima", work / "user"
    home.mkdir()
    user.mkdir()
    nebtui(home, "train", "--model", "mlp", "--data", "digits", "--count", "3", "--scale", "0.3",
           "--out", str(minima), cwd=work, timeout=600)
    (user / "usernets.py").write_text(USERNETS)
    (user / "userdata.py").write_text(USERDATA)
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.savez(user / "digits.npz", pixels=bunch.data, labels=bunch.target)
    schedule = work / "first-step.toml"
    schedule.write_text(schedule_text())
    return home, minima, user, schedule


def first_step(events: Path, launched: float, deadline: float) -> dict[str, float]:
    """Seconds from ``launched`` (time.time()) to the first step_energies event's time stamp
    (``first_step``), and to each start-up phase the runner logged before it."""
    while time.time() < deadline:
        if events.is_file():
            marks: dict[str, float] = {}
            with events.open() as log:
                for line in log:
                    if not line.endswith("\n"):
                        break  # being written
                    event = json.loads(line)
                    if event.get("kind") == "startup_phase_started":
                        marks.setdefault(event["phase"], event["time"] - launched)
                    elif event.get("kind") == "runner_started":
                        marks.setdefault("runner_started", event["time"] - launched)
                    elif event.get("kind") == "step_energies":
                        marks["first_step"] = event["time"] - launched
                        return marks
        time.sleep(0.02)
    raise RuntimeError(f"no step_energies event in {events} within {DEADLINE:g} s")


def runner_gone(folder: Path, deadline: float) -> None:
    """Wait until the session's runner has ended (no live process holds its lock)."""
    while holder(folder / "lock") is not None:
        if time.time() > deadline:
            raise RuntimeError(f"the runner of {folder.name} did not end within {DEADLINE:g} s")
        time.sleep(0.1)


def time_one(name: str, session: str, home: Path, minima: Path, user: Path, schedule: Path,
             strategy: str) -> dict[str, float]:
    launched = time.time()
    deadline = launched + DEADLINE
    nebtui(home, "explore", str(minima), *CONTENDERS[name], "--schedule", str(schedule), "--device", "cpu",
           "--strategy", strategy, "--session", session, "--detach", cwd=user)
    marks = first_step(home / session / "events.jsonl", launched, deadline)
    runner_gone(home / session, time.time() + DEADLINE)  # the next run starts on a machine this one has left
    return marks


def summary(times: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(times), 3), "min": round(min(times), 3), "max": round(max(times), 3)}


def phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds from each start-up mark to the next, in the order they came: launch to the
    runner's start (the CLI), the runner's imports, building the problem ("minima": the data
    factory, the model, the minima files), evaluating the minima, timing, and from the
    runner's start of the loop to the first step (the worker's own build, on the same cores)."""
    order = sorted(runs[0], key=runs[0].get)
    spans, before = {}, "launch"
    for mark in order:
        spans[f"{before}->{mark}"] = round(statistics.median(
            run[mark] - (run[before] if before != "launch" else 0.0) for run in runs), 3)
        before = mark
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds; each times every contender once")
    parser.add_argument("--strategy", default="auto", help="explore's --strategy for every run (default: auto)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "user-first-step-cpu.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nebtui-first-step-"))
    try:
        home, minima, user, schedule = prepare(work)
        load_start = os.getloadavg()
        names = list(CONTENDERS)
        for name in names:  # warm-up, not counted: the first run reads every file from disk
            time_one(name, f"warm-{name}", home, minima, user, schedule, args.strategy)
        marks: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for round_ in range(args.runs):
            for name in names if round_ % 2 == 0 else reversed(names):
                marks[name].append(time_one(name, f"{name}-{round_}", home, minima, user, schedule, args.strategy))
        load_end = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    times = {name: [m["first_step"] for m in runs] for name, runs in marks.items()}
    medians = {name: statistics.median(values) for name, values in times.items()}
    line = {
        "bench": "user_first_step",
        "what": "seconds from nebtui explore --detach to the first step_energies event, digits MLP, 3 minima, cpu",
        "runs": args.runs,
        "strategy": args.strategy,
        **{name: summary(values) for name, values in times.items()},
        "ratio_user_builtin": round(medians["user"] / medians["builtin"], 3),
        "ratio_user_saved_builtin": round(medians["user_saved"] / medians["builtin"], 3),
        "times": {name: [round(t, 3) for t in values] for name, values in times.items()},
        "phases": {name: phases(runs) for name, runs in marks.items()},
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in load_end],
        "cores": os.cpu_count(),
    }
    text = json.dumps(line)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
