# amaranth: UnusedElaboratable=no
"""The 8N1 UART (rtl.io.uart): bytes sent by UARTTx come out of UARTRx unchanged over the wire
at a couple of clock/baud ratios under random stalls, back to back at ten bit times per byte;
the receiver takes a sender whose rate is 3% off, ignores a glitch, flags a low stop bit
(once for a break) and an overrun; a divisor whose rate is 2% off is refused."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from rtl.io.uart import UARTRx, UARTTx, divisor
from sim.streams import get, put


def test_divisor_is_the_nearest_and_within_two_percent():
    assert divisor(25_000_000, 115_200) == 217
    assert divisor(1_500_000, 115_200) == 13
    with pytest.raises(ValueError, match="off"):
        divisor(1_000_000, 115_200)           # 9 cycles: 111111 baud, 3.5% off
    with pytest.raises(ValueError, match=">= 4"):
        divisor(1_000_000, 333_333)
    with pytest.raises(ValueError, match="positive"):
        divisor(0, 9600)
    with pytest.raises(ValueError, match="off"):
        UARTTx(clock_hz=1_000_000, baud=115_200)


def _loopback(clock_hz, baud):
    m = Module()
    m.submodules.tx = tx = UARTTx(clock_hz=clock_hz, baud=baud)
    m.submodules.rx = rx = UARTRx(clock_hz=clock_hz, baud=baud)
    m.d.comb += rx.rx.eq(tx.tx)
    return m, tx, rx


@pytest.mark.parametrize("clock_hz, baud", [(1_000_000, 250_000), (1_500_000, 115_200)])
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_loopback_bytes_arrive_unchanged(clock_hz, baud, stall):
    m, tx, rx = _loopback(clock_hz, baud)
    rng = np.random.default_rng(int(clock_hz / baud) + int(10 * stall))
    items = [0x00, 0xFF, 0x55, 0xAA] + [int(b) for b in rng.integers(0, 256, 24)]
    res = {}

    async def src(ctx):
        await put(ctx, tx.i, items, rng=rng, stall=stall, packed=True)

    async def sink(ctx):
        res["o"] = await get(ctx, rx.o, len(items), rng=rng, stall=stall, raw=True)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(src)
    sim.add_testbench(sink)
    sim.run()
    assert res["o"] == items


def test_back_to_back_bytes_take_ten_bit_times():
    d, n = 5, 12
    m, tx, rx = _loopback(1_000_000, 200_000)
    res = {"cycles": 0, "got": []}

    async def src(ctx):
        await put(ctx, tx.i, list(range(n)), packed=True)

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        while len(res["got"]) < n:
            _, _, valid, v = await ctx.tick().sample(rx.o.valid, rx.o.payload.data)
            res["cycles"] += 1
            if valid:
                res["got"].append(int(v))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(src)
    sim.add_testbench(sink)
    sim.run()
    assert res["got"] == list(range(n))
    # the last byte is delivered in the middle of its stop bit (10 d per byte, less half a bit),
    # after the synchronizer and the output register: a cycle more per byte would miss the bound
    assert 10 * d * n - d <= res["cycles"] <= 10 * d * n + 3


def _levels(bits, period):
    """Line level per cycle for ``bits`` (one per bit time, idle high before and after),
    ``period`` cycles per bit (fractional: a sender whose rate is off)."""
    bits = [1] * 2 + list(bits) + [1] * 2
    return [bits[int(c / period)] for c in range(int(len(bits) * period))]


def _byte_bits(b, stop=1):
    return [0] + [b >> i & 1 for i in range(8)] + [stop]


def _drive_rx(levels, *, ready=True):
    """Drive a UARTRx (divisor 16) with ``levels``; the bytes it delivers and its pulse counts."""
    rx = UARTRx(clock_hz=1_600_000, baud=100_000)
    res = {"bytes": [], "frame_error": 0, "overrun": 0}

    async def bench(ctx):
        ctx.set(rx.o.ready, int(ready))
        for lv in levels:
            ctx.set(rx.rx, lv)
            _, _, valid, v, fe, ov = await ctx.tick().sample(rx.o.valid, rx.o.payload.data, rx.frame_error, rx.overrun)
            if valid and ready:
                res["bytes"].append(int(v))
            res["frame_error"] += fe
            res["overrun"] += ov
        res["held"] = int(ctx.get(rx.o.payload.data)) if ctx.get(rx.o.valid) else None

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


@pytest.mark.parametrize("error", [-0.03, 0.0, 0.03])
def test_rx_takes_a_sender_three_percent_off(error):
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x81, 0x7E]
    # back to back (one stop bit, no idle): the receiver realigns on every start bit only
    res = _drive_rx(_levels([x for b in data for x in _byte_bits(b)], 16 * (1 + error)))
    assert res["bytes"] == data and res["frame_error"] == 0


def test_rx_flags_a_low_stop_bit_once_and_recovers():
    # a low stop bit, a break, then a good byte
    res = _drive_rx(_levels(_byte_bits(0x3C, stop=0) + [1, 1] + [0] * 30 + [1, 1] + _byte_bits(0xC3), 16))
    assert res["bytes"] == [0xC3]
    assert res["frame_error"] == 2


def test_rx_ignores_a_glitch():
    levels = [1] * 40 + [0] * 6 + [1] * 200        # low for 6 of 16 cycles: no start bit
    res = _drive_rx(levels)
    assert res["bytes"] == [] and res["frame_error"] == 0


def test_rx_overrun_keeps_the_newest_byte():
    res = _drive_rx(_levels(_byte_bits(0x11) + _byte_bits(0x22), 16), ready=False)
    assert res["overrun"] == 1 and res["held"] == 0x22
