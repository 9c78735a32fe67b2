# amaranth: UnusedElaboratable=no
"""EltwiseAdd and Pool vs golden.add / maxpool / avgpool: random values and extremes, random
stalls on every stream, several commands back to back on one unit, the cycle formulas
exactly, and examples/tiny's ``res`` and ``pool`` layers against their stored outputs."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.eltwise import (
    EltwiseAdd,
    Pool,
    SegmentPacker,
    SegmentSplitter,
    add_params,
)
from sim.streams import Lane, get, pack, put
from wino_gen import golden
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import segment_beats, segment_image
from wino_gen.format import load_model
from wino_gen.limits import ADD_MULT_RANGE
from wino_gen.schedule import add_cycles, pool_cycles, pool_geometry, segment_geometry

STALL = 0.3
PERIOD = 1e-6


def add_watchdog(sim, cycles):
    """Fail, rather than hang, if the testbenches have not finished after ``cycles`` (a unit
    that loses or withholds a beat never lets its sink finish)."""
    async def watchdog(ctx):
        await ctx.delay(cycles * PERIOD)
        raise AssertionError(f"not done after {cycles} cycles")
    sim.add_testbench(watchdog, background=True)


def to_beats(x, lanes):
    """``x[C, H, W]`` as beats of ``lanes`` channels, group by group, each row-major; ``C``
    zero-filled to whole groups (the module doc's stream order)."""
    C, H, W = x.shape
    groups = -(-C // lanes)
    xp = np.zeros((groups * lanes, H, W), dtype=np.int64)
    xp[:C] = x
    blocked = xp.reshape(groups, lanes, H, W).transpose(0, 2, 3, 1).reshape(-1, lanes)
    return [{"data": [int(v) for v in row]} for row in blocked]


def from_beats(beats, C, H, W, lanes):
    groups = -(-C // lanes)
    arr = np.array([b["data"] for b in beats]).reshape(groups, H, W, lanes)
    return arr.transpose(0, 3, 1, 2).reshape(groups * lanes, H, W)[:C]


def simulate(dut, sources, sink_count, *, stall, seed, setup=None):
    """Run ``dut``: each ``(stream, items)`` in ``sources`` put with its own stalls, ``o``
    drained. Returns the output beats and the cycle after the last was taken."""
    rng = np.random.default_rng(seed)
    res = {}

    def source(stream_if, items):
        async def tb(ctx):
            if setup is not None:
                setup(ctx)
            await put(ctx, stream_if, items, rng=rng, stall=stall)
        return tb

    async def sink(ctx):
        lane = Lane.random(rng, stall)
        res["out"] = await get(ctx, dut.o, sink_count, lane=lane)
        res["cycles"] = lane.cycle

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    for stream_if, items in sources:
        sim.add_testbench(source(stream_if, items))
    sim.add_testbench(sink)
    add_watchdog(sim, 10 * sink_count + 500)
    sim.run()
    return res["out"], res["cycles"]


# -- add --------------------------------------------------------------------------------------

def run_add(a, b, params, *, lanes=4, act_bits=8, stall=STALL, seed=0):
    dut = EltwiseAdd(lanes=lanes, act_bits=act_bits)
    out, cycles = simulate(dut, [(dut.a, to_beats(a, lanes)), (dut.b, to_beats(b, lanes))],
                           len(to_beats(a, lanes)), stall=stall, seed=seed,
                           setup=lambda ctx: ctx.set(dut.params.as_value(), pack(dut.params.shape(), params)))
    return from_beats(out, *a.shape, lanes), cycles


MULT_MAX = ADD_MULT_RANGE[1]


@pytest.mark.parametrize("a_mult, b_mult, shift, relu", [
    (8192, 4164, 14, True),            # examples/tiny's res
    (MULT_MAX, MULT_MAX, 31, False),   # the largest sum, the largest shift
    (MULT_MAX, 1, 0, False),           # no shift: saturates at both ends
    (0, MULT_MAX, 9, True),
    (3, 5, 1, False),                  # round half up on odd sums
])
def test_add_matches_golden(a_mult, b_mult, shift, relu):
    rng = np.random.default_rng(a_mult + shift)
    a = rng.integers(-128, 128, size=(6, 3, 5))
    b = rng.integers(-128, 128, size=(6, 3, 5))
    a[0, 0], b[0, 0] = 127, 127
    a[0, 1], b[0, 1] = -128, -128
    a[0, 2], b[0, 2] = 127, -128
    got, _ = run_add(a, b, add_params(a_mult, b_mult, shift, relu), seed=shift)
    want = golden.add(a, b, a_mult=a_mult, b_mult=b_mult, shift=shift, relu=relu)
    np.testing.assert_array_equal(got, want)


def test_add_four_bit_activations():
    rng = np.random.default_rng(11)
    a, b = rng.integers(-8, 8, size=(2, 3, 3, 4))
    a[0, 0], b[0, 0] = 7, -8
    for a_mult, b_mult, shift, relu in ((MULT_MAX, 1, 0, False), (700, 300, 8, True)):
        got, _ = run_add(a, b, add_params(a_mult, b_mult, shift, relu), lanes=3, act_bits=4, seed=shift)
        np.testing.assert_array_equal(got, golden.add(a, b, a_mult=a_mult, b_mult=b_mult, shift=shift,
                                                      relu=relu, bits=4))


def test_add_cycles_exact():
    a = np.arange(-64, 64).reshape(8, 4, 4)
    got, cycles = run_add(a, -a, add_params(1, 2, 1, False), stall=0.0)
    np.testing.assert_array_equal(got, golden.add(a, -a, a_mult=1, b_mult=2, shift=1))
    assert cycles == add_cycles(len(to_beats(a, 4)))


def test_add_params_refuses_out_of_range():
    with pytest.raises(ValueError, match="a_mult"):
        add_params(MULT_MAX + 1, 1, 0, False)
    with pytest.raises(ValueError, match="shift"):
        add_params(1, 1, 32, False)


# -- pools ------------------------------------------------------------------------------------

def pool_golden(x, op, bits):
    kind, k, s, p, mult, shift = op
    if kind == "max":
        return golden.maxpool(x[None], kernel=k, stride=s, padding=p, bits=bits)[0]
    return golden.avgpool(x[None], kernel=k, stride=s, mult=mult, shift=shift, bits=bits)[0]


def run_pools(dut, jobs, *, stall=STALL, seed=0):
    """Pool each ``(x, op)`` of ``jobs`` in turn on one unit (commands back to back). Returns
    the outputs, the cycles from the first command offered to each command taken, and the
    cycle after the last output beat."""
    lanes, cmds, beats, shapes = dut.lanes, [], [], []
    for x, (kind, k, s, p, mult, shift) in jobs:
        C, H, W = x.shape
        g = pool_geometry(H, W, k, s, p)
        cmds.append(dut.command(g, groups=-(-C // lanes), avg=kind == "avg", mult=mult, shift=shift))
        beats += to_beats(x, lanes)
        shapes.append((g, C))
    rng = np.random.default_rng(seed)
    res = {"taken": []}

    async def commands(ctx):
        lane = Lane.random(rng, stall)
        for cmd in cmds:
            await put(ctx, dut.cmd, [cmd], lane=lane)
            res["taken"].append(lane.cycle - 1)

    async def inputs(ctx):
        await put(ctx, dut.i, beats, rng=rng, stall=stall)

    async def sink(ctx):
        lane = Lane.random(rng, stall)
        n = sum(-(-C // lanes) * g.oh * g.ow for g, C in shapes)
        res["out"] = await get(ctx, dut.o, n, lane=lane)
        res["end"] = lane.cycle

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    for tb in (commands, inputs, sink):
        sim.add_testbench(tb)
    add_watchdog(sim, 10 * (len(beats) + sum(g.rows * g.cols for g, _ in shapes)) + 500)
    sim.run()
    outs, at = [], 0
    for g, C in shapes:
        n = -(-C // lanes) * g.oh * g.ow
        outs.append(from_beats(res["out"][at:at + n], C, g.oh, g.ow, lanes))
        at += n
    return outs, res["taken"], res["end"]


def check_pools(dut, jobs, **kw):
    outs, taken, end = run_pools(dut, jobs, **kw)
    for (x, op), got in zip(jobs, outs, strict=True):
        np.testing.assert_array_equal(got, pool_golden(x, op, dut.act_bits), err_msg=str(op))
    return taken, end


def test_maxpool_stem_and_2x2_and_padded_stride1():
    """ResNet-18's stem pool (3x3 s2 p1), 2x2 s2, and 3x3 s1 p1 (whose last windows lie in
    the bottom/right padding: virtual positions), back to back, 6 channels on 4 lanes."""
    rng = np.random.default_rng(1)
    dut = Pool(lanes=4, max_width=12, max_kernel=3, max_groups=2)
    x = rng.integers(-128, 128, size=(6, 11, 12))
    x[0, :4, :4] = -128                 # a window of the smallest value, at the padded corner
    x[1, -3:, -3:] = 127
    jobs = [(x, ("max", 3, 2, 1, 1, 0)), (x[:, :10, :10], ("max", 2, 2, 0, 1, 0)),
            (x[:5, :7, :9], ("max", 3, 1, 1, 1, 0)), (x[:, :5, :6], ("max", 3, 3, 0, 1, 0))]
    check_pools(dut, jobs, seed=2)


def test_avgpool_global_and_extremes():
    """Global average pools (k = the whole image, 5x5 and 7x7), a 2x2 s2 avgpool that
    saturates (mult at its limit, no shift), all +127 / all -128 images, and a maxpool after
    them on the same unit (the mode switch)."""
    rng = np.random.default_rng(3)
    dut = Pool(lanes=4, max_width=8, max_kernel=7, max_groups=4)
    x5 = rng.integers(-128, 128, size=(16, 5, 5))
    x7 = rng.integers(-128, 128, size=(5, 7, 7))
    x7[0], x7[1] = 127, -128
    x8 = rng.integers(-128, 128, size=(8, 8, 8))
    jobs = [(x5, ("avg", 5, 5, 0, 2621, 16)), (x7, ("avg", 7, 7, 0, 1337, 16)),
            (x8, ("avg", 2, 2, 0, 65535, 0)), (x8, ("avg", 3, 1, 0, 65535, 31)),
            (x7, ("max", 7, 1, 3, 1, 0))]
    check_pools(dut, jobs, seed=4)


def test_pool_one_lane_four_bits():
    """One value per beat, 4-bit activations: padding is -8, avgpool saturates at -8..7."""
    rng = np.random.default_rng(6)
    dut = Pool(lanes=1, max_width=6, max_kernel=3, max_groups=3, act_bits=4)
    x = rng.integers(-8, 8, size=(3, 5, 6))
    x[0] = -8
    check_pools(dut, [(x, ("max", 3, 2, 1, 1, 0)), (x, ("avg", 2, 2, 0, 3, 1))], seed=7)


def test_pool_cycles_exact():
    """No stalls: each command is taken ``pool_cycles`` after the one before, and the last
    output leaves in the cycle before the next command could be taken."""
    rng = np.random.default_rng(5)
    dut = Pool(lanes=2, max_width=9, max_kernel=4, max_groups=3)
    x = rng.integers(-128, 128, size=(5, 9, 9))
    ops = [("max", 3, 2, 1, 1, 0), ("avg", 4, 4, 0, 4096, 16), ("max", 2, 1, 1, 1, 0), ("avg", 3, 2, 0, 7, 6)]
    jobs = [(x, op) for op in ops]
    taken, end = check_pools(dut, jobs, stall=0.0)
    want = np.cumsum([0] + [pool_cycles(pool_geometry(9, 9, k, s, p), 3, 4) for _, k, s, p, _, _ in ops])
    assert taken == list(want[:-1])
    assert end == want[-1]


def test_pool_refuses_what_it_cannot_take():
    with pytest.raises(ValueError, match="max_kernel"):
        Pool(lanes=1, max_width=8, max_kernel=1, max_groups=1)
    dut = Pool(lanes=1, max_width=8, max_kernel=3, max_groups=2)
    with pytest.raises(ValueError, match="kernel"):
        dut.command(pool_geometry(8, 8, 4, 4), groups=1, avg=False)
    with pytest.raises(ValueError, match="W"):
        dut.command(pool_geometry(4, 9, 2, 2), groups=1, avg=False)
    with pytest.raises(ValueError, match="padding"):
        dut.command(pool_geometry(8, 8, 3, 2, 1), groups=1, avg=True, mult=1, shift=0)
    with pytest.raises(ValueError, match="padding"):
        pool_geometry(8, 8, 3, 2, 2)


# -- examples/tiny ----------------------------------------------------------------------------

def test_tiny_res_and_pool_layers():
    """examples/tiny's ``add`` (res) and global ``avgpool`` (pool) on their stored inputs give
    their stored outputs, every sample."""
    model = load_model("examples/tiny")
    res, pool = model.layer("res"), model.layer("pool")
    a = res.arrays
    params = add_params(int(a["a_mult"]), int(a["b_mult"]), int(a["shift"]), res.spec["relu"])
    for i in range(len(a["x"])):
        got, _ = run_add(a["x"][i].astype(np.int64), a["x2"][i].astype(np.int64), params, lanes=8, seed=i)
        np.testing.assert_array_equal(got, a["y"][i])
    p, s = pool.arrays, pool.spec
    dut = Pool(lanes=8, max_width=5, max_kernel=5, max_groups=2)
    op = ("avg", s["kernel"], s["stride"], 0, int(p["mult"]), int(p["shift"]))
    outs, _, _ = run_pools(dut, [(x.astype(np.int64), op) for x in p["x"]], seed=9)
    for got, want in zip(outs, p["y"], strict=True):
        np.testing.assert_array_equal(got, want)


# -- row segments -----------------------------------------------------------------------------

def _segments(C, H, W, n, ui, seed):
    """A random tensor, its segment geometry (n columns, ui channels) and segments."""
    x = np.random.default_rng(seed).integers(-128, 128, size=(C, H, W))
    cfg = AcceleratorConfig(tile=n - 2, unroll=2, unroll_in=ui, max_width=16, max_channels=16)
    g = segment_geometry(cfg, C, H, W)
    return x, g, segment_beats(g, x)


@pytest.mark.parametrize("C,H,W,n,ui", [(5, 3, 7, 4, 2), (3, 2, 12, 6, 1), (2, 3, 1, 4, 1)])
def test_segments_split_into_pixels_and_pack_back(C, H, W, n, ui):
    """A segment's real columns (``W`` not a multiple of n: short last segments) leave the
    splitter as pixels in the pool's stream order; the packer rebuilds the segments, zeros
    past the row; under stalls on both sides, and the host encoders invert each other."""
    x, g, segs = _segments(C, H, W, n, ui, seed=C * W)
    np.testing.assert_array_equal(segment_image(g, segs), x)
    seg = dict(n=n, lanes=ui, act_bits=8, max_width=16)
    split = SegmentSplitter(**seg)
    pixels, _ = simulate(split, [(split.i, segs)], g.groups * H * W, stall=STALL, seed=1,
                         setup=lambda ctx: ctx.set(split.w, W))
    np.testing.assert_array_equal(from_beats(pixels, C, H, W, ui), x)
    pack_ = SegmentPacker(**seg)
    got, _ = simulate(pack_, [(pack_.i, pixels)], len(segs), stall=STALL, seed=2,
                      setup=lambda ctx: ctx.set(pack_.w, W))
    assert got == segs


def test_segments_one_pixel_a_cycle():
    """No stalls: the splitter gives a pixel every cycle (segments offered one a cycle), the
    packer a segment the cycle after its last pixel."""
    x, g, segs = _segments(2, 2, 9, 4, 1, seed=3)
    split = SegmentSplitter(n=4, lanes=1, act_bits=8, max_width=16)
    pixels, cycles = simulate(split, [(split.i, segs)], 2 * 2 * 9, stall=0.0, seed=0,
                              setup=lambda ctx: ctx.set(split.w, 9))
    assert cycles == 1 + len(pixels)


def test_segment_units_check_their_parameters():
    with pytest.raises(ValueError, match="lanes"):
        SegmentSplitter(n=4, lanes=0, act_bits=8, max_width=8)
    with pytest.raises(ValueError, match="max_width"):
        SegmentPacker(n=4, lanes=1, act_bits=8, max_width=0)
