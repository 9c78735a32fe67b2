"""Errors that mean "bad input": the CLI prints their one-line message and exits with status 2."""


class UsageError(ValueError):
    """Bad input from a user: a flag, a config value, a file. The message names the problem."""
