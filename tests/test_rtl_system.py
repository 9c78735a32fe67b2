# amaranth: UnusedElaboratable=no
"""rtl.system: whole layers from external memory. A model dir is compiled
(``wino_gen.compile``), its image loaded into a memory model with random latency and stalls,
the input written to the input slot; the system (sequencer, DMA executors, arbiter,
scratchpads, compute unit, core) runs the program; every stored tensor read back equals the
image interpreter's (``wino_gen.compile.interp``: ``wino_gen check``'s outputs), and each
COMPUTE's cycles are reported beside the plan's prediction."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rtl.core import DEFAULT_MAX_POOL
from sim import system
from wino_gen import commands as cm
from wino_gen import format as fmt
from wino_gen import isa, network, plan, schedule
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im
from wino_gen.example import _Builder
from wino_gen.format import INPUT

STALL = 0.2
TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"


def _model(tmp_path, build, *, tile=2, channels=4, size=6, seed=0):
    """A model dir written by the example builder: ``build(b)`` adds its layers."""
    b = _Builder(tile, "layer", "pow2", np.random.default_rng(seed), 1, (channels, size, size), 1 / 32)
    build(b)
    return fmt.write_model(tmp_path / "m", b.manifest, b.arrays)


def _run(model, cfg, *, W=4, mem_model="3,5", seed=0, opts=None, edit=None, max_pool=DEFAULT_MAX_POOL,
         limit=400_000):
    """Compile ``model`` for ``cfg`` (``edit``: a change to its program, by instruction index),
    run it on the system (``sim.system.run_image``); the compiled model, the interpreter's
    stored tensors (none for an edited program), the system's (those whose STORE ran, read back
    from memory), the sequencer's (status, index, cycles), each COMPUTE's cycles (hand-over to
    answer, and its setup: hand-over to the core's start, plus the answer's cycle) by
    instruction index, and the memory."""
    c = compiler.compile_model(model, cfg, options=plan.Options(**(opts or {})), memory_spec="2,4", trace=True,
                               port_bytes=W)
    img = c.image
    if edit:
        prog = list(img.program)
        for i, fields in edit.items():
            prog[i] = dataclasses.replace(prog[i], **fields)
        img = dataclasses.replace(img, program=tuple(prog))
    x = model.layers[0].arrays["x"][:img.batch]
    want = None if edit else interp.run(img, cfg, x)
    r = system.run_image(img, cfg, x, word_bytes=W, memory=mem_model, stall=STALL, seed=seed, max_pool=max_pool,
                         limit=limit)
    return c, want, r.got, r.status, r.computes, r.mem


def _compare(c, want, got, status, computes, mem, cfg, *, stop=None, max_pool=DEFAULT_MAX_POOL):
    """Every stored tensor equal (those of the layers before ``stop``, the index of the COMPUTE
    the system refuses with UNSUPPORTED, when given); each COMPUTE's setup (hand-over to the
    core's start, and the answer's cycle) exactly ``commands.setup_cycles``, the rest the
    core's cycles (``perf``, on the band the unit gives the engine) and the feeders' lag.
    Returns per layer (name, measured COMPUTE cycles, the plan's compute cycles)."""
    img = c.image
    end = next(i for i, ins in enumerate(img.program) if ins.OP == "END")
    assert status[:2] == ((0, end) if stop is None else (cm.UNSUPPORTED, stop)), status
    layers = [lp.layer.name for lp in c.plan.layers]
    if stop is None:
        assert set(got) == set(want)
    assert got
    for name in got:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    cached, per_layer = None, {}
    for i, (cycles, setup) in sorted(computes.items()):
        ins = img.program[i]
        mode = isa.MODES[ins.mode]
        lay = c.plan.layers[ins.layer].layer
        why = cm.why_unsupported(mode, accumulate=ins.accumulate, finish=ins.finish, r0=ins.r0, r1=ins.r1, c0=ins.c0,
                                 c1=ins.c1, C=lay.in_shape[0], Ho=lay.out_shape[1], stride=lay.stride,
                                 padding=lay.padding)
        assert (why is not None) == (i == stop), (i, why)
        if i == stop:
            continue
        assert setup == cm.setup_cycles(cfg, mode, (ins.layer, ins.mode) == cached), (i, setup)
        cached = ins.layer, ins.mode
        core = system.core_cycles(cfg, ins, lay, max_pool)
        # the feeders' lag behind a host-fed core (tests/test_rtl_feed.py's bound)
        late = cycles - setup - core
        writes = schedule.writer_beat_cycles(cfg, cm.writer_mode(mode)) - 1    # the writer's last beat
        assert 0 <= late - writes <= schedule.FEED_READ_LATENCY + schedule.WEIGHT_WORD_STAGES, (i, late)
        per_layer[ins.layer] = per_layer.get(ins.layer, 0) + cycles
    rows = [(f"{layers[k]} COMPUTEs", v, c.plan.layers[k].cost.compute) for k, v in sorted(per_layer.items())]
    return rows + ([("run (sequencer cycles vs the plan's overlapped total)", status[2], c.plan.cycles)]
                   if stop is None else [])


def _report(rows):
    for name, got, planned in rows:
        print(f"{name}: measured {got} cycles, plan {planned} ({got / planned:.3f}x)")


def test_one_winograd_layer(tmp_path):
    """A Winograd F2 layer (4 -> 4 channels, 6x6) from external memory: golden's output."""
    model = _model(tmp_path, lambda b: b.winograd("conv1", INPUT, 4))
    cfg = network.config_for(model, unroll=2)
    _report(_compare(*_run(model, cfg), cfg))


@pytest.mark.parametrize("tile,C,K,size,act_bytes", [pytest.param(2, 3, 3, 7, 250, marks=pytest.mark.slow),
                                                     pytest.param(4, 2, 2, 12, 500, marks=pytest.mark.slow)],
                         ids=["F2", "F4"])
def test_winograd_layer_in_bands(tmp_path, tile, C, K, size, act_bytes):
    """A Winograd layer the planner cuts into row bands (and, F2, output-channel blocks) for a
    small activation scratchpad: the bands after the first are given to the engine from m rows
    earlier, so that its tiles fall where the interpreter's do; F4's bands start on rows
    (4, 8) where F2's structure would hide a misaligned tile."""
    model = _model(tmp_path, lambda b: b.winograd("conv1", INPUT, K), tile=tile, channels=C, size=size, seed=tile)
    cfg = network.config_for(model, unroll=2)
    c, *rest = _run(model, cfg, W=1, seed=tile, opts={"act_bytes": act_bytes})
    assert len({ins.r0 for ins in c.image.program if ins.OP == "COMPUTE"}) > 2
    _report(_compare(c, *rest, cfg))


def test_one_direct_stride2_layer(tmp_path):
    """A direct 3x3 stride-2 layer (4 -> 6 channels, 7x7 -> 4x4: K not a multiple of the unroll)
    on the core's window generator, in the plan's two row bands (the second one's engine band
    starts a row early and its first output row is dropped), from a byte-wide memory of
    latency 7 (the bands are loaded at strides that are not port words)."""
    model = _model(tmp_path, lambda b: b.direct("down", INPUT, 6, stride=2), size=7, seed=1)
    cfg = network.config_for(model, unroll=4)
    _report(_compare(*_run(model, cfg, W=1, mem_model="1,7", seed=1), cfg))


def test_linear_layer(tmp_path):
    """A classifier (16 -> 10) on the core's direct mode, a 1x1 convolution of a 1x1 image
    (the config sized for its 16 input channels: ``config_for`` counts convolutions only)."""
    model = _model(tmp_path, lambda b: b.linear("fc", INPUT, 10), channels=16, size=1, seed=2)
    cfg = network.config_for(model, unroll=4, max_channels=16)
    _report(_compare(*_run(model, cfg, W=1, seed=2), cfg))


@pytest.mark.slow
def test_residual_add(tmp_path):
    """A Winograd layer and a residual add of its output and the input (3 channels on a core of
    unroll_in 2: a full and a partial channel group), the add's segments through the core's
    element-wise unit and written back in the writer's segment mode."""
    def build(b):
        b.winograd("conv1", INPUT, 3)
        b.add("res", "conv1", INPUT)
    model = _model(tmp_path, build, channels=3, seed=5)
    cfg = network.config_for(model, unroll=2, unroll_in=2)
    _report(_compare(*_run(model, cfg, W=1, seed=5), cfg))


def _tiny_convs(b):
    """examples/tiny's convolutions, without its add and pools (not on the compute unit yet)."""
    b.winograd("conv1", INPUT, 8)
    b.winograd("conv2", "conv1", 8)
    b.direct("down", "conv2", 16, stride=2)
    b.winograd("conv3", "down", 16)


@pytest.mark.slow
def test_tiny_convolutions(tmp_path):
    """examples/tiny's shapes (F4, 4x10x10 in): two Winograd layers, the direct stride-2 layer,
    the third Winograd layer, back to back from external memory."""
    model = _model(tmp_path, _tiny_convs, tile=4, channels=4, size=10, seed=3)
    cfg = network.config_for(model)
    _report(_compare(*_run(model, cfg, W=1, mem_model="1,4", seed=3), cfg))


@pytest.mark.slow
def test_examples_tiny(tmp_path):
    """examples/tiny, every layer (Winograd, add, direct stride 2, global average pool,
    linear) from external memory on a core built for its 5x5 pool."""
    model = fmt.load_model(TINY)
    cfg = network.config_for(model)
    c, *rest = _run(model, cfg, W=1, mem_model="1,4", seed=4, max_pool=5)
    _report(_compare(c, *rest, cfg, max_pool=5))


def test_pool_and_classifier(tmp_path):
    """examples/tiny's tail on small shapes: a Winograd layer, a global average pool (a 4x4
    window: a core built for it) and a linear classifier."""
    def build(b):
        b.winograd("conv1", INPUT, 4)
        b.avgpool("pool", "conv1")
        b.linear("fc", "pool", 3)
    model = _model(tmp_path, build, channels=4, size=4, seed=6)
    cfg = network.config_for(model, unroll=2)
    _report(_compare(*_run(model, cfg, W=1, seed=6, max_pool=4), cfg, max_pool=4))


def test_a_layer_beyond_the_build_is_refused(tmp_path):
    """A layer wider than the build's window generator (the planner prices it on a widened one,
    the build a system running it needs: ResNet-18's stem on a 64-wide build) stops the system
    with UNSUPPORTED at its first COMPUTE, before the core starts, as
    ``commands.beyond_build`` says it must."""
    model = _model(tmp_path, lambda b: b.direct("conv1", INPUT, 4, 1))
    cfg = dataclasses.replace(network.config_for(model, unroll=2), max_width=4)
    c, _, got, st, computes, _ = _run(model, cfg)
    i = next(k for k, ins in enumerate(c.image.program) if ins.OP == "COMPUTE")
    assert st[:2] == (cm.UNSUPPORTED, i) and computes[i][1] is None and not got
    lay = c.plan.layers[0].layer
    why = cm.beyond_build(cfg, "direct", C=4, K=4, H=6, W=6, Ho=6, Wo=6, kernel=lay.kernel, stride=lay.stride,
                          padding=lay.padding, max_kernel=3, max_pool=DEFAULT_MAX_POOL)
    assert why == "6 input rows exceed the build's max_width 4"
    assert cm.beyond_build(dataclasses.replace(cfg, max_width=6), "direct", C=4, K=4, H=6, W=6, Ho=6, Wo=6,
                           kernel=3, stride=1, padding=1, max_kernel=3, max_pool=DEFAULT_MAX_POOL) is None


@pytest.mark.parametrize("fields,status", [
    ({"layer": 1}, "bad instruction"),                    # names another layer than the parameter memory's
    ({"accumulate": 1}, "unsupported"),                   # partial sums: not on the unit yet
    ({"out_addr": (1 << 24) - 1}, "memory outside its regions"),
])
def test_refused_computes_touch_nothing(tmp_path, fields, status):
    """A COMPUTE the unit refuses stops the system with its status at that instruction before
    the core starts: nothing is written (the output stays zero in memory)."""
    model = _model(tmp_path, lambda b: b.winograd("conv1", INPUT, 4))
    cfg = network.config_for(model, unroll=2)
    img = compiler.compile_model(model, cfg, options=plan.Options(), memory_spec="2,4", trace=True).image
    i = next(k for k, ins in enumerate(img.program) if ins.OP == "COMPUTE")
    c, _, got, st, computes, mem = _run(model, cfg, edit={i: fields})
    code = cm.UNSUPPORTED if status == "unsupported" else {v: k for k, v in interp.STATUS.items()}[status]
    assert st[:2] == (code, i)
    edited = dataclasses.replace(img.program[i], **fields)
    why = cm.why_unsupported("winograd", accumulate=edited.accumulate, finish=edited.finish, r0=edited.r0,
                             r1=edited.r1, c0=edited.c0, c1=edited.c1, C=4, Ho=6, stride=1, padding=1)
    assert (why is not None) == (status == "unsupported")
    assert computes[i][1] is None and not got
    out = c.image.slot(im.OUTPUT_SLOT)
    assert not mem[out.offset:out.offset + out.size].any()
