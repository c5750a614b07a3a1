"""Data larger than memory: a session whose Dataset is forced to stream finds the paths
of the same session with the data in memory, bit for bit, and says which it was; and
two million items (3 GB) are stepped on, evaluated and recalibrated on by a process
whose address space is bounded below what reading them whole would take."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_runs import assert_one_clear_line, in_process, sgd_schedule

ROOT = Path(__file__).resolve().parents[2]

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


BOUNDED = '''
import gc, resource, sys
import torch
from torch import nn
from torch.utils.data import Dataset

from engine.energy.network import NetworkEnergy
from engine.networks.datasets import UserData, user_tensors
from engine.networks.layout import ParameterLayout
from engine.networks.stream import Column, estimated_bytes


def status(key):
    return int(dict(line.split(":", 1) for line in open("/proc/self/status"))[key].split()[0]) * 1024


# the address space this process has mapped so far (torch's libraries: gigabytes), and LEFT more
LIMIT = status("VmSize") + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

WIDTH = 384  # float32 features: 1,536 bytes an item


class Generated(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        x = torch.sin(torch.arange(WIDTH, dtype=torch.float32) * 0.01 + i * 1e-3)
        return x, i % 3


big = Generated(2_000_000)
data = user_tensors(UserData(big, Generated(500), classes=3), spec="bounded:generated", placement="auto")
assert isinstance(data.train[0], Column) and isinstance(data.test[0], torch.Tensor)  # streamed, and in memory
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(WIDTH, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))
energy = NetworkEnergy(model, *data.train, strategy="loop", batch_size=64, calibration_size=512, threads=1)
theta = ParameterLayout.from_module(model).flatten(model).detach()
pivots = theta + 0.01 * torch.randn(4, theta.shape[0], generator=torch.Generator().manual_seed(1))
generator = torch.Generator().manual_seed(2)
for _ in range(5):
    losses, grads = energy.interior_gradients(pivots, generator)
    pivots = pivots.clone()
    pivots[1:-1] -= 0.1 * grads
test_losses, _errors = energy.metrics(pivots, *data.test)  # BatchNorm recalibrated on streamed rows
assert torch.isfinite(losses).all() and torch.isfinite(test_losses).all()
del energy, data
gc.collect()
peak = status("VmHWM")
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(estimated_bytes(big), peak, children)
'''


def test_two_million_items_stream_in_a_process_bounded_below_their_size(tmp_path):
    script = tmp_path / "bounded.py"
    script.write_text(BOUNDED)
    left = 1536 * 2 ** 20  # address space left to the process once torch is in, half the items' size
    done = subprocess.run([sys.executable, str(script), str(left)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    size, peak, children = map(int, done.stdout.split())
    assert size == 2_000_000 * (384 * 4 + 8)  # 3.1 GB as tensors
    # read whole, the items would not fit in the address space left, which "auto" saw (it streamed
    # them); streamed, the process's resident memory (torch's own half gigabyte included), and its
    # loader workers', stay below a third of their size
    assert peak < size / 3 and children < size / 3, (peak, children)
