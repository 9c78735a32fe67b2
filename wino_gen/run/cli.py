"""`python -m wino_gen run`: run a model on a board over its serial host link (docs/run.md).

    python -m wino_gen run --board ulx3s-85f --port /dev/ttyUSB0 MODEL_DIR --images x.npy [--labels y.npy]
    python -m wino_gen run --board ulx3s-85f --port golden MODEL_DIR --data fashion-mnist --limit 100

It compiles MODEL_DIR for the config (--config, else the config that runs the model dir, as
the generator's --model gives it) or takes a compiled --image, connects, refuses a bitstream
built for another config (VERSION's sha256), loads the image, runs every input, and prints the
predictions (argmax of the classifier's int8 outputs), the accuracy when the data has labels,
the cycles per image read from the hardware's counter beside the plan's prediction for the
compiled program (wino_gen.plan.program_cycles: the sequencer's fetch, queues and transfers on
the board memory's timing) and the time per image at --clock (the link does not carry the
bitstream's clock). --verify also runs the golden model on the same inputs and compares every
output byte (exit 1 on a mismatch).

--port golden is the golden model (wino_gen.compile.interp behind the link protocol), NOT the
RTL: it checks the host code and the image, not the hardware; it has no clock, so the cycles
printed are the plan's alone (and its counter reads the plan's cycles of a run).
--port sim is the RTL: the board's whole system top (host link, sequencer, DMA, compute core)
built for the image on Verilator, with its SDRAM controller on a behavioural SDRAM chip
(sim/cpp/sdram_chip.h, every timing violation an error) at --clock, or with --sim-memory on a
memory port served by a timing model (faster); its cycles are the hardware's counter (needs
verilator on PATH; the first build of a design takes minutes).
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from .. import link, memory, nets, network, plan, progress, timing
from ..compile import image as im
from ..compile import interp
from ..compile.compiler import DEFAULT_CLOCK_MHZ, compile_model
from ..config import AcceleratorConfig
from ..errors import ArgumentParser, UsageError, number
from ..format import load_model
from ..safeio import printable
from . import board as boards
from . import data
from .runtime import Runtime

DEFAULT_BAUD = 115200


def _parser() -> ArgumentParser:
    ap = ArgumentParser(prog="wino_gen run", description=__doc__)
    ap.add_argument("model_dir", help="model dir (manifest.json + one .npz per layer)")
    ap.add_argument("--board", default="ulx3s-85f", help="the board (its memory holds the image)")
    ap.add_argument("--port", required=True,
                    help="serial port of the board (/dev/ttyUSB0, COM3, a pyserial URL such as socket://HOST:PORT); "
                         "'golden': the golden model, not the RTL; 'sim': the RTL board on Verilator")
    ap.add_argument("--baud", type=number(int, lo=300, hi=12_000_000), default=DEFAULT_BAUD,
                    help="serial rate: the bitstream's --baud")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="FILE.npy", help="int8 network inputs [N, C, H, W]")
    src.add_argument("--data", choices=data.DATASETS, help="a data set's test split, quantized for the model")
    ap.add_argument("--labels", metavar="FILE.npy", help="class labels [N] of --images")
    ap.add_argument("--limit", type=number(int, lo=1), help="the first N images of --data")
    ap.add_argument("--data-dir", help=f"where --data's files are (default: {data.FASHION_DIR})")
    how = ap.add_argument_group("the image")
    how.add_argument("--config", help="accelerator config JSON the bitstream was built for (default: the config "
                                      "that runs MODEL_DIR)")
    how.add_argument("--image", help="a compiled memory image (wino_gen compile) instead of compiling MODEL_DIR")
    how.add_argument("--batch", type=number(int, lo=1, hi=4096), help="images per run when compiling (default 1)")
    how.add_argument("--act-bytes", type=number(int, lo=1), help="activation scratchpad bytes when compiling "
                                                                 "(default: the planner's)")
    how.add_argument("--weight-bytes", type=number(int, lo=1), help="weight scratchpad bytes when compiling "
                                                                    "(default: the planner's)")
    ap.add_argument("--clock", type=number(float, lo=0, lo_open=True), default=DEFAULT_CLOCK_MHZ,
                    help="the bitstream's clock in MHz (report.json's clock_mhz): the plan's clock and the one "
                         "ms/image is computed at")
    ap.add_argument("--timeout", type=number(float, lo=0, lo_open=True), default=link.TIMEOUT_S,
                    help="seconds to wait for each part of a reply (3 tries per request)")
    ap.add_argument("--run-timeout", type=number(float, lo=0, lo_open=True), default=10.0,
                    help="seconds one run may take before it counts as hung")
    ap.add_argument("--sim-memory", metavar="MEMORY",
                    help="--port sim: 'sdram' (default: the SDRAM controller on a behavioural chip) or a timing "
                         "model on the memory port: sdram-ulx3s, ideal, BYTES_PER_CYCLE,LATENCY")
    ap.add_argument("--verify", action="store_true",
                    help="run the golden model on the same inputs and compare every output byte (exit 1 on a mismatch)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return ap


def main(argv: list[str], *, golden=boards.GoldenBoard) -> int:
    """``golden(cfg, cycles, memory_bytes=...)`` makes the board of ``--port golden`` (tests
    pass one with faults)."""
    args = _parser().parse_args(argv)
    if args.labels and not args.images:
        raise UsageError("wino_gen run: --labels goes with --images (--data brings its own labels)")
    if args.limit and not args.data:
        raise UsageError("wino_gen run: --limit goes with --data (cut the --images file instead)")
    if args.sim_memory is not None:
        _check_sim_memory(args)
    if args.port == boards.SIM:           # refused before any compiling when it cannot run
        boards.require_sim()
    model = load_model(args.model_dir)
    x, labels = _inputs(args, model)
    cfg = AcceleratorConfig.load(args.config) if args.config else network.config_for(model)
    img, p = _image(args, model, cfg)
    if p.refusal and args.port != boards.GOLDEN:
        raise UsageError(f"{p.refusal}: the board's compute unit does not run it (it would stop with status "
                         f"unsupported); --port golden runs it")
    show = progress.wanted(args.no_progress)
    memory_bytes = _memory_bytes(args.board)
    predicted = program_plan(p, img, args.board, args.clock)
    make = functools.partial(golden, cfg, predicted[1], memory_bytes=memory_bytes)
    sim = functools.partial(boards.open_sim, model, img, cfg, clock_mhz=args.clock, show=show, memory=args.sim_memory)
    outs, counted, resent, seconds = _on_board(args, img, x, make, sim, show)
    preds = outs.reshape(len(x), -1).argmax(axis=1)
    _report(args, model, img, preds, labels, counted, predicted, resent, seconds)
    return _verify(model, x, outs) if args.verify else 0


def _check_sim_memory(args) -> None:
    """``--sim-memory``: only with ``--port sim``; ``sdram`` or a timing :func:`wino_gen.timing.timing` names."""
    if args.port != boards.SIM:
        raise UsageError(f"--sim-memory goes with --port sim, not --port {printable(args.port)}")
    if args.sim_memory != "sdram":
        try:
            timing.timing(args.sim_memory)
        except UsageError:
            raise UsageError(f"--sim-memory {printable(args.sim_memory)}: expected sdram, sdram-ulx3s, ideal or "
                             "BYTES_PER_CYCLE,LATENCY (a rate > 0, a latency >= 0)") from None


# -- the image and the inputs --------------------------------------------------------------------

def _image(args, model, cfg: AcceleratorConfig) -> tuple[im.Image, plan.Plan]:
    """The image to load and its plan."""
    if args.image is None:
        opts = plan.Options(batch=args.batch or 1, weights=cfg.weights, act_bytes=args.act_bytes,
                            weight_bytes=args.weight_bytes)
        c = compile_model(model, cfg, args.board, args.clock, opts)
        return c.image, c.plan
    if args.act_bytes or args.weight_bytes:
        raise UsageError("--act-bytes and --weight-bytes go with compiling MODEL_DIR, not with --image "
                         "(its scratchpads are the image's)")
    img = im.read(args.image, "--image")
    if args.config:
        interp.check_config(img, cfg)
    if args.batch is not None and args.batch != img.batch:
        raise UsageError(f"--batch {args.batch}: the image {args.image} runs batches of {img.batch}")
    if img.slot(im.INPUT_SLOT).shape != tuple(model.manifest["input"]["shape"]):
        raise UsageError(f"--image {args.image}: its input slot is not the input of {args.model_dir}")
    # the image's scratchpads and port are the plan's: planned again with them, its plan comes back
    opts = plan.Options(batch=img.batch, weights=cfg.weights, act_bytes=img.act_scratch, weight_bytes=img.wgt_scratch,
                        port_bytes=img.port_bytes)
    return img, plan.plan(nets.from_model_dir(model.path), cfg, args.board, args.clock, opts)


def program_plan(p: plan.Plan, img: im.Image, board: str, clock_mhz: float) -> tuple[int, int]:
    """The plan's cycles for the first run of ``img`` (from instruction 0: its prologue loads
    the resident weights) and for every later run (from ``main_entry``):
    :func:`wino_gen.plan.program_cycles` on ``board``'s external memory at ``clock_mhz``."""
    costs = plan.compute_costs(p, img.program)
    total, times = plan.image_cycles(img, costs.__getitem__, _timing(board, clock_mhz),
                                     limit=20 * (p.startup + p.cycles) + 100_000)
    return total, total - times[img.main_entry][0]


