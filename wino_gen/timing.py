"""The cycle timings of the memories behind the memory port (:mod:`rtl.mem.port`): an ideal
memory, a ``BYTES_PER_CYCLE,LATENCY`` one, or the ULX3S SDRAM, driven by the planner's own
parameters (:mod:`wino_gen.memory`). One definition for everything that times a memory:
:mod:`sim.memory` serves pysim's port with them, ``sim/cpp/memory.h`` ports them line for line
(its parameters written from these objects), and :func:`wino_gen.plan.program_cycles` replays a
compiled program on them.

A timing answers when a segment's data may start (``start``) and is told the cycle after its
last word moved (``finish``); ``split`` cuts a burst where the memory must (SDRAM pages);
``rate`` is its bytes per cycle (None: one port word a cycle). :func:`replay` runs a timing
without a simulator (every command known at once, every word taken when due).

SDRAM (:class:`SDRAMTiming`): the planner's simple controller, one command at a time, with
the open row of every bank remembered. Addresses map bank : row : column (each bank a
contiguous quarter of the part), so a sequential stream stays in one bank and regions placed in
different banks keep their rows open against each other. Per segment (at most one page): a
row hit streams on (reads: the next READ follows the last one, its CAS latency hidden behind
the data still draining); a row miss precharges the bank's open row (after tRAS, and tWR after
its last write), waits tRP, activates (tRC after the bank's last ACTIVATE) and waits tRCD; a
read's first word comes CL after its READ. A refresh falls due every tREFI (the schedule does
not drift) and runs at the next segment boundary: precharge all, tRFC, every row closed.
"""

from __future__ import annotations

import math
from fractions import Fraction

from . import memory as wm

#: the clock the SDRAM timing counts its cycles at unless told (the planner plans the simulated
#: runs for it)
SDRAM_CLOCK_MHZ = 100.0

class IdealTiming:
    """One port word per cycle, no latency: a burst's first word moves the cycle after its command."""

    rate = None

    def __init__(self):
        self.bus_end = 0
        self.counters = {"segments": 0}

    def split(self, addr: int, nbytes: int):
        return [(addr, nbytes)]

    def start(self, addr: int, nbytes: int, write: bool, known: int) -> int:
        self.counters["segments"] += 1
        return max(known, self.bus_end)

    def finish(self, end: int) -> None:
        self.bus_end = end


class BandwidthTiming(IdealTiming):
    """``bytes_per_cycle`` and ``latency`` cycles per burst, as :class:`wino_gen.memory.GenericMemory`:
    a burst that continues the previous one (next address, same direction) streams on, as
    the planner's bursts are whole contiguous transfers."""

    def __init__(self, gm: wm.GenericMemory):
        super().__init__()
        self.rate, self.latency = Fraction(gm.bytes_per_cycle), gm.latency
        self.counters.update(latencies=0)
        self._next = None

    def start(self, addr, nbytes, write, known):
        first = super().start(addr, nbytes, write, known)
        if self._next != (addr, write):
            first += self.latency
            self.counters["latencies"] += 1
        self._next = (addr + nbytes, write)
        return first


