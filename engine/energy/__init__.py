"""Energies: what AutoNEB and the curves descend.

``base``: the one protocol every method needs (losses and gradients of a batch of
points on their own random minibatches, and evaluation), ``CallableEnergy`` for any
function, and the count of the work an energy did; ``surfaces``: analytic 2-D
surfaces with known stationary points (Mueller-Brown, Himmelblau); ``network``: a
network's loss over its data as an energy of flat parameter vectors, its pivots
evaluated in a loop, by vmap or by ``batched``, the pivot axis written into each
layer by hand.
"""
