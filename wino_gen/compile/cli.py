"""`python -m wino_gen compile`: a model dir -> a memory image (docs/image.md), and the
interpreter that checks it.

    python -m wino_gen compile MODEL_DIR --config top.json --board ulx3s-85f -o image.bin [--run] [--weights spatial]
        [--port-bits N]
    python -m wino_gen compile MODEL_DIR --config top.json --run image.bin

The first form plans the model on the board, compiles the plan and writes the image
atomically; with ``--run`` it then interprets what it wrote. The second interprets an existing
image. Interpreting runs the model dir's stored input samples through the image with the
golden model alone and compares the network output and every tensor the image stores with
``wino_gen.network.run_model``: exit 0 when all are equal, 1 naming the first mismatching layer,
2 (one line) for bad input, an image compiled for another config or a hardware error status.
"""

from __future__ import annotations

import numpy as np

from .. import plan
from ..config import AcceleratorConfig
from ..errors import ArgumentParser, UsageError, number
from ..format import INPUT, load_model
from ..network import run_model
from ..safeio import atomic_write, check_output_file, printable
from . import image as im
from . import interp
from .compiler import DEFAULT_CLOCK_MHZ, compile_model


def _parser() -> ArgumentParser:
    ap = ArgumentParser(prog="wino_gen compile", description=__doc__)
    ap.add_argument("model_dir", help="model dir (manifest.json + one .npz per layer)")
    ap.add_argument("--config", required=True, help="the accelerator config JSON the image is compiled for")
    ap.add_argument("--board", default="ulx3s-85f", help="board whose memories the plan uses")
    ap.add_argument("-o", "--out", help="image file to write")
    ap.add_argument("--run", nargs="?", const=True, metavar="IMAGE",
                    help="interpret IMAGE (alone: the image just written) and compare with golden")
    ap.add_argument("--clock", type=number(float, lo=0, lo_open=True), default=DEFAULT_CLOCK_MHZ,
                    help="engine clock in MHz the plan assumes")
    ap.add_argument("--batch", type=number(int, lo=1, hi=4096), default=1, help="images per run of the program")
    ap.add_argument("--act-bytes", type=number(int, lo=0), help="activation scratchpad bytes (default: planner)")
    ap.add_argument("--weight-bytes", type=number(int, lo=0), help="weight scratchpad bytes (default: planner)")
    ap.add_argument("--memory", help="BYTES_PER_CYCLE,LATENCY: a generic external memory for the plan")
    ap.add_argument("--weights", choices=plan.WEIGHT_FORMATS,
                    help="the Winograd layers' weights in the image: U, or spatial int8 kernels W that the "
                         "engine transforms (default, and it must be: the config's weights)")
    ap.add_argument("--trace", action="store_true", help="store every layer's output, not only the plan's")
    ap.add_argument("--port-bits", type=number(int, lo=8, hi=8 * im.ALIGN),
                    help="the memory port's width every transfer is aligned to (default: the board's external "
                         "memory, ULX3S 16); the image runs on this port or a narrower one")
    ap.add_argument("--seed", type=number(int, lo=0), help="interpret with queues picked at random from this seed")
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.out is None and not isinstance(args.run, str):
        raise UsageError("wino_gen compile: give -o IMAGE to compile, or --run IMAGE to interpret one")
    if args.out is not None and isinstance(args.run, str):
        raise UsageError("wino_gen compile: -o and --run IMAGE exclude each other (use -o IMAGE --run)")
    cfg = AcceleratorConfig.load(args.config)
    if args.out is not None:
        out = check_output_file(args.out, "-o")
        model = load_model(args.model_dir)
        opts = plan.Options(batch=args.batch, weights=args.weights or cfg.weights, act_bytes=args.act_bytes,
                            weight_bytes=args.weight_bytes)
        if args.port_bits is not None and args.port_bits % 8:
            raise UsageError(f"--port-bits: {args.port_bits} is not a whole number of bytes")
        c = compile_model(model, cfg, args.board, args.clock, opts, args.memory, args.trace,
                          None if args.port_bits is None else args.port_bits // 8)
        atomic_write(out, c.image.to_bytes(), "-o")
        img, p = c.image, c.plan
        print(f"compile {printable(model.name)} on {args.board} ({8 * img.port_bytes}-bit port): {len(img.program)} "
              f"instructions, {len(img.weights)} weight bytes, {img.memory_size} bytes of memory; plan {p.cycles} "
              f"cycles per batch of {p.options.batch}, {c.plan_bytes} bytes moved by the plan, {c.step_bytes} by the "
              f"program (+{c.extra_bytes} parameters/resident weights/output stores) -> {printable(str(out))}")
        if not args.run:
            return 0
        path = out
    else:
        path = args.run
        model = load_model(args.model_dir)
    return _interpret(path, model, cfg, args.seed)


def _interpret(path, model, cfg: AcceleratorConfig, seed: int | None) -> int:
    img = im.read(path, "--run", f"image {path}")
    x = model.layers[0].arrays["x"] if INPUT in model.layers[0].inputs else next(
        la.arrays["x"] for la in model.layers if INPUT in la.inputs)
    machine = interp.Machine(img, cfg)
    try:
        got = interp.run(img, cfg, x, schedule=seed, machine=machine)
    except interp.Fault as e:
        raise UsageError(f"image {path}: the machine stopped: {e}") from None
    ref = run_model(model, x)
    first = None
    names = {la.name: printable(la.name) for la in model.layers}
    width = max(16, *map(len, names.values()))
    for la in model.layers:
        if la.name not in got:
            print(f"  {names[la.name]:<{width}} {la.op:<17} not stored (on chip; compile with --trace)")
            continue
        want = ref[la.name]
        bad = int(np.count_nonzero(got[la.name].reshape(want.shape) != want))
        first = first or (la.name if bad else None)
        print(f"  {names[la.name]:<{width}} {la.op:<17} {want.size:>8} outputs {bad:>6} mismatches  "
              f"{'ok' if not bad else 'MISMATCH'}")
    print(f"interpret: {len(x)} samples, batch {img.batch}, token counters up to {machine.max_tokens}: " + (
        "0 mismatches" if first is None else f"first mismatch in layer {names[first]}"))
    return 0 if first is None else 1
