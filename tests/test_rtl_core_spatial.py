# amaranth: UnusedElaboratable=no
"""The compute core with spatial weights (``cfg.weights == "spatial"``): in Winograd mode its
``w`` words carry int8 3x3 kernels (kernel ``(k, c)`` in taps 0..8 of ``data[k][c]``, the rest
don't care), which the core splits into kernel beats and transforms on chip (rtl.wtransform);
bit-exact against golden (``golden.transform_weights`` with the U requant, then the Winograd
layer) for F2 and F4, both granularities and requant modes, one kernel per beat and a word per
beat, random stalls on x, w and o, extreme and saturating kernels; cycles equal
``wino_gen.perf.core_cycles``; direct and add commands between Winograd ones take the U core's
words unchanged; the Verilog of a spatial F4 core generates."""

import dataclasses

import numpy as np
import pytest
from amaranth.back import verilog
from test_rtl_core import Command, EltCommand, _cfg, _check, _extreme_image, _saturates, run_commands

from rtl.core import Core, command_word
from rtl.pe import weight_stream_layout
from rtl.wtransform import KernelSplitter, kernel_layout
from sim.layers import random_spatial
from sim.streams import run_block
from wino_gen import golden, perf, schedule
from wino_gen.flow.host import WinogradLayer, pack, unpack
from wino_gen.limits import int_range


def _spatial(tile, unroll, ui, lanes, gran="layer", mode="pow2"):
    return dataclasses.replace(_cfg(tile, unroll, ui, gran, mode), weights="spatial", weight_lanes=lanes)


def spatial_words(cfg, Wt, bias, g, rng):
    """The ``w`` words of a spatial core's Winograd command (the contract in ``rtl.core``'s
    doc): for each ``winograd_w_order`` beat one ``weight_stream_layout`` word, kernel
    ``(k, c)`` of block ``kb``, group ``cg`` in taps 0..8 of ``data[k][c]``, random values in
    the taps past 9 (don't care), ``bias[k]``, zero kernels and biases past K and C."""
    un, ui, S = cfg.unroll, cfg.unroll_in, cfg.n * cfg.n
    K, C = Wt.shape[:2]
    lo, hi = int_range(cfg.weight_bits)
    taps = rng.integers(lo, hi + 1, size=(g.n_kb * un, g.n_cg * ui, S))
    taps[:, :, :9] = 0
    taps[:K, :C, :9] = Wt.reshape(K, C, 9)
    b = np.zeros(g.n_kb * un, dtype=np.int64)
    b[:K] = bias
    lay = weight_stream_layout(cfg)
    words = {(kb, cg): pack(lay, {"data": taps[kb * un:(kb + 1) * un, cg * ui:(cg + 1) * ui].tolist(),
                                  "bias": b[kb * un:(kb + 1) * un].tolist()})
             for kb in range(g.n_kb) for cg in range(g.n_cg)}
    return [words[wb.kb, wb.cg] for wb in schedule.winograd_w_order(g)]


class SpatialCommand:
    """A Winograd command for a spatial core (the interface of ``test_rtl_core.Command``):
    random kernels ``W`` with their per-tap U requant ``u`` (``sim.layers.random_spatial``:
    all-min and all-max kernels, a few taps' requant saturating), the golden result of
    ``U = golden.transform_weights(W, u)``, and the model's cycles."""

    def __init__(self, core, C, K, H, W, seed, *, relu=True):
        cfg, rng = core.cfg, np.random.default_rng(seed)
        self.mode, self.H, self.W = "winograd", H, W
        x, kw, _ = random_spatial(cfg, C, K, H, W, rng, relu=relu, extremes=True)
        self.U = golden.transform_weights(kw["W"], kw["u"], cfg.tile, cfg.weight_bits)
        ref = {k: v for k, v in kw.items() if k not in ("W", "u")}
        self.want = golden.winograd_conv3x3(x, self.U, tile=cfg.tile, cfg=cfg, **ref)[0]
        self.spec = spec = WinogradLayer(cfg, **kw)      # the layer word (wt: the U requant), x, o
        g = spec.geometry(H, W)
        self.word = command_word(core.layer.shape(), "winograd", spec.word(H, W))
        self.x, self.x2, self.n_out = spec.x_beats(x[0]), [], g.n_out
        self.w = spatial_words(cfg, kw["W"], kw["bias"], g, rng)
        self.cycles = perf.core_cycles(cfg, "winograd", C, K, H, W, max_kernel=core.max_kernel)

    def result(self, beats):
        return self.spec.collect(beats, self.H, self.W)


