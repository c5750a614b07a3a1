"""The report's analysis of finished sessions: what one session found (``collect``)
and the comparison of several over the same minima (``compare``). Writing the files
is nebtui.report's."""
