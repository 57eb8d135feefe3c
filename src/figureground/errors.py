"""Exceptions that reach the user as one line, never as a traceback."""


class FigureGroundError(Exception):
    """A user-facing error: the message names the bad file or value and what was expected."""


class UsageError(FigureGroundError):
    """Bad arguments or input files; the command line exits with code 2."""


class ImageLoadError(FigureGroundError):
    """An image that cannot be decoded; recorded as a failed entry, the run goes on."""


class ModelUnavailableError(FigureGroundError):
    """A model or weights file is missing; the message says how to provide it."""


class DataError(FigureGroundError):
    """Neural data or metadata that is inconsistent (length, order, NaN, shape)."""