@pytest.mark.parametrize("lanes", [1, 2, 6])
def test_kernel_splitter_beats_are_the_engines(lanes):
    """Words of random kernels (random taps past 9) through the splitter under stalls: the
    beats the Winograd engine's host encoder sends for the same kernels
    (``WinogradLayer.w_beats``: ``word_kernels`` order, each kernel with its channel's bias)."""
    cfg = _spatial(4, 3, 2, lanes)
    rng = np.random.default_rng(lanes)
    Wt, bias = rng.integers(-128, 128, (5, 4, 3, 3)), rng.integers(-1000, 1000, 5)
    spec = WinogradLayer(cfg, W=Wt, bias=bias, u=golden.Requant(1, 0), v=golden.Requant(1, 0),
                         m=golden.Requant(1, 0), y=golden.Requant(1, 0))
    g = spec.geometry(4, 4)
    words = [unpack(weight_stream_layout(cfg), w) for w in spatial_words(cfg, Wt, bias, g, rng)]
    beats = run_block(KernelSplitter(cfg, lanes), words, len(words) * schedule.beats_per_word(cfg), seed=lanes)
    kl = kernel_layout(cfg, lanes)
    assert [pack(kl, b) for b in beats] == spec.w_beats(4, 4)


STALLED = [   # cfg, C, K, H, W, relu: channels not multiples of unroll / unroll_in, partial tiles
    (_spatial(2, 2, 1, 1), 3, 3, 7, 6, False),
    (_spatial(2, 2, 1, 2, "tap", "fixed"), 3, 3, 6, 5, True),
    (_spatial(4, 2, 2, 1, "tap", "fixed"), 3, 3, 6, 9, True),
    (_spatial(4, 2, 2, 4, "layer", "pow2"), 5, 3, 7, 6, False),
]


@pytest.mark.parametrize("cfg,C,K,H,W,relu", STALLED,
                         ids=["F2-layer-pow2-l1", "F2-tap-fixed-l2", "F4-tap-fixed-l1", "F4-layer-pow2-l4"])
def test_spatial_winograd_command_under_stalls(cfg, C, K, H, W, relu):
    core = Core(cfg, max_kernel=3)
    cmd = SpatialCommand(core, C, K, H, W, seed=C + H + cfg.weight_lanes + 2, relu=relu)
    lo, hi = int_range(cfg.weight_bits)
    assert (cmd.U == hi).any() and (cmd.U == lo).any()             # the U requant saturates
    assert _saturates(cmd.want, relu) and len(np.unique(cmd.want)) > 20
    (beats,), cycles = run_commands(core, [cmd], stall=0.3, seed=cfg.tile + cfg.weight_lanes)
    _check(cmd, beats)
    assert cycles[0] > cmd.cycles


CYCLES = [   # cfg, C, K, H, W: weight-bound (4 kernel beats a word, 1 tile column, 4 steps a tile); a word a beat
    (_spatial(4, 2, 2, 1), 8, 7, 6, 4),
    (_spatial(4, 2, 2, 4, "tap", "fixed"), 3, 5, 9, 7),
    (_spatial(2, 2, 1, 1, "tap", "fixed"), 5, 3, 8, 9),
    (_spatial(2, 2, 1, 2), 3, 4, 5, 12),
]


@pytest.mark.parametrize("cfg,C,K,H,W", CYCLES, ids=["F4-l1", "F4-l4", "F2-l1", "F2-l2"])
def test_spatial_cycles_equal_the_model(cfg, C, K, H, W):
    core = Core(cfg, max_kernel=3)
    cmd = SpatialCommand(core, C, K, H, W, seed=H * W)
    (beats,), cycles = run_commands(core, [cmd])
    _check(cmd, beats)
    assert cycles == [cmd.cycles]


