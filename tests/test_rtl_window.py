# amaranth: UnusedElaboratable=no
"""The on-chip window generator (rtl.window): its output beats equal the host's im2col chunks
(``DirectLayer.x_beats``) beat for beat under random stalls, its cycles equal
``window_cycles`` exactly, and in front of the unchanged direct engine it computes
``golden.direct_conv``."""

import numpy as np
import pytest

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
from wino_gen.schedule import window_buffer, window_cycles, window_geometry, window_x_order

# tile 2 (n = 4, S = 16): unroll_in 1 -> L = 16 (a 3x3 group is shorter than a chunk, a 7x7
# one longer); unroll_in 2 -> L = 32
CFGS = {ui: AcceleratorConfig(tile=2, unroll=2, unroll_in=ui, algo="direct", max_width=16, max_channels=16)
        for ui in (1, 2)}
SIZES = dict(max_width=12, max_channels=6, max_kernel=7)


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
# channels not a multiple of unroll_in, several output-channel blocks (passes)
STALL_CASES = [
    (1, CFGS[1], (3, 3, 7, 9, 3, 1, 1)),
    (2, CFGS[2], (3, 2, 9, 6, 3, 2, 2)),
    (3, CFGS[1], (2, 3, 11, 9, 7, 2, 3)),
    (4, CFGS[2], (5, 3, 5, 8, 1, 1, 0)),
    (5, CFGS[2], (2, 2, 8, 7, 7, 2, 6)),
    (6, CFGS[1], (4, 2, 6, 10, 1, 2, 0)),
    (7, CFGS[2], (3, 4, 7, 5, 5, 1, 4)),
]


def _case_id(v):
    if isinstance(v, tuple):
        C, K, H, W, k, s, p = v
        return f"{k}x{k}s{s}p{p}-C{C}K{K}-{H}x{W}"
    return f"ui{v.unroll_in}" if isinstance(v, AcceleratorConfig) else str(v)


@pytest.mark.parametrize("seed,cfg,case", STALL_CASES, ids=_case_id)
def test_beats_equal_host_im2col_under_stalls(seed, cfg, case):
    out, want, _, g, _ = _run_generator(cfg, case, stall=0.3, seed=seed)
    assert len(want) == g.d.steps
    assert out == want


@pytest.mark.parametrize("seed", range(8))
def test_random_layers_beats_and_exact_cycles(seed):
    """Random layers and buffer sizes, no stalls: the beats equal the host's and the cycles
    equal the formula (small ``max_kernel``: 2R rows of slots, so rows wait for free slots)."""
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


@pytest.mark.parametrize("cfg,case", [
    (CFGS[1], (2, 2, 9, 8, 7, 2, 3)),     # groups longer than a chunk: period n_step
    (CFGS[1], (4, 1, 4, 5, 3, 1, 1)),     # shorter: the pixel's groups plus the flush
    (CFGS[1], (2, 1, 9, 2, 1, 2, 0)),     # input-bound rows (1x1, 2 rows per window row)
], ids=["7x7", "3x3", "1x1s2"])
def test_cycles_fill_and_steady_state(cfg, case):
    """The formula's two parts: a steady state of one pixel per ``period`` cycles, and
    the fill (a window row waits for its rows, then the read latency)."""
    out, want, cycles, g, buf = _run_generator(cfg, case, stall=0.0, seed=1)
    assert out == want
    assert cycles == window_cycles(g, buf)
    d = g.d
    if case[4] == 7:
        assert g.period == d.n_step == 7           # ceil(2 * 49 / 16): the engine's rate
    if case[4] == 3:
        assert (g.period, d.n_step) == (5, 3)      # 4 groups of 9, then the zero-filled chunk


@pytest.mark.parametrize("ui,case", [
    (1, (3, 3, 7, 8, 1, 1, 0)),
    (2, (3, 2, 8, 7, 3, 1, 1)),
    (1, (4, 3, 9, 8, 3, 2, 1)),
    (2, (2, 3, 11, 10, 7, 2, 3)),
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
    top = WindowedDirectAccel(cfg, **SIZES)
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
    # conv1's groups (49) outlast a chunk (36): the engine's rate; the 3x3 layer's (9) do not
    assert (conv1.period, conv1.d.n_step) == (5, 5)
    assert (mid.period, mid.d.n_step) == (64, 16)


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
    top = WindowedDirectAccel(cfg, **SIZES)
    g = window_geometry(top.gen.buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    lay = windowed_direct_layout(top.gen.buf, cfg)
    word = pack(lay["win"].shape, window_fields(g)) | spec.word(H, W) << lay["eng"].offset
    beats = [pack(input_beat_layout(cfg), b) for b in window_x_beats(g, top.gen.buf, x[0])]
    out, cycles = PysimBackend().run(top, word, {"x": beats, "w": spec.w_beats(H, W)}, g.d.n_out)
    np.testing.assert_array_equal(spec.collect(out, H, W), golden.direct_conv(x, cfg=cfg, **kw)[0])
    assert cycles == window_cycles(g, top.gen.buf) + schedule.latencies(cfg).direct
