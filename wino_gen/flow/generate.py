"""``python -m wino_gen [flags] > top.v``: generate the accelerator's Verilog (or RTLIL).

Only the design goes to stdout; logs go to stderr. Every ``AcceleratorConfig`` field has a
flag; ``--config FILE`` starts from a saved config, flags override it; ``--model MODEL_DIR``
sizes the config to run that model dir (flags may widen it, never contradict it);
``--config-out FILE`` writes the JSON config that produced the output, once the design is
written whole. The structure is :func:`export_options`'s, fixed by the output format (no flag
changes it), so the config alone says how the design was made: no options file beside it.
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import progress, safeio
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, config_from_args
from ..errors import ArgumentParser, UsageError
from ..options import BuildOptions


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m wino_gen", description=__doc__)
    add_config_flags(p)
    p.add_argument("--rtlil", action="store_true",
                   help="write RTLIL (self-contained, for yosys synthesis) instead of Verilog")
    p.add_argument("--config-out", metavar="FILE", help="write the JSON config used")
    p.add_argument("--name", default="wino_top", help="top module name")
    p.add_argument("--no-progress", action="store_true", help="no elapsed-time line on stderr")
    return p


def export_options(rtlil: bool) -> BuildOptions:
    """The structure of the exported design: the default one, with every buffer an instance of
    :data:`rtl.ram.MODULE` in Verilog (emitting the memories' contents would take minutes) and
    an Amaranth memory in RTLIL (self-contained for yosys)."""
    return BuildOptions(blackbox_ram=not rtlil)


def generate(cfg: AcceleratorConfig, *, rtlil: bool = False, name: str = "wino_top") -> str:
    """The design text, built with :func:`export_options`. Verilog contains the definition of
    :data:`rtl.ram.MODULE` after the design."""
    from amaranth.back import rtlil as rtlil_back
    from amaranth.back import verilog

    from rtl.ram import VERILOG
    from rtl.top import build_top

    top = build_top(cfg, export_options(rtlil))
    if rtlil:
        return rtlil_back.convert(top, name=name, emit_src=False)
    return verilog.convert(top, name=name, emit_src=False) + VERILOG


def main(argv: list[str] | None = None) -> int:
    """The design goes to stdout first; ``--config-out`` is written (atomically) only once the
    design is out whole, so a failed write (a full disk) leaves no config of a missing design."""
    args = parser().parse_args(argv)
    if args.name and not args.name.isidentifier():
        raise UsageError(f"--name: {args.name!r} is not a valid module name")
    if args.config_out:
        safeio.check_output_file(args.config_out, "--config-out")
    cfg = config_from_args(args)
    kind = "RTLIL" if args.rtlil else "Verilog"
    t0 = time.perf_counter()
    with progress.step(f"wino_gen: elaborating {kind}", progress.wanted(args.no_progress)):
        text = generate(cfg, rtlil=args.rtlil, name=args.name)
    dt = time.perf_counter() - t0
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.config_out:
        safeio.atomic_write(args.config_out, cfg.to_json(), "--config-out")
    print(f"wino_gen: {cfg.algo} F({cfg.tile}x{cfg.tile},3x3) unroll {cfg.unroll}x{cfg.unroll_in}, "
          f"{cfg.multipliers} multipliers, {kind} {len(text) / 1e6:.1f} MB in {dt:.1f} s", file=sys.stderr)
    return 0
