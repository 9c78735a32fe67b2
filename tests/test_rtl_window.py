# amaranth: UnusedElaboratable=no
"""The on-chip window generator (rtl.window): its output beats equal the host's im2col chunks
(``DirectLayer.x_beats``) beat for beat under random stalls, its cycles equal
``window_cycles`` exactly, it emits a chunk a cycle wherever its input keeps up (3x3 s1, 7x7
s2; input-bound 3x3 s2 and 1x1 layers at the x stream's beat a cycle), and in front of the
unchanged direct engine it computes ``golden.direct_conv``."""

import re

import numpy as np
import pytest
from amaranth.back import rtlil

from rtl.tilebuf import input_beat_layout
from rtl.top import direct_layer_layout
from rtl.window import (
    WindowedDirectAccel,
    WindowGenerator,
    window_fields,
    window_layer_layout,
    window_x_beats,
    windowed_direct_layout,
)
from sim.backend import PysimBackend
from sim.layers import random_direct
from wino_gen import golden, schedule
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import DirectLayer, pack
from wino_gen.limits import int_range
from wino_gen.schedule import (
    READ_LATENCY,
    window_buffer,
    window_cycles,
    window_geometry,
    window_par,
    window_x_order,
)

# tile 2 (n = 4, S = 16): unroll_in 1 -> L = 16, unroll_in 2 -> L = 32; P = 2 channel sets, so
# a 3x3 read (2 groups: 18 or 36 elements) fills a chunk, a 7x7 one (1 group) outlasts it
CFGS = {ui: AcceleratorConfig(tile=2, unroll=2, unroll_in=ui, algo="direct", max_width=16, max_channels=16)
        for ui in (1, 2)}
SIZES = dict(max_width=12, max_channels=6, max_kernel=7)
SMALL = {**SIZES, "max_kernel": 3}     # 1x1 and 3x3 layers: fewer banks, a faster simulation


def _layer(cfg, C, K, H, W, k, s, p, rng):
    """Random int8 input (with both extremes) and weights; the host's spec of the layer."""
    lo, hi = int_range(cfg.act_bits)
    x = rng.integers(lo, hi + 1, (C, H, W))
    x.flat[0], x.flat[-1] = lo, hi
    Wt = rng.integers(-128, 128, (K, C, k, k))
    return x, DirectLayer(cfg, Wt, np.zeros(K, np.int64), y=golden.Requant(1, 0), stride=s, padding=p)


