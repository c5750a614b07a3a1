"""nebtui: the terminal front end (command line and, later, the Textual app)."""

__version__ = "0.1.0"
