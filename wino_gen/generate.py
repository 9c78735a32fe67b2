"""``python -m wino_gen [flags] > top.v``: generate the accelerator's Verilog (or RTLIL).

Only the design goes to stdout; logs go to stderr. Every ``AcceleratorConfig`` field has a
flag; ``--config FILE`` starts from a saved config, flags override it; ``--config-out FILE``
writes the JSON config that produced the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from .config import AcceleratorConfig, ConfigError
from .errors import ArgumentParser, UsageError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per AcceleratorConfig field (default: the dataclass default)."""
    g = p.add_argument_group("accelerator configuration (wino_gen.config.AcceleratorConfig)")
    for f in dataclasses.fields(AcceleratorConfig):
        kind = int if f.type == "int" else str
        g.add_argument(_flag(f.name), dest=f.name, type=kind, default=None,
                       metavar=f.name.upper(), help=f"default {f.default!r}")
    g.add_argument("--config", metavar="FILE", help="start from this JSON config; flags override it")


def config_from_args(args) -> AcceleratorConfig:
    base = {}
    if args.config:
        base = AcceleratorConfig.load(args.config).to_dict()
    for f in dataclasses.fields(AcceleratorConfig):
        v = getattr(args, f.name)
        if v is not None:
            base[f.name] = v
    return AcceleratorConfig.from_dict(base)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m wino_gen", description=__doc__.splitlines()[0])
    add_config_flags(p)
    p.add_argument("--rtlil", action="store_true",
                   help="write RTLIL (self-contained, for yosys synthesis) instead of Verilog")
    p.add_argument("--config-out", metavar="FILE", help="write the JSON config used")
    p.add_argument("--name", default="wino_top", help="top module name (default wino_top)")
    return p


def generate(cfg: AcceleratorConfig, *, rtlil: bool = False, name: str = "wino_top") -> str:
    """The design text. Verilog instantiates :data:`rtl.ram.MODULE` for every buffer and
    contains its definition; RTLIL uses Amaranth memories (self-contained)."""
    from amaranth.back import rtlil as rtlil_back
    from amaranth.back import verilog

    from rtl.ram import VERILOG, ExportPlatform
    from rtl.top import build_top

    if rtlil:
        return rtlil_back.convert(build_top(cfg), name=name, emit_src=False)
    text = verilog.convert(build_top(cfg), name=name, platform=ExportPlatform(), emit_src=False)
    return text + VERILOG


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.name and not args.name.isidentifier():
        raise UsageError(f"--name: {args.name!r} is not a valid module name")
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    text = generate(cfg, rtlil=args.rtlil, name=args.name)
    dt = time.perf_counter() - t0
    if args.config_out:
        try:
            cfg.save(args.config_out)
        except OSError as e:
            raise UsageError(f"--config-out: {e}") from None
    sys.stdout.write(text)
    sys.stdout.flush()
    print(f"wino_gen: {cfg.algo} F({cfg.tile}x{cfg.tile},3x3) unroll {cfg.unroll}x{cfg.unroll_in}, "
          f"{cfg.multipliers} multipliers, {'RTLIL' if args.rtlil else 'Verilog'} "
          f"{len(text) / 1e6:.1f} MB in {dt:.1f} s", file=sys.stderr)
    return 0


__all__ = ["main", "generate", "config_from_args", "add_config_flags", "ConfigError"]
