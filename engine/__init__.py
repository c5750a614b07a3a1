"""engine: AutoNEB between minima of any energy, and the landscape exploration.

No user interface, no files, no processes: tensors in, results and events out.
"""

from engine.autoneb import Connection, ConnectionResult, DivergedError, connect
from engine.energy.base import CallableEnergy, Energy
from engine.energy.surfaces import Himmelblau, MuellerBrown
from engine.explore import Exploration, ExplorationResult, explore
from engine.landscape import Landscape
from engine.schedule import BandOptions, Cycle, Schedule, ScheduleError, load_schedule

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
    "explore",
    "load_schedule",
]


def __getattr__(name: str):  # NetworkEnergy pulls in torch.func: import it on first use
    if name == "NetworkEnergy":
        from engine.energy.network import NetworkEnergy

        return NetworkEnergy
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
