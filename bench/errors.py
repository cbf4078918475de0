"""Errors that reach the user as one line, never as a traceback.

`UsageError` (and its kinds) means the user asked for something we cannot do as
asked: an unknown name, a bad value, missing data. The CLI prints its message on
one line and exits with status 2. Everything else is a defect or a failed cell.
"""


class UsageError(Exception):
    """A user mistake: the message says what is wrong and what to do."""

    exit_code = 2


class DataError(UsageError):
    """A dataset is missing or unreadable."""


class ConfigError(UsageError):
    """A profile, hyperparameter or command-line value is invalid."""


class CellFailure(Exception):
    """A cell ran but produced something unusable (NaN, divergence)."""
