"""``python -m sim [MODEL_DIR]``: run a model dir layer by layer on the simulated accelerator.

Winograd layers run on the Winograd engine, direct convolutions on the direct engine (same
multipliers), host ops (add, pools, linear) in the golden model (``wino_gen.network``). Each
layer gets its stored reference input and every output byte is compared with the stored
reference output. The last line is ``sim: <L> layers, <N> outputs, <X> mismatches, <C> cycles``;
the exit status is 1 on any mismatch. Bad input (a flag, the model dir, an output path, no
Verilator, an unwritable Verilator cache) is one line on stderr and exit 2, found before any
layer runs; Ctrl-C is exit 130. ``--vcd`` and ``--config-out`` files appear whole or not at
all, ``--config-out`` only after a run with no mismatch.

``--system`` instead compiles the model dir into a memory image (``wino_gen.compile``, every
layer output stored) and runs ``--images`` inputs through the full system (:mod:`sim.system`)
behind a ``--memory`` timing; every stored tensor is compared with the image interpreter's.
``--direct-only`` builds the system's core without Winograd mode (``algo=direct``, the same
multipliers): one config, the one the compiler, the planner and the system are built from.
``--weights spatial`` (``--weight-lanes N``) builds the system's core with the weight transform:
the image holds the Winograd layers' 3x3 kernels ``W`` and their U requant (a model dir with
``W`` and ``u_mult``/``u_shift``, else one line, exit 2). These flags size the smallest config
for the model (``wino_gen.network.config_for``); ``--config FILE`` builds the one a file
describes instead (narrower buffers than the model's widest layer: the planner bands and
splits the layers to fit), its ``algo`` and ``weights`` standing for ``--direct-only`` and
``--weights``.
``--no-trace`` compiles the image ``wino_gen compile`` writes by default (no STORE of each
on-chip layer output: the inference's own traffic), and compares what it stores.
``--backend verilator`` runs every image in one run of a cached Verilator build of the system
(:mod:`sim.verilator_system`), cycle for cycle the pysim run.

One line per layer (all images summed): its engine and the plan's bound (compute or memory),
the measured COMPUTE cycles beside the plan's and ``perf``'s core cycles, the bytes its
LOAD/STOREs move, its window beside the plan's total for the layer and the window the plan's
program model gives it, and for a memory-bound layer the bandwidth utilization: those bytes over
the measured window as a share of the memory's sustained rate (:func:`sustained_rate`: a long
sequential read in the DMA's bursts on the same ``--memory`` timing). A layer's window is
measured, from the sequencer's trace (:attr:`sim.system.SystemRun.times`, the same on both
backends): it runs from the cycle the previous layer's last COMPUTE retired (the first layer's
from the cycle its parameter LOAD issued) to the cycle its own last COMPUTE retired
(:func:`layer_windows`), so the windows of the layers tile the run after the prologue; the
modelled window is the same cut of :func:`wino_gen.plan.program_cycles` on the plan's COMPUTE
cycles (the run the plan's total comes from, so it costs nothing more).
``--batch N`` compiles the image for batches of N images (``plan.Options(batch=N)``, as
``wino_gen run --batch`` does): ``--images`` run in batches of N, a short last one padded with
zero images; cycles per image count every slot of every run (the runtime's rule).
Then the run's cycles and ms per image at the plan's clock (the memory timing's), and
``--json FILE`` writes the same table and totals. The last line is
``sim: system, <L> layers, <I> image(s), <N> outputs, 0 mismatches, <C> cycles (plan <P>)``,
or ``sim: system, failed: ...`` naming the first mismatching layer or the hardware's error status
(instruction index and opcode), exit 1.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wino_gen import isa, progress, safeio
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import ArgumentParser, UsageError, number, run_cli

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "examples" / "tiny"
ENGINE_OPS = ("winograd_conv3x3", "direct_conv")
#: bytes of the sequential read that measures a memory's sustained rate (on the 2-byte SDRAM
#: port at 100 MHz: 168 refresh intervals)
SUSTAINED_BYTES = 1 << 18


def parser():
    from .streams import MAX_STALL

    p = ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL),
                   help="model dir (default examples/tiny)")
    p.add_argument("--backend", default="pysim", choices=["pysim", "verilator"],
                   help="simulation backend: pysim (Amaranth) or verilator (builds the exported "
                        "Verilog once per engine, cached; much faster for big layers)")
    p.add_argument("--unroll", type=number(int, lo=1), default=4, help="output channels in parallel")
    p.add_argument("--unroll-in", type=number(int, lo=1), default=1, help="input channels in parallel")
    p.add_argument("--weights", choices=("winograd", "spatial"), default="winograd",
                   help="what the Winograd engine's w port takes: U words (winograd), or the int8 3x3 "
                        "kernels W of a model dir with spatial weights, transformed on chip (spatial)")
    p.add_argument("--weight-lanes", type=number(int, lo=1), default=1,
                   help="kernels per cycle into the weight transform (--weights spatial)")
    p.add_argument("--samples", type=number(int, lo=1), default=None,
                   help="samples per layer (default all)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="only this layer (repeatable)")
    p.add_argument("--vcd", metavar="FILE",
                   help="write the waveform of the first accelerator run (first sample of the "
                        "first hardware layer selected) to FILE; pysim only")
    p.add_argument("--config-out", metavar="FILE",
                   help="write the Winograd engine's config JSON, once every output matched")
    p.add_argument("--stall", type=number(float, lo=0, hi=MAX_STALL), default=0.0,
                   help="probability that an input holds back its beat or the output its ready, each "
                        "cycle: the same seeded pattern on pysim and Verilator (0: no stalls, cycles = perf)")
    p.add_argument("--stall-seed", type=number(int, lo=0, hi=2**64 - 1), default=0,
                   help="seed of the stall pattern")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress line while Verilator builds or the system runs (shown only on a terminal)")
    p.add_argument("--system", action="store_true",
                   help="run the whole network on the full system (sequencer, DMA, scratchpads, core) from "
                        "the compiled memory image instead of layer by layer (pysim, or verilator: one build "
                        "per config, scratchpad sizes and port, cached)")
    p.add_argument("--config", metavar="FILE",
                   help="--system: the accelerator config JSON to build (`python -m wino_gen --config-out`'s, "
                        "or a build's top.json) instead of the smallest one for the model, which --unroll, "
                        "--unroll-in, --weights, --weight-lanes and --direct-only choose")
    p.add_argument("--memory", default="ideal", metavar="ideal|sdram-ulx3s|B,L",
                   help="--system: the external memory's timing (B bytes a cycle after L cycles)")
    p.add_argument("--images", type=number(int, lo=1), default=None,
                   help="--system: inputs to run, the model's export samples (default 1)")
    p.add_argument("--board", default="ulx3s-85f", help="--system: the board the image is compiled for")
    p.add_argument("--direct-only", action="store_true",
                   help="--system: the direct-only system (algo=direct: the core without Winograd mode, the same "
                        "multipliers); the model's convolutions must all be direct_conv")
    p.add_argument("--no-trace", action="store_true",
                   help="--system: compile without the STOREs of every on-chip layer output (the image "
                        "wino_gen compile writes without --trace: the inference's own traffic); only the tensors "
                        "it stores (the network output, layers placed in external memory) are compared")
    p.add_argument("--batch", type=number(int, lo=1, hi=4096), default=1,
                   help="--system: images per run (the image compiled for batches of N, as wino_gen run --batch "
                        "compiles it); a short last batch is padded with zero images, as the runtime pads it")
    p.add_argument("--json", metavar="FILE",
                   help="--system: write the per-layer table and the totals as JSON to FILE")
    return p


def check_args(args) -> None:
    """Everything about the flags that can be refused before the model is read or a layer runs:
    the output paths (a missing or read-only folder) and flag combinations."""
    if args.vcd:
        if args.backend != "pysim":
            raise UsageError("--vcd needs --backend pysim")
        safeio.check_output_file(args.vcd, "--vcd")
    if args.config_out:
        safeio.check_output_file(args.config_out, "--config-out")
    if args.system:
        check_system_args(args)
    else:
        for flag, given in (("--memory", args.memory != "ideal"), ("--images", args.images is not None),
                            ("--board", args.board != "ulx3s-85f"), ("--direct-only", args.direct_only),
                            ("--no-trace", args.no_trace), ("--json", args.json), ("--batch", args.batch != 1),
                            ("--config", args.config)):
            if given:
                raise UsageError(f"{flag} needs --system")


def check_system_args(args) -> None:
    """The flags ``--system`` refuses: what the system run is not built for yet, and the
    layer-by-layer run's own selections."""
    from wino_gen import memory

    from .memory import timing

    if args.backend == "verilator":
        from .verilator import cache_dir, require_verilator

        require_verilator()
        cache_dir()
    if args.config:
        for flag, given in (("--unroll", args.unroll != 4), ("--unroll-in", args.unroll_in != 1),
                            ("--weights", args.weights != "winograd"), ("--weight-lanes", args.weight_lanes != 1),
                            ("--direct-only", args.direct_only)):
            if given:
                raise UsageError(f"{flag}: not with --config (the config file sets the build)")
    if args.direct_only and args.weights == "spatial":
        raise UsageError("--direct-only --weights spatial: the direct-only core has no Winograd mode to take spatial "
                         "weights")
    for flag, given in (("--layer", args.layer), ("--samples", args.samples), ("--config-out", args.config_out)):
        if given:
            raise UsageError(f"{flag}: not with --system (it runs every layer; --images N picks the inputs)")
    if args.json:
        safeio.check_output_file(args.json, "--json")
    timing(args.memory)
    memory.board_memory(args.board)


