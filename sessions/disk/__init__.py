"""The session folder on disk: its layout and creation (``folder``), the typed config
stored in it (``config``), the runner's lock (``lock``), the append-only event log
(``eventlog``), checkpoints (``checkpoint``) in the state-file format (``statefile``,
``statepack``), the results (``results``), durable writes (``atomic``), the runner's
control socket (``control``) and the data home that holds every session (``home``).
Imports nothing else of sessions but ``errors`` and ``events``."""
