"""Bad input and how every CLI ends: one line on stderr, exit 2; Ctrl-C: one line, exit 130.

:func:`run_cli` is the one place that turns a :class:`UsageError`, an interrupt or a failed write
to standard output into that line; every ``python -m`` entry point (wino_gen, sim, train) runs
its ``main`` through it. Code below converts its own failures (a bad file, a bad value) into a
:class:`UsageError` at the source, where the message can name the problem.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import sys
import threading
import warnings


class UsageError(ValueError):
    """Bad input from a user: a flag, a config value, a file. The message names the problem."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to options that have
    a default and do not state it themselves."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line UsageError instead of usage + exit. Flags
    are matched whole: argparse's prefix matching would take ``--config`` for ``--config-out``
    and overwrite the file the user meant to read."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def number(kind=float, *, lo=None, hi=None, lo_open=False):
    """An argparse ``type`` for a finite number of ``kind`` in ``[lo, hi]`` (``(lo, hi]`` with
    ``lo_open``): ``--lr 0``, ``nan`` or ``-1`` are refused by the parser, before any work."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo}, got {text}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {text}")
        return v

    parse.__name__ = kind.__name__
    return parse


class _GuardedStdout:
    """Standard output whose failed writes (full disk, closed pipe) raise a UsageError."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            what = os.strerror(e.errno) if e.errno else str(e)
            raise UsageError(f"standard output: {what}") from None

    def write(self, s):
        return self._guard(self._stream.write, s)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same ``finally`` blocks clean up."""


def _terminate(signum, frame):
    raise Terminated


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)`` with the CLI contract: its return code, or 2 with ``error: ...`` for bad
    input, or 130 with ``interrupted`` on Ctrl-C (143, ``terminated``, on SIGTERM). Writers
    clean up in their own ``finally`` blocks before this sees the exception, so nothing is left
    half-written."""
    real = sys.stdout
    sys.stdout = _GuardedStdout(real)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        rc = main(argv)
        sys.stdout.flush()
        return rc
    except UsageError as e:
        _quiet_stdout(real)
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        _quiet_stdout(real)
        term = isinstance(e, Terminated)
        print("terminated" if term else "interrupted", file=sys.stderr)
        return 143 if term else 130
    finally:
        sys.stdout = real


def _quiet_stdout(stream) -> None:
    """After a failure, nothing more may reach the user at interpreter exit: not pending
    output, nor amaranth's note on a design that the stop left unelaborated."""
    warnings.filterwarnings("ignore", message=r".* created but never used")
    try:
        stream.flush()
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF):
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"