def selected_layers(model, names):
    known = {layer.name for layer in model.layers}
    for n in names or []:
        if n not in known:
            raise UsageError(f"--layer {safeio.printable(n)}: no such layer; layers: "
                             f"{', '.join(safeio.printable(k) for k in sorted(known))}")
    return [layer for layer in model.layers if not names or layer.name in names]


@dataclass
class Result:
    y: np.ndarray
    engine: str          # winograd, direct or host
    cycles: int = 0      # simulated, all samples
    perf: int = 0        # wino_gen.perf's estimate, all samples


def engine_spec(model, layer, network, wcfg, dcfg):
    """(engine, the layer's streams, perf's cycle estimate per sample) for a hardware layer."""
    from wino_gen import perf

    from .driver import DirectLayer, WinogradLayer

    a, s = layer.arrays, layer.spec
    C, H, W = layer.in_shape
    if layer.op == "winograd_conv3x3":
        req = {k: network.requant(layer, k) for k in ("v", "m", "y")}
        if wcfg.weights == "spatial":      # the engine transforms W itself
            wts = {"W": a["W"], "u": network.requant(layer, "u")}
        else:                              # stored U, or W transformed on the host
            wts = {"U": network.winograd_weights(model, layer)}
        spec = WinogradLayer(wcfg, bias=a["bias"], **wts, **req, m_align=a["m_align"], padding=s["padding"],
                             relu=s["relu"])
        return "winograd", spec, perf.winograd_layer(wcfg, C, spec.K, H, W, s["padding"])["cycles"]
    Wt = a["W"]
    spec = DirectLayer(dcfg, Wt, a["bias"], y=network.requant(layer, "y"), stride=s["stride"],
                       padding=s["padding"], relu=s["relu"])
    return "direct", spec, perf.direct_layer(dcfg, C, Wt.shape[0], H, W, Wt.shape[-1], s["stride"],
                                             s["padding"])["cycles"]


