"""engine: AutoNEB between minima of any energy, the curves it is compared with, and
the landscape exploration.

No user interface, no processes, no session files: tensors in, results and events
out. Its rooms, none importing one that imports it back:

- ``energy``: the Energy protocol, analytic surfaces, networks over data;
- ``networks``: the model zoo, parameter layouts, losses, data sets and the
  training of minima (the one place that reads files: data sets from a local folder);
- ``band``: the band numerics (geometry and re-spacing, tangents, forces, springs
  or the string method, pivot insertion);
- ``paths``: the path methods, each a resumable run (AutoNEB, Bezier and polychain
  curves), their schedules and their registry by name;
- ``landscape``: the graph of minima, MST, bounds, the pair sequence and the
  exploration;
- ``alignment``: permutation alignment by weight matching;
- ``analysis``: curvature, slices, path ensembles.

``events`` is the protocol every process and the UI speak; ``threads`` sets torch's
intra-op thread count for a stretch of work; ``estimate`` foretells a session's cost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> the module that defines it. Loaded on first use, so that the
# torch-free parts (events, schedules, the landscape) import without torch.
_EXPORTS = {
    "BandOptions": "engine.paths.schedule",
    "CallableEnergy": "engine.energy.base",
    "Connection": "engine.paths.autoneb",
    "ConnectionResult": "engine.paths.run",
    "CurveFit": "engine.paths.curves",
    "CurveSchedule": "engine.paths.curve_schedule",
    "Cycle": "engine.paths.schedule",
    "DivergedError": "engine.paths.run",
    "Energy": "engine.energy.base",
    "Exploration": "engine.landscape.exploration",
    "ExplorationResult": "engine.landscape.exploration",
    "Himmelblau": "engine.energy.surfaces",
    "Landscape": "engine.landscape.graph",
    "MuellerBrown": "engine.energy.surfaces",
    "NetworkEnergy": "engine.energy.network",
    "PathRun": "engine.paths.run",
    "Schedule": "engine.paths.schedule",
    "ScheduleError": "engine.paths.schedule",
    "connect": "engine.paths.autoneb",
    "load_schedule": "engine.paths.schedule",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from engine.energy.base import CallableEnergy, Energy
    from engine.energy.network import NetworkEnergy
    from engine.energy.surfaces import Himmelblau, MuellerBrown
    from engine.landscape.exploration import Exploration, ExplorationResult
    from engine.landscape.graph import Landscape
    from engine.paths.autoneb import Connection, connect
    from engine.paths.curve_schedule import CurveSchedule
    from engine.paths.curves import CurveFit
    from engine.paths.run import ConnectionResult, DivergedError, PathRun
    from engine.paths.schedule import BandOptions, Cycle, Schedule, ScheduleError, load_schedule


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
