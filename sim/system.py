"""The full system (:class:`rtl.system.System`) running a compiled memory image in pysim.

A model dir compiled by :mod:`wino_gen.compile` is one memory image: program, parameters,
weights and the activation slots. :func:`run_image` loads it into a
:class:`sim.memory.MemoryModel` (the timing :func:`sim.memory.timing` names, random stalls),
writes the input into the input slot, starts the sequencer on the program and runs until it is
done; it returns every tensor whose STORE retired, read back from memory, the sequencer's
status, each COMPUTE's cycles and every instruction's measured issue and retire cycles.
``python -m sim --system`` and tests/test_rtl_system.py
share it, so that the CLI measures exactly what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from rtl.core import DEFAULT_MAX_POOL
from rtl.mem.port import PortSignature
from rtl.system import System, system_for
from wino_gen import commands as cm
from wino_gen import isa, perf, plan
from wino_gen.compile import image as im
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError
from wino_gen.isa import QUEUE_ORDER
from wino_gen.schedule import MAX_BURST, MEMORY_DEPTH

from .memory import MemoryModel, timing
from .streams import Lane, Stalls, put

#: the start beat's lane in the stall pattern (sim.streams.Lane.random's)
START_LANE = ""
ELTWISE = ("add", "maxpool", "avgpool")


@dataclass
class SystemRun:
    """What one run of the system left: ``got`` the stored tensors by name (``[batch, C, H, W]``),
    ``status`` the sequencer's (status, instruction index, cycles), ``computes`` each COMPUTE's
    (hand-over to answer, hand-over to the core's start + 1 or None) by instruction index,
    ``times`` every LOAD, COMPUTE, SYNC and STORE the sequencer started: (issue, retire or None
    when it never retired) by instruction index, and ``mem`` the memory after the run.

    A time is the value of the sequencer's ``cycles`` counter in the cycle the sequencer's trace
    strobed (0 in the first cycle after the start beat was taken; the run's total is
    ``status[2]``): *issue* the cycle its queue started it (took its tokens), *retire* the cycle
    its unit's answer came back with status 0 (its tokens pushed). These are the instants
    :func:`wino_gen.plan.program_cycles` models; its cycle numbers run one behind these (on an
    ideal memory each of its times is the measured one less), which windows, differences of
    times, do not see."""
    got: dict[str, np.ndarray]
    status: tuple[int, int, int]
    computes: dict[int, tuple[int, int | None]]
    times: dict[int, tuple[int, int | None]]
    mem: np.ndarray


def stored_tensor(img: im.Image, ins) -> int:
    """The index of the tensor a STORE writes into."""
    return next(k for k, t in enumerate(img.tensors) if t.offset <= ins.ext_addr < t.offset + t.size)


def max_pool_for(model) -> int:
    """The pool window the core must be built for: the model's largest (the default without one)."""
    return max([DEFAULT_MAX_POOL] + [layer.spec.get("kernel", 0) for layer in model.layers
                                     if layer.op in ("maxpool", "avgpool", "global_avgpool")])


def base_memory(img: im.Image, word_bytes: int) -> np.ndarray:
    """The external memory before a run: the image, a spare word at the top."""
    mem = np.zeros(-(-img.memory_size // word_bytes) * word_bytes + word_bytes, np.uint8)
    mem[:img.file_size] = np.frombuffer(img.to_bytes(), np.uint8)
    return mem


def input_chunk(img: im.Image, x: np.ndarray) -> np.ndarray:
    """The input slot's bytes for the batch ``x`` (a short last batch padded with zero images,
    as the interpreter pads it)."""
    slot = img.slot(im.INPUT_SLOT)
    chunk = np.zeros((img.batch, *slot.shape), np.int8)
    chunk[:len(x)] = np.asarray(x).reshape(-1, *slot.shape)
    return chunk.view(np.uint8).ravel()


def _memory(img: im.Image, x: np.ndarray, word_bytes: int) -> np.ndarray:
    """The external memory of a run of ``x``: the image, the input in its slot."""
    mem = base_memory(img, word_bytes)
    slot = img.slot(im.INPUT_SLOT)
    mem[slot.offset:slot.offset + slot.size] = input_chunk(img, x)
    return mem


def stall_patterns(seed: int, stall: float) -> tuple[Stalls, Stalls]:
    """The stall patterns of a run seeded ``seed``: the memory port's and the start beat's (none
    without stalls), drawn from one generator so that both backends stall alike."""
    rng = np.random.default_rng(seed)
    mem = Stalls(stall, int(rng.integers(1 << 32)))
    return mem, (Stalls(stall, int(rng.integers(1 << 63))) if stall else Stalls())


def regions(img: im.Image) -> dict[str, int]:
    """The external windows the system's transfers may touch (``rtl.system.System``'s inputs)."""
    r = img.regions()
    return {"load_lo": r["params"][0], "load_hi": img.memory_size, "store_lo": r["act"][0], "store_hi": r["act"][1]}


def result(img: im.Image, status: tuple[int, int, int], computes, times, mem: np.ndarray) -> SystemRun:
    """The run's :class:`SystemRun`: the tensors whose STORE retired (``times``), read back from ``mem``."""
    names = {img.tensors[stored_tensor(img, ins)].name for i, ins in enumerate(img.program)
             if ins.OP == "STORE" and times.get(i, (0, None))[1] is not None}
    got = {t.name: mem[t.offset:t.offset + t.size].view(np.int8).astype(np.int64).reshape(t.batch, *t.shape)
           for t in img.tensors if t.name in names}
    return SystemRun(got, status, computes, dict(sorted(times.items())), mem)


def check_image(img: im.Image, cfg: AcceleratorConfig) -> None:
    """Refuse (one UsageError line) an image the system of ``cfg`` would run wrong: weights in
    another format than the build's core takes (U words, or spatial kernels it transforms), or
    compiled for another config (its header's hash)."""
    fmts = {im.WEIGHTS_U: "winograd", im.WEIGHTS_SPATIAL: "spatial"}
    if fmts[img.weight_format] != cfg.weights:
        raise UsageError(f"image: weight_format {img.weight_format} ({fmts[img.weight_format]} weights), the "
                         f"system's core takes {cfg.weights} weights (compile it for this config)")
    if img.config_sha256 != im.config_sha256(cfg):
        raise UsageError(f"image: compiled for config sha256 {img.config_sha256.hex()[:16]}..., the system is "
                         f"built for {im.config_sha256(cfg).hex()[:16]}... (compile it for this config)")


def build(img: im.Image, cfg: AcceleratorConfig, mem_bytes: int, word_bytes: int,
          max_pool: int = DEFAULT_MAX_POOL) -> System:
    """The system sized for ``img`` (a direct-only core for a ``direct`` config; the image
    refused by :func:`check_image` unless compiled for ``cfg``): its scratchpads, feeders at
    the engine's rate (rtl.feed: a weight word a cycle, a Winograd beat a cycle), a port of
    ``word_bytes`` over ``mem_bytes`` with bursts of the schedule's
    :data:`~wino_gen.schedule.MAX_BURST`; its queues and DMA the system's defaults
    (:func:`timing_build` reads them back)."""
    check_image(img, cfg)
    port = PortSignature(data_width=8 * word_bytes, addr_width=max(1, (mem_bytes // word_bytes - 1).bit_length()),
                         max_burst=MAX_BURST)
    return system_for(cfg, port, act_bytes=img.act_scratch, wgt_bytes=img.wgt_scratch, param_bytes=img.param_scratch,
                      mem_bytes=mem_bytes, max_pool=max_pool, max_instrs=len(img.program) + 1)


def timing_build(dut: System) -> plan.SystemBuild:
    """What of ``dut``'s build the program's timing model takes (:class:`wino_gen.plan.SystemBuild`),
    read from its parts, served by a memory model of :data:`~wino_gen.schedule.MEMORY_DEPTH`
    commands as :func:`run_image` serves it. The model has one burst length for the fetch and
    the DMA: a system whose DMA bursts are shorter than its port's is a ValueError."""
    port = dut.signature.members["mem"].signature
    bursts = [dut.loader.dma.burst, dut.storer.dma.burst]
    if any(b != port.max_burst for b in bursts):
        raise ValueError(f"DMA bursts {bursts}: the timing model takes the port's max_burst {port.max_burst}")
    return plan.SystemBuild(port_bytes=port.word_bytes, max_burst=port.max_burst, fetch_depth=dut.seq.fetch_depth,
                            queue_depth=dut.seq.queue_depth, mem_depth=MEMORY_DEPTH)


def run_image(img: im.Image, cfg: AcceleratorConfig, x: np.ndarray, *, word_bytes: int = 1, memory: str = "ideal",
              stall: float = 0.0, seed: int = 0, max_pool: int = DEFAULT_MAX_POOL, limit: int = 400_000,
              vcd: str | None = None, backend: str = "pysim") -> SystemRun:
    """Run one batch ``x`` (``img.batch`` images) through ``img`` on the system; AssertionError
    when the sequencer is not done after ``limit`` cycles. ``backend``: ``pysim`` or
    ``verilator`` (:mod:`sim.verilator_system`: the same run, cycle for cycle)."""
    if backend != "pysim":
        if vcd:
            raise UsageError("--vcd needs --backend pysim")
        return run_images(img, cfg, [x], seeds=[seed], word_bytes=word_bytes, memory=memory, stall=stall,
                          max_pool=max_pool, limit=limit, backend=backend)[0]
    mem = _memory(img, x, word_bytes)
    dut = build(img, cfg, len(mem), word_bytes, max_pool)
    mem_stalls, start_stalls = stall_patterns(seed, stall)
    model = MemoryModel(mem, timing(memory), word_bytes=word_bytes, depth=MEMORY_DEPTH, stalls=mem_stalls)
    res, computes, times = {}, {}, {}

    async def monitor(ctx):
        cu, tr = dut.cu, dut.seq.trace
        t, began = 0, {}
        async for _, _, now, iv, ir, idx, st, dv, dr, *trace in ctx.tick().sample(
                dut.cycles, cu.instr.valid, cu.instr.ready, cu.instr.payload.index, cu.core_start, cu.done.valid,
                cu.done.ready, *(tr[q] for q in QUEUE_ORDER)):
            for q in trace:
                _traced(times, int(now), q)
            if iv and ir:
                began = {"i": int(idx), "t": t, "start": None}
            if st:
                began["start"] = t
            if dv and dr:
                s0 = began["start"]
                computes[began["i"]] = (t - began["t"], None if s0 is None else s0 - began["t"] + 1)
            t += 1

    async def main(ctx):
        for k, v in regions(img).items():
            ctx.set(getattr(dut, k), v)
        await put(ctx, dut.start, [start_beat(img)], lane=Lane(start_stalls, START_LANE))
        for _ in range(limit):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"the system is not done after {limit} cycles")
        res["status"] = (ctx.get(dut.status), ctx.get(dut.index), ctx.get(dut.cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(model.serve(dut.mem), background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(main)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result(img, res["status"], computes, times, mem)


def _traced(times: dict, now: int, q) -> None:
    """One queue's trace (``rtl.ctrl.sequencer``'s ``issue``, ``retire``, ``index``) in the cycle
    ``now``: an instruction issued (its retire not yet seen), or one retired."""
    if q.issue:
        times[int(q.index)] = (now, None)
    if q.retire:
        times[int(q.index)] = (times[int(q.index)][0], now)


def start_beat(img: im.Image) -> dict[str, int]:
    """The sequencer's start beat: the program's byte address and instruction count."""
    return {"addr": img.program_offset, "count": len(img.program)}


def run_images(img: im.Image, cfg: AcceleratorConfig, batches, *, seeds, word_bytes: int = 1, memory: str = "ideal",
               stall: float = 0.0, max_pool: int = DEFAULT_MAX_POOL, limit: int = 400_000, backend: str = "pysim",
               show: bool = False) -> list[SystemRun]:
    """:func:`run_image` for each batch of ``batches`` (seeded by ``seeds``, one each); on
    Verilator all of them in one harness run (``show``: a progress line while it builds)."""
    if len(seeds) != len(batches):
        raise ValueError(f"seeds: {len(seeds)} for {len(batches)} batches")
    if backend == "verilator":
        from .verilator_system import run_batches

        return run_batches(img, cfg, batches, seeds=seeds, word_bytes=word_bytes, memory=memory, stall=stall,
                           max_pool=max_pool, limit=limit, show=show)
    if backend != "pysim":
        raise ValueError(f"backend {backend!r}: pysim or verilator")
    return [run_image(img, cfg, x, word_bytes=word_bytes, memory=memory, stall=stall, seed=sd, max_pool=max_pool,
                      limit=limit) for x, sd in zip(batches, seeds, strict=True)]


def core_cycles(cfg: AcceleratorConfig, ins, layer, max_pool: int = DEFAULT_MAX_POOL) -> int:
    """``perf``'s cycles for the core's part of one COMPUTE ``ins`` of ``layer`` (the band the
    unit gives the engine)."""
    mode = isa.MODES[ins.mode]
    C, H, W = layer.in_shape
    if mode in ELTWISE:
        rows = ins.r1 - ins.r0 if mode == "add" else H
        return perf.core_eltwise_cycles(cfg, mode, C, rows, W, kernel=layer.kernel, stride=layer.stride,
                                        padding=layer.padding, max_pool=max_pool)
    a_e, b, _ = cm.engine_band(mode, H=H, kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                               r0=ins.r0, r1=ins.r1, tile=cfg.tile)
    return perf.core_cycles(cfg, mode, ins.c1 - ins.c0, ins.k1 - ins.k0, b - a_e, W, kernel=layer.kernel,
                            stride=layer.stride, padding=layer.padding, max_kernel=3,
                            direct_only=cfg.algo == "direct")


def layer_cycles(compiled, cfg: AcceleratorConfig, computes, max_pool: int = DEFAULT_MAX_POOL):
    """Per layer of the plan, in order: (name, measured COMPUTE cycles, the plan's compute
    cycles, ``perf``'s core cycles), for the layers whose COMPUTEs answered; a plan that runs
    the layers once per image of the batch (``Plan.repeat``) prices each layer that often."""
    img, layers = compiled.image, compiled.plan.layers
    measured, core = {}, {}
    for i, (cycles, _) in sorted(computes.items()):
        ins = img.program[i]
        measured[ins.layer] = measured.get(ins.layer, 0) + cycles
        core[ins.layer] = core.get(ins.layer, 0) + core_cycles(cfg, ins, layers[ins.layer].layer, max_pool)
    repeat = compiled.plan.repeat
    return [(layers[k].layer.name, v, layers[k].cost.compute * repeat, core[k]) for k, v in sorted(measured.items())]


def status_line(img: im.Image, status: tuple[int, int, int]) -> str | None:
    """The hardware's error, one line (None when it ended well)."""
    code, index, _ = status
    if code == 0:
        return None
    op = img.program[index].OP if 0 <= index < len(img.program) else "?"
    return f"the system stopped: {isa.STATUS.get(code, f'status {code}')} at instruction {index} ({op})"


def first_mismatch(compiled, want: dict[str, np.ndarray], got: dict[str, np.ndarray]):
    """(tensor name, mismatches, first index, got, want) of the first stored tensor, in the plan's
    layer order, that differs from the interpreter's or was never stored; None when all match."""
    order = [lp.layer.name for lp in compiled.plan.layers]
    names = sorted(want, key=lambda n: order.index(n) if n in order else len(order))
    for name in names:
        if name not in got:
            return name, want[name].size, None, None, None
        g, w = got[name][:len(want[name])], want[name]
        bad = g != w
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            return name, int(bad.sum()), idx, int(g[idx]), int(w[idx])
    return None