def run_one(model, layer, xs, wcfg, dcfg, backend, vcd: str | None, stall: tuple[float, int]) -> Result:
    """One layer on its engine (or the golden model for host ops); with ``vcd`` the first
    sample's waveform is written there, whole or not at all."""
    from wino_gen import network

    from .backend import PysimBackend
    from .driver import run_layer

    if layer.op not in ENGINE_OPS:
        return Result(network.run_layer(model, layer, xs), "host")
    engine, spec, pc = engine_spec(model, layer, network, wcfg, dcfg)
    x = xs[0].astype(np.int64)
    runs = []
    if vcd:
        with safeio.atomic_file(vcd, "--vcd") as tmp:
            runs.append(run_layer(spec, x[:1], PysimBackend(vcd=str(tmp), stall=stall[0], seed=stall[1])))
        x = x[1:]
    if len(x):
        runs.append(run_layer(spec, x, backend))
    y = np.concatenate([r.y for r in runs])
    return Result(y, engine, sum(r.cycles for r in runs), pc * len(y))


def compile_for(model, cfg, args, word: int):
    """The model dir compiled for ``cfg`` on ``--board`` (every layer output stored, so that each
    can be compared, unless ``--no-trace``), planned for the memory the run uses: ``--memory``
    (``ideal``: a word per cycle), its ``word``-byte port, and the clock the simulated SDRAM's
    timings are taken at."""
    from wino_gen import plan
    from wino_gen.compile import compiler

    from .memory import SDRAM_CLOCK_MHZ

    spec = {"ideal": f"{word},0", "sdram-ulx3s": None}.get(args.memory, args.memory)
    return compiler.compile_model(model, cfg, board=args.board, clock_mhz=SDRAM_CLOCK_MHZ, memory_spec=spec,
                                  trace=not args.no_trace,
                                  options=plan.Options(port_bytes=word, batch=args.batch, weights=cfg.weights))


