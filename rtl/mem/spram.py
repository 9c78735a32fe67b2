"""SPRAM behind the memory port: the iCE40 UP5K's single-port RAMs (``SB_SPRAM256KA``, 16K
words of 16 bits, 32 KB each) as the memory of a board without external RAM (the iCEBreaker).

Word ``a`` of the port lies in SPRAM ``a >> 14`` at ``a & 0x3FFF``, so the SPRAMs follow each
other in the address space and a burst runs on from one into the next. A port wider than the
SPRAMs reach (3 SPRAMs on a 16-bit address) leaves the words above them unmapped: a write there
changes nothing, a read returns 0. Every SPRAM must be in the port's reach; with one SPRAM the
port may be narrower and reaches only its low words. A burst wraps at the port's reach.

The SPRAM is single-ported with one cycle of read latency: each cycle it either reads or writes
one word at the address of the burst in progress, so a long burst moves one word per cycle in
either direction. Its ``DATAOUT`` register is the read path's only stage: it changes only when a
word is read or written, so a read word waits there until ``r`` takes it, and the next word (a
read or a write, which leaves ``DATAOUT`` undefined) goes in only in a cycle where ``r`` holds
no word or gives its word away. The byte strobes become ``MASKWREN``'s nibble enables (byte
``j``: nibbles ``2j``, ``2j + 1``).

One command waits behind the burst in progress and takes over as its last word goes; when none
waits, an accepted command starts at once, so a read's first word is on ``r`` two cycles after
its command was accepted, and bursts follow each other without a gap. ``cmd.ready`` is a
register (no path from ``w`` or ``r``), as in :class:`rtl.mem.sdram.SDRAMController`.

``primitive=True`` instantiates the ``SB_SPRAM256KA`` cells (synthesis); ``False`` builds each
from an :class:`amaranth.lib.memory.Memory` of the same size, nibble write enables and one
cycle of read latency, holding its read word while it is not read, as the SPRAM holds
``DATAOUT`` (the simulators have no model of the cell), so that the same controller logic runs.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from .port import PortSignature

#: one SB_SPRAM256KA: 16K words of 16 bits
SPRAM_BITS = 14
SPRAM_WORDS = 1 << SPRAM_BITS
SPRAM_WIDTH = 16
#: the UP5K has four
MAX_SPRAMS = 4
#: bits of a word per MASKWREN enable
NIBBLE = 4


class SPRAMMemory(wiring.Component):
    """``mem`` (the memory side of a 16-bit :class:`.port.PortSignature` of ``addr_width``-bit
    word addresses, the reach of the SPRAMs by default, and bursts of up to ``max_burst``
    words) on ``count`` SPRAMs (1..4; see the module doc). ``rams``: the simulation memories
    (``primitive=False``; empty otherwise), SPRAM by SPRAM."""

    def __init__(self, count: int = MAX_SPRAMS, *, max_burst: int, addr_width: int | None = None,
                 primitive: bool = True):
        if not isinstance(count, int) or not 1 <= count <= MAX_SPRAMS:
            raise ValueError(f"count {count!r}: must be 1..{MAX_SPRAMS} SPRAMs (the UP5K has {MAX_SPRAMS})")
        reach = ceil_log2(count * SPRAM_WORDS)
        least = ceil_log2((count - 1) * SPRAM_WORDS + 1)      # the last SPRAM's first word
        addr_width = reach if addr_width is None else addr_width
        if not isinstance(addr_width, int) or not max(1, least) <= addr_width <= reach:
            raise ValueError(f"addr_width {addr_width!r}: must be in {max(1, least)}..{reach} (every one of "
                             f"{count} SPRAMs of {SPRAM_WORDS} words in reach, none beyond the SPRAMs)")
        if not isinstance(max_burst, int) or max_burst < 1:
            raise ValueError(f"max_burst {max_burst!r}: must be a positive word count")
        if not isinstance(primitive, bool):
            raise ValueError(f"primitive {primitive!r}: must be True (SB_SPRAM256KA) or False (a Memory)")
        self.count, self.primitive = count, primitive
        self.port_sig = PortSignature(data_width=SPRAM_WIDTH, addr_width=addr_width, max_burst=max_burst)
        #: whether some port addresses have no SPRAM behind them
        self.unmapped = count * SPRAM_WORDS < 1 << addr_width
        self.rams = [] if primitive else [Memory(shape=SPRAM_WIDTH, depth=SPRAM_WORDS, init=[])
                                          for _ in range(count)]
        super().__init__({"mem": In(self.port_sig)})

    def elaborate(self, platform):
        m = Module()
        cmd, w, r = self.mem.cmd, self.mem.w, self.mem.r
        addr, left, writing = Signal(self.port_sig.addr_width), Signal.like(cmd.payload.length), Signal()
        out_free = ~r.valid | r.ready
        go = (left != 0) & out_free & (~writing | w.valid)
        m.d.comb += w.ready.eq((left != 0) & writing & out_free)
        self._next_burst(m, addr, left, writing, go)
        address = Signal(SPRAM_BITS)
        m.d.comb += address.eq(addr[:SPRAM_BITS])
        with m.If(out_free):
            m.d.sync += r.valid.eq(go & ~writing)
        if self.count == 1:
            m.d.comb += r.payload.data.eq(self._spram(m, 0, address, go, writing))
            return m
        sel = addr[SPRAM_BITS:]
        douts = [self._spram(m, k, address, go & (sel == k), writing) for k in range(self.count)]
        rsel = Signal.like(sel)
        with m.If(go & ~writing):
            m.d.sync += rsel.eq(sel)
        word = Array(douts)[rsel]
        m.d.comb += r.payload.data.eq(Mux(rsel < self.count, word, 0) if self.unmapped else word)
        return m

    def _next_burst(self, m, addr, left, writing, go):
        """The burst in progress (``addr``: its next word, ``left``: words to go) and the one
        command waiting behind it (see the module doc)."""
        cmd = self.mem.cmd
        nxt, nxt_valid = Signal.like(cmd.payload), Signal()
        m.d.comb += cmd.ready.eq(~nxt_valid)
        ending = (left == 0) | ((left == 1) & go)
        src = data.View(cmd.payload.shape(), Mux(nxt_valid, nxt.as_value(), cmd.payload.as_value()))
        with m.If(go):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        with m.If(ending & (nxt_valid | cmd.valid)):
            m.d.sync += [addr.eq(src.addr), left.eq(src.length), writing.eq(src.write), nxt_valid.eq(0)]
        with m.Elif(cmd.valid & cmd.ready):
            m.d.sync += [nxt.eq(cmd.payload), nxt_valid.eq(1)]

    def _spram(self, m, k, address, cs, writing):
        """SPRAM ``k`` selected by ``cs`` (a read, or a write of ``w``'s word when ``writing``);
        returns its read word."""
        w = self.mem.w
        mask = Cat(w.payload.strb[j // 2] for j in range(SPRAM_WIDTH // NIBBLE))
        dout = Signal(SPRAM_WIDTH, name=f"dout{k}")
        if self.primitive:
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA", i_ADDRESS=address, i_DATAIN=w.payload.data, i_MASKWREN=mask, i_WREN=writing,
                i_CHIPSELECT=cs, i_CLOCK=ClockSignal(), i_STANDBY=Const(0), i_SLEEP=Const(0),
                i_POWEROFF=Const(1), o_DATAOUT=dout)
            return dout
        ram = self.rams[k]
        m.submodules[f"ram{k}"] = ram
        wr = ram.write_port(granularity=NIBBLE)
        rd = ram.read_port(transparent_for=())
        m.d.comb += [wr.addr.eq(address), wr.data.eq(w.payload.data), wr.en.eq(Mux(cs & writing, mask, 0)),
                     rd.addr.eq(address), rd.en.eq(cs & ~writing), dout.eq(rd.data)]
        return dout
