"""A researcher's own code on a Ray cluster: the model factory and loss function named on
the command line live in a folder of theirs that the cluster's nodes do not have. The
runner ships them (Ray's runtime environment), the actors on the two nodes of the shared
local cluster (``two_nodes``) import the shipped copies, and the session finishes with its
pairs; a module the runner finds but cannot ship (one in a zip file) is refused in one line
naming the node and the module, before any session is kept."""

from __future__ import annotations

import json
import socket
import textwrap
import zipfile
from pathlib import Path

import pytest

from cli_runs import assert_one_clear_line, logged_events, nebtui, sgd_schedule, wait_until
from sessions.disk.lock import holder

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray,test]'")

pytestmark = pytest.mark.timeout(300)  # a loaded machine: the session has its own deadline

# The digits MLP as a researcher would write it: the same layers as the minima's (nebtui's
# zoo mlp), so their state dicts load. Each process that imports it writes where from.
NETS = '''
from pathlib import Path

from torch import nn

with open({imports!r}, "a") as log:
    log.write(str(Path(__file__).resolve()) + "\\n")


def mlp():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
'''

LOSS = '''
import torch.nn.functional as F


def cross_entropy(outputs, targets):
    return F.cross_entropy(outputs, targets)
'''

# one cycle of a few steps: the test is about where the code runs, not how low the curves get
SCHEDULE = sgd_schedule("ray-user-code", 6, (1, 8), (1, 4))


def explore(home: Path, lab: Path, minima: Path, *args: str):
    """explore typed in the folder ``lab``."""
    return nebtui(home, "explore", str(minima), "--schedule", str(lab / "tiny.toml"), "--strategy", "loop",
                  "--device", "cpu", "--headless", *args, cwd=lab)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """The folder the researcher types commands in: a package of models, a loss module and
    a tiny schedule, in a temporary folder that is nobody's path on the nodes."""
    (tmp_path / "labnets").mkdir()
    (tmp_path / "labnets" / "__init__.py").write_text("")
    (tmp_path / "labnets" / "digits.py").write_text(textwrap.dedent(NETS.format(imports=str(tmp_path / "imports"))))
    (tmp_path / "labloss.py").write_text(textwrap.dedent(LOSS))
    (tmp_path / "tiny.toml").write_text(SCHEDULE)
    return tmp_path


def test_a_session_of_the_users_own_code_runs_on_nodes_that_lack_it(nebtui_home, two_nodes, digits_minima, lab,
                                                                    monkeypatch):
    """The runner joins as a node's driver (--cluster ray); the refusal below joins through
    Ray Client, as from a laptop, and ships the model's package before it is refused."""
    monkeypatch.setenv("RAY_ADDRESS", two_nodes.cluster.address)
    folder = nebtui_home / "own"
    done = explore(nebtui_home, lab, digits_minima, "--model", "labnets.digits:mlp", "--loss",
                   "labloss:cross_entropy", "--cluster", "ray", "--session", "own", "--detach")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: holder(folder / "lock") is None, 120, "the end of the session")
    assert logged_events(folder / "events.jsonl")[-1]["kind"] == "session_finished"
    assert len(json.loads((folder / "results" / "result.json").read_text())["mst"]) == 2
    # the runner imported the researcher's file; the actor a copy of it on its node
    mine = str((lab / "labnets" / "digits.py").resolve())
    places = set((lab / "imports").read_text().split())
    assert mine in places
    assert any(place != mine and place.endswith("/labnets/digits.py") for place in places), places


def test_a_module_the_runner_cannot_ship_is_refused_naming_the_node_and_leaves_no_session(
        nebtui_home, two_nodes, digits_minima, lab, monkeypatch):
    """The loss module in a zip file on the runner's PYTHONPATH: the runner imports it, nebtui
    cannot ship it, and the nodes do not have it. The model's package went to the cluster
    (through Ray Client) before the nodes were asked: a failed upload would be its own line."""
    with zipfile.ZipFile(lab / "zipped.zip", "w") as archive:
        archive.write(lab / "labloss.py", "zippedloss.py")
    monkeypatch.setenv("PYTHONPATH", str(lab / "zipped.zip"))
    done = explore(nebtui_home, lab, digits_minima, "--model", "labnets.digits:mlp", "--loss",
                   "zippedloss:cross_entropy", "--cluster", two_nodes.client, "--session", "zipped")
    address = next(iter(two_nodes.cluster.worker_nodes)).node_ip_address  # both nodes run on this machine
    node = f"{socket.gethostname()} ({address})"
    assert_one_clear_line(done, f"the Ray node {node} cannot import zippedloss for the loss function "
                                f"zippedloss:cross_entropy (No module named 'zippedloss'); here it comes from "
                                f"{lab / 'zipped.zip' / 'zippedloss.py'}, which nebtui does not ship: install it on "
                                "that node, or keep it in a package folder or module file outside site-packages, "
                                "which nebtui ships to the nodes")
    assert done.returncode == 2
    assert not (nebtui_home / "zipped").exists()
