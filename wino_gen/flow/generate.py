"""``python -m wino_gen [flags] > top.v``: generate the compute core's Verilog (or RTLIL).

Only the design goes to stdout; logs go to stderr. Every ``AcceleratorConfig`` field has a
flag; ``--config FILE`` starts from a saved config, flags override it; ``--model MODEL_DIR``
sizes the config to run that model dir (flags may widen it, never contradict it);
``--config-out FILE`` writes the JSON config that produced the output, once the design is
written whole.

The design is the compute core, :class:`rtl.core.Core` (Winograd, direct k x k / stride s,
linear, add and pools on one PE array, a mode per command): its ports are the core's streams
(``x``, ``x2``, ``w``, ``o``) and its command (``layer``, ``start``, ``busy``).
``--direct-only`` compiles Winograd mode out (the baseline at equal multipliers);
``--max-kernel`` and ``--max-pool`` size its window generator and pooling unit (the
system's defaults otherwise). ``--engine`` emits the standalone engine of ``--algo`` instead
(``rtl.top``: the Winograd engine, or the direct engine fed im2col patches), the design the
self-test bitstream, the Verilator backend's engine runs and the spatial-weights front
(``--weights spatial``) still use.

The structure is :func:`export_options`'s, fixed by the output format (no flag changes it):
the config and the flags above say how the design was made, and the summary line on stderr
names them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from .. import progress, safeio
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, config_from_args
from ..errors import ArgumentParser, UsageError, number
from ..limits import WINDOW_KERNEL_RANGE
from ..options import BuildOptions
from ..schedule import DEFAULT_MAX_POOL

#: The window generator's largest kernel side when no flag says: the system's
#: (``rtl.system.System``): 1x1 and 3x3 convolutions, linear.
DEFAULT_MAX_KERNEL = 3


@dataclass(frozen=True)
class Design:
    """What the generator elaborates: the core (``direct_only``, ``max_kernel``, ``max_pool``:
    :class:`rtl.core.Core`'s arguments) or, with ``engine``, ``rtl.top``'s engine of
    ``cfg.algo`` (the core's arguments unused)."""

    engine: bool = False
    direct_only: bool = False
    max_kernel: int = DEFAULT_MAX_KERNEL
    max_pool: int = DEFAULT_MAX_POOL

    def words(self, cfg: AcceleratorConfig) -> str:
        """The design in the generator's summary line."""
        if self.engine:
            return f"{cfg.algo} engine (rtl.top)"
        kind = "direct-only core" if self.direct_only else "core"
        return f"{kind} (rtl.core, max kernel {self.max_kernel}, max pool {self.max_pool})"


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m wino_gen", description=__doc__)
    add_config_flags(p)
    g = p.add_argument_group("design")
    g.add_argument("--direct-only", action="store_true",
                   help="the core with Winograd mode compiled out (the baseline at equal multipliers)")
    lo, hi = WINDOW_KERNEL_RANGE
    g.add_argument("--max-kernel", type=number(int, lo=lo, hi=hi), default=None,
                   help=f"largest direct kernel side the core's window generator holds, {lo}..{hi} and at "
                        f"most --max-width (default {DEFAULT_MAX_KERNEL}; 7 for a ResNet stem)")
    g.add_argument("--max-pool", type=number(int, lo=2), default=None,
                   help=f"largest pooling window side of the core, 2..--max-width (default {DEFAULT_MAX_POOL})")
    g.add_argument("--engine", action="store_true",
                   help="the standalone engine of --algo (rtl.top) instead of the core")
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


def build_design(cfg: AcceleratorConfig, design: Design, options: BuildOptions):
    """The component ``design`` names; a config or size the core cannot take raises
    :class:`UsageError` with the reason (and, where the engine can, ``--engine``)."""
    if design.engine:
        from rtl.top import build_top
        return build_top(cfg, options)
    if cfg.weights != "winograd":
        raise UsageError(f"--weights {cfg.weights}: the core takes U weights; --engine emits the "
                         "Winograd engine with the weight transform in front")
    if cfg.algo != "winograd" and not design.direct_only:
        raise UsageError(f"--algo {cfg.algo}: the core always holds the direct datapath; --direct-only "
                         "builds it without Winograd mode, --engine emits the standalone direct engine")
    from rtl.core import Core
    try:
        return Core(cfg, max_kernel=design.max_kernel, max_pool=design.max_pool,
                    direct_only=design.direct_only, options=options)
    except ValueError as e:
        raise UsageError(f"the core (--max-kernel {design.max_kernel}, --max-pool {design.max_pool}): {e}") from None


def generate(cfg: AcceleratorConfig, *, rtlil: bool = False, name: str = "wino_top",
             design: Design = Design()) -> str:
    """The design text, built with :func:`export_options`. Verilog contains the definition of
    :data:`rtl.ram.MODULE` after the design."""
    from amaranth.back import rtlil as rtlil_back
    from amaranth.back import verilog

    from rtl.ram import VERILOG

    top = build_design(cfg, design, export_options(rtlil))
    if rtlil:
        return rtlil_back.convert(top, name=name, emit_src=False)
    return verilog.convert(top, name=name, emit_src=False) + VERILOG


def design_from_args(args) -> Design:
    """The design flags; ``--engine`` takes none of the core's."""
    if args.engine:
        if args.direct_only or args.max_kernel is not None or args.max_pool is not None:
            raise UsageError("--engine: the standalone engine takes none of --direct-only, --max-kernel, "
                             "--max-pool (they size the core)")
        return Design(engine=True)
    return Design(direct_only=args.direct_only,
                  max_kernel=DEFAULT_MAX_KERNEL if args.max_kernel is None else args.max_kernel,
                  max_pool=DEFAULT_MAX_POOL if args.max_pool is None else args.max_pool)


def main(argv: list[str] | None = None) -> int:
    """The design goes to stdout first; ``--config-out`` is written (atomically) only once the
    design is out whole, so a failed write (a full disk) leaves no config of a missing design."""
    args = parser().parse_args(argv)
    if args.name and not args.name.isidentifier():
        raise UsageError(f"--name: {args.name!r} is not a valid module name")
    if args.config_out:
        safeio.check_output_file(args.config_out, "--config-out")
    design = design_from_args(args)
    cfg = config_from_args(args)
    kind = "RTLIL" if args.rtlil else "Verilog"
    t0 = time.perf_counter()
    with progress.step(f"wino_gen: elaborating {kind}", progress.wanted(args.no_progress)):
        text = generate(cfg, rtlil=args.rtlil, name=args.name, design=design)
    dt = time.perf_counter() - t0
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.config_out:
        safeio.atomic_write(args.config_out, cfg.to_json(), "--config-out")
    print(f"wino_gen: {design.words(cfg)}, F({cfg.tile}x{cfg.tile},3x3) unroll {cfg.unroll}x{cfg.unroll_in}, "
          f"{cfg.multipliers} multipliers, {kind} {len(text) / 1e6:.1f} MB in {dt:.1f} s", file=sys.stderr)
    return 0
