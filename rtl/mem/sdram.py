"""The SDR SDRAM controller: the memory side of the memory port (:mod:`.port`) on the pins of a
16-bit SDR SDRAM such as the ULX3S's IS42S16160G (:data:`wino_gen.memory.IS42S16160G_7`).

Words map bank : row : column (the bank is the top address bits, each bank a contiguous
quarter of the part), as the planner's and the simulator's SDRAM models assume
(:class:`sim.memory.SDRAMTiming`): a sequential stream stays in one bank, regions placed in
different banks keep their rows open against each other.

The chip runs with burst length 1, so every word is its own READ or WRITE command: a burst of
any length, crossing any page or bank boundary, is a run of single-word commands, each checked
against its bank's open row (a hit issues at once; a miss precharges the bank's open row and
activates the new one). One command goes out per cycle, so a long burst moves one word per
cycle: READs issue back to back and their data returns CL cycles later into a read FIFO (a READ
goes out only while the FIFO has room for its word, so a stalled ``r`` never loses data);
WRITEs issue back to back with their word on ``dq`` (a WRITE goes out only in a cycle where
``w`` offers its word; the byte strobes become DQM). Every bank keeps its row open until a
miss or a refresh closes it.

Power-up: the wait (the datasheet's 200 us by default) with NOPs, PRECHARGE ALL, two AUTO
REFRESHes, MODE REGISTER SET (burst length 1, sequential, the part's CAS latency). Then an
AUTO REFRESH falls due every tREFI (the schedule does not drift): it goes out between two words,
after PRECHARGE ALL has closed the open rows, ahead of any waiting burst and whatever the port's
streams do, so it is never more than tRAS + tWR + tRP late and one pending flag is enough.

Each timing rule is a down-counter that gates the commands it constrains (see :func:`_timer`);
the nanosecond timings are whole cycles at ``clock_mhz`` (:func:`wino_gen.memory.ns_cycles`).
tRRD holds by construction as well as by its counter: an ACTIVATE is always followed by tRCD
cycles and a READ or WRITE before the next one. A WRITE waits CL + 2 cycles after the last
READ so that the chip's read data has left the bus, with an idle cycle between the two drivers.

The command pins are registered; ``read_delay`` counts further register stages the board top
puts between the pins and ``dq_i`` (an input register in the IO buffer), so that read data is
captured when it arrives there.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from wino_gen import memory as wm

from .port import PortSignature


class _State(enum.IntEnum):
    WAIT = 0
    PRECHARGE = 1
    REFRESH = 2
    MODE = 3
    RUN = 4


class Command(enum.IntEnum):
    """The SDR SDRAM command truth table: ``(ras_n, cas_n, we_n)`` with ``cs_n`` low."""
    MRS = 0b000
    REF = 0b001
    PRE = 0b010
    ACT = 0b011
    WRITE = 0b100
    READ = 0b101
    BST = 0b110
    NOP = 0b111


#: The mode register on ``a`` (``ba`` = 0) at MODE REGISTER SET.
MODE = data.StructLayout({"burst_length": 3, "burst_type": 1, "cas_latency": 3, "op_mode": 2, "write_burst": 1})

#: The address pin that selects all banks on PRECHARGE (and auto-precharge on READ/WRITE).
A10 = 10


@dataclass(frozen=True)
class Geometry:
    """Address bits of a part: column, row and bank fields of a word address, address pins."""
    col_bits: int
    row_bits: int
    bank_bits: int

    @classmethod
    def of(cls, part: wm.SDRAM) -> Geometry:
        rows = part.capacity // (part.banks * part.page_bytes)
        return cls(exact_log2(part.page_columns), exact_log2(rows), exact_log2(part.banks))

    @property
    def addr_bits(self) -> int:
        """Word address bits of the whole part."""
        return self.col_bits + self.row_bits + self.bank_bits

    @property
    def pin_bits(self) -> int:
        """Address pins: a row, and at least A10."""
        return max(self.row_bits, A10 + 1)

    def split(self, addr: int) -> tuple[int, int, int]:
        """``(bank, row, column)`` of a word address."""
        return (addr >> (self.col_bits + self.row_bits), addr >> self.col_bits & ((1 << self.row_bits) - 1),
                addr & ((1 << self.col_bits) - 1))


@dataclass(frozen=True)
class Timing:
    """A part's timings as whole cycles at ``clock_mhz`` (each the least spacing of two commands)."""
    cas: int
    rcd: int
    rp: int
    ras: int
    rc: int
    rfc: int
    wr: int
    mrd: int
    rrd: int
    refi: int       # cycles between refreshes

    @classmethod
    def of(cls, part: wm.SDRAM, clock_mhz: float) -> Timing:
        part.check_clock(clock_mhz)

        def ns(v):
            return wm.ns_cycles(v, clock_mhz)

        return cls(cas=part.cas, rcd=ns(part.t_rcd_ns), rp=ns(part.t_rp_ns), ras=ns(part.t_ras_ns),
                   rc=ns(part.t_rc_ns), rfc=ns(part.t_rfc_ns), wr=part.t_wr_clocks, mrd=part.t_mrd_clocks,
                   rrd=ns(part.t_rrd_ns), refi=math.floor(part.t_refi_ns * clock_mhz / 1000))

    @property
    def read_to_write(self) -> int:
        """READ to WRITE: the read word leaves the bus CL cycles on, then one idle cycle."""
        return self.cas + 2


