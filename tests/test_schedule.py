# amaranth: UnusedElaboratable=no
"""wino_gen.schedule and wino_gen.limits against what the RTL builds and what the host side
streams: latencies asserted by the RTL's blocks at elaboration, buffer geometry against rtl.pe's
and rtl.tilebuf's layouts, tile contents against golden.tile_input, the loop nest against a
simulated LayerController, the beat orders against what wino_gen.flow.host encodes and decodes
(checked element by element, not by re-iterating the schedule). Cycle totals, which perf sums
from the schedule, are checked against the simulated hardware in tests/test_perf.py."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.sim import Simulator
from amaranth.utils import ceil_log2

from rtl import arith, eltwise, pe, ram, tilebuf, transform, window
from rtl.top import direct_out_layout, direct_x_layout, winograd_out_layout
from wino_gen import golden, limits, schedule
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import DirectLayer, DoesNotFit, WinogradLayer, _params, pack, unpack

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


# -- limits -----------------------------------------------------------------------------------

def test_limits_are_consistent():
    """The format's limits lie inside what a config and the hardware take."""
    assert limits.mult_range("pow2") == (1, 1)
    assert limits.MAX_ALIGN == limits.CONFIG_RANGES["max_tap_shift"][1]
    assert limits.FIXED_MULT_BITS == limits.CONFIG_RANGES["mult_bits"][1]
    assert all(limits.int_range(b) == (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in range(1, 65))
    pad_field = tilebuf.shape_layout(WINO[0])["pad"].shape
    assert pad_field.width == limits.PAD_FIELD_BITS and limits.MAX_PAD < 1 << pad_field.width
    lo, hi = limits.SHIFT_RANGE
    assert limits.HW_SHIFT_RANGE[0] <= lo and hi <= limits.HW_SHIFT_RANGE[1]
    assert limits.WINOGRAD_PADDING[1] <= limits.HOST_PADDING[1] <= limits.MAX_PAD
    buf = schedule.window_buffer(DIRECT[0], 16, 4, limits.WINDOW_KERNEL_RANGE[1])
    assert max(limits.WINDOW_STRIDES) < 1 << window.window_layer_layout(buf, DIRECT[0])["stride"].shape.width
    assert limits.WINDOW_KERNEL_RANGE[1] <= limits.MAX_KERNEL


def test_quantize_ratio_clips_to_the_shift_range():
    """golden.quantize_ratio clips to SHIFT_RANGE; in fixed mode a ratio beyond the largest
    representable one keeps the smallest shift and saturates the mult."""
    r = golden.quantize_ratio(np.array([1e-40, 1e40]), "pow2")
    assert tuple(np.asarray(r.shift).tolist()) == (limits.SHIFT_RANGE[1], limits.SHIFT_RANGE[0])
    assert int(golden.quantize_ratio(1e-40, "fixed", 16).shift) == limits.SHIFT_RANGE[1]
    big = golden.quantize_ratio(1e12, "fixed", 16)
    assert (int(big.mult), int(big.shift)) == ((1 << 16) - 1, limits.SHIFT_RANGE[0])


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
def test_latencies_equal_rtl(cfg):
    """The blocks whose stage counts the RTL decides assert them against the schedule while
    they elaborate (adder tree, requant pipeline, transforms): elaborating them is the check."""
    lat = schedule.latencies(cfg)
    assert lat.pe == 4 + lat.pe_tree
    Fragment.get(pe.PEArray(cfg), None)
    if cfg.algo == "winograd":
        Fragment.get(transform.InputTransform(cfg), None)
        Fragment.get(transform.OutputStage(cfg), None)


@pytest.mark.parametrize("max_kernel", (2, 3, 4, 7))
def test_eltwise_and_window_latencies_equal_rtl(max_kernel):
    """EltwiseAdd, Pool and the window generator assert their stage counts against
    ADD_LATENCY, pool_latency, READ_LATENCY and FIFO_DEPTH while they elaborate."""
    Fragment.get(eltwise.EltwiseAdd(lanes=2), None)
    Fragment.get(eltwise.Pool(lanes=1, max_width=8, max_kernel=max_kernel, max_groups=2), None)
    cfg = DIRECT[0]
    Fragment.get(window.WindowGenerator(cfg, max_width=cfg.max_width, max_channels=4, max_kernel=max_kernel), None)


def test_pool_geometry_matches_golden_shapes():
    x = np.zeros((1, 1, 13, 10), dtype=np.int64)
    for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2), (1, 1, 0)):
        g = schedule.pool_geometry(13, 10, k, s, p)
        assert golden.maxpool(x, kernel=k, stride=s, padding=p).shape[2:] == (g.oh, g.ow)
        assert g.rows >= 13 and g.cols >= 10


def _rams(block) -> list[tuple[int, int]]:
    """``(width, depth)`` of the RAMs ``block`` elaborates into (then elaborated whole, which
    runs the blocks' own checks)."""
    m = block.elaborate(None)
    subs = [sub for sub, *_ in m._named_submodules.values()]
    Fragment.get(m, None)
    return [(r.width, r.depth) for r in subs if isinstance(r, ram.SDPRam)]


@pytest.mark.parametrize("cfg", WINO + DIRECT + BIG, ids=str)
def test_buffers_equal_rtl(cfg):
    g = schedule.pe_geometry(cfg)
    assert g.addr_bits == pe.step_tag_layout(cfg)["addr"].shape.width
    assert g.word_bits == pe.weight_word_layout(cfg).size
    assert g.acc_lanes == pe.pe_out_layout(cfg)["acc"].shape.elem_shape.length
    mems = schedule.memories(cfg)
    assert _rams(pe.WeightBuffer(cfg)) == [(mems[0].width, mems[0].depth)]
    if cfg.algo != "winograd":
        with pytest.raises(ValueError):
            schedule.line_buffer(cfg)
        return
    lb = schedule.line_buffer(cfg)
    if cfg not in BIG:      # elaborating a big line buffer takes seconds
        assert _rams(tilebuf.TileBuffer(cfg)) == [(lb.word_bits, lb.depth)] * mems[1].count == \
            [(mems[1].width, mems[1].depth)] * lb.banks
    sl = tilebuf.shape_layout(cfg)
    assert sl["n_kb"].shape.width == lb.n_kb_bits
    assert sl["nxb"].shape.width == lb.xb_bits and sl["h"].shape.width == lb.coord_bits
    assert lb.word_bits == tilebuf.input_beat_layout(cfg).elem_shape.size


# -- Winograd geometry ------------------------------------------------------------------------

SHAPES = [(1, 1, 3, 3), (3, 2, 5, 7), (2, 5, 8, 8), (4, 3, 9, 6), (2, 2, 13, 11), (1, 4, 16, 5)]


@pytest.mark.parametrize("cfg", WINO[::2], ids=str)
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_winograd_tiles_equal_golden(cfg, pad):
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
    assert len(order) == g.n_out
    beats = [pack(olay, [1 + i * mm + e for e in range(mm)]) for i in range(len(order))]
    y = spec.collect(beats, g.H, g.W)
    assert y.shape == (g.K, g.Ho, g.Wo)
    for i, ob in enumerate(order):
        ch = ob.kb * g.unroll + ob.k
        for r, c in itertools.product(range(mt), range(mt)):
            yy, xx = ob.ty * mt + r, ob.tx * mt + c
            if ch < g.K and yy < g.Ho and xx < g.Wo:
                assert y[ch, yy, xx] == 1 + i * mm + r * mt + c


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
