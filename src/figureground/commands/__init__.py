"""Subcommands of the ``figureground`` command line, one module each (see ``cli.py``)."""
