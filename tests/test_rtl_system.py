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
from amaranth.sim import Simulator

from rtl.core import DEFAULT_MAX_POOL
from rtl.mem.port import PortSignature
from rtl.system import System
from sim.memory import MemoryModel, timing
from sim.streams import Stalls, put
from wino_gen import commands as cm
from wino_gen import format as fmt
from wino_gen import isa, network, perf, plan, schedule
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im
from wino_gen.example import _Builder
from wino_gen.format import INPUT
from wino_gen.schedule import pe_geometry

STALL = 0.2
TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"


def _model(tmp_path, build, *, tile=2, channels=4, size=6, seed=0):
    """A model dir written by the example builder: ``build(b)`` adds its layers."""
    b = _Builder(tile, "layer", "pow2", np.random.default_rng(seed), 1, (channels, size, size), 1 / 32)
    build(b)
    return fmt.write_model(tmp_path / "m", b.manifest, b.arrays)


def _pow2_bits(nbytes):
    return 8 * (1 << (nbytes - 1).bit_length())


def _run(model, cfg, *, W=4, mem_model="3,5", seed=0, opts=None, edit=None, max_pool=DEFAULT_MAX_POOL,
         limit=400_000):
    """Compile ``model`` for ``cfg`` (``edit``: a change to its program, by instruction index),
    run it on the system; the compiled model, the interpreter's stored tensors (none for an
    edited program), the system's (those whose STORE ran, read back from memory), the
    sequencer's (status, index, cycles) and each COMPUTE's cycles (hand-over to answer, and
    its setup: hand-over to the core's start, plus the answer's cycle) by instruction index."""
    c = compiler.compile_model(model, cfg, options=plan.Options(**(opts or {})), memory_spec="2,4", trace=True)
    img = c.image
    if edit:
        prog = list(img.program)
        for i, fields in edit.items():
            prog[i] = dataclasses.replace(prog[i], **fields)
        img = dataclasses.replace(img, program=tuple(prog))
    x = model.layers[0].arrays["x"][:img.batch]
    want = None if edit else interp.run(img, cfg, x)
    mem = np.zeros(-(-img.memory_size // W) * W + W, np.uint8)
    mem[:img.file_size] = np.frombuffer(img.to_bytes(), np.uint8)
    slot = img.slot(im.INPUT_SLOT)
    mem[slot.offset:slot.offset + slot.size] = x.astype(np.int8).view(np.uint8).ravel()
    port = PortSignature(data_width=8 * W, addr_width=max(1, (len(mem) // W - 1).bit_length()), max_burst=8)
    # feeders at the engine's rate (rtl.feed): a weight word a cycle (a window per row of a word,
    # a row in one read), a Winograd beat a cycle (a window per tile row)
    dut = System(cfg, port, act_bytes=img.act_scratch, wgt_bytes=img.wgt_scratch, param_bytes=img.param_scratch,
                 mem_bytes=len(mem), act_width=_pow2_bits(cfg.n), wgt_width=_pow2_bits(pe_geometry(cfg).lanes),
                 weight_ports=cfg.unroll, out_ports=cfg.tile, max_pool=max_pool, max_instrs=len(img.program) + 1)
    rng = np.random.default_rng(seed)
    model_ = MemoryModel(mem, timing(mem_model), word_bytes=W, stalls=Stalls(STALL, int(rng.integers(1 << 32))))
    res, computes, stored = {}, {}, set()

    async def monitor(ctx):
        cu = dut.cu
        t, began = 0, {}
        tr = dut.seq.trace.store
        async for _, _, iv, ir, idx, st, dv, dr, sr, si in ctx.tick().sample(
                cu.instr.valid, cu.instr.ready, cu.instr.payload.index, cu.core_start, cu.done.valid, cu.done.ready,
                tr.retire, tr.index):
            if sr:
                stored.add(int(si))
            if iv and ir:
                began = {"i": int(idx), "t": t, "start": None}
            if st:
                began["start"] = t
            if dv and dr:
                s0 = began["start"]
                computes[began["i"]] = (t - began["t"], None if s0 is None else s0 - began["t"] + 1)
            t += 1

    async def main(ctx):
        lo = img.regions()["params"][0]
        ctx.set(dut.load_lo, lo)
        ctx.set(dut.load_hi, img.memory_size)
        ctx.set(dut.store_lo, img.regions()["act"][0])
        ctx.set(dut.store_hi, img.regions()["act"][1])
        await put(ctx, dut.start, [{"addr": img.program_offset, "count": len(img.program)}], rng=rng, stall=STALL)
        for _ in range(limit):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"not done after {limit} cycles")
        res["status"] = (ctx.get(dut.status), ctx.get(dut.index), ctx.get(dut.cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(model_.serve(dut.mem), background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(main)
    sim.run()
    names = {i: c.image.tensors[_stored_tensor(img, ins)].name for i, ins in enumerate(img.program)
             if ins.OP == "STORE" and i in stored}
    got = {t.name: mem[t.offset:t.offset + t.size].view(np.int8).astype(np.int64).reshape(t.batch, *t.shape)
           for t in img.tensors if t.name in set(names.values())}
    return c, want, got, res["status"], computes, mem


def _stored_tensor(img, ins) -> int:
    """The tensor a STORE writes into."""
    return next(k for k, t in enumerate(img.tensors) if t.offset <= ins.ext_addr < t.offset + t.size)


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
        C, H, W = lay.in_shape
        if mode in ("add", "maxpool", "avgpool"):
            rows = ins.r1 - ins.r0 if mode == "add" else H
            core = perf.core_eltwise_cycles(cfg, mode, C, rows, W, kernel=lay.kernel, stride=lay.stride,
                                            padding=lay.padding, max_pool=max_pool)
        else:
            a_e, b, _ = cm.engine_band(mode, H=H, kernel=lay.kernel, stride=lay.stride, padding=lay.padding,
                                       r0=ins.r0, r1=ins.r1, tile=cfg.tile)
            core = perf.core_cycles(cfg, mode, ins.c1 - ins.c0, ins.k1 - ins.k0, b - a_e, W, kernel=lay.kernel,
                                    stride=lay.stride, padding=lay.padding, max_kernel=3)
        # the feeders' lag behind a host-fed core (tests/test_rtl_feed.py's bound)
        late = cycles - setup - core
        assert 0 <= late <= schedule.FEED_READ_LATENCY + schedule.WEIGHT_WORD_STAGES, (i, late)
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
                                                     (4, 2, 2, 12, 500)], ids=["F2", "F4"])
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
