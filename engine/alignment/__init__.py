"""Permutation alignment: the hidden units of one network permuted to match another's.

``groups``: which units permute together (found by tracing the network);
``weight_matching``: the coordinate descent of Git Re-Basin and ``align``.
"""