def _run_generator(cfg, case, *, stall, seed, sizes=SIZES):
    C, K, H, W, k, s, p = case
    gen = WindowGenerator(cfg, **sizes)
    g = window_geometry(gen.buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    x, spec = _layer(cfg, C, K, H, W, k, s, p, np.random.default_rng(seed))
    xl = input_beat_layout(cfg)
    beats = [pack(xl, b) for b in window_x_beats(g, gen.buf, x)]
    word = pack(window_layer_layout(gen.buf, cfg), window_fields(g))
    want = spec.x_beats(x)
    out, cycles = PysimBackend(stall=stall, seed=seed).run(gen, word, {"x": beats}, len(want))
    return out, want, cycles, g, gen.buf


# C, K, H, W, k, s, p: kernels 1/3/5/7, strides 1/2, paddings 0..k-1, non-square images,
# channels not a multiple of unroll_in nor of the P groups of a read, several output-channel
# blocks (passes)
STALL_CASES = [
    (1, CFGS[1], (3, 3, 7, 9, 3, 1, 1)),
    (2, CFGS[2], (5, 2, 9, 6, 3, 2, 2)),
    (3, CFGS[1], (2, 3, 11, 9, 7, 2, 3)),
    (4, CFGS[2], (5, 3, 5, 8, 1, 1, 0)),
    (5, CFGS[2], (3, 2, 8, 7, 7, 2, 6)),
    (6, CFGS[1], (5, 2, 6, 10, 1, 2, 0)),
    pytest.param(7, CFGS[2], (3, 4, 7, 5, 5, 1, 4), marks=pytest.mark.slow),
]


def _sizes(case):
    return SIZES if case[4] > 3 else SMALL


def _case_id(v):
    if isinstance(v, tuple):
        C, K, H, W, k, s, p = v
        return f"{k}x{k}s{s}p{p}-C{C}K{K}-{H}x{W}"
    return f"ui{v.unroll_in}" if isinstance(v, AcceleratorConfig) else str(v)


@pytest.mark.parametrize("seed,cfg,case", STALL_CASES, ids=_case_id)
def test_beats_equal_host_im2col_under_stalls(seed, cfg, case):
    out, want, _, g, _ = _run_generator(cfg, case, stall=0.3, seed=seed, sizes=_sizes(case))
    assert len(want) == g.d.steps
    assert out == want


@pytest.mark.parametrize("seed", range(6))
def test_random_layers_beats_and_exact_cycles(seed):
    """Random layers and buffer sizes, no stalls: the beats equal the host's and the cycles
    equal the formula (small ``max_kernel``: 2R rows of slots, so rows wait for free slots;
    ``max_kernel`` 1: more sets, P = n)."""
    rng = np.random.default_rng(100 + seed)
    cfg = CFGS[1 + seed % 2]
    sizes = {**SIZES, "max_kernel": (1, 3, 7)[seed % 3]}
    k = int(rng.integers(1, sizes["max_kernel"] + 1))
    p = int(rng.integers(0, k))
    C = int(rng.integers(1, (2 if k == 7 else SIZES["max_channels"]) + 1))
    H, W = (int(v) for v in rng.integers(max(1, k - 2 * p), SIZES["max_width"] + 1, 2))
    case = (C, int(rng.integers(1, 6)), H, W, k, int(rng.choice([1, 2])), p)
    out, want, cycles, g, buf = _run_generator(cfg, case, stall=0.0, seed=seed, sizes=sizes)
    assert out == want
    assert cycles == window_cycles(g, buf)


@pytest.mark.parametrize("cfg,case,period", [
    (CFGS[1], (2, 2, 9, 8, 7, 2, 3), 7),     # 7x7: a read (49) outlasts a chunk: ceil(2 * 49 / 16)
    (CFGS[1], (5, 1, 4, 5, 3, 1, 1), 3),     # 3x3: 3 reads of 2 groups (18 >= 16): n_step chunks
    (CFGS[2], (3, 2, 6, 5, 3, 2, 1), 1),     # 3x3 s2, ui 2: one read (2 groups, 36) per chunk (27)
    (CFGS[1], (5, 1, 5, 4, 1, 1, 0), 3),     # 1x1: 3 reads of 2 elements, then the zero-filled chunk
    (CFGS[1], (2, 1, 9, 2, 1, 2, 0), 1),     # 1x1 s2: input-bound rows (2 rows per window row)
], ids=["7x7", "3x3", "3x3s2", "1x1", "1x1s2"])
def test_cycles_fill_and_steady_state(cfg, case, period):
    """The formula's two parts: a steady state of one pixel per ``period`` cycles, and
    the fill (a window row waits for its rows, then the read latency)."""
    sizes = _sizes(case)
    out, want, cycles, g, buf = _run_generator(cfg, case, stall=0.0, seed=1, sizes=sizes)
    assert out == want
    assert cycles == window_cycles(g, buf)
    assert g.period == period
    assert (g.period == g.d.n_step) == (g.group >= g.d.lanes or g.reads == 1)


F4 = AcceleratorConfig(tile=4, unroll=2, algo="direct", max_width=16, max_channels=16)   # L = 36, P = 4


@pytest.mark.parametrize("cfg,case", [
    (F4, (6, 2, 4, 8, 1, 2, 0)),          # 1x1 s2: image row 3 is in no window
    (CFGS[1], (6, 2, 6, 6, 3, 2, 0)),     # 3x3 s2, no padding: neither is row 5
], ids=["F4-1x1s2", "F2-3x3s2p0"])
def test_last_chunk_waits_for_rows_no_window_needs(cfg, case):
    """The generator takes every beat of ``x``, also the rows past the last window: its last
    chunk leaves the cycle after the last beat (so that a core's next command finds ``x`` at
    its first beat), later than the windows alone would let it, as ``window_cycles`` says.
    Both layers are input-bound: a beat every cycle from cycle 1."""
    out, want, cycles, g, buf = _run_generator(cfg, case, stall=0.0, seed=2, sizes=SMALL)
    d = g.d
    assert (d.Ho - 1) * d.stride + d.kh - d.pad < d.H
    assert out == want
    assert cycles == window_cycles(g, buf) == g.x_beats + 2


@pytest.mark.parametrize("ui,case", [
    (1, (3, 3, 7, 8, 1, 1, 0)),
    (2, (3, 2, 8, 7, 3, 1, 1)),
    (1, (5, 3, 9, 8, 3, 2, 1)),
    (2, (3, 3, 11, 10, 7, 2, 3)),
], ids=["1x1", "3x3s1", "3x3s2", "7x7s2"])
def test_generator_and_direct_engine_equal_golden(ui, case):
    """The generator in front of the unchanged DirectAccel: a direct convolution equal to
    golden.direct_conv (random stalls on x, w and o; extremes in x and W)."""
    cfg = CFGS[ui]
    C, K, H, W, k, s, p = case
    rng = np.random.default_rng(sum(case))
    x, kw = random_direct(cfg, C, K, H, W, rng, kernel=k, stride=s, padding=p, relu=s == 2, extremes=True)
    want = golden.direct_conv(x, cfg=cfg, **kw)
    assert len(np.unique(want)) > 10
    spec = DirectLayer(cfg, **kw)
    top = WindowedDirectAccel(cfg, **_sizes(case))
    g = window_geometry(top.gen.buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    lay = windowed_direct_layout(top.gen.buf, cfg)
    word = (pack(lay["win"].shape, window_fields(g)) | spec.word(H, W) << lay["eng"].offset)
    assert lay["eng"].shape == direct_layer_layout(cfg)
    xl = input_beat_layout(cfg)
    beats = [pack(xl, b) for b in window_x_beats(g, top.gen.buf, x[0])]
    out, _ = PysimBackend(stall=0.25, seed=3).run(top, word, {"x": beats, "w": spec.w_beats(H, W)},
                                                   g.d.n_out)
    np.testing.assert_array_equal(spec.collect(out, H, W), want[0])


def test_reads_once_per_block_versus_im2col():
    """Input traffic: the image once per output-channel block (n x unroll_in elements a beat)
    against the host's im2col (one L-element chunk a step): 7x7 s2 on 224x224x3 at tile 4,
    unroll 16 (ResNet-18's conv1) and a 3x3 56x56x64 layer."""
    cfg = AcceleratorConfig(tile=4, unroll=16, unroll_in=1, algo="direct", max_width=224, max_channels=512)
    buf = window_buffer(cfg, 224, 64, 7)
    conv1 = window_geometry(buf, cfg, 3, 64, 224, 224, kernel=7, stride=2, padding=3)
    mid = window_geometry(buf, cfg, 64, 64, 56, 56, kernel=3, stride=1, padding=1)
    for g in (conv1, mid):
        assert g.x_beats == sum(1 for _ in window_x_order(g))
        assert g.d.x_beats == sum(1 for _ in schedule.direct_steps(g.d))
    n, L = buf.n, buf.lanes
    assert (conv1.x_beats, conv1.x_beats * n) == (4 * 224 * 3 * 38, 612864)
    assert (conv1.d.x_beats, conv1.d.x_beats * L) == (4 * 112 * 112 * 5, 9031680)
    assert (mid.x_beats * n, mid.d.x_beats * L) == (4 * 56 * 64 * 10 * 6, 4 * 56 * 56 * 16 * 36)
    # conv1's reads (one group of 49) outlast a chunk (36), the 3x3 layer's (4 groups of 9)
    # fill one: both at the engine's rate of a chunk a cycle
    assert (buf.sets, conv1.par, mid.par) == (4, 1, 4)
    assert (conv1.period, conv1.d.n_step) == (5, 5)
    assert (mid.period, mid.d.n_step) == (16, 16)


def _resnet_layer(cfg, C, H, k, s, p):
    buf = window_buffer(cfg, 224, 512, 7)
    g = window_geometry(buf, cfg, C, 2 * cfg.unroll, H, H, kernel=k, stride=s, padding=p)
    return g, window_cycles(g, buf)


@pytest.mark.parametrize("ui", [1, 4])
def test_resnet18_rates_are_the_engines_or_the_inputs(ui):
    """ResNet-18 shapes at tile 4 (unroll 16 x 1, 4 x 4; two output-channel blocks): 3x3 s1
    and 7x7 s2 layers run at a chunk a cycle (within the fill: the first window row's rows and
    each pass's restart); 3x3 s2 and 1x1 s2 ones at the x stream's beat a cycle, which brings
    n columns of unroll_in channels, the image once per block."""
    cfg = AcceleratorConfig(tile=4, unroll=16 // ui, unroll_in=ui, algo="direct", max_width=224, max_channels=512)
    for C, H, k, s, p in ((64, 56, 3, 1, 1), (3, 224, 7, 2, 3)):
        g, cycles = _resnet_layer(cfg, C, H, k, s, p)
        fill = g.d.n_kb * min(k - p, g.d.H) * g.row_beats
        assert g.d.steps < cycles < g.d.steps + fill + 8 * g.d.n_kb
    for C, H, k, s, p in ((64, 56, 3, 2, 1), (128, 28, 1, 2, 0), (256, 14, 1, 2, 0)):
        g, cycles = _resnet_layer(cfg, C, H, k, s, p)
        assert g.x_beats > g.d.steps
        assert g.x_beats < cycles < g.x_beats + g.d.n_kb * (g.row_beats + 8)


def test_reads_take_channel_sets():
    """P sets: enough groups per read for a 3x3 chunk (F2: 2, F4: 4, F6: 8), at most n; a
    read's groups are the fewest that fill a chunk, fewer where the read would outgrow the
    gearbox (a 4x4 or 5x5 kernel next to 7x7)."""
    sets = {}
    for tile in (2, 4, 6):
        cfg = AcceleratorConfig(tile=tile, unroll=2, algo="direct", max_width=64, max_channels=64)
        buf = window_buffer(cfg, 64, 64, 7)
        sets[tile] = buf.sets, [window_par(1, buf.lanes, buf.sets, 7, k) for k in range(1, 8)]
        assert buf.group_max == max(par * k * k for k, par in enumerate(sets[tile][1], 1))
        assert buf.banks == buf.sets * 7 * max(7, buf.n)       # R x Q banks a set
    assert sets == {2: (2, [2, 2, 2, 1, 1, 1, 1]), 4: (4, [4, 4, 4, 2, 1, 1, 1]), 6: (8, [8, 8, 8, 4, 2, 2, 1])}
    one = window_buffer(CFGS[1], 12, 6, 1)
    assert (one.sets, one.rows, one.cols) == (4, 2, 4)         # 1x1 only: n groups a read


@pytest.mark.parametrize("case,sizes", [
    ((3, 6, 5, 6, 3, 1, 1), SMALL),                      # 7 padded rows, a ring of 2R = 6
    ((2, 6, 9, 5, 3, 2, 1), {**SMALL, "max_width": 12}),  # 11 padded rows: rows wait for slots
    ((3, 6, 8, 5, 1, 2, 0), {**SMALL, "max_kernel": 1}),  # 2R = 4: three passes on the ring
], ids=["3x3s1", "3x3s2", "1x1s2"])
def test_passes_overlap_on_the_ring(case, sizes):
    """Three output-channel blocks: the next pass's rows load while the gearbox finishes the
    previous one (as far as their slots on the ring of 2R rows are free), so three passes
    take less than three times one pass; beats and cycles as the schedule says."""
    out, want, cycles, g, buf = _run_generator(CFGS[1], case, stall=0.0, seed=4, sizes=sizes)
    assert out == want
    assert cycles == window_cycles(g, buf)
    one = window_cycles(window_geometry(buf, CFGS[1], *case[:1], 2, *case[2:4], kernel=case[4],
                                        stride=case[5], padding=case[6]), buf)
    assert g.d.n_kb == 3 and cycles < 3 * one
    if case[4] == 3:    # not input-bound: each later pass saves at least its fill's read latency
        assert cycles <= 3 * one - 2 * READ_LATENCY


@pytest.mark.parametrize("sets", [1, 4])
def test_sets_trade_banks_for_speed(sets):
    """One set (a group a read, the smallest line buffer) and more than the default: the same
    beats, cycles as the schedule says; a 3x3 layer slows down with fewer groups a read."""
    case = (5, 2, 5, 6, 3, 1, 1)
    out, want, cycles, g, buf = _run_generator(CFGS[1], case, stall=0.0, seed=3, sizes={**SMALL, "sets": sets})
    assert out == want
    assert cycles == window_cycles(g, buf)
    assert (buf.sets, g.par) == (sets, min(sets, 2))
    assert (g.period > g.d.n_step) == (sets == 1)


@pytest.mark.parametrize("sets", [None, 1])
def test_line_buffer_memories_are_the_schedules(sets):
    """The generator's RAMs (in its RTLIL) are the ``P * R * Q`` banks that
    ``WindowBuffer.memory`` states, plus the FIFO's."""
    gen = WindowGenerator(CFGS[2], **SMALL, sets=sets)
    mem = gen.buf.memory
    text = rtlil.convert(gen)
    assert len(re.findall(rf"memory width {mem.width} size {mem.depth} ", text)) == mem.count
    assert len(re.findall(r"^\s*memory ", text, re.M)) == mem.count + 1
    assert (mem.count, mem.width) == ({None: 2, 1: 1}[sets] * 3 * 4, 16)


def test_x_beats_hold_the_image_once_per_pass():
    cfg = CFGS[2]
    buf = window_buffer(cfg, **SIZES)
    g = window_geometry(buf, cfg, 3, 5, 4, 6, kernel=3, stride=1, padding=1)
    x = np.arange(3 * 4 * 6).reshape(3, 4, 6)
    beats = window_x_beats(g, buf, x)
    assert len(beats) == g.x_beats == g.d.n_kb * 4 * 2 * 2
    kb, y, cg, xb = list(window_x_order(g))[7]
    assert (kb, y, cg, xb) == (0, 1, 1, 1)
    assert beats[7] == [[x[2, 1, 4], 0], [x[2, 1, 5], 0], [0, 0], [0, 0]]


@pytest.mark.parametrize("kw,name", [
    (dict(max_width=16, max_channels=6, max_kernel=0), "max_kernel"),
    (dict(max_width=17, max_channels=6, max_kernel=3), "max_width"),
    (dict(max_width=16, max_channels=5, max_kernel=3), "max_channels"),
    (dict(max_width=12, max_channels=6, max_kernel=3, sets=3), "sets"),
    (dict(max_width=12, max_channels=6, max_kernel=3, sets=0), "sets"),
])
def test_constructor_parameters_are_checked(kw, name):
    with pytest.raises(ValueError, match=name):
        WindowGenerator(CFGS[2], **kw)
    with pytest.raises(ValueError, match="cfg"):
        WindowGenerator(AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=16), **SIZES)


@pytest.mark.parametrize("layer,what", [
    (dict(kernel=9, stride=1, padding=0), "kernel"),
    (dict(kernel=3, stride=3, padding=0), "stride"),
    (dict(kernel=3, stride=1, padding=3), "padding"),
])
def test_layers_that_do_not_fit_are_refused(layer, what):
    buf = window_buffer(CFGS[1], **SIZES)
    with pytest.raises(ValueError, match=what):
        window_geometry(buf, CFGS[1], 2, 2, 10, 10, **layer)
    with pytest.raises(ValueError, match="exceeds max_width"):
        window_geometry(buf, CFGS[1], 2, 2, 13, 10, kernel=3, stride=1, padding=1)
    with pytest.raises(ValueError, match="chunks"):
        window_geometry(buf, CFGS[1], 6, 2, 10, 10, kernel=7, stride=1, padding=1)


def test_windowed_engine_cycles_are_the_generators_plus_the_engine_latency():
    """Without stalls the engine keeps pace with the generator: the whole layer takes
    ``window_cycles`` plus the direct engine's latency (step into the PE array to output)."""
    cfg = CFGS[1]
    C, K, H, W, k, s, p = 4, 3, 9, 8, 3, 2, 1
    x, kw = random_direct(cfg, C, K, H, W, np.random.default_rng(2), kernel=k, stride=s, padding=p)
    spec = DirectLayer(cfg, **kw)
    top = WindowedDirectAccel(cfg, **SMALL)
    g = window_geometry(top.gen.buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    lay = windowed_direct_layout(top.gen.buf, cfg)
    word = pack(lay["win"].shape, window_fields(g)) | spec.word(H, W) << lay["eng"].offset
    beats = [pack(input_beat_layout(cfg), b) for b in window_x_beats(g, top.gen.buf, x[0])]
    out, cycles = PysimBackend().run(top, word, {"x": beats, "w": spec.w_beats(H, W)}, g.d.n_out)
    np.testing.assert_array_equal(spec.collect(out, H, W), golden.direct_conv(x, cfg=cfg, **kw)[0])
    assert cycles == window_cycles(g, top.gen.buf) + schedule.latencies(cfg).direct