def power_up_cycles(power_up_us: float, clock_mhz: float) -> int:
    return math.ceil(power_up_us * clock_mhz - 1e-9)


class PinSignature(wiring.Signature):
    """The chip's pins, seen from the controller: commands, address, DQM, and the data bus as
    an output, its output enable and an input (the board top wires them to an IO buffer)."""

    def __init__(self, geometry: Geometry, data_width: int):
        self.geometry, self.data_width = geometry, data_width
        super().__init__({
            "cke": Out(1, init=1), "cs_n": Out(1, init=1), "ras_n": Out(1, init=1), "cas_n": Out(1, init=1),
            "we_n": Out(1, init=1), "ba": Out(geometry.bank_bits), "a": Out(geometry.pin_bits),
            "dqm": Out(data_width // 8), "dq_o": Out(data_width), "dq_oe": Out(1), "dq_i": In(data_width),
        })


def _timer(m, name: str, limit: int):
    """A down-counter gating a command: ``(count, load)``. A command allowed only when ``count``
    is 0 goes out at least ``load`` cycles after the command that drove ``load`` (comb, 0 for no
    constraint); a later load never shortens an earlier one."""
    count = Signal(range(limit + 1), name=name)
    load = Signal(range(limit + 1), name=f"{name}_load")
    nxt = Mux(count != 0, count - 1, 0)
    m.d.sync += count.eq(Mux(load > nxt + 1, load - 1, nxt))
    return count, load


class _Issue:
    """The command of this cycle (``kind``, ``ba``, ``a``: comb, NOP unless a method is called),
    the timers that gate it, every bank's open row, and the burst in progress (``addr``: its next
    word, ``left``: words to go, ``writing``); each method issues one command and loads the
    timers it starts."""

    def __init__(self, m, geometry: Geometry, timing: Timing, banks: int, port: PortSignature):
        g, t, self.m, self.t = geometry, timing, m, timing
        limit = max(t.rc, t.rfc, t.ras, t.wr, t.mrd, t.read_to_write, t.rrd, t.rcd, t.rp)
        self.kind = Signal(Command, init=Command.NOP)
        self.ba, self.a = Signal(g.bank_bits), Signal(g.pin_bits)
        self.any_t, self.any_load = _timer(m, "any_t", limit)        # tRFC, tMRD: no command at all
        self.wr_t, self.wr_load = _timer(m, "wr_t", limit)           # READ to WRITE
        self.rrd_t, self.rrd_load = _timer(m, "rrd_t", limit)        # ACT to ACT, any bank
        self.pre_t, self.act_t, self.rw_t = (
            [_timer(m, f"{k}_t{b}", limit) for b in range(banks)] for k in ("pre", "act", "rw"))
        self.open = [Signal(name=f"open{b}") for b in range(banks)]
        self.rows = [Signal(g.row_bits, name=f"row{b}") for b in range(banks)]
        self.addr, self.writing = Signal(port.addr_width), Signal()
        self.left = Signal(range(port.max_burst + 1))
        full = Signal(g.addr_bits)
        m.d.comb += full.eq(self.addr)
        self.col, self.row = full[:g.col_bits], full[g.col_bits:g.col_bits + g.row_bits]
        self.bank = full[g.col_bits + g.row_bits:]
        self.hit = Array(self.open)[self.bank] & (Array(self.rows)[self.bank] == self.row)

    def at(self, timers):
        """The count of the current bank's timer among ``timers``."""
        return Array(c for c, _ in timers)[self.bank]

    def _on_bank(self, fn, domain="comb"):
        for b in range(len(self.open)):
            with self.m.If(self.bank == b):
                self.m.d[domain] += fn(b)

    def all_idle_ok(self):
        """Every bank's ACTIVATE timer out (tRP, tRC, tRFC) and no tRFC/tMRD pending."""
        return Cat(c == 0 for c, _ in self.act_t).all() & (self.any_t == 0)

    def precharge_ok(self):
        """Every open bank may be precharged (tRAS, tWR)."""
        return Cat((c == 0) | ~o for (c, _), o in zip(self.pre_t, self.open, strict=True)).all() & (self.any_t == 0)

    def precharge_all(self):
        self.m.d.comb += [self.kind.eq(Command.PRE), self.a.eq(1 << A10)] + [ld.eq(self.t.rp) for _, ld in self.act_t]
        self.m.d.sync += [o.eq(0) for o in self.open]

    def refresh(self):
        self.m.d.comb += [self.kind.eq(Command.REF), self.any_load.eq(self.t.rfc)]
        self.m.d.comb += [ld.eq(self.t.rfc) for _, ld in self.act_t]

    def mode(self):
        self.m.d.comb += [self.kind.eq(Command.MRS), self.a.eq(MODE.const({"cas_latency": self.t.cas}).as_value()),
                          self.any_load.eq(self.t.mrd)]

    def precharge(self):
        self.m.d.comb += [self.kind.eq(Command.PRE), self.ba.eq(self.bank)]
        self._on_bank(lambda b: self.act_t[b][1].eq(self.t.rp))
        self._on_bank(lambda b: self.open[b].eq(0), "sync")

    def activate(self):
        t = self.t
        self.m.d.comb += [self.kind.eq(Command.ACT), self.ba.eq(self.bank), self.a.eq(self.row),
                          self.rrd_load.eq(t.rrd)]
        self._on_bank(lambda b: [self.act_t[b][1].eq(t.rc), self.pre_t[b][1].eq(t.ras), self.rw_t[b][1].eq(t.rcd)])
        self._on_bank(lambda b: [self.open[b].eq(1), self.rows[b].eq(self.row)], "sync")

    def column(self, write: bool):
        """READ or WRITE of the burst's next word (the bank's row is open)."""
        self.m.d.comb += [self.kind.eq(Command.WRITE if write else Command.READ), self.ba.eq(self.bank),
                          self.a.eq(self.col)]
        if write:
            self._on_bank(lambda b: self.pre_t[b][1].eq(self.t.wr))
        else:
            self.m.d.comb += self.wr_load.eq(self.t.read_to_write)


class SDRAMController(wiring.Component):
    """``mem`` (the memory side of a :class:`.port.PortSignature` of the part's width,
    ``addr_width``-bit word addresses, bursts of up to ``max_burst`` words) on ``pins``
    (:class:`PinSignature`) of ``part`` clocked at ``clock_mhz``; ``read_fifo`` words of read
    buffer (at least CL + ``read_delay`` + 3 for one word per cycle)."""

    def __init__(self, part: wm.SDRAM = wm.IS42S16160G_7, *, clock_mhz: float, addr_width: int | None = None,
                 max_burst: int | None = None, power_up_us: float = 200.0, read_fifo: int = 16,
                 read_delay: int = 0):
        if not isinstance(part, wm.SDRAM):
            raise ValueError(f"part {part!r}: must be a wino_gen.memory.SDRAM")
        if not 0 < clock_mhz <= part.max_mhz:
            raise ValueError(f"clock_mhz {clock_mhz}: must be in 0..{part.max_mhz} ({part.part} at CL{part.cas})")
        geometry = Geometry.of(part)
        addr_width = geometry.addr_bits if addr_width is None else addr_width
        max_burst = part.page_columns if max_burst is None else max_burst
        if not 1 <= addr_width <= geometry.addr_bits:
            raise ValueError(f"addr_width {addr_width}: must be in 1..{geometry.addr_bits} (the part's words)")
        if max_burst < 1:
            raise ValueError(f"max_burst {max_burst}: must be positive")
        if not power_up_us > 0:
            raise ValueError(f"power_up_us {power_up_us}: must be positive")
        if read_fifo < 1:
            raise ValueError(f"read_fifo {read_fifo}: must be positive")
        if read_delay < 0:
            raise ValueError(f"read_delay {read_delay}: must be 0 or more")
        self.part, self.clock_mhz, self.geometry = part, clock_mhz, geometry
        self.timing = Timing.of(part, clock_mhz)
        self.power_up = power_up_cycles(power_up_us, clock_mhz)
        self.read_fifo, self.read_delay = read_fifo, read_delay
        self.port_sig = PortSignature(data_width=part.width_bits, addr_width=addr_width, max_burst=max_burst)
        super().__init__({"mem": In(self.port_sig), "pins": Out(PinSignature(geometry, part.width_bits))})

    def elaborate(self, platform):
        m = Module()
        c = _Issue(m, self.geometry, self.timing, self.part.banks, self.port_sig)
        w = self.mem.w
        pins = self.pins
        m.d.comb += pins.cke.eq(1)
        m.d.sync += [pins.cs_n.eq(0), Cat(pins.we_n, pins.cas_n, pins.ras_n).eq(c.kind), pins.ba.eq(c.ba),
                     pins.a.eq(c.a), pins.dq_o.eq(w.payload.data), pins.dq_oe.eq(c.kind == Command.WRITE),
                     pins.dqm.eq(Mux(c.kind == Command.WRITE, ~w.payload.strb, 0))]
        credits = self._read_path(m, c.kind == Command.READ)
        running, data_issue = self._power_up(m, c), Signal()
        with m.If(running):
            self._run(m, c, credits, data_issue)
        self._next_burst(m, c, running, data_issue)
        return m

    def _read_path(self, m, is_read):
        """A READ's word reaches ``dq_i`` CL + ``read_delay`` cycles after the pins carry it and
        goes into the read FIFO; returns the credits: FIFO words not yet claimed by a READ."""
        r = self.mem.r
        credits = Signal(range(self.read_fifo + 1), init=self.read_fifo)
        pipe = Signal(self.timing.cas + self.read_delay + 1)
        m.submodules.rfifo = rfifo = SyncFIFOBuffered(width=self.part.width_bits, depth=self.read_fifo)
        m.d.sync += [pipe.eq(Cat(is_read, pipe[:-1])), credits.eq(credits - is_read + (r.valid & r.ready))]
        m.d.comb += [rfifo.w_en.eq(pipe[-1]), rfifo.w_data.eq(self.pins.dq_i),
                     r.valid.eq(rfifo.r_rdy), r.payload.data.eq(rfifo.r_data), rfifo.r_en.eq(r.ready)]
        return credits

    def _power_up(self, m, c):
        """The power-up sequence (an if-chain, not an FSM: no incomplete Verilog case); returns
        ``running``, high once the mode register is set."""
        state = Signal(_State)
        wait = Signal(range(self.power_up + 1), init=self.power_up)
        second = Signal()
        with m.If(state == _State.WAIT):
            m.d.sync += wait.eq(wait - 1)
            with m.If(wait == 0):
                m.d.sync += state.eq(_State.PRECHARGE)
        with m.Elif(state == _State.PRECHARGE):
            c.precharge_all()
            m.d.sync += state.eq(_State.REFRESH)
        with m.Elif(state == _State.REFRESH):
            with m.If(c.all_idle_ok()):
                c.refresh()
                m.d.sync += second.eq(1)
                with m.If(second):
                    m.d.sync += state.eq(_State.MODE)
        with m.Elif(state == _State.MODE):
            with m.If(c.all_idle_ok()):
                c.mode()
                m.d.sync += state.eq(_State.RUN)
        return state == _State.RUN

    def _run(self, m, c, credits, data_issue):
        """Refresh when due (counted from the mode register set), else the burst's next word:
        READ/WRITE on a row hit, PRECHARGE of another open row, ACTIVATE of the row."""
        t, w = self.timing, self.mem.w
        ref_cnt = Signal(range(t.refi), init=t.refi - 1)
        ref_due = Signal()
        m.d.sync += ref_cnt.eq(Mux(ref_cnt == 0, t.refi - 1, ref_cnt - 1))
        with m.If(ref_cnt == 0):
            m.d.sync += ref_due.eq(1)
        with m.If(ref_due):
            with m.If(Cat(c.open).any()):
                with m.If(c.precharge_ok()):
                    c.precharge_all()
            with m.Elif(c.all_idle_ok()):
                c.refresh()
                m.d.sync += ref_due.eq(0)
        with m.Elif((c.left != 0) & c.hit):
            ok = (c.at(c.rw_t) == 0) & (c.any_t == 0)
            with m.If(c.writing):
                with m.If(ok & w.valid & (c.wr_t == 0)):
                    c.column(write=True)
                    m.d.comb += [w.ready.eq(1), data_issue.eq(1)]
            with m.Elif(ok & (credits != 0)):
                c.column(write=False)
                m.d.comb += data_issue.eq(1)
        with m.Elif(c.left != 0):
            with m.If(Array(c.open)[c.bank]):
                with m.If((c.at(c.pre_t) == 0) & (c.any_t == 0)):
                    c.precharge()
            with m.Elif((c.at(c.act_t) == 0) & (c.rrd_t == 0) & (c.any_t == 0)):
                c.activate()

    def _next_burst(self, m, c, running, data_issue):
        """One command waits behind the burst in progress and takes over as its last word goes
        out, so bursts follow each other without a gap and ``cmd.ready`` depends on no other
        stream. Commands are taken once the power-up sequence is done."""
        cmd = self.mem.cmd
        nxt = Signal.like(cmd.payload)
        nxt_valid = Signal()
        m.d.comb += cmd.ready.eq(~nxt_valid & running)
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [nxt.eq(cmd.payload), nxt_valid.eq(1)]
        with m.If(data_issue):
            m.d.sync += [c.addr.eq(c.addr + 1), c.left.eq(c.left - 1)]
        with m.If(nxt_valid & ((c.left == 0) | ((c.left == 1) & data_issue))):
            m.d.sync += [c.addr.eq(nxt.addr), c.left.eq(nxt.length), c.writing.eq(nxt.write), nxt_valid.eq(0)]
