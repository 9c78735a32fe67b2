# amaranth: UnusedElaboratable=no
"""The compute core (rtl.core): Winograd and direct convolutions on one PE array, a mode per
command, bit-exact against golden through the host encoders sim uses, with random stalls on
x, w and o; every command's cycles equal ``wino_gen.perf.core_cycles``, back to back in mixed
modes on one core; the direct-only build computes the same beats in the same cycles."""

import itertools
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from rtl.core import Core, command_word, core_layer_layout, core_out_layout, eltwise_word, mode_number
from rtl.eltwise import add_params
from rtl.tilebuf import input_beat_layout
from rtl.top import build_top
from rtl.window import window_fields, window_x_beats
from sim.backend import PysimBackend
from sim.layers import random_direct, random_winograd
from sim.streams import Lane, Stalls, get, put
from wino_gen import golden, network, perf, schedule
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import DirectLayer, WinogradLayer, pack, segment_beats, segment_image, unpack
from wino_gen.format import INPUT, load_model
from wino_gen.limits import ADD_MULT_RANGE, AVGPOOL_MULT_RANGE, int_range


def _cfg(tile, unroll, ui, gran="layer", mode="pow2"):
    return AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, granularity=gran, requant=mode,
                             max_width=16, max_channels=16, max_tap_shift=2)


F2 = _cfg(2, 2, 1)                       # S = 16: both builds' direct latencies agree
F4 = _cfg(4, 2, 2, "tap", "fixed")       # S = 36, unroll_in 2


class Command:
    """One command for a core: its word, input beats, output count, and how to read its
    outputs back (the host encoder's ``collect``), with the golden result and its model
    cycles."""

    def __init__(self, core, mode, C, K, H, W, seed, *, kernel=3, stride=1, padding=1, relu=True, given=None):
        """A random layer of this shape (``seed``), or ``given``: ``(x[1, C, H, W], kwargs)``
        as ``sim.layers``' generators return them."""
        cfg, rng = core.cfg, np.random.default_rng(seed)
        lay = core.layer.shape()
        self.mode, self.H, self.W = mode, H, W
        self.cycles = perf.core_cycles(cfg, mode, C, K, H, W, kernel=kernel, stride=stride, padding=padding,
                                       max_kernel=core.max_kernel, direct_only=core.direct_only)
        if mode == "winograd":
            x, kw = given or random_winograd(cfg, C, K, H, W, rng, padding=padding, relu=relu, extremes=True)
            self.want = golden.winograd_conv3x3(x, tile=cfg.tile, cfg=cfg, **kw)[0]
            self.spec = spec = WinogradLayer(cfg, **kw)
            self.word = command_word(lay, mode, spec.word(H, W))
            self.x, self.n_out = spec.x_beats(x[0]), spec.geometry(H, W).n_out
        else:
            dcfg = core.dcfg
            x, kw = given or random_direct(dcfg, C, K, H, W, rng, kernel=kernel, stride=stride, padding=padding,
                                           relu=relu, extremes=True)
            self.want = golden.direct_conv(x, cfg=dcfg, **kw)[0]
            if mode == "linear":     # golden's linear on the flattened input: the same numbers
                lin = golden.linear(x.reshape(1, C), kw["W"].reshape(K, C), kw["bias"], y=kw["y"], relu=kw["relu"])
                np.testing.assert_array_equal(lin[0], self.want.reshape(K))
            self.spec = spec = DirectLayer(dcfg, min_steps=schedule.writer_beat_cycles(dcfg, "direct"), **kw)
            g = schedule.core_window_geometry(dcfg, core.buf, C, K, H, W, kernel=kernel, stride=stride, padding=padding)
            dl = lay["direct"].shape
            word = pack(dl["win"].shape, window_fields(g)) | spec.word(H, W) << dl["eng"].offset
            self.word = command_word(lay, mode, word)
            xl = input_beat_layout(cfg)
            self.x, self.n_out = [pack(xl, b) for b in window_x_beats(g, core.buf, x[0])], g.d.n_out
        self.w, self.x2 = spec.w_beats(H, W), []

    def result(self, beats):
        return self.spec.collect(beats, self.H, self.W)


