"""A whole session through Ray Client (--cluster ray://HOST:PORT) against the same
session on local workers: the suite joins a cluster through Ray Client only to be
refused (no GPU); this runs the digits session to its end that way and checks that
its result and every path file are the local pool's, bit for bit.

    python bench/ray_client.py            # about 2 minutes on 2 cores

It starts its own local cluster (a head serving Ray Client, one node with this
machine's cores, token authentication on, no dashboard) in a short temp folder of
its own, trains three digits MLP minima, runs both sessions, and prints one JSON
line: passed, and the seconds each session took. Exit code 1 if they differ."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cli_runs import DIGITS_SCHEDULE, DIGITS_TRAIN_ARGS, NEBTUI, digits_args  # noqa: E402


def run(home: Path, *args: str) -> float:
    """Seconds the nebtui command took; its failure ends the bench."""
    started = time.monotonic()
    done = subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "NEBTUI_HOME": str(home)})
    if done.returncode != 0:
        sys.exit(f"nebtui {' '.join(args)} failed: {done.stderr.strip()}")
    return time.monotonic() - started


def same_session_result(mine: Path, theirs: Path) -> bool:
    """result.json and every path file equal, tensor for tensor."""
    import torch
    from safetensors import safe_open

    if json.loads((mine / "results" / "result.json").read_text()) != json.loads(
            (theirs / "results" / "result.json").read_text()):
        return False
    names = sorted(p.name for p in (theirs / "results" / "paths").glob("*.safetensors"))
    if not names or names != sorted(p.name for p in (mine / "results" / "paths").glob("*.safetensors")):
        return False
    for name in names:
        with safe_open(str(mine / "results" / "paths" / name), "pt") as a, \
                safe_open(str(theirs / "results" / "paths" / name), "pt") as b:
            if a.keys() != b.keys() or not all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys()):
                return False
    return True


def main() -> int:
    import ray
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="nebtui-bench-"))
    temp = Path(tempfile.mkdtemp(prefix="nr-", dir="/tmp"))  # Ray's socket paths must stay short
    os.environ["RAY_TMPDIR"] = str(temp)  # where Cluster writes the address file
    (temp / "ray").mkdir()
    enable_token_auth_by_default()
    ensure_token_if_auth_enabled()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = None
    try:
        minima, schedule = work / "minima", work / "tiny.toml"
        schedule.write_text(DIGITS_SCHEDULE)
        run(work / "home", *DIGITS_TRAIN_ARGS, "--out", str(minima))
        local = run(work / "home", *digits_args(minima, schedule), "--headless", "--session", "local")
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "ray_client_server_port": port, "temp_dir": str(temp / "ray")})
        cluster.add_node(num_cpus=len(os.sched_getaffinity(0)), temp_dir=str(temp / "ray"))
        client = run(work / "home", *digits_args(minima, schedule), "--headless", "--cluster",
                     f"ray://127.0.0.1:{port}", "--session", "client")
        passed = same_session_result(work / "home" / "client", work / "home" / "local")
        print(json.dumps({"bench": "ray_client", "ray": ray.__version__, "passed": passed,
                          "local_seconds": round(local, 1), "ray_client_seconds": round(client, 1)}))
        return 0 if passed else 1
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
