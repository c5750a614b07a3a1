"""Curves between two minima (Garipov et al. 2018): a quadratic Bezier curve or a
polygonal chain with one bend, the bend trained at random points of the curve.

``shapes``: the curves' formulas; ``schedule``: how the bend is trained and what
it costs; ``fitting``: ``CurveFit``, the resumable run, and its ``CurveResult``.
"""
