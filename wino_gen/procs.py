"""Child tool processes (yosys, nextpnr, Verilator) that never outlive the command that
started them: not on Ctrl-C, not on an error, not even when that command is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# Shares the tools' process group and blocks on a pipe only this process writes to: when this
# process ends in any way (exit, Ctrl-C, an error, SIGKILL) the pipe closes and the watchdog
# kills the whole group, so no yosys or nextpnr outlives its build.
_WATCHDOG = "import os, signal, sys\nos.read(int(sys.argv[1]), 1)\nos.killpg(0, signal.SIGKILL)\n"


def run_in_group(cmd: list[str], *, cwd, env, stdout) -> int:
    """Run ``cmd`` (stdout and stderr to ``stdout``) in a process group of its own, out of reach
    of the terminal's Ctrl-C, and end that whole group, grandchildren included, when ``cmd``
    ends or this function is left by an exception. Returns ``cmd``'s exit status."""
    r, w = os.pipe()
    try:
        dog = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(r)], pass_fds=(r,),
                               process_group=0, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.STDOUT, process_group=dog.pid)
        return proc.wait()
    finally:
        os.close(w)
        try:
            os.killpg(dog.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        dog.wait()
