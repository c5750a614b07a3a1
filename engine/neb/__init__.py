"""AutoNEB between two minima (``autoneb``) and the schedules that drive it
(``schedule``, presets in ``presets/``); the band numerics are ``engine.band``."""
