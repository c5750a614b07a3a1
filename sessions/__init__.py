"""Sessions: a run's folder on disk and the processes that run it.

Its rooms, each importing only the ones listed before it:

- ``errors``: the one error type a session's code raises for what the user can fix.
- ``events``: the session's own event kinds (runner, workers, start-up), in the same
  log and registry as the engine's.
- ``disk``: the session folder (layout, creation, listing), its typed config, the
  runner's lock, the event log, checkpoints and their state files, the control socket
  and the data home.
- ``problem``: the problem a session explores, built from its config (energy, minima,
  data, model), minima files, the folders ``nebtui train`` writes, and trust.
- ``processes``: the runner, its workers (local or on Ray), their messages, devices
  and the start-up timing.
- ``view``: one session as its events tell it (the app, ``sessions show`` and the
  progress lines read it).
- ``analysis``: the report's analysis of finished sessions, alone or compared.

Imports flow one way, nebtui -> sessions -> engine; this package never imports
textual or rich.
"""