def program_model(c, compute_cycles, memory_spec: str):
    """``(cycles, every instruction's (start, retire) cycles)`` of the compiled program on the
    system as :func:`wino_gen.plan.program_cycles` models it: the sequencer's overlap of fetch,
    transfers and COMPUTEs (``compute_cycles(index)`` cycles each) on the memory ``memory_spec``
    behind the image's port."""
    from wino_gen import plan

    from .memory import timing

    return plan.image_cycles(c.image, compute_cycles, timing(memory_spec))


def sustained_rate(memory_spec: str, word: int) -> float:
    """Bytes per cycle the ``memory_spec`` timing sustains: a long sequential read in the DMA's
    longest bursts (:data:`sim.system.MAX_BURST` port words), every word taken when due
    (:func:`sim.memory.replay`), so that the SDRAM's refreshes and row opens count and the
    port's word a cycle caps it. The 100% of the utilization column."""
    from .memory import replay, timing
    from .system import MAX_BURST

    burst = MAX_BURST * word
    n = SUSTAINED_BYTES // burst
    return n * burst / replay(timing(memory_spec), [(k * burst, burst, False) for k in range(n)], word)


def segments(img) -> list[tuple[int, list[int]]]:
    """The program cut into layer runs: ``(plan layer, its instruction indices)`` in program
    order. The compiler opens each layer (each repeat of it) with the LOAD of its parameter
    block, so a run lasts from one parameter LOAD to the next; the prologue before the first
    (resident weights) belongs to none. ValueError when a COMPUTE in a run names another layer
    (the rule no longer holds)."""
    param, runs = isa.BUFFERS.index("param"), []
    for i, ins in enumerate(img.program):
        if ins.OP == "LOAD" and ins.buffer == param:
            runs.append((len(runs) % img.n_layers, []))
        if not runs:
            continue
        if ins.OP == "COMPUTE" and ins.layer != runs[-1][0]:
            raise ValueError(f"instruction {i}: a COMPUTE of layer {ins.layer} in the run of layer {runs[-1][0]}")
        runs[-1][1].append(i)
    return runs


