"""The landscape of minima, the paper's "Energy landscape exploration".

``graph``: the minima and their computed paths as a graph, the minimum spanning
tree of saddle energies, the ultrametric bounds, which pair to connect next and
when to stop (``Landscape``, ``LandscapeOptions``); ``sequence``: the pairs chosen
several at once and applied in one order, so that the result does not depend on
timing (``PairSequence``); ``exploration``: the resumable run of it all, a path
method connecting each chosen pair (``Exploration``).
"""
