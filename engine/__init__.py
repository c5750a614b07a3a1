"""engine: AutoNEB between minima of any energy, and the landscape exploration.

No user interface, no processes, no session files: tensors in, results and events
out. Its rooms: ``energy`` (the Energy protocol, analytic surfaces, networks over
data), ``neb`` (the NEB numerics, AutoNEB, schedules), ``curves`` (Bezier and
polychain curves, and the registry of path methods), ``landscape`` (the graph of
minima, MST, bounds, the pair sequence and the exploration), ``networks``
(the model zoo, data sets and training of minima: the one place that reads files,
the CIFAR data set from a local folder) and ``analysis`` (curvature, slices, path
ensembles). ``events`` is the protocol every process and the UI speak.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> the module that defines it. Loaded on first use, so that the
# torch-free parts (events, schedules, the landscape) import without torch.
_EXPORTS = {
    "BandOptions": "engine.neb.schedule",
    "CallableEnergy": "engine.energy.base",
    "Connection": "engine.neb.autoneb",
    "ConnectionResult": "engine.neb.autoneb",
    "Cycle": "engine.neb.schedule",
    "DivergedError": "engine.neb.autoneb",
    "Energy": "engine.energy.base",
    "Exploration": "engine.landscape.exploration",
    "ExplorationResult": "engine.landscape.exploration",
    "Himmelblau": "engine.energy.surfaces",
    "Landscape": "engine.landscape.graph",
    "MuellerBrown": "engine.energy.surfaces",
    "NetworkEnergy": "engine.energy.network",
    "Schedule": "engine.neb.schedule",
    "ScheduleError": "engine.neb.schedule",
    "connect": "engine.neb.autoneb",
    "load_schedule": "engine.neb.schedule",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from engine.energy.base import CallableEnergy, Energy
    from engine.energy.network import NetworkEnergy
    from engine.energy.surfaces import Himmelblau, MuellerBrown
    from engine.neb.autoneb import Connection, ConnectionResult, DivergedError, connect
    from engine.landscape.exploration import Exploration, ExplorationResult
    from engine.landscape.graph import Landscape
    from engine.neb.schedule import BandOptions, Cycle, Schedule, ScheduleError, load_schedule


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