def _timing(board: str, clock_mhz: float):
    """The cycle timing of ``board``'s external memory: an SDRAM's at the clock, else its rate."""
    ext = memory.board_memory(board).external
    return timing.SDRAMTiming(ext, clock_mhz) if isinstance(ext, memory.SDRAM) else timing.BandwidthTiming(ext)


def _inputs(args, model) -> tuple[np.ndarray, np.ndarray | None]:
    if args.data:
        return data.fashion_inputs(model, args.data_dir, args.limit)
    x = data.npy_inputs(args.images, model)
    return x, data.npy_labels(args.labels, len(x)) if args.labels else None


def _memory_bytes(board: str) -> int:
    """The board's external memory, the golden board's size (a power of two, as addr_bits says)."""
    ext = memory.board_memory(board).external
    if ext is None:
        raise UsageError(f"--board: {board} has no external RAM to hold a memory image")
    return 1 << max(0, ext.capacity - 1).bit_length()


# -- the board ------------------------------------------------------------------------------------

def _on_board(args, img: im.Image, x: np.ndarray, make_golden, make_sim, show: bool):
    """Load the image and run every batch: the outputs ``[N, ...]``, the hardware's cycles per
    run, the requests resent, the seconds the whole session took. A simulated board brings its
    own clock (``now``/``sleep``, simulated seconds) for the runtime's polls and timeouts."""
    t0 = time.monotonic()
    transport = boards.open_transport(args.port, args.baud, make_golden, make_sim)
    try:
        client = link.Client(transport, name=args.port, timeout=args.timeout)
        rt = Runtime(client, img, run_timeout=args.run_timeout, show=show,
                     now=getattr(transport, "now", time.monotonic), sleep=getattr(transport, "sleep", time.sleep))
        rt.connect()
        rt.load()
        B, outs, cycles = img.batch, [], []
        for lo in progress.bar(range(0, len(x), B), "run", show, total=math.ceil(len(x) / B)):
            chunk = np.zeros((B, *x.shape[1:]), np.int64)
            chunk[:min(B, len(x) - lo)] = x[lo:lo + B]
            r = rt.run(chunk)
            outs.append(r.outputs)
            cycles.append(r.cycles)
    finally:
        transport.close()
    return np.concatenate(outs)[:len(x)], cycles, client.retries, time.monotonic() - t0


