"""The named variants of the band, the choices its options take (no torch here: a
schedule is checked against them before torch is imported).

``tangent.py`` keys its tangents by ``TANGENT_NAMES``, ``insertion.py`` its rules
and scales by ``INSERTION_RULES`` and ``INSERTION_SCALES``, ``springs.py`` its
re-spacing times by ``RESPACE_TIMES``; ``SPACINGS`` are the target spacings of
the re-spaced band.
"""

TANGENT_NAMES = ("paper", "improved", "reference")
SPACINGS = ("equal", "fractions")
RESPACE_TIMES = ("after", "before")
INSERTION_RULES = ("threshold", "highest")
INSERTION_SCALES = ("dense", "pivots")