def test_weight_bound_case_is_weight_bound():
    """The first cycle case runs at the kernel beats' pace (slower than the same layer on a U
    core: the weight model's stalls are measured), the lanes = unroll * unroll_in one as fast
    as the U core."""
    (cfg, C, K, H, W), (fast, *shape) = CYCLES[:2]
    u, s = (perf.core_cycles(c, "winograd", C, K, H, W, max_kernel=3)
            for c in (dataclasses.replace(cfg, weights="winograd", weight_lanes=1), cfg))
    g = schedule.winograd_geometry(cfg, C, K, H, W)
    assert s >= g.w_beats * schedule.beats_per_word(cfg) > u
    u_fast = dataclasses.replace(fast, weights="winograd", weight_lanes=1)
    assert perf.core_cycles(fast, "winograd", *shape, max_kernel=3) == perf.core_cycles(u_fast, "winograd", *shape,
                                                                                         max_kernel=3)


@pytest.mark.parametrize("lanes", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_mixed_commands_on_a_spatial_core(lanes):
    """Winograd, direct 3x3 s2, Winograd, add back to back on one spatial core: the weight
    path switches with the mode (spatial words through the transform, direct words straight
    to the PE array); every result golden's, every command's cycles the model's."""
    core = Core(_spatial(4, 2, 2, lanes, "tap", "fixed"), max_kernel=3)
    rng = np.random.default_rng(lanes)
    x, x2 = _extreme_image(rng, 3, 5, 6), _extreme_image(rng, 3, 5, 6)
    cmds = [SpatialCommand(core, 3, 3, 6, 6, seed=1),
            Command(core, "direct", 3, 3, 7, 6, seed=2, kernel=3, stride=2, padding=1, relu=False),
            SpatialCommand(core, 4, 3, 5, 7, seed=3, relu=False),
            EltCommand(core, "add", x, (8192, 4164, 14, True), x2)]
    outs, cycles = run_commands(core, cmds)
    for c, beats in zip(cmds, outs, strict=True):
        _check(c, beats)
    assert cycles == [c.cycles for c in cmds]


def test_direct_only_spatial_config_is_a_direct_only_core():
    """``direct_only`` with a spatial config: no Winograd mode, no transform, the U direct-only
    core's ports."""
    cfg = _spatial(2, 2, 1, 2)
    core = Core(cfg, max_kernel=3, direct_only=True)
    u = Core(dataclasses.replace(cfg, weights="winograd", weight_lanes=1), max_kernel=3, direct_only=True)
    assert "wino" not in core.layer.shape().members
    assert core.signature.members == u.signature.members


def test_spatial_core_resources_include_the_transform():
    """The core's estimate of a spatial build exceeds the U core's by at least what the
    engine's does (the weight-transform unit; fixed: its per-tap multipliers on DSPs), plus
    the splitter; no block RAM."""
    cfg = _spatial(4, 4, 1, 2, "tap", "fixed")
    u_cfg = dataclasses.replace(cfg, weights="winograd", weight_lanes=1)
    s, u = (perf.estimate_resources(c, max_kernel=3) for c in (cfg, u_cfg))
    es, eu = (perf.estimate_resources(c) for c in (cfg, u_cfg))
    assert s["dsp"] - u["dsp"] == es["dsp"] - eu["dsp"] == perf.weight_transform_resources(cfg)["multipliers"] > 0
    assert s["ff"] - u["ff"] >= es["ff"] - eu["ff"] > 0 and s["lut"] - u["lut"] > es["lut"] - eu["lut"] > 0
    assert s["bram"] == u["bram"]
    d = [perf.estimate_resources(c, max_kernel=3, direct_only=True) for c in (cfg, u_cfg)]
    assert d[0] == d[1]


def test_spatial_f4_core_generates_verilog():
    core = Core(_spatial(4, 2, 1, 2, "tap", "fixed"), max_kernel=3)
    text = verilog.convert(core, name="core")
    assert "module core" in text and "wsplit" in text and "wxf" in text
