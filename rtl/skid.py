"""A skid buffer: a stream stage whose ``i.ready`` is a register.

The pipeline's blocks stall as a whole (``en = ~o.valid | o.ready``), so without a break the
ready of the last block reaches the clock enables of every register before it through one
combinational chain. A skid buffer ends the chain: data passes straight through (no added
latency) while ``o`` is ready; the one word that arrives while ``o`` stalls waits in the
buffer, and ``i.ready`` stays low until it has left. The words and their timing at ``o`` are
those of a plain wire.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        buf = Signal.like(self.i.payload)
        m.d.comb += [
            self.i.ready.eq(~full),
            self.o.valid.eq(full | self.i.valid),
            self.o.payload.eq(Mux(full, buf, self.i.payload)),
        ]
        with m.If(self.o.ready):
            m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~full):
            m.d.sync += [full.eq(1), buf.eq(self.i.payload)]
        return m
