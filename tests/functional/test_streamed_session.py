"""Data larger than memory: a session whose Dataset is forced to stream finds the paths
of the same session with the data in memory, bit for bit, and says which it was; and a
session on two million generated items (1 GB), every process of which has its address
space bounded below what reading them whole would take, streams them and finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from cli_runs import NEBTUI, assert_one_clear_line, in_process, sgd_schedule

LABDATA = '''
import torch
from torch.utils.data import Dataset

from engine.networks.datasets import UserData


class Corners(Dataset):
    """Item i made from i alone: a point near one of three corners of an 8-d cube."""

    def __init__(self, n, offset):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        j = i + self.offset
        label = j % 3
        x = torch.sin(torch.arange(8, dtype=torch.float32) * 1.3 + j * 0.7) * 0.3
        x[label] += 1.0
        return x, label


def jitter(batch, generator):
    return batch + 0.01 * torch.randn(batch.shape, generator=generator, device=batch.device)


def corners():
    return UserData(Corners(300, 0), Corners(60, 1000), augment=jitter, classes=3)
'''


@pytest.fixture
def lab(tmp_path, monkeypatch):
    (tmp_path / "labdata.py").write_text(textwrap.dedent(LABDATA))
    (tmp_path / "short.toml").write_text(sgd_schedule("short", 6, (1, 8), (1, 4)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_streamed_session_finds_the_paths_of_the_session_in_memory(lab, nebtui_home):
    import torch
    from safetensors.torch import save_file

    from engine.networks.models import mlp

    (lab / "minima").mkdir()
    for seed in (0, 1):  # two networks with BatchNorm, whose every evaluation recalibrates on streamed rows
        torch.manual_seed(seed)
        save_file(mlp(inputs=8, outputs=3, batchnorm=True).state_dict(), lab / "minima" / f"net-{seed}.safetensors")
    results = {}
    for placement in ("memory", "stream"):
        done = in_process("explore", "minima", "--model", "mlp", "--model-arg", "batchnorm=True", "--data",
                          "labdata:corners", "--schedule", "short.toml", "--strategy", "loop", "--device", "cpu",
                          "--threads", "1", "--json", "--data-in", placement, "--session", placement)
        assert done.returncode == 0, done.stderr
        results[placement] = json.loads(done.stdout)
        shown = in_process("sessions", "show", placement)
        expected = {"memory": "in memory", "stream": "streamed"}[placement]
        assert f"data       training set {expected}" in shown.stdout, shown.stdout
    # the same minima, paths, saddles and test metrics, bit for bit
    assert results["stream"] == results["memory"] and results["memory"]["paths"]
    assert results["memory"]["table1"]["bn_recalibrated"]

    def refused(*args: str):
        return in_process("explore", "minima", "--model", "mlp", "--schedule", "short.toml", "--device", "cpu", "--json",
                          *args)

    assert_one_clear_line(refused("--data", "digits", "--data-in", "stream"),
                          "--data-in stream reads a data factory's Dataset batch by batch; digits is not one: leave "
                          "--data-in out, or give --data package.module:factory")
    assert_one_clear_line(refused("--data", "labdata:corners", "--data-in", "disk"), "data_in")


GENERATED = '''
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from engine.networks.datasets import UserData

WIDTH = 128  # float32 features: with its int64 label, 520 bytes an item as tensors
KINDS = 64  # item i is row i % KINDS of a fixed table, shifted by i / 2**22; its class is that row's, i % KINDS % 3


class Generated(Dataset):
    """Item i made from i alone, and a batch's items made together: the DataLoader asks
    ``__getitems__`` for them, and its collate takes the pair it gives as it is."""

    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset
        self.table = torch.sin(torch.arange(KINDS * WIDTH, dtype=torch.float32).view(KINDS, WIDTH) * 0.37)
        self.table[torch.arange(KINDS), torch.arange(KINDS) % 3] += 1.0

    def __len__(self):
        return self.n

    def rows(self, index):
        j = torch.as_tensor(index, dtype=torch.int64) + self.offset
        return self.table[j % KINDS] + (j / 2**22).to(torch.float32).unsqueeze(1), j % KINDS % 3

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        x, y = self.rows([i])
        return x[0], int(y[0])

    def __getitems__(self, indices):
        return self.rows(indices)


def collate(items):
    return items if isinstance(items, tuple) else default_collate(items)


def items():
    return UserData(Generated(2_000_000), Generated(500, offset=10**7), collate=collate, classes=3)


def linear():
    return nn.Linear(WIDTH, 3)
'''

# One cycle of two steps on a band of one interior pivot, evaluated at a point between
# each two pivots: every pass over the two million items evaluates five points or fewer.
ONE_CYCLE = '''name = "one cycle"
[band]
initial_pivots = 1
max_pivots = 3
dense_points = 1
[[phase]]
repeat = 1
steps = 2
lr = 0.1
optimiser = "SGD"
batch_size = 64
insert = true
'''

BOUNDED = '''
import ctypes, json, os, resource, subprocess, sys, time

import torch  # noqa: F401 - what every process of a session maps first: torch's libraries, gigabytes of them


def status(key):
    with open("/proc/self/status") as f:
        return int(dict(line.split(":", 1) for line in f)[key].split()[0]) * 1024


# the address space of a process that has imported torch, and MARGIN more
LIMIT = status("VmSize") + int(sys.argv[1])


def bounded():  # in the command's process before it runs: its runner, and every process of the runner's, inherit it
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


# The session's processes that outlive the command (its runner, and those the runner started)
# are reaped here when they end, so that the peak resident memory of every one of them counts
# among this process's children.
assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
done = subprocess.run(sys.argv[2:], preexec_fn=bounded, capture_output=True, text=True, timeout=200)
ended, deadline = False, time.monotonic() + 60
while not ended and time.monotonic() < deadline:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.05)
    except ChildProcessError:
        ended = True
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "ended": ended,
                  "peak": peak}))
'''


@pytest.mark.slow
def test_a_session_on_two_million_items_streams_them_in_processes_bounded_below_their_size(tmp_path, nebtui_home):
    import torch
    from safetensors.torch import save_file

    (tmp_path / "generated.py").write_text(GENERATED)
    (tmp_path / "one.toml").write_text(ONE_CYCLE)
    (tmp_path / "bounded.py").write_text(BOUNDED)
    (tmp_path / "minima").mkdir()
    for seed in (0, 1):  # two networks as initialised: a session's minima need not be trained
        torch.manual_seed(seed)
        save_file(torch.nn.Linear(128, 3).state_dict(), tmp_path / "minima" / f"net-{seed}.safetensors")
    size = 2_000_000 * (128 * 4 + 8)  # the items as tensors: 1.04 GB
    # what each process may map beyond torch's libraries: little more than half of that (at most
    # 0.36 GB of it was mapped, by the runner; 0.33 GB by the worker's loader workers)
    margin = 576 * 2**20
    explore = [NEBTUI, "explore", "minima", "--model", "generated:linear", "--data", "generated:items", "--data-in",
               "auto", "--schedule", "one.toml", "--strategy", "loop", "--device", "cpu", "--threads", "1",
               "--headless", "--session", "big"]
    # (the runner and its processes take two malloc arenas under the limit: sessions.processes.spawn)
    wrapped = subprocess.run([sys.executable, "bounded.py", str(margin), *explore], capture_output=True, text=True,
                             cwd=tmp_path, timeout=280)
    assert wrapped.returncode == 0, wrapped.stderr
    done = json.loads(wrapped.stdout)
    assert done["returncode"] == 0, done["stderr"]
    assert "session finished (all pairs), 1 pair" in done["stdout"], done["stdout"]
    assert (nebtui_home / "big" / "results" / "table1.json").exists()  # evaluated by the runner, under the bound
    assert done["ended"]  # the runner, its fork server, its worker and their loaders' processes
    # "auto" saw that the items would not fit in what the bound leaves a process, and streamed them
    shown = in_process("sessions", "show", "big")
    assert "data       training set streamed" in shown.stdout, shown.stdout
    # and no process of the session, the command's, the runner's, the worker's and their loader
    # workers' (torch's own half gigabyte resident in each), held as much as the items' size
    assert done["peak"] < size, done["peak"]