def _report(args, model, img, preds, labels, counted, predicted, resent, seconds) -> None:
    """The predictions, the session, the accuracy, and the cycles per image: the counter's
    beside the plan's (``predicted``: :func:`program_plan`'s first and later runs), the plan's
    alone on the golden board."""
    golden = args.port == boards.GOLDEN
    where = {boards.GOLDEN: "golden (the golden model, not the RTL)",
             boards.SIM: "sim (the RTL board on Verilator)"}.get(args.port, printable(args.port))
    for i, p in enumerate(preds):
        print(f"image {i}: class {p}" + (f" (label {labels[i]})" if labels is not None else ""))
    n, runs = len(preds), len(counted)
    print(f"run {printable(model.name)} on {where}: {n} images in {runs} runs of batch {img.batch}, "
          f"{img.memory_size} bytes loaded, {resent} requests resent, {seconds:.2f} s")
    if labels is not None:
        right = int(np.count_nonzero(preds == labels))
        print(f"accuracy: {right}/{n} = {100 * right / n:.1f}%")
    planned = (predicted[0] + (runs - 1) * predicted[1]) / (runs * img.batch)
    if golden:
        per_image, source = planned, "the plan: the golden board has no clock"
    else:
        per_image = sum(counted) / (runs * img.batch)
        source = f"the board's cycle counter; plan {planned:.0f}, {per_image / planned:.4f}x"
    print(f"cycles: {per_image:.0f} per image ({source}); {per_image / (args.clock * 1e3):.4f} ms per image at "
          f"{args.clock:g} MHz (--clock: the link does not carry the bitstream's clock)")


def _verify(model, x: np.ndarray, outs: np.ndarray) -> int:
    """Every output byte against the golden model on the same inputs."""
    want = network.run_model(model, x)[model.layers[-1].name].reshape(outs.shape)
    bad = int(np.count_nonzero(want != outs))
    same = int(np.count_nonzero(want.reshape(len(x), -1).argmax(1) == outs.reshape(len(x), -1).argmax(1)))
    print(f"verify: {outs.size} output bytes, {bad} mismatches against the golden model; "
          f"{same}/{len(x)} predictions equal")
    return 0 if bad == 0 else 1
