"""wino_gen.schedule and wino_gen.limits equal the code that holds the same knowledge today
(rtl/, rtl/host.py, rtl/selftest.py, golden, perf, format, config, train), so that each copy can
be switched to them without a change in outputs, widths or cycles: latencies against the RTL's
blocks and perf's constants, buffer geometry against rtl.pe/rtl.tilebuf/perf.memories, tile
geometry against golden.tile_input/host/perf/train, the loop nest against a simulated
LayerController, the beat orders against what rtl/host.py encodes and decodes, and cycle totals
built from the schedule against perf."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from amaranth.utils import ceil_log2

from rtl import arith, pe, selftest, tilebuf, transform
from rtl.host import DirectLayer, DoesNotFit, WinogradLayer, _params, pack, unpack
from rtl.top import direct_out_layout, direct_x_layout, winograd_out_layout
from wino_gen import config, format, golden, limits, perf, schedule
from wino_gen.config import AcceleratorConfig

R0 = golden.Requant(1, 0)


def _cfgs(algo="winograd", **kw):
    """Small configs across tiles, unrolls and requant modes."""
    out = []
    for tile, un, ui, rq in itertools.product((2, 4, 6), (1, 3), (1, 2), ("pow2", "fixed")):
        out.append(AcceleratorConfig(tile=tile, unroll=un, unroll_in=ui, requant=rq, algo=algo,
                                     max_width=kw.get("max_width", 16), max_channels=kw.get("max_channels", 8)))
    return out


WINO = _cfgs()
DIRECT = _cfgs("direct")
BIG = [AcceleratorConfig(tile=t, unroll=16, unroll_in=ui, max_width=w, max_channels=c)
       for t, ui, w, c in ((4, 1, 256, 512), (6, 2, 224, 64), (2, 4, 4096, 8192), (4, 3, 100, 3))]


def test_schedule_and_limits_import_no_hardware_or_training():
    code = ("import sys, wino_gen.schedule, wino_gen.limits; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('amaranth', 'rtl', 'sim', 'train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- limits -----------------------------------------------------------------------------------

def test_limits_equal_the_copies():
    assert limits.CONFIG_RANGES == config._RANGES
    assert all(limits.int_range(b) == config.int_range(b) for b in range(1, 65))
    assert limits.SHIFT_RANGE == format.SHIFT_RANGE
    assert limits.mult_range("fixed") == (0, format.MULT_MAX)
    assert limits.mult_range("pow2") == (1, 1)
    assert limits.MAX_ALIGN == format.MAX_ALIGN == limits.CONFIG_RANGES["max_tap_shift"][1]
    assert limits.FIXED_MULT_BITS == limits.CONFIG_RANGES["mult_bits"][1]
    assert limits.MAX_KERNEL == format.MAX_KERNEL
    assert limits.SHIFT_BITS == arith.SHIFT_BITS
    assert limits.MAX_PAD == tilebuf.MAX_PAD
    assert limits.FLOAT_EXACT == golden._EXACT
    pad_field = tilebuf.shape_layout(WINO[0])["pad"].shape
    assert pad_field.width == limits.PAD_FIELD_BITS and limits.MAX_PAD < 1 << pad_field.width
    lo, hi = limits.SHIFT_RANGE
    assert limits.HW_SHIFT_RANGE[0] <= lo and hi <= limits.HW_SHIFT_RANGE[1]
    assert limits.WINOGRAD_PADDING[1] <= limits.HOST_PADDING[1] <= limits.MAX_PAD


def test_quantize_ratio_clips_to_the_shift_range():
    """The clips in golden.quantize_ratio are SHIFT_RANGE (fixed mode's lower end is left out:
    its mult correction after the clip can leave it, see the integration note)."""
    r = golden.quantize_ratio(np.array([1e-40, 1e40]), "pow2")
    assert tuple(np.asarray(r.shift).tolist()) == (limits.SHIFT_RANGE[1], limits.SHIFT_RANGE[0])
    assert int(golden.quantize_ratio(1e-40, "fixed", 16).shift) == limits.SHIFT_RANGE[1]


def test_host_takes_the_hardware_ranges():
    lo, hi = limits.HW_SHIFT_RANGE
    assert _params(1, [lo, hi], 2, False, "v")["shift"] == [lo, hi]
    for bad in (lo - 1, hi + 1):
        with pytest.raises(DoesNotFit):
            _params(1, bad, 1, False, "v")
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=8, requant="fixed", mult_bits=6)
    n = cfg.n
    zeros = np.zeros((1, 1, n, n), int)
    for p in range(limits.HOST_PADDING[1] + 2):
        ok = limits.HOST_PADDING[0] <= p <= limits.HOST_PADDING[1]
        if ok:
            WinogradLayer(cfg, zeros, [0], v=R0, m=R0, y=R0, padding=p)
        else:
            with pytest.raises(DoesNotFit):
                WinogradLayer(cfg, zeros, [0], v=R0, m=R0, y=R0, padding=p)
    top = limits.hw_mult_range(cfg.requant, cfg.mult_bits)[1]
    WinogradLayer(cfg, zeros, [0], v=golden.Requant(top, 0), m=R0, y=R0).word(4, 4)
    with pytest.raises(DoesNotFit):
        WinogradLayer(cfg, zeros, [0], v=golden.Requant(top + 1, 0), m=R0, y=R0).word(4, 4)


# -- latencies and buffers --------------------------------------------------------------------

def test_ceil_log2_and_tree_levels_equal_amaranth():
    assert all(schedule.ceil_log2(i) == ceil_log2(i) for i in range(300))
    for count in range(1, 20):
        _, levels = arith.adder_tree(Module(), 1, [Signal(8) for _ in range(count)], 16, "t")
        assert schedule.tree_levels(count) == levels


@pytest.mark.parametrize("cfg", WINO[:8] + DIRECT[:4], ids=str)
def test_latencies_equal_rtl_and_perf(cfg):
    lat = schedule.latencies(cfg)
    fixed = cfg.requant == "fixed"
    assert lat.rq == arith.rq_latency(fixed) == perf._rq(cfg)
    pea = pe.PEArray(cfg)
    pea.elaborate(None)
    assert lat.pe == pea.latency == perf._pe_latency(cfg)
    assert lat.pe == 4 + lat.pe_tree
    assert lat.direct_output == 1 + arith.rq_latency(fixed)
    if cfg.algo == "winograd":
        assert lat.tile_buffer == tilebuf.TileBuffer.LATENCY == perf._TILEBUF
        assert lat.input_transform == transform.InputTransform.LATENCY == perf._ITF
        assert lat.serializer == perf._SER
        ost = transform.OutputStage(cfg)
        assert (lat.output_stage, lat.rq) == (ost.latency, ost.rq_latency)
        assert lat.winograd == perf.winograd_latency(cfg)


@pytest.mark.parametrize("cfg", WINO + DIRECT + BIG, ids=str)
def test_buffers_equal_rtl_and_perf(cfg):
    g = schedule.pe_geometry(cfg)
    assert (g.taps, g.lanes, g.depth) == pe.pe_geometry(cfg)
    assert g.addr_bits == pe.step_tag_layout(cfg)["addr"].shape.width
    assert g.word_bits == pe.weight_word_layout(cfg).size
    assert g.acc_lanes == pe.pe_out_layout(cfg)["acc"].shape.elem_shape.length
    assert list(schedule.memories(cfg)) == perf.memories(cfg)
    if cfg.algo != "winograd":
        with pytest.raises(ValueError):
            schedule.line_buffer(cfg)
        return
    lb = schedule.line_buffer(cfg)
    want = tilebuf.geometry(cfg)
    got = {"cg_max": lb.cg_max, "xb_max": lb.xb_max, "coord": lb.coord_bits, "cg_field": lb.cg_field,
           "cg_bits": lb.cg_bits, "xb_bits": lb.xb_bits, "depth": lb.depth}
    assert got == want
    sl = tilebuf.shape_layout(cfg)
    assert sl["n_kb"].shape.width == lb.n_kb_bits
    assert sl["nxb"].shape.width == lb.xb_bits and sl["h"].shape.width == lb.coord_bits
    assert lb.word_bits == tilebuf.input_beat_layout(cfg).elem_shape.size


# -- Winograd geometry ------------------------------------------------------------------------

SHAPES = [(1, 1, 3, 3), (3, 2, 5, 7), (2, 5, 8, 8), (4, 3, 9, 6), (2, 2, 13, 11), (1, 4, 16, 5)]


@pytest.mark.parametrize("cfg", WINO[::2], ids=str)
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_winograd_geometry_equals_golden_host_perf(cfg, pad):
    rng = np.random.default_rng(pad)
    for C, K, H, W in SHAPES:
        g = schedule.winograd_geometry(cfg, C, K, H, W, pad)
        x = rng.integers(-128, 128, size=(1, C, H, W))
        d = golden.tile_input(x, cfg.tile, pad)[0]             # [C, th, tw, n, n]
        assert d.shape == (C, g.th, g.tw, g.n, g.n)
        xp = np.zeros((C, *g.padded), dtype=np.int64)
        xp[:, pad:pad + H, pad:pad + W] = x[0]
        for s in schedule.winograd_steps(g):
            if s.kb == 0 and s.cg == 0:
                assert np.array_equal(d[:, s.ty, s.tx], xp[:, s.y0:s.y0 + g.n, s.x0:s.x0 + g.n])
        p = perf.winograd_layer(cfg, C, K, H, W, pad)
        assert (p["tiles"], p["n_cg"], p["n_kb"], p["steps"]) == ((g.th, g.tw), g.n_cg, g.n_kb, g.steps)
        spec = WinogradLayer(cfg, np.zeros((K, C, g.n, g.n), int), np.zeros(K, int), v=R0, m=R0, y=R0,
                             padding=pad)
        assert spec.geometry(H, W) == (g.Ho, g.Wo, g.th, g.tw, g.nxb)
        assert (spec.n_cg, spec.n_kb, spec.n_out(H, W), spec.steps(H, W)) == (g.n_cg, g.n_kb, g.n_out, g.steps)
        assert g.nxb <= schedule.line_buffer(cfg).xb_max


@pytest.mark.parametrize("cfg", WINO[::4], ids=str)
def test_line_buffer_gates_equal_tilebuf_conditions(cfg):
    """TileBuffer takes padded row ys while ``ys < y0 + 2n`` (y0 of the tile row being read) and
    reads tile row ty once ``ys >= y0 + n or ys >= h + pad``."""
    for pad in (0, 1, 2):
        g = schedule.winograd_geometry(cfg, 1, 1, 13, 7, pad)
        for ys in range(pad, g.H + pad):
            assert g.row_gate(ys) == min(b for b in range(g.th + 3) if ys < b * g.m + 2 * g.n)
        for ty in range(g.th):
            assert g.rows_needed(ty) == min(ys for ys in range(g.H + pad + 1)
                                            if ys >= ty * g.m + g.n or ys >= g.H + pad)


def test_winograd_geometry_refuses_no_output():
    with pytest.raises(ValueError):
        schedule.winograd_geometry(WINO[0], 1, 1, 1, 5, 0)


def test_winograd_geometry_equals_train():
    pytest.importorskip("torch")
    from train.winograd_conv import WinogradConv2d
    for tile, pad, (C, K, H, W) in itertools.product((2, 4, 6), (0, 1), SHAPES):
        g = schedule.winograd_geometry(AcceleratorConfig(tile=tile), C, K, H, W, pad)
        assert WinogradConv2d(C, K, tile=tile, padding=pad)._geometry(H, W) == (g.Ho, g.Wo, g.th, g.tw)
        assert schedule.tile_grid(H, W, tile, pad) == (g.Ho, g.Wo, g.th, g.tw)


# -- Winograd loop nest and beat orders -------------------------------------------------------

@pytest.mark.parametrize("tile,ui,un,C,K,H,W,pad", [(2, 2, 2, 3, 5, 7, 9, 1), (4, 1, 3, 2, 7, 11, 6, 0)])
def test_winograd_steps_equal_layer_controller(tile, ui, un, C, K, H, W, pad):
    cfg = AcceleratorConfig(tile=tile, unroll=un, unroll_in=ui, max_width=16, max_channels=8)
    g = schedule.winograd_geometry(cfg, C, K, H, W, pad)
    dut = tilebuf.LayerController(cfg)
    geom = {"h": H, "w": W, "pad": pad, "n_cg": g.n_cg, "n_kb": g.n_kb, "th": g.th, "tw": g.tw, "nxb": g.nxb}
    lay = tilebuf.cmd_layout(cfg)
    got = []

    async def bench(ctx):
        ctx.set(dut.geom.as_value(), pack(tilebuf.shape_layout(cfg), geom))
        ctx.set(dut.cmd.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.busy) and len(got) <= g.steps:
            assert ctx.get(dut.cmd.valid)
            got.append(unpack(lay, ctx.get(dut.cmd.payload.as_value())))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [{"y0": s.y0, "y0mod": s.y0mod, "y0div": s.y0div, "x0": s.x0, "x0mod": s.x0mod, "x0div": s.x0div,
             "cg": s.cg, "tag": {"addr": s.cg, "bank": s.bank, "first": int(s.first), "last": int(s.last),
                                 "eob": int(s.eob)}}
            for s in schedule.winograd_steps(g)]
    assert got == want


def _x_code(c, y, x, H, W):
    """A distinct non-zero value per input element (0 is padding)."""
    return 1 + (c * H + y) * W + x


@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("tile,ui,un,C,K,H,W", [(2, 2, 2, 3, 3, 5, 7), (4, 1, 3, 2, 4, 9, 6), (6, 3, 2, 4, 3, 8, 13)])
def test_winograd_beats_equal_host(tile, ui, un, C, K, H, W, pad):
    cfg = AcceleratorConfig(tile=tile, unroll=un, unroll_in=ui, act_bits=16, weight_bits=16, max_width=16,
                            max_channels=12)
    g = schedule.winograd_geometry(cfg, C, K, H, W, pad)
    n, S = g.n, g.n * g.n
    x = np.array([[[_x_code(c, y, xx, H, W) for xx in range(W)] for y in range(H)] for c in range(C)])
    U = np.arange(1, K * C * S + 1).reshape(K, C, n, n)
    bias = 1000 + np.arange(K)
    spec = WinogradLayer(cfg, U, bias, v=R0, m=R0, y=R0, padding=pad)
    xb = spec.x_beats(x)
    assert len(xb) == g.x_beats
    for beat, b in zip(xb, schedule.winograd_x_order(g), strict=True):
        cols = unpack(spec.xlay, beat)                      # [n][ui]
        for j, c in itertools.product(range(n), range(ui)):
            ch, col = b.cg * ui + c, b.xb * n + j - pad
            assert cols[j][c] == (_x_code(ch, b.y, col, H, W) if ch < C and 0 <= col < W else 0)
    wb = spec.w_beats(H, W)
    assert len(wb) == g.w_beats
    for beat, b in zip(wb, schedule.winograd_w_order(g), strict=True):
        w = unpack(spec.wlay, beat)
        for k, c, s in itertools.product(range(un), range(ui), range(S)):
            kk, cc = b.kb * un + k, b.cg * ui + c
            assert w["data"][k][c][s] == (U[kk, cc].ravel()[s] if kk < K and cc < C else 0)
        assert w["bias"] == [1000 + b.kb * un + k if b.kb * un + k < K else 0 for k in range(un)]
    _check_winograd_collect(cfg, spec, g)


def _check_winograd_collect(cfg, spec, g):
    """host.collect reads beats in the schedule's output order: beat i carries values 1 + i*mm + e."""
    mt, mm = g.m, g.m * g.m
    olay = winograd_out_layout(cfg)
    order = list(schedule.winograd_output_order(g))
    assert len(order) == g.n_out == spec.n_out(g.H, g.W)
    beats = [pack(olay, [1 + i * mm + e for e in range(mm)]) for i in range(len(order))]
    y = spec.collect(beats, g.H, g.W)
    assert y.shape == (g.K, g.Ho, g.Wo)
    for i, ob in enumerate(order):
        ch = ob.kb * g.unroll + ob.k
        for r, c in itertools.product(range(mt), range(mt)):
            yy, xx = ob.ty * mt + r, ob.tx * mt + c
            if ch < g.K and yy < g.Ho and xx < g.Wo:
                assert y[ch, yy, xx] == 1 + i * mm + r * mt + c


