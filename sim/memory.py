"""Memory models behind the memory port (:mod:`rtl.mem.port`) for pysim: a numpy byte array
served cycle by cycle, with the timing of an ideal memory, a ``BYTES_PER_CYCLE,LATENCY`` one,
or the ULX3S SDRAM.

A :class:`MemoryModel` is a background testbench (:meth:`MemoryModel.serve`): it accepts up to
``depth`` commands, serves them in order (the port's contract), splits each where its timing
says (SDRAM pages), and moves one port word per cycle at most, at the timing's byte rate
(a segment's word ``k`` once its last byte is there); a cycle a word waits for its
consumer (or its producer, on writes) delays the words after it.

The timings themselves (ideal, ``B,L``, SDRAM) are :mod:`wino_gen.timing`'s, re-exported here.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

import numpy as np

from wino_gen.schedule import MEMORY_DEPTH
from wino_gen.timing import SDRAM_CLOCK_MHZ, BandwidthTiming, IdealTiming, SDRAMTiming, interval, replay, timing  # noqa: F401

from .streams import Lane, Stalls


class MemoryModel:
    """Serve a memory port from ``mem`` (a numpy uint8 array, changed by writes) with timing
    ``t``, holding up to ``depth`` commands; ``stalls`` adds seeded random stalls on ``cmd``
    and on the data words. ``cycles`` counts the cycles served; ``t.counters`` the timing's."""

    def __init__(self, mem: np.ndarray, t, *, word_bytes: int, depth: int = MEMORY_DEPTH, stalls: Stalls | None = None):
        if mem.dtype != np.uint8 or mem.ndim != 1:
            raise ValueError(f"mem: a 1-D uint8 array, got {mem.dtype} x {mem.shape}")
        if word_bytes < 1:
            raise ValueError(f"word_bytes {word_bytes}: must be positive")
        if depth < 1:
            raise ValueError(f"depth {depth}: must be positive")
        self.mem, self.t, self.W, self.depth, self.stalls = mem, t, word_bytes, depth, stalls or Stalls()
        self.cycles = 0

    def _word(self, addr: int) -> int:
        if addr + self.W > len(self.mem):
            raise IndexError(f"memory model: word at byte {addr} is outside the {len(self.mem)}-byte memory")
        return int.from_bytes(self.mem[addr:addr + self.W].tobytes(), "little")

    def _write(self, addr: int, value: int, strb: int) -> None:
        self._word(addr)
        for j in range(self.W):
            if strb >> j & 1:
                self.mem[addr + j] = value >> (8 * j) & 0xFF

    def serve(self, port):
        """The testbench serving ``port`` (the memory side of a :class:`rtl.mem.port.PortSignature`
        interface): add it with ``sim.add_testbench(model.serve(port), background=True)``."""
        cmd_lay, dw = port.cmd.payload.shape(), 8 * self.W

        def field(v, name):
            f = cmd_lay[name]
            return v >> f.offset & ((1 << f.width) - 1)

        async def run(ctx):
            cmd_lane, data_lane = Lane(self.stalls, "mem.cmd"), Lane(self.stalls, "mem.data")
            ivl, segs, cur, pending = interval(self.t, self.W), deque(), None, 0
            while True:
                c = self.cycles
                if cur is None and segs:
                    a, n, write, known, last = segs.popleft()
                    cur = [a, -(-n // self.W), write, Fraction(self.t.start(a, n, write, known)) + ivl - 1, last]
                moving = cur is not None and c >= math.ceil(cur[3]) and not data_lane.stalled()
                ctx.set(port.cmd.ready, pending < self.depth and not cmd_lane.stalled())
                ctx.set(port.w.ready, moving and cur[2])
                ctx.set(port.r.valid, moving and not cur[2])
                if moving and not cur[2]:
                    ctx.set(port.r.payload.data, self._word(cur[0]))
                _, _, cv, cr, cp, wv, wp, rr = await ctx.tick().sample(
                    port.cmd.valid, port.cmd.ready, port.cmd.payload.as_value(), port.w.valid,
                    port.w.payload.as_value(), port.r.ready)
                cmd_lane.cycle, data_lane.cycle, self.cycles = c + 1, c + 1, c + 1
                if cv and cr:
                    cp = int(cp)
                    addr, n, write = field(cp, "addr") * self.W, field(cp, "length") * self.W, bool(field(cp, "write"))
                    parts = self.t.split(addr, n)
                    segs.extend((a, m, write, c + 1, i == len(parts) - 1) for i, (a, m) in enumerate(parts))
                    pending += 1
                if moving and (wv if cur[2] else rr):
                    if cur[2]:
                        wp = int(wp)
                        self._write(cur[0], wp & ((1 << dw) - 1), wp >> dw)
                    cur[0] += self.W
                    cur[1] -= 1
                    cur[3] += ivl + c - math.ceil(cur[3])      # a stalled word delays the rest
                    if cur[1] == 0:
                        self.t.finish(c + 1)
                        pending -= cur[4]
                        cur = None
        return run