def _extreme_image(rng, C, H, W, bits=8):
    """Random activations with +max and -min corners in every channel."""
    lo, hi = int_range(bits)
    x = rng.integers(lo, hi + 1, size=(C, H, W))
    x[:, 0, 0], x[:, -1, -1] = hi, lo
    return x


class EltCommand:
    """An ``add`` / ``maxpool`` / ``avgpool`` command for a core on ``x[C, H, W]`` (and
    ``x2``), its row segments, the golden result and its model cycles. ``op``: the add's
    ``(a_mult, b_mult, shift, relu)`` or the pool's ``(kernel, stride, padding, mult, shift)``."""

    def __init__(self, core, mode, x, op, x2=None):
        cfg, lay = core.cfg, core.layer.shape()
        C, H, W = x.shape
        gi = schedule.segment_geometry(cfg, C, H, W)
        xl = input_beat_layout(cfg)
        self.mode, self.w, self.x = mode, [], [pack(xl, b) for b in segment_beats(gi, x)]
        if mode == "add":
            a_mult, b_mult, shift, relu = op
            self.want = golden.add(x, x2, a_mult=a_mult, b_mult=b_mult, shift=shift, relu=relu)
            self.x2 = [pack(xl, b) for b in segment_beats(gi, x2)]
            self.go = gi
            word = eltwise_word(lay, beats=gi.beats, add=add_params(*op))
        else:
            k, s, p, mult, shift = op
            pg = schedule.pool_geometry(H, W, k, s, p)
            avg = mode == "avgpool"
            self.want = (golden.avgpool(x[None], kernel=k, stride=s, mult=mult, shift=shift) if avg else
                         golden.maxpool(x[None], kernel=k, stride=s, padding=p))[0]
            self.x2, self.go = [], schedule.segment_geometry(cfg, C, pg.oh, pg.ow)
            pool = core.pool_fields(pg, groups=gi.groups, avg=avg, mult=mult, shift=shift)
            word = eltwise_word(lay, beats=self.go.beats, pool=pool)
        kw = {} if mode == "add" else dict(kernel=op[0], stride=op[1], padding=op[2])
        self.cycles = perf.core_eltwise_cycles(cfg, mode, C, H, W, max_pool=core.max_pool, **kw)
        self.word, self.n_out = command_word(lay, mode, word), self.go.beats
        self.olay, self.seg = core_out_layout(cfg), cfg.n * cfg.unroll_in

    def result(self, beats):
        return segment_image(self.go, [unpack(self.olay, b)[:self.seg] for b in beats])


def run_commands(core, cmds, *, stall=0.0, seed=0):
    """The commands back to back on one core (no reset between them): each starts in the
    cycle ``busy`` is seen low, its x and w beats from the cycle after; x, w and o stall as
    ``stall``/``seed`` say. Returns each command's output beats and cycles (start to the
    next start: up to and including its last output beat's cycle)."""
    stalls = Stalls(stall, seed)
    starts, res = [], {}

    async def control(ctx):
        cycle = 0
        for c in cmds:
            ctx.set(core.layer.as_value(), c.word)
            ctx.set(core.start, 1)
            starts.append(cycle)
            await ctx.tick()
            ctx.set(core.start, 0)
            cycle += 1
            while ctx.get(core.busy):
                await ctx.tick()
                cycle += 1
        starts.append(cycle)

    def feeder(name):
        async def feed(ctx):
            for i, c in enumerate(cmds):
                while not (await ctx.tick().sample(core.start))[2]:
                    pass
                await put(ctx, getattr(core, name), getattr(c, name), lane=Lane(stalls, f"{name}{i}"),
                          packed=True)
        return feed

    async def sink(ctx):
        res["o"] = await get(ctx, core.o, sum(c.n_out for c in cmds), lane=Lane(stalls, "o"), raw=True)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    for tb in (control, feeder("x"), feeder("x2"), feeder("w"), sink):
        sim.add_testbench(tb)
    sim.run()
    outs, at = [], 0
    for c in cmds:
        outs.append(res["o"][at:at + c.n_out])
        at += c.n_out
    return outs, [b - a for a, b in itertools.pairwise(starts)]


