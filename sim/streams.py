"""Stream drivers for pysim: put and get beats on a valid/ready stream with seeded random stalls,
for the rtl tests and the simulation backends (payloads packed by :func:`rtl.host.pack`).

The stall pattern is a pure function of ``(seed, lane, cycle)`` (:meth:`Stalls.stalled`), not a
random generator's state, so the Verilator harness (:mod:`sim.verilator`) evaluates the same
pattern cycle for cycle and both backends give the same cycle counts under stalls. Per cycle:

- a source that holds no beat stalls with probability ``p`` (``valid`` low) before offering its
  next one; once ``valid`` is high it stays high with the same payload until ``ready``, as the
  stream contract asks;
- a sink drops ``ready`` with probability ``p`` in any cycle.

``p = 0`` never stalls: a source offers a beat every cycle, a sink is always ready.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from wino_gen.flow.host import pack, unpack

_M64 = (1 << 64) - 1
MAX_STALL = 0.9     # above this a layer takes >100x its cycles


def mix64(x: int) -> int:
    """splitmix64's step and finaliser (Steele, Lea, Flood 2014): a well-mixed 64-bit hash of
    ``x``. The C++ harness in :mod:`sim.verilator` has the same four lines."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def lane_id(name: str) -> int:
    """The lane of a stream in a stall pattern: its name's CRC-32, so that every stream of a top
    has its own stalls and both backends agree on them without a table."""
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class Stalls:
    """Seeded random stalls with probability ``p`` per stream and cycle (see the module doc)."""
    p: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.p <= MAX_STALL:
            raise ValueError(f"stall probability {self.p}: must be in 0..{MAX_STALL}")
        if not 0 <= self.seed <= _M64:
            raise ValueError(f"stall seed {self.seed}: must be in 0..2**64-1")

    @property
    def threshold(self) -> int:
        """``p`` as a 32-bit integer: a cycle stalls when the hash's top 32 bits are below it
        (an integer, so that Python and C++ compare exactly)."""
        return int(self.p * (1 << 32))

    def stalled(self, lane: int, cycle: int) -> bool:
        t = self.threshold
        return bool(t) and (mix64(mix64(mix64(self.seed) ^ lane) ^ cycle) >> 32) < t


class Lane:
    """One stream's place in a stall pattern: the driver's cycle, advanced on every clock tick
    it waits for, so that a stall is looked up for the cycle in which it happens."""

    def __init__(self, stalls: Stalls, name: str, cycle: int = 0):
        self.stalls, self.id, self.cycle = stalls, lane_id(name), cycle

    @classmethod
    def random(cls, rng, stall: float) -> Lane:
        """A lane of a pattern seeded from the generator ``rng`` (no stalls without one)."""
        if rng is None or not stall:
            return cls(Stalls(), "")
        return cls(Stalls(stall, int(rng.integers(1 << 63))), "")

    def stalled(self) -> bool:
        return self.stalls.stalled(self.id, self.cycle)

    async def tick(self, ctx, *signals):
        """Wait for the next clock edge; the values of ``signals`` sampled at it."""
        _, _, *values = await ctx.tick().sample(*signals)
        self.cycle += 1
        return values


async def put(ctx, stream_if, items, *, lane: Lane | None = None, rng=None, stall=0.0,
              packed=False):
    """Send ``items`` on ``stream_if`` (a stream we drive), stalling as ``lane`` says (or, for
    the rtl tests, with probability ``stall`` seeded from ``rng``)."""
    lane = lane or Lane.random(rng, stall)
    shape = stream_if.payload.shape()
    for it in items:
        while lane.stalled():
            ctx.set(stream_if.valid, 0)
            await lane.tick(ctx)
        ctx.set(stream_if.payload.as_value(), it if packed else pack(shape, it))
        ctx.set(stream_if.valid, 1)
        while not (await lane.tick(ctx, stream_if.ready))[0]:
            pass
    ctx.set(stream_if.valid, 0)


async def get(ctx, stream_if, count, *, lane: Lane | None = None, rng=None, stall=0.0, raw=False):
    """Receive ``count`` beats from ``stream_if``; returns the unpacked payloads (or raw ints).
    On return ``lane.cycle`` is the cycle after the one in which the last beat was taken."""
    lane = lane or Lane.random(rng, stall)
    shape = stream_if.payload.shape()
    out = []
    while len(out) < count:
        ready = not lane.stalled()
        ctx.set(stream_if.ready, ready)
        valid, v = await lane.tick(ctx, stream_if.valid, stream_if.payload.as_value())
        if valid and ready:
            v = int(v)
            out.append(v if raw else unpack(shape, v))
    ctx.set(stream_if.ready, 0)
    return out


def feeder(stream_if, queue, lane: Lane):
    """A background testbench that offers ``queue``'s items (a deque, filled by the caller while
    the simulation runs) on ``stream_if``'s ``data`` one by one, ``lane`` stalling the offers."""
    async def bench(ctx):
        while True:
            if queue and not lane.stalled():
                ctx.set(stream_if.valid, 1)
                ctx.set(stream_if.payload.data, queue[0])
                if (await lane.tick(ctx, stream_if.ready))[0]:
                    queue.popleft()
            else:
                ctx.set(stream_if.valid, 0)
                await lane.tick(ctx)
    return bench


def drainer(stream_if, out, lane: Lane):
    """A background testbench that appends ``stream_if``'s ``data`` to ``out`` (a list or a
    deque) whenever ``lane`` lets it be ready."""
    async def bench(ctx):
        while True:
            ready = not lane.stalled()
            ctx.set(stream_if.ready, ready)
            valid, v = await lane.tick(ctx, stream_if.valid, stream_if.payload.data)
            if valid and ready:
                out.append(int(v))
    return bench


def run_block(dut, items, n_out: int, *, seed: int, stall: float = 0.3, params=None) -> list:
    """The unit tests' bench for a block with one input stream ``i``, one output stream ``o``
    and an optional parameter port: ``params`` (a dict for ``dut.params``' layout) is set first,
    ``items`` go in and ``n_out`` beats come out, both sides under ``stall`` from one seeded
    generator."""
    from amaranth.sim import Simulator

    rng = np.random.default_rng(seed)
    res = {}

    async def src(ctx):
        if params is not None:
            ctx.set(dut.params.as_value(), pack(dut.params.shape(), params))
        await put(ctx, dut.i, items, rng=rng, stall=stall)

    async def sink(ctx):
        res["o"] = await get(ctx, dut.o, n_out, rng=rng, stall=stall)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(src)
    sim.add_testbench(sink)
    sim.run()
    return res["o"]
