"""The path methods: ways to connect two minima by a low-loss path, each a resumable run.

``run``: the base every method's run is (``PathRun``: run, stop at any step, state,
result, events) and what they share (``Profile``, ``CycleRecord``,
``ConnectionResult``, ``DivergedError``); ``autoneb``: AutoNEB (``Connection``),
driving the band numerics of ``engine.band``, and its ``schedule`` (cycles, band
options, the presets in ``presets/``); ``curves``: Bezier and polychain curves
(``CurveFit``), their formulas in ``curve_shapes`` and their training in
``curve_schedule``; ``registry``: the methods by name ("autoneb", "bezier",
"polychain"), what each runs for a session and how its run is made and rebuilt.
Torch-free at import: the schedules and the registry.
"""
