"""Errors that mean "bad input": the CLI prints their one-line message and exits with status 2."""

import argparse


class UsageError(ValueError):
    """Bad input from a user: a flag, a config value, a file. The message names the problem."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line UsageError instead of usage + exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")
