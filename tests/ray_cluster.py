"""The local Ray cluster the Ray tests share (``two_nodes``): a head that runs no work and
two nodes with this machine's cores each, made once per test process. Ray is imported
only when a test asks for it."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class TwoNodes:
    cluster: Any  # ray.cluster_utils.Cluster
    client: str  # its Ray Client address, ray://127.0.0.1:PORT

    def node_of(self, pid: int) -> Any:
        """The node whose raylet started the worker process ``pid`` (its parent)."""
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        [node] = [n for n in self.cluster.worker_nodes if n.all_processes["raylet"][0].process.pid == parent]
        return node


@pytest.fixture(scope="session")
def two_nodes() -> Any:
    """One local Ray cluster for every Ray test (conftest.py puts them on one xdist worker):
    a head with no CPU to give (so no actor runs beside the drivers, as on a cluster whose
    head only coordinates; it serves Ray Client too), and two nodes with as many CPUs as
    this machine has cores. A session's actor asks for all of a node's (one worker: as
    many threads as the local pool's one worker, whose sums then round alike), so it runs
    on one node and its replacement fits on the other. A module a test writes in its own
    temporary folder is on no node's path: only what a runner ships reaches the nodes.
    Token authentication on, as ray start and ray.init set up a new cluster (a
    token in ~/.ray/auth_token, made if missing), so the runner joins it as it joins a
    real one. Its own short temp folder (Ray's socket paths must stay short), which is
    also Ray's default one while the cluster runs."""
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )
    from ray.cluster_utils import Cluster

    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    enable_token_auth_by_default()
    ensure_token_if_auth_enabled()
    # A node's socket is TEMP/ray/session_<date>_<time>_<us>_<pid>/sockets/plasma_store, and a
    # Unix socket's path holds at most 107 bytes: a parent folder longer than 16 cannot take it.
    parent = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    temp = Path(tempfile.mkdtemp(prefix="nebtui-ray-", dir=parent if len(parent) <= 16 else "/tmp"))
    # Ray writes the cluster's address beside its default temp folder ($RAY_TMPDIR/ray, else
    # $TMPDIR/ray, else /tmp/ray), whatever temp_dir its nodes are given, and does not make that
    # folder: the nodes' own folder is made the default one, so a machine where Ray never ran
    # (no /tmp/ray) works, and a developer's /tmp/ray is neither read nor written.
    os.environ["RAY_TMPDIR"] = str(temp)
    nodes_temp = temp / "ray"
    nodes_temp.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "ray_client_server_port": port, "temp_dir": str(nodes_temp)})
        for _ in range(2):
            cluster.add_node(num_cpus=len(os.sched_getaffinity(0)), temp_dir=str(nodes_temp))
        yield TwoNodes(cluster, f"ray://127.0.0.1:{port}")
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
