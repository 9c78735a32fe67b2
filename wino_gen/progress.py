"""Progress for long work: a tqdm bar where there are steps, a line with the elapsed time where
a tool runs. Shown on a terminal only, never with ``--no-progress``."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager


def wanted(no_progress: bool = False) -> bool:
    """Progress goes to stderr, and only when a person watches it."""
    return not no_progress and sys.stderr.isatty()


def bar(iterable, desc: str, show: bool, total: int | None = None):
    """``iterable`` wrapped in a tqdm bar on stderr when ``show``."""
    if not show:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


@contextmanager
def step(what: str, show: bool, tick: float = 1.0):
    """``what ... 12 s`` on one stderr line, updated while the block runs, then ``done``."""
    if not show:
        yield
        return
    t0 = time.monotonic()
    stop = threading.Event()

    def line(end: str) -> None:
        sys.stderr.write(f"\r{what} ... {time.monotonic() - t0:.0f} s{end}")
        sys.stderr.flush()

    def ticker() -> None:
        while not stop.wait(tick):
            line("")

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        t.join()
        line(", done\n" if ok else ", stopped\n")
