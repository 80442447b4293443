"""Errors that carry a message meant for the user, not a traceback."""


class InsarMlError(ValueError):
    """Bad input or settings: the message names the problem and what to do."""


class Cancelled(RuntimeError):
    """The user cancelled; partial outputs have been removed."""
