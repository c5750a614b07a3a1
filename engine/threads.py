"""torch's intra-op thread count on the CPU, set for a stretch of work and restored.

Why a network energy chooses it: ATen splits an operation over its threads once
the tensor passes a grain of 32,768 elements. A small network's layers and a
band of a few tens of thousands of numbers sit just above that grain, where
waking a second thread costs more than the work it takes over (a training step
of the digits MLP measured 2.4x faster on one thread than on two). Larger
networks gain from every core. So the energy's auto strategy measures its
contenders at one thread and at its cap, and the step runs at the count chosen.

Several CPU workers: each worker is a process with its own intra-op pool, and
the cores are shared among the workers. A worker's cap (``NetworkEnergy(threads=)``)
is its share of the cores, cores // workers; the energy never uses more than its
cap, so W workers together use at most W x cap threads and never oversubscribe
the machine. With no cap given, the cap is torch's thread count when the energy
is built (all the cores, or what ``torch.set_num_threads`` or OMP_NUM_THREADS
said in that process).

A session measures once, not each worker: its runner runs the auto strategy's
trial on its own energy at the workers' cap, stores the strategy and thread
count it keeps (sessions.processes.timing.choose_strategy, sessions.events.StrategyChosen),
and every worker steps at that count, so that a pair's numbers do not depend on
which worker ran it or how busy the machine was when it started. A count the
user fixed (``--threads``, the energy's ``thread_trial=False``) is the count: the
trial then times the strategies at it alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (None: as they are), then restore."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