def test_selftest_output_order_equals_schedule():
    cfg = AcceleratorConfig(tile=2, unroll=3, max_width=16, max_channels=8)
    layer = selftest.make_layer(cfg, channels=3, outputs=4, size=6)
    ad = selftest.AcceleratorAdapter(layer)
    g = schedule.winograd_geometry(cfg, 3, 4, 6, 6)
    yt = layer["trace"]["y_tiles"][0]
    olay = winograd_out_layout(cfg)
    want = []
    for ob in schedule.winograd_output_order(g):
        ch = ob.kb * g.unroll + ob.k
        tile = yt[ch, ob.ty, ob.tx].ravel() if ch < g.K else np.zeros(g.m * g.m, int)
        want.append(pack(olay, tile.tolist()))
    assert ad.expected == want


# -- direct geometry and beat orders ----------------------------------------------------------

@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 1), (3, 2, 1), (1, 1, 0), ((3, 1), 2, 0), (2, 1, 1)])
def test_direct_beats_equal_host(kernel, stride, pad):
    cfg = AcceleratorConfig(tile=2, unroll=2, unroll_in=1, act_bits=16, weight_bits=16, algo="direct",
                            max_width=16, max_channels=8)
    C, K, H, W = 3, 3, 6, 5
    g = schedule.direct_geometry(cfg, C, K, H, W, kernel=kernel, stride=stride, padding=pad)
    kh, kw, E, L, S = g.kh, g.kw, g.patch, g.lanes, cfg.n * cfg.n
    x = np.array([[[_x_code(c, y, xx, H, W) for xx in range(W)] for y in range(H)] for c in range(C)])
    Wt = np.arange(1, K * E + 1).reshape(K, C, kh, kw)
    spec = DirectLayer(cfg, Wt, 1000 + np.arange(K), y=R0, stride=stride, padding=pad)
    assert spec.geometry(H, W) == (g.Ho, g.Wo)
    assert (spec.n_step, spec.n_kb, spec.n_out(H, W), spec.steps(H, W)) == (g.n_step, g.n_kb, g.n_out, g.steps)
    p = perf.direct_layer(cfg, C, K, H, W, kh, stride, pad) if kh == kw else None
    if p:
        assert (p["n_step"], p["n_kb"], p["steps"]) == (g.n_step, g.n_kb, g.steps)
    xb = spec.x_beats(x)
    assert len(xb) == g.x_beats
    for beat, st in zip(xb, schedule.direct_steps(g), strict=True):
        vals = [v for row in unpack(direct_x_layout(cfg), beat) for v in row]    # [ui * S]
        oy, ox = divmod(st.pix, g.Wo)
        for lane, v in enumerate(vals):
            e = st.chunk * L + lane
            want = 0
            if e < E:
                ci, r = divmod(e, kh * kw)
                ky, kx = divmod(r, kw)
                iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                want = _x_code(ci, iy, ix, H, W) if 0 <= iy < H and 0 <= ix < W else 0
            assert v == want
    wb = spec.w_beats(H, W)
    assert len(wb) == g.w_beats
    for beat, (kb, chunk) in zip(wb, schedule.direct_w_order(g), strict=True):
        w = unpack(spec.wlay, beat)
        for k, lane in itertools.product(range(g.unroll), range(L)):
            kk, e = kb * g.unroll + k, chunk * L + lane
            assert w["data"][k][lane // S][lane % S] == (1 + kk * E + e if kk < K and e < E else 0)
    olay = direct_out_layout(cfg)
    order = list(schedule.direct_output_order(g))
    beats = [pack(olay, [1 + i * g.unroll + k for k in range(g.unroll)]) for i in range(len(order))]
    y = spec.collect(beats, H, W)
    for i, (kb, pix) in enumerate(order):
        for k in range(g.unroll):
            if kb * g.unroll + k < K:
                assert y[kb * g.unroll + k].ravel()[pix] == 1 + i * g.unroll + k


def test_direct_steps_tags():
    """DirectAccel's controller: addr = chunk, bank per block, first/last per pixel, eob per block."""
    g = schedule.direct_geometry(DIRECT[0], 3, 5, 4, 4, kernel=3, stride=1, padding=1)
    steps = list(schedule.direct_steps(g))
    assert len(steps) == g.steps
    assert [s.bank for s in steps[::g.n_pix * g.n_step]] == [kb & 1 for kb in range(g.n_kb)]
    assert sum(s.eob for s in steps) == g.n_kb and steps[-1].eob
    assert sum(s.first for s in steps) == sum(s.last for s in steps) == g.n_out
    with pytest.raises(ValueError):
        schedule.direct_geometry(DIRECT[0], 1, 1, 2, 2, kernel=3, stride=1, padding=0)


# -- cycles: perf as a sum over the schedule --------------------------------------------------

def _winograd_cycles(cfg, g):
    """perf.winograd_layer's event model written with the schedule's quantities only."""
    lat = schedule.latencies(cfg)
    per_tile = max(g.n_cg, lat.serializer_period)
    band_cycles = g.n_kb * g.tw * per_tile
    weights_in = lat.start + g.n_cg
    starts, t, ys, end = [], lat.start, g.pad, 0
    for ty in range(g.th):
        while ys < g.rows_needed(ty):
            gate = g.row_gate(ys)
            t = max(t, starts[gate] if gate else lat.start) + g.row_beats
            ys += 1
        s = max(end, t, weights_in)
        starts.append(s)
        end = s + band_cycles
    return end - (per_tile - g.n_cg) + lat.winograd + g.unroll - 1


def _direct_cycles(cfg, g):
    lat = schedule.latencies(cfg)
    return lat.start + g.n_step + g.steps + lat.direct


WINO_SHAPES = [(3, 3, 7, 9, 1), (2, 8, 10, 10, 1), (8, 4, 14, 14, 1), (1, 1, 3, 3, 0), (5, 17, 12, 5, 2),
               (64, 64, 56, 56, 1), (512, 512, 7, 7, 1), (256, 256, 14, 14, 0), (3, 40, 33, 1, 1)]


@pytest.mark.parametrize("tile,unroll,ui,rq", list(itertools.product((2, 4, 6), (1, 3, 16), (1, 2), ("pow2", "fixed"))))
def test_winograd_cycles_from_schedule_equal_perf(tile, unroll, ui, rq):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, requant=rq)
    for C, K, H, W, pad in WINO_SHAPES:
        g = schedule.winograd_geometry(cfg, C, K, H, W, pad)
        assert _winograd_cycles(cfg, g) == perf.winograd_layer(cfg, C, K, H, W, pad)["cycles"]


DIRECT_SHAPES = [(3, 64, 224, 7, 2, 3), (64, 128, 56, 3, 2, 1), (64, 128, 56, 1, 2, 0), (4, 5, 8, 3, 2, 1),
                 (8, 4, 6, 1, 1, 0), (5, 2, 9, 3, 1, 1), (512, 512, 7, 3, 1, 1)]


@pytest.mark.parametrize("tile,unroll,ui,rq", list(itertools.product((2, 4, 6), (1, 3, 16), (1, 2), ("pow2", "fixed"))))
def test_direct_cycles_from_schedule_equal_perf(tile, unroll, ui, rq):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, requant=rq, algo="direct")
    for C, K, H, k, s, p in DIRECT_SHAPES:
        g = schedule.direct_geometry(cfg, C, K, H, H, kernel=k, stride=s, padding=p)
        assert _direct_cycles(cfg, g) == perf.direct_layer(cfg, C, K, H, H, k, s, p)["cycles"]