def _check(cmd, beats):
    np.testing.assert_array_equal(cmd.result(beats), cmd.want)


def _saturates(want, relu, bits=8):
    lo, hi = int_range(bits)
    return (want == hi).any() and (relu or (want == lo).any())


WINOGRAD = [   # cfg, C, K, H, W, relu: channels not multiples of unroll / unroll_in, partial tiles
    (F2, 3, 3, 7, 6, False),
    (F4, 3, 3, 6, 9, True),
]


@pytest.mark.parametrize("cfg,C,K,H,W,relu", WINOGRAD, ids=["F2-layer-pow2", "F4-tap-fixed"])
def test_winograd_command(cfg, C, K, H, W, relu):
    core = Core(cfg, max_kernel=3)
    cmd = Command(core, "winograd", C, K, H, W, seed=C + H, relu=relu)
    assert _saturates(cmd.want, relu) and len(np.unique(cmd.want)) > 20
    (beats,), _ = run_commands(core, [cmd], stall=0.25, seed=7)
    _check(cmd, beats)


DIRECT = [   # cfg, C, K, H, W, kernel, stride, padding
    (F2, 3, 3, 6, 7, 1, 1, 0),
    (F2, 3, 3, 6, 7, 3, 1, 1),
    (F4, 5, 3, 8, 7, 3, 2, 1),
]


@pytest.mark.parametrize("cfg,C,K,H,W,k,s,p", DIRECT, ids=["F2-1x1", "F2-3x3s1", "F4-3x3s2"])
def test_direct_command(cfg, C, K, H, W, k, s, p):
    core = Core(cfg, max_kernel=3)
    cmd = Command(core, "direct", C, K, H, W, seed=C + k + s, kernel=k, stride=s, padding=p, relu=s == 1)
    assert len(np.unique(cmd.want)) > 10 and _saturates(cmd.want, relu=True)    # the y requant saturates
    (beats,), _ = run_commands(core, [cmd], stall=0.25, seed=k + s)
    _check(cmd, beats)


@pytest.mark.slow
def test_linear_command():
    """``linear`` (C inputs, K outputs) as a 1x1 convolution of a 1x1 image: golden's
    ``linear``, outputs that saturate, cycles the model's, then one again under stalls; C and
    K not multiples of unroll / unroll_in."""
    core = Core(F4, max_kernel=3)
    cmds = [Command(core, "linear", 13, 11, 1, 1, seed=s, kernel=1, stride=1, padding=0, relu=s == 1)
            for s in (1, 2)]
    assert np.isin(cmds[1].want, int_range(8)).any() and len(np.unique(cmds[1].want)) > 5
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]
    (beats,), _ = run_commands(core, cmds[1:], stall=0.3, seed=3)
    _check(cmds[1], beats)


@pytest.mark.slow
def test_f6_commands():
    """F6 (n = 8, 64 taps) on the core: Winograd (tap scales, fixed requant, partial tiles),
    direct 3x3 s2 on the same 64-lane array, a maxpool; cycles the model's (stalls: the same
    handshakes as F2/F4, tested there)."""
    core = Core(_cfg(6, 2, 1, "tap", "fixed"), max_kernel=3)
    x = _extreme_image(np.random.default_rng(0), 3, 9, 10)
    cmds = [Command(core, "winograd", 3, 3, 9, 10, seed=1),
            Command(core, "direct", 3, 3, 7, 9, seed=2, kernel=3, stride=2, padding=1),
            EltCommand(core, "maxpool", x, (3, 2, 1, 1, 0)),
            Command(core, "winograd", 2, 3, 6, 8, seed=3, relu=False)]
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]
    assert _saturates(cmds[0].want, relu=True) and len(np.unique(cmds[3].want)) > 20


