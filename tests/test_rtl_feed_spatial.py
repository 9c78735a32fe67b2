# amaranth: UnusedElaboratable=no
"""rtl.feed.WeightReader of a spatial-weight build (``weights='spatial'``): a Winograd block of
int8 3x3 kernels (docs/image.md: ``[k][c][9]`` dense, the image's weight blob) read as the
core's ``w`` words (kernel ``(k, c)``'s ``W[a][b]`` at ``data[k][c][a*3 + b]``, taps ``9 ..
n²-1`` zero, the block's biases on every word, in ``schedule.winograd_w_order``) with random
stalls, at the U word's rate (``schedule.feed_rates``, ``weight_read_cycles``); the U and
direct words of the same build unchanged; and a compiled spatial image's own weight bytes,
loaded as its LOADs place them, read as its first COMPUTE's words."""

import dataclasses

import numpy as np
import pytest
from test_rtl_feed import _Bench, _cfg, _last_cycle, _params, _run_weights, _weights
from test_spatial_weights import spatial_tiny

from rtl.core import Core
from rtl.feed import WeightReader, reads_spatial, weight_fields
from rtl.mem.scratchpad import Scratchpad
from rtl.pe import weight_stream_layout
from sim.streams import get
from wino_gen import commands as cm
from wino_gen import format as fmt
from wino_gen import golden, isa, network, plan, schedule
from wino_gen.compile import compiler
from wino_gen.flow.host import WinogradLayer, pack

TAPS = 9


def _spatial(tile, unroll, ui, **kw):
    return _cfg(tile, unroll, ui, weights="spatial", weight_lanes=unroll * ui, **kw)


def spatial_words(cfg, W, bias, g):
    """The words a spatial core takes for kernels ``W[K, C, 3, 3]`` (rows past ``K``, channels
    past ``C`` and taps past 9 zero), in ``winograd_w_order(g)``."""
    K, C = W.shape[:2]
    un, ui, S = cfg.unroll, cfg.unroll_in, cfg.n ** 2
    Wp = np.zeros((g.n_kb * un, g.n_cg * ui, S), np.int64)
    Wp[:K, :C, :TAPS] = W.reshape(K, C, TAPS)
    bp = np.zeros(g.n_kb * un, np.int64)
    bp[:K] = bias
    lay = weight_stream_layout(cfg)
    return [pack(lay, {"data": Wp[b.kb * un:(b.kb + 1) * un, b.cg * ui:(b.cg + 1) * ui].tolist(),
                       "bias": bp[b.kb * un:(b.kb + 1) * un].tolist()}) for b in schedule.winograd_w_order(g)]


# tile, unroll, unroll_in, K, C, H, W, width, ports: K and C not multiples of the unroll, several
# blocks and tile rows; a kernel row in one read (width >= 9 * unroll_in bytes), in several, a
# last read short; windows side by side (the second group one row short)
CASES = [(2, 2, 1, 3, 3, 5, 5, 32, 1), (2, 3, 2, 4, 3, 4, 6, 512, 2), (4, 2, 1, 3, 2, 6, 4, 128, 1),
         (4, 2, 2, 2, 5, 6, 4, 64, 2), (6, 2, 1, 5, 2, 7, 5, 64, 1), (4, 3, 1, 5, 3, 6, 4, 32, 3),
         (4, 2, 3, 3, 7, 6, 6, 512, 2)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "F{}-u{}x{}-K{}-C{}-{}x{}-w{}-p{}".format(*c))
def test_spatial_block_words(case):
    """Random kernels (+127 and -128 among them) at an odd address, the biases from the
    parameter memory: every word as the core takes it, with the ``w`` stream stalling."""
    tile, un, ui, K, C, H, W, width, ports = case
    cfg = _spatial(tile, un, ui)
    depth, bias_addr = 1024, 5
    rng = np.random.default_rng(list(case))
    Wt, bias, addr, image, params = _weights(rng, cfg, K, C, TAPS, depth=depth, bias_addr=bias_addr)
    g = schedule.winograd_geometry(cfg, C, K, H, W)
    assert g.th > 1
    want = spatial_words(cfg, Wt, bias, g)
    got = _run_weights(cfg, weight_fields(g, w_addr=addr, bias_addr=4 * bias_addr, spatial=True), image, params,
                       len(want), depth=depth, width=width, seed=sum(case), ports=ports)
    assert got == want


def test_u_and_direct_words_of_a_spatial_build_are_unchanged():
    """A spatial build's reader with the command's ``spatial`` low: U words equal the host
    encoder's, and a direct block's im2col words equal a U build's reader's, word for word."""
    cfg = _spatial(4, 2, 2)
    ucfg = dataclasses.replace(cfg, weights="winograd", weight_lanes=1)
    n, depth, K, C, H, W = cfg.n, 1024, 3, 3, 6, 5
    rng = np.random.default_rng(11)
    Wt, bias, addr, image, params = _weights(rng, cfg, K, C, n * n, depth=depth, bias_addr=3)
    one = golden.Requant(1, 0)
    spec = WinogradLayer(ucfg, Wt.reshape(K, C, n, n), bias, v=one, m=one, y=one)
    g = spec.geometry(H, W)
    want = spec.w_beats(H, W)
    fields = weight_fields(g, w_addr=addr, bias_addr=12)
    assert _run_weights(cfg, fields, image, params, len(want), depth=depth, width=64, seed=1, ports=2) == want
    core = Core(cfg, max_kernel=3)
    d = schedule.window_geometry(core.buf, core.dcfg, C, K, 7, 7, kernel=3, stride=2, padding=1).d
    fields = weight_fields(d, w_addr=addr, bias_addr=12)
    runs = [_run_weights(c, fields, image, params, d.w_beats, depth=depth, width=64, seed=2, ports=2)
            for c in (cfg, ucfg)]
    assert runs[0] == runs[1] and any(runs[0])


