"""Why joining a Ray cluster failed, as one line: Ray Client hands on its server's
traceback in the error's message, and the line keeps only its last line."""

from __future__ import annotations

from sessions.processes.raypool import CLIENT_ATTEMPTS, join_failure

ADDRESS = "ray://10.0.0.1:10001"

# what Ray 2.60's client raises when its server fails to start a client (worker.py's _init)
SERVER_FAILED = ConnectionAbortedError(
    "Initialization failure from server:\n"
    "Traceback (most recent call last):\n"
    '  File "/usr/lib/python3.11/site-packages/ray/util/client/server/proxier.py", line 772, in Datapath\n'
    "    raise RuntimeError(\n"
    "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.\n"
)


def test_a_client_server_that_failed_to_start_is_one_line_without_its_traceback():
    line = join_failure(ADDRESS, SERVER_FAILED)
    assert "\n" not in line and "Traceback" not in line and "File " not in line
    assert line.startswith(f"cannot join the Ray cluster at {ADDRESS}: its Ray Client server failed to start a "
                           f"client {CLIENT_ATTEMPTS} times")
    assert "See ray_client_server_23000.err" in line  # where the head logged why
    assert line.endswith("run it again, or join as a node's driver (--cluster ray on a node of the cluster)")


def test_other_failures_keep_their_message_on_one_line():
    line = join_failure(ADDRESS, ConnectionError("Failed to connect\n  to the server\n"))
    assert line == f"cannot join the Ray cluster at {ADDRESS}: Failed to connect to the server"
    mismatch = join_failure(ADDRESS, RuntimeError("Version mismatch: the cluster runs Python 3.12.1, this is 3.11.7"))
    assert mismatch.startswith(f"the Ray cluster at {ADDRESS} runs other versions than this machine (Version mismatch")
    assert mismatch.endswith("install the cluster's Ray and Python versions here")


# what it raises when the client's server process died while the proxier read its command line
SERVER_DIED = ConnectionAbortedError(
    "Initialization failure from server:\n"
    "Traceback (most recent call last):\n"
    '  File "/usr/lib/python3.11/site-packages/ray/util/client/server/proxier.py", line 396, in start_specific_server\n'
    "    cmd = psutil_proc.cmdline()\n"
    "psutil.ZombieProcess: PID still exists but it's a zombie (pid=11336)\n"
)


def test_a_client_server_that_died_at_its_start_counts_as_failing_to_start():
    line = join_failure(ADDRESS, SERVER_DIED)
    assert line.startswith(f"cannot join the Ray cluster at {ADDRESS}: its Ray Client server failed to start a "
                           f"client {CLIENT_ATTEMPTS} times (psutil.ZombieProcess")
    assert "\n" not in line and "Traceback" not in line
