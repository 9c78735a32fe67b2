"""One memory image on one board, through :class:`wino_gen.link.Client` (docs/run.md):

1. :meth:`Runtime.connect`: VERSION; refuse a bitstream built for another config than the
   image's, or a memory too small for it.
2. :meth:`Runtime.load`: write the image file at address 0 and zero its activation regions
   (external memory holds anything at power-up; the interpreter starts from zeros).
3. :meth:`Runtime.run`: per batch, write the inputs into the input slot, START at the first
   instruction (the first run of a session: the prologue loads the resident weights) or at
   ``main_entry`` (every later one), poll STATUS until done, read the output slot.

Every failure is one line (:class:`UsageError`): a board that does not answer, a run that does
not finish in time, a nonzero error status named with its meaning and the instruction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import isa, link, progress
from ..compile import image as im
from ..compile import interp
from ..errors import UsageError

#: bytes per WRITE_MEM batch between progress updates while loading
LOAD_CHUNK = 64 * link.MAX_DATA
#: seconds between STATUS polls: the first, and the most it backs off to
POLL_S, POLL_MAX_S = 0.001, 0.05


@dataclass(frozen=True)
class Result:
    """One run: the output slot ``[batch, C, H, W]`` int8 and the hardware's cycle counter."""

    outputs: np.ndarray
    cycles: int


def describe_error(img: im.Image, status: link.Status) -> str:
    """An error status as the user reads it: its meaning, the instruction's index and opcode."""
    meaning = interp.STATUS.get(status.error, "unknown error code")
    i = status.error_instr
    what = img.program[i].OP if i < len(img.program) else f"beyond the program's {len(img.program)} instructions"
    return f"error status {status.error} ({meaning}) at instruction {i} ({what})"


class Runtime:
    """``img`` on the board behind ``client``; a run that has not finished after
    ``run_timeout`` seconds is an error; ``show``: progress on stderr. ``now``/``sleep``: the
    clock the STATUS polls wait on (a simulated board passes its own simulated time, so that a
    poll's pause is the board running, not the host idling)."""

    def __init__(self, client: link.Client, img: im.Image, *, run_timeout: float = 10.0, show: bool = False,
                 now=time.monotonic, sleep=time.sleep):
        if not run_timeout > 0:
            raise ValueError(f"run_timeout {run_timeout}: must be positive seconds")
        self.client, self.img, self.run_timeout, self.show = client, img, run_timeout, show
        self._now, self._sleep = now, sleep
        self._warm = False

    @property
    def name(self) -> str:
        return self.client.name

    def connect(self) -> link.BoardVersion:
        """The board's VERSION, after checking that this image can run on it."""
        v = self.client.version()
        self.client.require_config(self.img.config_sha256)
        if self.img.memory_size > 1 << v.addr_bits:
            raise UsageError(f"board on {self.name}: the image needs {self.img.memory_size} bytes of memory, the "
                             f"board has {1 << v.addr_bits}")
        return v

    def load(self) -> None:
        """The image file at address 0, its activation regions zeroed."""
        img = self.img
        data = img.to_bytes()
        zeros = bytes(min(LOAD_CHUNK, img.act_size))
        chunks = [(a, data[a:a + LOAD_CHUNK]) for a in range(0, len(data), LOAD_CHUNK)]
        chunks += [(a, zeros[:min(LOAD_CHUNK, img.memory_size - a)])
                   for a in range(img.act_offset, img.memory_size, LOAD_CHUNK)]
        for addr, chunk in progress.bar(chunks, f"load {img.memory_size} bytes", self.show):
            self.client.write_mem(addr, chunk)
        self._warm = False

    def run(self, x: np.ndarray) -> Result:
        """One run of ``batch`` inputs ``[batch, C, H, W]`` (int8 values)."""
        img, t_in, t_out = self.img, self.img.slot(im.INPUT_SLOT), self.img.slot(im.OUTPUT_SLOT)
        x = np.asarray(x).reshape(t_in.batch, *t_in.shape)
        self.client.write_mem(t_in.offset, x.astype(np.int8).tobytes())
        first = img.main_entry if self._warm else 0
        self.client.start(img.program_offset + first * isa.WORD_BYTES)
        status = self._wait()
        if status.error:
            raise UsageError(f"board on {self.name}: {describe_error(img, status)}")
        self._warm = True
        out = self.client.read_mem(t_out.offset, t_out.size)
        return Result(np.frombuffer(out, np.int8).astype(np.int64).reshape(t_out.batch, *t_out.shape), status.cycles)

    def _wait(self) -> link.Status:
        """STATUS until the run is done; UsageError once ``run_timeout`` seconds pass."""
        deadline, pause, polls = self._now() + self.run_timeout, POLL_S, 0
        while True:
            s = self.client.status()
            polls += 1
            if s.done and not s.running:
                return s
            if self._now() > deadline:
                state = "still running" if s.running else "neither running nor done"
                raise UsageError(f"board on {self.name}: the run did not finish within {self.run_timeout:g} s "
                                 f"({state} after {polls} STATUS polls, {s.cycles} cycles)")
            self._sleep(pause)
            pause = min(2 * pause, POLL_MAX_S)