def test_spatial_words_at_the_u_rate():
    """Nothing stalling: the last spatial word in the cycle ``weight_read_cycles`` gives a U block
    of the same geometry, at ``feed_rates``' rate (the same reads a word)."""
    cfg = _spatial(4, 3, 2)
    depth, K, C, H, W = 1024, 4, 3, 6, 7
    image = bytes(np.random.default_rng(3).integers(0, 256, depth, dtype=np.uint8))
    g = schedule.winograd_geometry(cfg, C, K, H, W)
    for width, ports in ((32, 1), (64, 2), (512, 3)):
        wr = WeightReader(cfg, depth=depth, width=width, param_bytes=256, ports=ports)
        dut = _Bench(Scratchpad(depth, width, dma_width=8, reads=ports, init=image), {"wr": wr},
                     _params([0] * 64, ports))
        word = pack(wr.cmd.shape(), weight_fields(g, w_addr=3, bias_addr=0, spatial=True))
        t = _last_cycle(dut, wr, word, lambda ctx, lane, wr=wr: get(ctx, wr.w, g.w_beats, lane=lane))
        rate = schedule.feed_rates(cfg, weight_bytes=width // 8, weight_ports=ports).w
        assert wr.rate == rate and t == schedule.weight_read_cycles(g.w_beats, rate)


def test_spatial_field_only_on_spatial_builds():
    """The command field exists where the build's Winograd mode takes spatial kernels; a direct
    block cannot be spatial."""
    assert reads_spatial(_spatial(4, 2, 1)) and not reads_spatial(_cfg(4, 2, 1))
    assert "spatial" in WeightReader(_spatial(4, 2, 1), depth=256, width=64, param_bytes=64).cmd.shape().members
    assert "spatial" not in WeightReader(_cfg(4, 2, 1), depth=256, width=64, param_bytes=64).cmd.shape().members
    core = Core(_cfg(2, 2, 1), max_kernel=3)
    d = schedule.window_geometry(core.buf, core.dcfg, 2, 2, 5, 5, kernel=3, stride=1, padding=1).d
    with pytest.raises(ValueError, match="spatial: only a Winograd block"):
        weight_fields(d, w_addr=0, bias_addr=0, spatial=True)


def _loaded(img, program, upto: int, size: int) -> bytes:
    """The weight scratchpad after the program's LOADs into it before instruction ``upto``
    (docs/image.md: ``count`` rows of ``burst`` bytes, ``ext_stride`` / ``sp_stride`` apart)."""
    mem, sp = img.to_bytes(), bytearray(size)
    for ins in program[:upto]:
        if ins.OP == "LOAD" and isa.BUFFERS[ins.buffer] == "wgt":
            for r in range(ins.count):
                e, s = ins.ext_addr + r * ins.ext_stride, ins.sp_addr + r * ins.sp_stride
                sp[s:s + ins.burst] = mem[e:e + ins.burst]
    return bytes(sp)


def test_compiled_spatial_image_bytes(tmp_path):
    """examples/tiny with spatial weights compiled for a spatial build: the weight scratchpad as
    the program's LOADs fill it, read with the first Winograd COMPUTE's block: the words of the
    model dir's kernels W and biases (the image's layout is the reader's)."""
    model = fmt.load_model(spatial_tiny(tmp_path / "tiny_w"))
    cfg = network.config_for(model, unroll=2, weights="spatial", weight_lanes=2)
    c = compiler.compile_model(model, cfg, options=plan.Options(weights="spatial"), trace=True)
    img = c.image
    i = next(k for k, ins in enumerate(img.program) if ins.OP == "COMPUTE" and isa.MODES[ins.mode] == "winograd")
    ins = img.program[i]
    lay = c.plan.layers[ins.layer].layer
    arrays = model.layers[ins.layer].arrays
    C, H, W = lay.in_shape
    a_e, b, _ = cm.engine_band("winograd", H=H, kernel=3, stride=1, padding=lay.padding, r0=ins.r0, r1=ins.r1,
                               tile=cfg.tile)
    g = schedule.winograd_geometry(cfg, ins.c1 - ins.c0, ins.k1 - ins.k0, b - a_e, W, lay.padding)
    want = spatial_words(cfg, arrays["W"][ins.k0:ins.k1, ins.c0:ins.c1], arrays["bias"][ins.k0:ins.k1], g)
    depth = 1 << (img.wgt_scratch - 1).bit_length()
    params = np.zeros(64, np.int64)
    params[:ins.k1 - ins.k0] = arrays["bias"][ins.k0:ins.k1]
    got = _run_weights(cfg, weight_fields(g, w_addr=ins.w_addr, bias_addr=0, spatial=True),
                       _loaded(img, img.program, i, depth), params, len(want), depth=depth, width=256, seed=4,
                       ports=cfg.unroll)
    assert reads_spatial(cfg) and got == want