def _mixed(core):
    """A sequence that switches modes after every command, Winograd first and last."""
    return [Command(core, "winograd", 3, 3, 7, 6, seed=1),
            Command(core, "direct", 3, 3, 6, 7, seed=2, kernel=3, stride=2, padding=1, relu=False),
            Command(core, "direct", 4, 3, 5, 6, seed=3, kernel=1, stride=1, padding=0),
            Command(core, "winograd", 2, 3, 5, 5, seed=4, relu=False)]


@pytest.mark.parametrize("cfg", [F2, F4], ids=["F2", "F4"])
def test_mixed_commands_cycles_equal_the_model(cfg):
    """Back to back on one core without reset, no stalls: every command's cycles (the mode
    switch included) equal ``perf.core_cycles``, and every result equals golden."""
    core = Core(cfg, max_kernel=3)
    cmds = _mixed(core)
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]


def test_mixed_commands_under_stalls():
    core = Core(F2, max_kernel=3)
    cmds = _mixed(core)
    outs, cycles = run_commands(core, cmds, stall=0.3, seed=11)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert all(n > c.cycles for n, c in zip(cycles, cmds, strict=True))     # the stalls cost cycles


def test_activations_wider_than_v():
    """transform_bits 6 < act_bits 8: the dual array takes 8-bit values and its accumulators
    are the direct products' width, wider than the Winograd output stage's (a lane narrowed
    where it enters it); one command of each mode, cycles as the model says."""
    cfg = AcceleratorConfig(tile=2, unroll=2, transform_bits=6, max_width=16, max_channels=16)
    core = Core(cfg, max_kernel=3)
    assert schedule.dual_pe(cfg).accumulator > cfg.widths.accumulator
    cmds = [Command(core, "winograd", 3, 3, 5, 6, seed=8),
            Command(core, "direct", 3, 3, 5, 6, seed=9, kernel=3, stride=1, padding=1)]
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]


def test_direct_only_equals_dual_cycle_for_cycle():
    """The direct-only build (Winograd mode compiled out) gives the dual core's beats in the
    same cycles, with and without stalls, and the model predicts both."""
    runs = {}
    for direct_only in (False, True):
        core = Core(F2, max_kernel=3, direct_only=direct_only)
        cmds = [Command(core, "direct", 3, 3, 5, 4, seed=5, kernel=3, stride=1, padding=1),
                Command(core, "direct", 2, 3, 6, 5, seed=6, kernel=3, stride=2, padding=1, relu=False)]
        still = run_commands(core, cmds)
        assert still[1] == [c.cycles for c in cmds]
        runs[direct_only] = still, run_commands(core, cmds, stall=0.3, seed=2)
        for c, beats in zip(cmds, runs[direct_only][1][0], strict=True):
            _check(c, beats)
    assert runs[False] == runs[True]
    assert schedule.core_latencies(F2).direct == schedule.core_latencies(F2, direct_only=True).direct


def _eltwise_sequence(core, seed):
    """add (examples/tiny's parameters; the largest mults with no shift: saturates at both
    ends), maxpool 3x3 s2 p1 (windows reach the padded corner), 2x2 s2 (trailing row and
    column no window reaches), avgpool 3x3 s1 and a global one, channels not a multiple of
    unroll_in, widths not a multiple of n."""
    rng = np.random.default_rng(seed)
    mx = ADD_MULT_RANGE[1]
    x, x2 = _extreme_image(rng, 3, 5, 7), _extreme_image(rng, 3, 5, 7)
    x2[:, 0, 0] = int_range(8)[1]
    g = _extreme_image(rng, 5, 4, 4)
    return [EltCommand(core, "add", x, (8192, 4164, 14, True), x2),
            EltCommand(core, "add", x, (mx, mx, 0, False), -1 - x2),
            EltCommand(core, "maxpool", x, (3, 2, 1, 1, 0)),
            EltCommand(core, "maxpool", x, (2, 2, 0, 1, 0)),
            EltCommand(core, "avgpool", x, (3, 1, 0, 7282, 16)),
            EltCommand(core, "avgpool", g, (4, 4, 0, AVGPOOL_MULT_RANGE[1], 19))]