class SDRAMTiming:
    """The ULX3S SDRAM (any :class:`wino_gen.memory.SDRAM`) at ``clock_mhz`` (see the module doc).
    ``counters``: row hits and misses (per segment), refreshes, and the cycles refreshes
    delayed a waiting segment."""

    def __init__(self, part: wm.SDRAM = wm.IS42S16160G_7, clock_mhz: float = SDRAM_CLOCK_MHZ):
        part.check_clock(clock_mhz)
        ns = {n: wm.ns_cycles(getattr(part, f"t_{n}_ns"), clock_mhz) for n in ("rcd", "rp", "ras", "rc", "rfc")}
        self.rcd, self.rp, self.ras, self.rc, self.rfc = (ns[n] for n in ("rcd", "rp", "ras", "rc", "rfc"))
        self.cas, self.wr = part.cas, part.t_wr_clocks
        self.refi = math.floor(part.t_refi_ns * clock_mhz / 1000)
        self.rate, self.page = Fraction(part.word_bytes), part.page_bytes
        self.bank_bytes, self.banks = part.capacity // part.banks, part.banks
        self.open = [None] * part.banks               # open row per bank
        self.act = [-(1 << 40)] * part.banks          # cycle of the bank's last ACTIVATE
        self.wr_last = [-(1 << 40)] * part.banks      # cycle of the bank's last write word
        self.col_next = 0                             # earliest next command (one at a time)
        self.bus_end = 0                              # cycle after the last word on the data bus
        self.due = self.refi                          # next refresh
        self.cur = None                               # (bank, write) of the segment in flight
        self.last_write = False
        self.counters = {"row_hits": 0, "row_misses": 0, "refreshes": 0, "refresh_stall_cycles": 0}

    def split(self, addr, nbytes):
        out = []
        while nbytes:
            n = min(nbytes, self.page - addr % self.page)
            out.append((addr, n))
            addr, nbytes = addr + n, nbytes - n
        return out

    def _precharge_ready(self, bank):
        return max(self.act[bank] + self.ras, self.wr_last[bank] + self.wr)

    def _refresh(self, t):
        """Run every refresh due by ``t``; returns when the last one ends (all rows closed)."""
        while self.due <= t:
            start = max(self.due, self.col_next)
            opened = [b for b in range(self.banks) if self.open[b] is not None]
            if opened:
                start = max([start] + [self._precharge_ready(b) for b in opened]) + self.rp
            end = start + self.rfc
            self.counters["refreshes"] += 1
            self.counters["refresh_stall_cycles"] += max(0, end - t)
            self.open = [None] * self.banks
            self.col_next, self.due = max(self.col_next, end), self.due + self.refi
            t = max(t, end)
        return t

    def start(self, addr, nbytes, write, known):
        if addr + nbytes > self.bank_bytes * self.banks:
            raise IndexError(f"SDRAM model: bytes {addr}..{addr + nbytes - 1} are outside the part")
        bank, row = addr // self.bank_bytes, addr % self.bank_bytes // self.page
        t = self._refresh(max(known, self.col_next))
        if write and not self.last_write:
            t = max(t, self.bus_end)                  # read data drains before write data
        if self.open[bank] == row:
            self.counters["row_hits"] += 1
        else:
            self.counters["row_misses"] += 1
            if self.open[bank] is not None:
                t = max(t, self._precharge_ready(bank)) + self.rp
            t = max(t, self.act[bank] + self.rc)
            self.act[bank], self.open[bank] = t, row
            t += self.rcd
        self.cur = (bank, write)
        return t if write else t + self.cas

    def finish(self, end):
        bank, write = self.cur
        self.bus_end, self.last_write = end, write
        self.col_next = end if write else end - self.cas
        if write:
            self.wr_last[bank] = end - 1


def timing(spec: str, clock_mhz: float = SDRAM_CLOCK_MHZ):
    """The timing named by ``spec``: ``ideal``, ``sdram-ulx3s`` (at ``clock_mhz``) or
    ``BYTES_PER_CYCLE,LATENCY`` (:func:`wino_gen.memory.parse_memory`: a UsageError if malformed)."""
    if spec == "ideal":
        return IdealTiming()
    if spec == "sdram-ulx3s":
        return SDRAMTiming(wm.board_memory("ulx3s-85f").external, clock_mhz)
    return BandwidthTiming(wm.parse_memory(spec))


def interval(t, word_bytes: int) -> Fraction:
    """Cycles between port words: the word over the timing's rate, at least one."""
    return Fraction(1) if t.rate is None else max(Fraction(1), Fraction(word_bytes) / t.rate)


def replay(t, commands, word_bytes: int) -> int:
    """Cycles for ``t`` to serve ``commands`` (``(byte address, bytes, write)``, or with a fourth
    item: the cycle the command arrives, else 0), every word taken when due: the timing alone,
    without pysim."""
    ivl, end = interval(t, word_bytes), 0
    for addr, nbytes, write, *at in commands:
        for a, n in t.split(addr, nbytes):
            last = Fraction(t.start(a, n, write, at[0] if at else 0)) + ivl * (-(-n // word_bytes)) - 1
            end = math.ceil(last) + 1
            t.finish(end)
    return end
