"""The NEB numerics of the paper: the band and its re-spacing, tangents, projected
forces, pivot insertion, AutoNEB between two minima (``autoneb``) and the schedules
that drive it."""