@pytest.mark.parametrize("cfg", [F2, F4], ids=["F2", "F4"])
def test_eltwise_commands_cycles_equal_the_model(cfg):
    """add, maxpool and avgpool back to back on one core, between convolutions (each mode
    switch): golden's results, every command's cycles the model's."""
    core = Core(cfg, max_kernel=3, max_pool=4)
    elt = _eltwise_sequence(core, 1)
    cmds = [Command(core, "direct", 3, 2, 5, 6, seed=2, kernel=1, stride=1, padding=0), *elt[:3],
            Command(core, "winograd", 3, 3, 5, 5, seed=4), *elt[3:]]
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]
    adds = [c.want for c in elt[:2]]
    assert (adds[0] == 0).any() and (adds[1] == 127).any() and (adds[1] == -128).any()   # ReLU; saturation


@pytest.mark.parametrize("direct_only", [False, True], ids=["dual", "direct-only"])
def test_eltwise_commands_under_stalls(direct_only):
    core = Core(F4, max_kernel=3, max_pool=4, direct_only=direct_only)
    cmds = _eltwise_sequence(core, 3)
    outs, cycles = run_commands(core, cmds, stall=0.3, seed=5)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    # stalls never help; a global pool's few segments (a row each) and 3 outputs hide them
    assert all(n >= c.cycles for n, c in zip(cycles, cmds, strict=True)) and cycles[0] > cmds[0].cycles


def test_pool_limits_are_the_cores():
    core = Core(F2, max_kernel=3)
    with pytest.raises(ValueError, match="kernel"):
        core.pool_fields(schedule.pool_geometry(8, 8, 4, 4), groups=1, avg=False)
    with pytest.raises(ValueError, match="groups"):
        core.pool_fields(schedule.pool_geometry(8, 8, 2, 2), groups=17, avg=False)


def tiny_command(core, model, layer, inputs):
    """``layer`` of ``model`` on ``inputs`` (``[C, H, W]`` each) as a core command, encoded
    with the host encoders from the layer's stored parameters."""
    a, s, x = layer.arrays, layer.spec, inputs[0]
    C, H, W = x.shape
    if layer.op == "winograd_conv3x3":
        kw = dict(U=network.winograd_weights(model, layer), bias=a["bias"], v=network.requant(layer, "v"),
                  m=network.requant(layer, "m"), y=network.requant(layer, "y"), m_align=a["m_align"],
                  padding=s["padding"], relu=s["relu"])
        return Command(core, "winograd", C, layer.out_shape[0], H, W, 0, given=(x[None], kw))
    if layer.op in ("direct_conv", "linear"):
        Wt = a["W"] if layer.op == "direct_conv" else a["W"].reshape(*a["W"].shape, 1, 1)
        if layer.op == "linear":
            x, (C, H, W) = x.reshape(-1, 1, 1), (x.size, 1, 1)
        kw = dict(W=Wt, bias=a["bias"], y=network.requant(layer, "y"), stride=s.get("stride", 1),
                  padding=s.get("padding", 0), relu=s["relu"])
        return Command(core, "linear" if layer.op == "linear" else "direct", C, Wt.shape[0], H, W, 0,
                       kernel=Wt.shape[-1], stride=kw["stride"], padding=kw["padding"], given=(x[None], kw))
    if layer.op == "add":
        op = (int(a["a_mult"]), int(a["b_mult"]), int(a["shift"]), s["relu"])
        return EltCommand(core, "add", x, op, inputs[1])
    op = (s["kernel"], s["stride"], s.get("padding", 0), int(a.get("mult", 1)), int(a.get("shift", 0)))
    return EltCommand(core, layer.op, x, op)