def weight_owner(img, i: int) -> int | None:
    """The plan layer a weight-buffer LOAD ``i`` loads for: that of the first COMPUTE after it
    whose weight address lies in the bytes it writes (None: none reads them). The compiler
    issues a layer's first weight LOAD under the previous layer's compute
    (``wino_gen.plan.hoists``), so the program position alone does not say it."""
    ins = img.program[i]
    lo, hi = ins.sp_addr, ins.sp_addr + (ins.count - 1) * ins.sp_stride + ins.burst
    return next((c.layer for c in img.program[i + 1:] if c.OP == "COMPUTE" and lo <= c.w_addr < hi), None)


def layer_windows(img, times) -> dict[int, tuple[int, int]]:
    """Per plan layer: (bytes its LOAD/STOREs move, the cycles of its window), summed over its
    runs (:func:`segments`). A run's window ends when its last COMPUTE retires and starts where
    the previous run's ended (the first at its parameter LOAD's start, after the prologue): the
    compute queue runs in order, so the windows cut the program's timeline into layers. A
    transfer counts for the run it sits in, but a weight LOAD for the layer it loads for
    (:func:`weight_owner`: a hoisted one moves in an earlier layer's window).
    ``times``: every instruction's (issue, retire) cycles, measured (:attr:`sim.system.SystemRun.times`:
    the sequencer's trace) or modelled (:func:`program_model`)."""
    runs = segments(img)
    wgt = isa.BUFFERS.index("wgt")
    moved, windows = {}, {}
    end = times[runs[0][1][0]][0] if runs else 0
    for k, idx in runs:
        for i in idx:
            ins = img.program[i]
            if ins.OP in ("LOAD", "STORE"):
                owner = weight_owner(img, i) if ins.OP == "LOAD" and ins.buffer == wgt else None
                owner = k if owner is None else owner
                moved[owner] = moved.get(owner, 0) + ins.count * ins.burst
        start = end
        end = max([times[i][1] for i in idx if img.program[i].OP == "COMPUTE"], default=start)
        windows[k] = windows.get(k, 0) + end - start
    return {k: (moved.get(k, 0), w) for k, w in windows.items()}


def layer_row(lp, got: int, planned: int, core: int, moved: int, window: int, total: int, plan_window: int,
              rate: float) -> dict:
    """One layer of the report (the JSON's and the printed line's): its engine, the plan's bound,
    measured and planned COMPUTE cycles, perf's core cycles, the bytes its transfers move, its
    measured window (:func:`layer_windows` on the run's trace) beside the plan's ``total`` and
    the window of the plan's program model (``plan_window``), and those bytes over the measured
    window as a share of the sustained ``rate``."""
    return {"layer": lp.layer.name, "engine": lp.engine, "bound": lp.bound, "measured": got, "plan": planned,
            "ratio": round(got / planned, 4), "perf_core": core, "bytes": moved, "window": window,
            "plan_total": total, "plan_window": plan_window,
            "utilization": round(moved / window / rate, 4) if window else None}


def row_line(r: dict, col: int) -> str:
    """The printed line of a :func:`layer_row`; the utilization only where the layer is memory-bound."""
    util = f", {r['utilization']:.1%} of the sustained rate" if r["bound"] == "memory" and r["window"] else ""
    return (f"  {safeio.printable(r['layer']):<{col}} {r['engine']:<8} {r['bound']:<7} {r['measured']} cycles "
            f"measured, plan {r['plan']} ({r['ratio']:.3f}x), perf core {r['perf_core']}; {r['bytes']} B in a "
            f"{r['window']}-cycle window (plan {r['plan_total']}, modelled {r['plan_window']}){util}")


def reference(img, cfg, x):
    """The image interpreter's stored tensors for ``x`` (``wino_gen check``'s outputs)."""
    from wino_gen.compile import interp

    return interp.run(img, cfg, x)


