"""Sessions: a run's folder on disk and the processes that run it.

Imports flow one way, nebtui -> sessions -> engine; this package never imports
textual or rich.
"""
