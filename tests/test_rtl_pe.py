# amaranth: UnusedElaboratable=no
"""PE array (with its double-buffered weight buffer) and serializer vs golden.channel_sum,
random values, extreme products, random stalls on the step, weight and output streams; the
compute core's dual array in both modes."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl.pe import PEArray, Serializer
from sim.streams import get, put
from wino_gen import golden
from wino_gen.config import AcceleratorConfig, int_range
from wino_gen.schedule import core_latencies, latencies, pe_geometry


class PEWithSerializer(wiring.Component):
    def __init__(self, cfg):
        self.pe = PEArray(cfg)
        self.ser = Serializer(cfg)
        sig = dict(self.pe.signature.members)
        sig["o"] = self.ser.signature.members["o"]
        super().__init__(wiring.Signature(sig))

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe, m.submodules.ser = self.pe, self.ser
        wiring.connect(m, self.pe.o, self.ser.i)
        wiring.connect(m, wiring.flipped(self.o), self.ser.o)
        wiring.connect(m, wiring.flipped(self.i), self.pe.i)
        wiring.connect(m, wiring.flipped(self.w), self.pe.w)
        m.d.comb += [self.pe.steps.eq(self.steps), self.pe.clear.eq(self.clear)]
        return m


@pytest.mark.parametrize("algo,tile,unroll,ui", [("winograd", 2, 2, 2), ("winograd", 4, 3, 1),
                                                 ("direct", 2, 2, 3)])
def test_pe_array(algo, tile, unroll, ui):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, algo=algo, max_channels=48)
    S = pe_geometry(cfg).taps
    rng = np.random.default_rng(unroll * 7 + ui)
    steps, tiles, blocks = 3, 4, 3
    xbits = cfg.transform_bits if algo == "winograd" else cfg.act_bits
    lo, hi = int_range(xbits)
    wlo, whi = int_range(cfg.weight_bits)
    U = rng.integers(wlo, whi + 1, size=(blocks, steps, unroll, ui, S))
    V = rng.integers(lo, hi + 1, size=(blocks, tiles, steps, ui, S))
    U[0], V[0, 0] = wlo, lo        # largest positive products in every lane
    U[1, :, 0], V[1, 1] = wlo, hi  # most negative products
    bias = rng.integers(-1000, 1000, size=(blocks, unroll))
    wbeats = [{"data": U[b, s].tolist(), "bias": bias[b].tolist()}
              for b in range(blocks) for s in range(steps)]
    ibeats = []
    for b in range(blocks):
        for t in range(tiles):
            for s in range(steps):
                ibeats.append({"data": V[b, t, s].tolist(), "tag": {
                    "addr": s, "bank": b & 1, "first": s == 0, "last": s == steps - 1,
                    "eob": t == tiles - 1 and s == steps - 1}})
    dut = PEWithSerializer(cfg)
    res = {}
    r2 = np.random.default_rng(1)

    async def wsrc(ctx):
        ctx.set(dut.steps, steps)
        await put(ctx, dut.w, wbeats, rng=r2, stall=0.3)

    async def isrc(ctx):
        await put(ctx, dut.i, ibeats, rng=r2, stall=0.3)

    async def sink(ctx):
        res["o"] = await get(ctx, dut.o, blocks * tiles * unroll, rng=r2, stall=0.3)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in (wsrc, isrc, sink):
        sim.add_testbench(tb)
    sim.run()
    out = res["o"]
    for b in range(blocks):
        Ub = U[b].transpose(1, 0, 2, 3).reshape(unroll, steps * ui, S)       # [K, C, S]
        Vb = V[b].reshape(1, tiles, steps * ui, S).transpose(0, 2, 1, 3)      # [N, C, T, S]
        P = golden.channel_sum(Ub, Vb)[0]                                      # [K, T, S]
        if algo == "direct":
            P = P.sum(axis=-1, keepdims=True)
        for t in range(tiles):
            for k in range(unroll):
                beat = out[(b * tiles + t) * unroll + k]
                assert beat["k"] == k
                assert beat["bias"] == bias[b, k]
                np.testing.assert_array_equal(beat["data"], P[k, t])


def _run_dual(cfg, mode, U, V, bias, *, stall, seed):
    """The dual array alone in ``mode``: blocks of ``steps`` weight words, ``tiles`` steps runs
    per block; returns the ``o`` beats."""
    blocks, steps = U.shape[:2]
    tiles = V.shape[1]
    dut = PEArray(cfg, modes=("winograd", "direct"))
    wbeats = [{"data": U[b, s].tolist(), "bias": bias[b].tolist()} for b in range(blocks) for s in range(steps)]
    ibeats = [{"data": V[b, t, s].tolist(), "tag": {"addr": s, "bank": b & 1, "first": s == 0, "last": s == steps - 1,
                                                    "eob": t == tiles - 1 and s == steps - 1}}
              for b in range(blocks) for t in range(tiles) for s in range(steps)]
    rng, res = np.random.default_rng(seed), {}

    async def wsrc(ctx):
        ctx.set(dut.steps, steps)
        ctx.set(dut.mode, mode == "direct")
        await put(ctx, dut.w, wbeats, rng=rng, stall=stall)

    async def isrc(ctx):
        await put(ctx, dut.i, ibeats, rng=rng, stall=stall)

    async def sink(ctx):
        res["o"] = await get(ctx, dut.o, blocks * tiles, rng=rng, stall=stall)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in (wsrc, isrc, sink):
        sim.add_testbench(tb)
    sim.run()
    return res["o"]


@pytest.mark.parametrize("mode", ["winograd", "direct"])
@pytest.mark.parametrize("bits", [{}, {"transform_bits": 6}], ids=["8bit", "act-wider-than-V"])
def test_dual_array_both_reductions(mode, bits):
    """One array, both sums: per tap over the steps' channels (Winograd), or over taps,
    channels and steps (direct: a patch in chunks); extreme products in every lane, stalls."""
    cfg = AcceleratorConfig(tile=2, unroll=2, unroll_in=2, max_channels=48, **bits)
    S = pe_geometry(cfg).taps
    steps, tiles, blocks = 3, 3, 3
    rng = np.random.default_rng(len(bits) + len(mode))
    lo, hi = int_range(cfg.act_bits if mode == "direct" else cfg.transform_bits)
    wlo, whi = int_range(cfg.weight_bits)
    U = rng.integers(wlo, whi + 1, size=(blocks, steps, cfg.unroll, cfg.unroll_in, S))
    V = rng.integers(lo, hi + 1, size=(blocks, tiles, steps, cfg.unroll_in, S))
    U[0], V[0, 0] = wlo, lo
    U[1, :, 0], V[1, 1] = wlo, hi
    bias = rng.integers(-1000, 1000, size=(blocks, cfg.unroll))
    out = _run_dual(cfg, mode, U, V, bias, stall=0.3, seed=4)
    for b in range(blocks):
        P = np.einsum("skcq,tscq->tkq", U[b], V[b])              # [tile, k, tap]
        for t in range(tiles):
            beat = out[b * tiles + t]
            assert beat["bias"] == bias[b].tolist()
            if mode == "winograd":
                np.testing.assert_array_equal(beat["acc"], P[t])
            else:
                np.testing.assert_array_equal(beat["sum"], P[t].sum(axis=-1))


def test_dual_array_latency_and_modes_checked():
    cfg = AcceleratorConfig(tile=4, unroll=2, unroll_in=3, max_channels=48)
    dual = PEArray(cfg, modes=("winograd", "direct"))
    assert dual.sum_bits > dual.acc_bits >= cfg.widths.accumulator
    # the dual direct path: the Winograd array's levels, then ceil(log2 36) = 6 over the taps
    assert core_latencies(cfg).direct_pe == latencies(cfg).pe + 6
    for modes, what in [((), "distinct"), (("winograd", "winograd"), "distinct"), (("linear",), "distinct"),
                        (("direct",), "cfg.algo")]:
        with pytest.raises(ValueError, match=what):
            PEArray(cfg, modes=modes)
    with pytest.raises(ValueError, match="Winograd config"):
        PEArray(AcceleratorConfig(tile=2, unroll=2, algo="direct"), modes=("winograd", "direct"))
