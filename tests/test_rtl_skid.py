"""SkidBuffer: every word passes in order under random stalls on both sides, ``i.ready`` is a
register (it does not follow ``o.ready`` in the same cycle), and with ``o`` always ready it
is a wire (no added latency)."""

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from rtl.skid import SkidBuffer
from sim.streams import get, put


def _run(stall_in, stall_out, words):
    dut = SkidBuffer(data.ArrayLayout(unsigned(4), 3))
    res = {}

    async def src(ctx):
        await put(ctx, dut.i, words, rng=np.random.default_rng(1), stall=stall_in, packed=True)

    async def sink(ctx):
        res["out"] = await get(ctx, dut.o, len(words), rng=np.random.default_rng(2),
                               stall=stall_out, raw=True)

    async def ready_is_registered(ctx):
        async for _, _, o_ready, i_ready in ctx.tick().sample(dut.o.ready, dut.i.ready):
            res.setdefault("pairs", set()).add((o_ready, i_ready))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(src)
    sim.add_testbench(sink)
    sim.add_process(ready_is_registered)
    sim.run_until(1e-6 * 2000)
    return res


def test_words_in_order_under_stalls():
    words = list(range(1, 300))
    res = _run(0.3, 0.4, words)
    assert res["out"] == words
    assert (0, 1) in res["pairs"]          # o stalls while i still accepts: the skid slot


def test_no_stall_is_a_wire():
    dut = SkidBuffer(unsigned(8))

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for v in (5, 6, 7):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, v)
            assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == v and ctx.get(dut.i.ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
