"""Layer controller + line buffer: the n x n tiles it reads equal golden.tile_input (zero
padding, stride m, partial tiles at the bottom/right), in the controller's order, under
random stalls on the input and output streams."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl.tilebuf import LayerController, TileBuffer
from sim.driver import WinogradLayer
from sim.streams import get, pack, put
from wino_gen import golden
from wino_gen.config import AcceleratorConfig


class Front(wiring.Component):
    def __init__(self, cfg):
        self.ctrl, self.tbuf = LayerController(cfg), TileBuffer(cfg)
        super().__init__({"geom": self.ctrl.signature.members["geom"],
                          "start": self.ctrl.signature.members["start"],
                          "x": self.tbuf.signature.members["x"],
                          "o": self.tbuf.signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl, m.submodules.tbuf = self.ctrl, self.tbuf
        wiring.connect(m, self.ctrl.cmd, self.tbuf.cmd)
        wiring.connect(m, wiring.flipped(self.x), self.tbuf.x)
        wiring.connect(m, wiring.flipped(self.o), self.tbuf.o)
        m.d.comb += [self.ctrl.geom.eq(self.geom), self.tbuf.geom.eq(self.geom),
                     self.ctrl.start.eq(self.start), self.tbuf.start.eq(self.start)]
        return m


@pytest.mark.parametrize("tile,ui,C,K,unroll,H,W,pad", [
    (2, 1, 2, 3, 2, 5, 7, 1), (4, 2, 4, 2, 2, 9, 6, 1), (6, 1, 2, 2, 2, 13, 11, 1),
    (4, 1, 1, 1, 1, 7, 7, 0), (2, 1, 1, 2, 1, 16, 5, 2)])
def test_tiles_match_golden(tile, ui, C, K, unroll, H, W, pad):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, max_width=16, max_channels=8)
    n = cfg.n
    rng = np.random.default_rng(H * W + tile)
    x = rng.integers(-128, 128, size=(C, H, W))
    x[0, 0, :] = -128
    spec = WinogradLayer(cfg, np.zeros((K, C, n, n), int), np.zeros(K, int),
                         v=golden.Requant(1, 0), m=golden.Requant(1, 0), y=golden.Requant(1, 0),
                         padding=pad)
    g = spec.geometry(H, W)
    th, tw = g.th, g.tw
    geom = {"h": H, "w": W, "pad": pad, "n_cg": g.n_cg, "n_kb": g.n_kb, "th": th, "tw": tw,
            "nxb": g.nxb}
    dut = Front(cfg)
    n_tiles = th * g.n_kb * tw * g.n_cg
    res = {}
    r = np.random.default_rng(2)

    async def src(ctx):
        ctx.set(dut.geom.as_value(), pack(dut.geom.shape(), geom))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await put(ctx, dut.x, spec.x_beats(x), rng=r, stall=0.3, packed=True)

    async def sink(ctx):
        await ctx.tick()
        res["o"] = await get(ctx, dut.o, n_tiles, rng=r, stall=0.3)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(src)
    sim.add_testbench(sink)
    sim.run()
    d = golden.tile_input(np.pad(x, ((0, g.n_cg * ui - C), (0, 0), (0, 0)))[None], tile, pad)[0]
    it = iter(res["o"])
    for ty in range(th):
        for kb in range(g.n_kb):
            for tx in range(tw):
                for cg in range(g.n_cg):
                    beat = next(it)
                    got = np.array(beat["data"]).reshape(ui, n, n)
                    np.testing.assert_array_equal(got, d[cg * ui:(cg + 1) * ui, ty, tx])
                    t = beat["tag"]
                    assert (t["first"], t["last"], t["addr"], t["bank"]) == (
                        cg == 0, cg == g.n_cg - 1, cg, (ty * g.n_kb + kb) & 1)
                    assert t["eob"] == (tx == tw - 1 and cg == g.n_cg - 1)
