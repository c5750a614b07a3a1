"""engine: AutoNEB between minima of any energy, and the landscape exploration.

No user interface, no processes, no session files: tensors in, results and events
out. Its rooms: ``energy`` (the Energy protocol, analytic surfaces, networks over
data), ``neb`` (the NEB numerics, AutoNEB, schedules, the landscape), ``networks``
(the model zoo, data sets and training of minima: the one place that reads files,
the CIFAR data set from a local folder) and ``analysis`` (curvature, slices, path
ensembles). ``events`` is the protocol every process and the UI speak.
"""

from engine.energy.base import CallableEnergy, Energy
from engine.energy.surfaces import Himmelblau, MuellerBrown
from engine.neb.autoneb import Connection, ConnectionResult, DivergedError, connect
from engine.neb.exploration import Exploration, ExplorationResult
from engine.neb.landscape import Landscape
from engine.neb.schedule import BandOptions, Cycle, Schedule, ScheduleError, load_schedule

__all__ = [
    "BandOptions",
    "CallableEnergy",
    "Connection",
    "ConnectionResult",
    "Cycle",
    "DivergedError",
    "Energy",
    "Exploration",
    "ExplorationResult",
    "Himmelblau",
    "Landscape",
    "MuellerBrown",
    "Schedule",
    "ScheduleError",
    "connect",
    "load_schedule",
]


def __getattr__(name: str):  # NetworkEnergy pulls in torch.func: import it on first use
    if name == "NetworkEnergy":
        from engine.energy.network import NetworkEnergy

        return NetworkEnergy
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
