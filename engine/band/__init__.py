"""The band of NEB: pivots (N, D) between two fixed ends, and the numerics of one step.

``geometry``: the band's shape (the straight line, segment and arc lengths,
re-spacing to target fractions, dense points between pivots); ``tangent``: the
local tangents (paper, improved, reference); ``forces``: the projected NEB forces
and their climbing image; ``springs``: how the band keeps its pivots apart,
elastic springs or the string method's re-spacing, as two named strategies;
``insertion``: the residual rule and where new pivots go; ``choices``: the names
the band options take (no torch, so that a schedule is checked without it).
"""