def checked(c, cfg, lo: int, x, run) -> dict[str, np.ndarray]:
    """The interpreter's stored tensors for the batch ``x`` at ``lo``; :class:`SystemFailure`
    when its run ended in an error status or a stored tensor differs from them."""
    from wino_gen.compile import interp

    from . import system

    err = system.status_line(c.image, run.status)
    if err:
        raise SystemFailure(f"image {lo}: {err}")
    try:
        want = reference(c.image, cfg, x)
    except interp.Fault as e:
        raise SystemFailure(f"image {lo}: the system ended well, the interpreter did not: {e}") from None
    bad = system.first_mismatch(c, want, run.got)
    if bad:
        name, count, idx, g, w = bad
        where = "never stored" if idx is None else f"{count} mismatches, first at {idx}: got {g}, reference {w}"
        raise SystemFailure(f"layer {safeio.printable(name)}: {where} (image {lo})")
    return want


def run_batches(args, img, cfg, xs, n: int, word: int, max_pool: int, limit: int):
    """``(first image index, batch, SystemRun)`` of every batch of the first ``n`` inputs."""
    from . import system

    show = progress.wanted(args.no_progress)
    starts = range(0, n, img.batch)
    batches = [xs[lo:min(n, lo + img.batch)] for lo in starts]
    # pysim: a progress line per batch; Verilator: every batch in one harness run
    groups = [list(starts)] if args.backend == "verilator" else [[lo] for lo in starts]
    runs = []
    for group in groups:
        first, last = group[0] + 1, group[-1] + len(batches[group[-1] // img.batch])
        with progress.step(f"sim: system, images {first}..{last} of {n}", show):
            runs += system.run_images(img, cfg, [batches[lo // img.batch] for lo in group],
                                      seeds=[args.stall_seed + lo for lo in group], word_bytes=word,
                                      memory=args.memory, stall=args.stall, max_pool=max_pool, limit=limit,
                                      backend=args.backend, show=show)
    return list(zip(starts, batches, runs, strict=True))


def tally(c, cfg, batches, plan_times, max_pool: int):
    """Per layer the sums over the (checked) batches of (measured, planned and perf core COMPUTE
    cycles, bytes moved, the measured window, the plan's total, the window of the plan's program
    model ``plan_times``), and the measured cycles."""
    from . import system

    lps = {lp.layer.name: (k, lp) for k, lp in enumerate(c.plan.layers)}
    planned_windows = layer_windows(c.image, plan_times)
    totals, measured = {}, 0
    for _, _, run in batches:
        use = layer_windows(c.image, run.times)
        for name, got, planned, core in system.layer_cycles(c, cfg, run.computes, max_pool):
            k, lp = lps[name]
            t = totals.setdefault(name, [lp, 0, 0, 0, 0, 0, 0, 0])
            for j, v in enumerate((got, planned, core, *use[k], lp.cost.total * c.plan.repeat,
                                   planned_windows[k][1]), 1):
                t[j] += v
        measured += run.status[2]
    return totals, measured


def system_main(args, model, cfg) -> int:
    """``--system``: the whole network from the compiled image on the full system, image batch
    by image batch; every stored tensor compared with the interpreter's, per layer the measured
    COMPUTE cycles beside the plan's and ``perf``'s core cycles and the layer's transfers."""
    from wino_gen import memory, plan

    from . import system

    t0 = time.perf_counter()
    xs = model.layers[0].arrays["x"]
    n = args.images or 1
    if n > len(xs):
        raise UsageError(f"--images {n}: {safeio.printable(str(args.model))} holds {len(xs)} export samples")
    word = memory.board_memory(args.board).external.word_bytes if args.memory == "sdram-ulx3s" else 1
    c = compile_for(model, cfg, args, word)
    if c.plan.refusal:
        raise UsageError(f"{c.plan.refusal}: the system's compute unit does not run it (it would stop with status "
                         f"unsupported)")
    img = c.image
    max_pool = system.max_pool_for(model)
    spatial = f", spatial weights ({cfg.weight_lanes} kernels a cycle)" if cfg.weights == "spatial" else ""
    core = f"direct-only core unroll {cfg.unroll}x{cfg.unroll_in}" if args.direct_only else \
        f"F({cfg.tile}x{cfg.tile},3x3) unroll {cfg.unroll}x{cfg.unroll_in}{spatial}"
    print(f"sim: model {safeio.printable(model.name)} ({safeio.printable(str(args.model))}) on the system, "
          f"{core} ({cfg.multipliers} multipliers), board {args.board}, memory {args.memory} ({word}-byte port), "
          f"{len(img.program)} instructions, {n} image(s)", flush=True)
    batches = run_batches(args, img, cfg, xs, n, word, max_pool, 20 * c.plan.cycles * img.batch + 100_000)
    want = [checked(c, cfg, lo, x, run) for lo, x, run in batches][-1]       # the last batch's tensors
    plan_run, plan_times = program_model(c, plan.compute_costs(c.plan, img.program).__getitem__, args.memory)
    totals, cycles = tally(c, cfg, batches, plan_times, max_pool)
    rate = sustained_rate(args.memory, word)
    rows = [layer_row(*v, rate) for v in totals.values()]
    col = max([12] + [len(safeio.printable(k)) for k in totals])
    for r in rows:
        print(row_line(r, col), flush=True)
    planned, slots = plan_run * len(batches), len(batches) * img.batch
    clock, per_image = c.plan.clock_mhz, cycles / slots
    print(f"  windows: measured (the sequencer's trace), modelled: plan.program_cycles on the plan's COMPUTE "
          f"cycles; sustained rate {rate:.3f} B/cycle ({args.memory}, sequential reads in "
          f"{system.MAX_BURST * word}-byte bursts)")
    print(f"sim: system, {per_image:.0f} cycles/image, {per_image / (clock * 1e3):.3f} ms/image at {clock:g} MHz "
          f"(the plan's clock, the memory timing's; {len(batches)} run(s) of batch {img.batch})")
    outputs = sum(v.size for v in want.values()) * n // len(batches[-1][1])
    seconds = time.perf_counter() - t0
    print(f"  ({seconds:.1f} s)", file=sys.stderr)
    if args.json:
        totals_json = {"cycles": cycles, "plan_cycles": planned, "batch": img.batch, "runs": len(batches),
                       "cycles_per_image": round(per_image), "ms_per_image": round(per_image / (clock * 1e3), 4),
                       "outputs": outputs, "mismatches": 0, "seconds": round(seconds, 1)}
        write_report(args, model, cfg, word, clock, rate, rows, totals_json)
    print(f"sim: system, {len(totals)} layers, {n} image(s), {outputs} outputs, 0 mismatches, {cycles} cycles "
          f"(plan {planned}, {cycles / planned:.4f}x)")
    return 0


def write_report(args, model, cfg, word: int, clock: float, rate: float, rows: list[dict], totals: dict) -> None:
    """``--json``: the run's flags, config and memory, the per-layer rows and the totals, whole or not at all."""
    core = "direct-only" if args.direct_only else "dual-spatial" if cfg.weights == "spatial" else "dual"
    report = {"model": model.name, "model_dir": str(args.model), "core": core,
              "trace": not args.no_trace, "config": cfg.to_dict(), "board": args.board, "memory": args.memory,
              "port_bytes": word, "backend": args.backend, "stall": args.stall, "images": args.images or 1,
              "clock_mhz": clock, "sustained_bytes_per_cycle": round(rate, 4), "layers": rows, **totals}
    safeio.atomic_write(args.json, json.dumps(report, indent=1) + "\n", "--json")


def check_spatial_model(model, path) -> None:
    """``--weights spatial``: every Winograd layer must hold its spatial kernels ``W`` and their U
    requant (one line naming the first that does not)."""
    from wino_gen.format import SPATIAL_KEYS

    bare = [la.name for la in model.layers if la.op == "winograd_conv3x3"
            and not set(SPATIAL_KEYS) <= set(la.arrays)]
    if bare:
        raise UsageError(f"--weights spatial: layer {safeio.printable(bare[0])} of {safeio.printable(str(path))} "
                         f"holds no spatial weights W (a wino-int8/2 model dir with W and u_mult/u_shift)")


class SystemFailure(Exception):
    """A system run that ended wrong: the hardware's error status or a mismatching layer."""


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    check_args(args)
    from wino_gen import network
    from wino_gen.format import load_model

    from .backend import make_backend

    model = load_model(args.model)
    if args.config:         # the build the file describes: its algo and weights stand for the flags
        given = AcceleratorConfig.load(args.config)
        args.direct_only, args.weights = given.algo == "direct", given.weights
    if args.weights == "spatial":
        check_spatial_model(model, args.model)
    wcfg = network.config_for(model, unroll=args.unroll, unroll_in=args.unroll_in, weights=args.weights,
                              weight_lanes=args.weight_lanes)
    if args.system:
        if args.config:
            cfg = given
        elif args.direct_only:
            cfg = network.config_for(model, unroll=args.unroll, unroll_in=args.unroll_in, algo="direct")
        else:
            cfg = wcfg
        try:
            return system_main(args, model, cfg)
        except SystemFailure as e:
            print(f"sim: {e}", file=sys.stderr)
            print(f"sim: system, failed: {e}")
            return 1
    dcfg = network.config_for(model, unroll=args.unroll, unroll_in=args.unroll_in, algo="direct")
    layers = selected_layers(model, args.layer)
    backend = make_backend(args.backend, show=progress.wanted(args.no_progress), stall=args.stall,
                           seed=args.stall_seed)
    print(f"sim: model {safeio.printable(model.name)} ({safeio.printable(str(args.model))}), "
          f"backend {args.backend}, Winograd engine F({wcfg.tile}x{wcfg.tile},3x3) unroll "
          f"{wcfg.unroll}x{wcfg.unroll_in} ({wcfg.multipliers} multipliers, {wcfg.weights} weights), direct "
          f"engine same multipliers", flush=True)
    col = max([12] + [len(safeio.printable(layer.name)) for layer in layers])
    total_out = total_bad = total_cyc = 0
    bad_layers = []
    vcd = args.vcd
    t0 = time.perf_counter()
    for layer in layers:
        xs = [x[:args.samples] for x in network.stored_inputs(layer)]
        ref = layer.arrays["y"][:len(xs[0])].astype(np.int64)
        r = run_one(model, layer, xs, wcfg, dcfg, backend, vcd, (args.stall, args.stall_seed))
        if r.engine != "host":
            vcd = None
        y = np.asarray(r.y, dtype=np.int64).reshape(ref.shape)
        bad = int(np.count_nonzero(y != ref))
        total_out += ref.size
        total_bad += bad
        total_cyc += r.cycles
        name = safeio.printable(layer.name)
        extra = f", {r.cycles} cycles (perf {r.perf})" if r.engine != "host" else ""
        print(f"  {name:<{col}} {layer.op:<17} on {r.engine:<8} {ref.size} outputs, "
              f"{bad} mismatches{extra}", flush=True)
        if bad:
            bad_layers.append(name)
            idx = tuple(int(i) for i in np.argwhere(y != ref)[0])
            print(f"sim: layer {name}: {bad} mismatches, first at {idx}: "
                  f"got {int(y[idx])}, reference {int(ref[idx])}", file=sys.stderr)
    print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if bad_layers:
        print(f"sim: mismatches in layer(s) {', '.join(bad_layers)}", file=sys.stderr)
    elif args.config_out:
        wcfg.save(args.config_out, "--config-out")
    print(f"sim: {len(layers)} layers, {total_out} outputs, {total_bad} mismatches, {total_cyc} cycles")
    return 1 if total_bad else 0


def entry() -> int:
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(entry())
