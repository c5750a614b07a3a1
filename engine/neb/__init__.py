"""The NEB numerics of the paper: the band and its re-spacing, tangents, projected
forces, pivot insertion, AutoNEB between two minima (``autoneb``), the schedules
that drive it, the landscape of minima (MST, bounds, next pair) and the
exploration that runs it all (``exploration``)."""
