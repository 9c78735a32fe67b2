"""Simulation backends: run one layer on an accelerator top given packed stream beats.

A backend takes the elaborated top (a ``wiring.Component`` with ``layer``, ``start``, input
streams and the ``o`` stream), the packed layer-config word, the packed beats of every input
stream and the number of output beats; it returns the packed output beats and the cycle count
from ``start`` up to and including the cycle in which the last output beat is taken.
:class:`PysimBackend` uses Amaranth's simulator and the drivers of :mod:`sim.streams`; the
Verilator backend (:mod:`sim.verilator`) implements the same :meth:`run` on the exported
Verilog. Both take the same ``stall``/``seed`` and stall every input and the output with the
same pattern (:class:`sim.streams.Stalls`), cycle for cycle, so their cycle counts agree with
and without stalls. Every run (sample) of a backend sees the same pattern.
"""

from __future__ import annotations

from contextlib import nullcontext

from amaranth.sim import Simulator

from .streams import Lane, Stalls, get, put


class PysimBackend:
    name = "pysim"

    def __init__(self, vcd: str | None = None, *, stall: float = 0.0, seed: int = 0):
        """``stall``: the probability per cycle that an input holds back its next beat or the
        output drops ``ready`` (tests of the handshakes); 0 for cycle counts as in perf."""
        self.vcd = vcd
        self.stalls = Stalls(stall, seed)

    def run(self, dut, layer_word: int, streams: dict[str, list[int]], n_out: int):
        out_lane = Lane(self.stalls, "o")
        result = {}

        async def control(ctx):
            ctx.set(dut.layer.as_value(), layer_word)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)

        def feeder(name, beats):
            async def feed(ctx):
                lane = Lane(self.stalls, name)
                await lane.tick(ctx)      # the inputs start in the cycle after ``start``
                await put(ctx, getattr(dut, name), beats, lane=lane, packed=True)
            return feed

        async def sink(ctx):
            result["out"] = await get(ctx, dut.o, n_out, lane=out_lane, raw=True)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(control)
        for name, beats in streams.items():
            sim.add_testbench(feeder(name, beats))
        sim.add_testbench(sink)
        with sim.write_vcd(self.vcd) if self.vcd else nullcontext():
            sim.run()
        return result["out"], out_lane.cycle


def make_backend(name: str, *, show: bool = False, stall: float = 0.0, seed: int = 0):
    """Backend ``name`` with the stall pattern ``stall``/``seed``. A Verilator backend checks
    its tool and build cache here, so that a missing tool or an unwritable cache is reported
    before any layer runs; ``show`` gives its build a progress line."""
    if name == "verilator":
        from .verilator import VerilatorBackend
        return VerilatorBackend(show=show, stall=stall, seed=seed)
    return PysimBackend(stall=stall, seed=seed)