@pytest.mark.slow
def test_tiny_host_ops_on_stored_inputs():
    """examples/tiny's add, global avgpool and linear layers back to back on one core, each
    on its stored reference input: its stored reference output, cycles the model's (the
    quick part of :func:`test_tiny_op_by_op_on_one_core`)."""
    model = load_model("examples/tiny")
    core = Core(network.config_for(model), max_kernel=3, max_pool=5)
    layers = [model.layer(name) for name in ("res", "pool", "fc")]
    cmds = [tiny_command(core, model, ly, [a[0].astype(np.int64) for a in network.stored_inputs(ly)])
            for ly in layers]
    outs, cycles = run_commands(core, cmds)
    for ly, c, beats in zip(layers, cmds, outs, strict=True):
        np.testing.assert_array_equal(c.result(beats).reshape(ly.arrays["y"][0].shape), ly.arrays["y"][0])
    assert cycles == [c.cycles for c in cmds]


@pytest.mark.slow
def test_tiny_op_by_op_on_one_core():
    """examples/tiny executed layer by layer on one core (no reset between commands), each
    layer's input the core's own output of the layers before: every layer's output equals
    golden's run of the model (what ``wino_gen check`` compares with the stored references),
    every command's cycles the model's."""
    model = load_model("examples/tiny")
    cfg = network.config_for(model)
    core = Core(cfg, max_kernel=3, max_pool=5)
    x = model.layers[0].arrays["x"][:1].astype(np.int64)
    want = network.run_model(model, x, cfg)
    for layer in model.layers:
        np.testing.assert_array_equal(want[layer.name][0], layer.arrays["y"][0], err_msg=layer.name)
    acts = {INPUT: x[0]}
    for layer in model.layers:
        cmd = tiny_command(core, model, layer, [acts[src] for src in layer.inputs])
        (beats,), cycles = run_commands(core, [cmd])
        acts[layer.name] = cmd.result(beats).reshape(want[layer.name][0].shape)
        np.testing.assert_array_equal(acts[layer.name], want[layer.name][0], err_msg=layer.name)
        assert cycles == [cmd.cycles], layer.name


def _multipliers(core) -> int:
    """``$mul`` cells with two non-constant operands in the core's RTLIL (pow2: no conv requant
    multiplies; the element-wise unit's are counted apart)."""
    text = rtlil.convert(core)
    return len(re.findall(r"cell \$mul ", text))


def test_direct_only_has_the_dual_cores_multipliers():
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4)
    dual, direct = Core(cfg, max_kernel=3), Core(cfg, max_kernel=3, direct_only=True)
    assert _multipliers(dual) == _multipliers(direct) == cfg.multipliers + schedule.eltwise_multipliers(cfg)
    assert cfg.multipliers == 16
    assert "wino" in dual.layer.shape().members and "wino" not in direct.layer.shape().members


def test_latencies_of_the_two_builds():
    """Dual: per-tap trees then the tap tree; direct-only: one tree over the chunk. They agree
    when unroll_in or S is a power of two, else the dual build's is one level longer."""
    for ui, same in ((1, True), (2, True), (3, False), (4, True)):
        cfg = AcceleratorConfig(tile=4, unroll=2, unroll_in=ui, max_width=16, max_channels=24)
        dual, direct = schedule.core_latencies(cfg), schedule.core_latencies(cfg, direct_only=True)
        assert (dual.direct == direct.direct) == same
        assert dual.direct - direct.direct in (0, 1)
        assert dual.winograd == schedule.latencies(cfg).winograd


