"""8N1 UART: :class:`UARTTx` and :class:`UARTRx`, byte streams on the fabric side, one wire
on the other. Both run from one divisor, ``round(clock_hz / baud)`` clock cycles per bit
(:func:`divisor`), refused when the rate it gives is 2% or more off ``baud``: the receiver
samples each bit in its middle, so sender and receiver together may drift half a bit over the
ten bits of a frame (5%), and each end gets less than half of that.

The receiver synchronizes ``rx`` (two flip-flops), takes a falling edge as a start bit,
checks half a bit later that the line is still low (else it was a glitch), then samples the
eight data bits (LSB first) and the stop bit one bit apart. A low stop bit is a framing
error: the byte is dropped, ``frame_error`` pulses and the receiver waits for the line to go
high (a break gives one error, not one per bit time). A byte that completes while the
previous one still waits on ``o`` replaces it, and ``overrun`` pulses.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

#: one beat of the byte streams (the UARTs' and the host link's): ``data``, one byte
BYTE = data.StructLayout({"data": 8})

#: the largest relative error of the bit rate a divisor may give
BAUD_TOLERANCE = 0.02
#: the smallest divisor: the receiver needs a middle of the bit to sample at
MIN_DIVISOR = 4


def divisor(clock_hz: int, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz`` (ValueError if the rate is off by
    :data:`BAUD_TOLERANCE` or more, or the divisor is below :data:`MIN_DIVISOR`)."""
    if not clock_hz > 0 or not baud > 0:
        raise ValueError(f"clock_hz {clock_hz} and baud {baud}: must be positive")
    d = round(clock_hz / baud)
    if d < MIN_DIVISOR:
        raise ValueError(f"baud {baud} at {clock_hz} Hz: {clock_hz / baud:.2f} cycles per bit, "
                         f"the UART needs >= {MIN_DIVISOR}")
    err = abs(clock_hz / d - baud) / baud
    if err >= BAUD_TOLERANCE:
        raise ValueError(f"baud {baud} at {clock_hz} Hz: divisor {d} gives {clock_hz / d:.0f} baud, "
                         f"{100 * err:.1f}% off (must be < {100 * BAUD_TOLERANCE:g}%)")
    return d


class UARTTx(wiring.Component):
    """Sends each byte taken on ``i`` on ``tx``: start bit, 8 data bits LSB first, stop bit,
    ten bit times per byte back to back."""

    def __init__(self, *, clock_hz: int, baud: int):
        self.divisor = divisor(clock_hz, baud)
        super().__init__({"i": In(stream.Signature(BYTE)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        left = Signal(range(11))          # bits still to end, the one on the line included
        shreg = Signal(9, init=0x1FF)     # the data bits and the stop bit still to send
        # take the next byte in the last cycle of the stop bit, so bytes follow without a gap
        m.d.comb += self.i.ready.eq((left == 0) | ((left == 1) & (timer == 0)))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload.data, Const(1, 1))), left.eq(10),
                         timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [timer.eq(d - 1), left.eq(left - 1), self.tx.eq(shreg[0]),
                             shreg.eq(Cat(shreg[1:], Const(1, 1)))]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """Receives bytes from ``rx`` onto ``o`` (see the module doc for the start-bit check and
    the ``frame_error`` and ``overrun`` pulses)."""

    def __init__(self, *, clock_hz: int, baud: int):
        self.divisor = divisor(clock_hz, baud)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(BYTE)),
                          "frame_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d))
        bits = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"                      # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(shreg),
                                 self.overrun.eq(self.o.valid & ~self.o.ready)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.frame_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
