"""Simulation backends: run one layer on an accelerator top given packed stream beats.

A backend takes the elaborated top (a ``wiring.Component`` with ``layer``, ``start``, input
streams and the ``o`` stream), the packed layer-config word, the packed beats of every input
stream and the number of output beats; it returns the packed output beats and the cycle count
from ``start`` to the last output beat. :class:`PysimBackend` uses Amaranth's simulator; a
Verilator backend (:mod:`sim.verilator`) implements the same :meth:`run` on the exported
Verilog.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from amaranth.sim import Simulator


class PysimBackend:
    name = "pysim"

    def __init__(self, vcd: str | None = None, *, stall: float = 0.0, seed: int = 0):
        """``stall``: probability of a random 1-3 cycle gap before each input beat and of
        dropping ``o.ready`` for 1-3 cycles (tests of the handshakes); 0 for cycle counts."""
        self.vcd = vcd
        self.stall = stall
        self.rng = np.random.default_rng(seed)

    def run(self, dut, layer_word: int, streams: dict[str, list[int]], n_out: int):
        state = {"cycles": 0, "done": False, "out": []}
        stall, rng = self.stall, self.rng

        async def control(ctx):
            ctx.set(dut.layer.as_value(), layer_word)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)

        def feeder(name, beats):
            port = getattr(dut, name)

            async def feed(ctx):
                await ctx.tick()      # after start
                for b in beats:
                    if stall and rng.random() < stall:
                        ctx.set(port.valid, 0)
                        await ctx.tick().repeat(int(rng.integers(1, 4)))
                    ctx.set(port.payload.as_value(), b)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
            return feed

        async def sink(ctx):
            ctx.set(dut.o.ready, 1)
            out = state["out"]
            while len(out) < n_out:
                if stall:
                    ctx.set(dut.o.ready, int(rng.random() >= stall))
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
                state["cycles"] += 1
                if valid and (not stall or ctx.get(dut.o.ready)):
                    out.append(int(payload))
            state["done"] = True

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(control)
        for name, beats in streams.items():
            sim.add_testbench(feeder(name, beats))
        sim.add_testbench(sink)
        with sim.write_vcd(self.vcd) if self.vcd else nullcontext():
            sim.run()
        return state["out"], state["cycles"]


def make_backend(name: str, *, show: bool = False):
    """Backend ``name``. A Verilator backend checks its tool and build cache here, so that a
    missing tool or an unwritable cache is reported before any layer runs; ``show`` gives its
    build a progress line."""
    if name == "verilator":
        from .verilator import VerilatorBackend
        return VerilatorBackend(show=show)
    return PysimBackend()