@pytest.mark.parametrize("kw,what", [
    (dict(max_kernel=0), "max_kernel"),
    (dict(max_kernel=17), "max_kernel"),
    (dict(max_kernel=3.0), "max_kernel"),
    (dict(max_kernel=3, max_pool=1), "max_pool"),
    (dict(max_kernel=3, max_pool=17), "max_pool"),
    (dict(max_kernel=3, cfg=AcceleratorConfig(tile=2, unroll=2, algo="direct", max_width=16, max_channels=16)),
     "cfg.algo"),
])
def test_constructor_parameters_are_checked(kw, what):
    cfg = kw.pop("cfg", F2)
    with pytest.raises(ValueError, match=what):
        Core(cfg, **kw)


def test_mode_field_numbers_are_the_instruction_formats():
    lay = core_layer_layout(F2, 3)
    assert command_word(lay, "direct", 0) == mode_number("direct") == 1
    assert [mode_number(md) for md in ("linear", "add", "maxpool", "avgpool")] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="mode"):
        mode_number("conv")
    with pytest.raises(ValueError, match="winograd mode"):
        perf.core_cycles(F2, "winograd", 3, 3, 8, 8, max_kernel=3, direct_only=True)
    with pytest.raises(ValueError, match="core_eltwise_cycles"):
        perf.core_cycles(F2, "add", 3, 3, 8, 8, max_kernel=3)
    with pytest.raises(ValueError, match="linear mode"):
        perf.core_cycles(F2, "linear", 3, 3, 2, 1, kernel=1, padding=0, max_kernel=3)
    with pytest.raises(ValueError, match="element-wise"):
        perf.core_eltwise_cycles(F2, "direct", 3, 8, 8, max_pool=3)


@pytest.mark.slow
def test_direct_7x7_stride_2():
    core = Core(_cfg(2, 2, 1), max_kernel=7)
    cmd = Command(core, "direct", 2, 3, 11, 10, seed=9, kernel=7, stride=2, padding=3)
    outs, cycles = run_commands(core, [cmd])
    _check(cmd, outs[0])
    assert cycles == [cmd.cycles]
    (beats,), _ = run_commands(core, [cmd], stall=0.25, seed=4)
    _check(cmd, beats)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [_cfg(4, 3, 2, "layer", "pow2"), _cfg(2, 2, 2, "tap", "fixed")], ids=["F4", "F2"])
def test_bigger_mixed_sequence(cfg):
    """Bigger layers, 7x7 stride 2 among them: results equal golden and every command's cycles
    equal the model (the first F4 one is a tie: :func:`test_winograd_model_on_a_tie`)."""
    core = Core(cfg, max_kernel=7)
    cmds = [Command(core, "winograd", 5, 7, 13, 11, seed=1),
            Command(core, "direct", 2, 5, 12, 11, seed=2, kernel=7, stride=2, padding=3),
            Command(core, "direct", 7, 4, 10, 9, seed=3, kernel=3, stride=2, padding=1, relu=False),
            Command(core, "winograd", 6, 4, 9, 12, seed=4, relu=False)]
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]


def _engine_cycles(cfg, cmd):
    """The Winograd engine's cycles on the command's layer (no stalls)."""
    x = np.zeros((1, cmd.spec.C, cmd.H, cmd.W), dtype=np.int64)
    return PysimBackend().run(build_top(cfg), cmd.spec.word(cmd.H, cmd.W),
                              {"x": cmd.spec.x_beats(x[0]), "w": cmd.w}, cmd.n_out)[1]


@pytest.mark.slow
def test_winograd_model_on_a_tie():
    """n_cg 3 < unroll + 1 and each tile row's rows arrive as the previous row's steps end: the
    previous row's last tile waits for the serializer and stands the PE array still in the
    new row's first steps; the model counts that cycle (``perf._StepClock``). The standalone
    engine's serializer is not paced (the core's is, for its writer)."""
    cfg = _cfg(4, 3, 2, "layer", "pow2")
    cmd = Command(Core(cfg, max_kernel=3), "winograd", 5, 7, 13, 11, seed=1)
    assert _engine_cycles(cfg, cmd) == perf.winograd_layer(cfg, 5, 7, 13, 11)["cycles"]
