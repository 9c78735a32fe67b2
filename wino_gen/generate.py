"""``python -m wino_gen [flags] > top.v``: generate the accelerator's Verilog (or RTLIL).

Only the design goes to stdout; logs go to stderr. Every ``AcceleratorConfig`` field has a
flag; ``--config FILE`` starts from a saved config, flags override it; ``--model MODEL_DIR``
sizes the config to run that model dir (flags may widen it, never contradict it);
``--config-out FILE`` writes the JSON config that produced the output, once the design is
written whole.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from . import progress, safeio
from .config import AcceleratorConfig, ConfigError
from .errors import ArgumentParser, UsageError

# With --model, these fields are the model's arithmetic: a flag may only repeat them.
MODEL_FIXED = ("tile", "granularity", "balance", "requant", "act_bits", "transform_bits")
# ... these are the hardware's parallelism and engine, the user's choice; every other field is a
# limit the model sets a minimum for (buffers, widths), which a flag may raise.
MODEL_CHOSEN = ("unroll", "unroll_in", "algo")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per AcceleratorConfig field (default: the dataclass default), ``--config`` and
    ``--model``."""
    g = p.add_argument_group("accelerator configuration (wino_gen.config.AcceleratorConfig)")
    for f in dataclasses.fields(AcceleratorConfig):
        kind = int if f.type == "int" else str
        g.add_argument(_flag(f.name), dest=f.name, type=kind, default=None,
                       metavar=f.name.upper(), help=f"default {f.default!r}")
    g.add_argument("--config", metavar="FILE", help="start from this JSON config; flags override it")
    g.add_argument("--model", metavar="MODEL_DIR",
                   help="size the config to run this model dir: its tile, granularity, balance, "
                        "requant, bit widths, channels and image width; flags may widen the "
                        "limits, never contradict the model")


def given_settings(args) -> dict[str, tuple[object, str]]:
    """The config fields the user set (``--config`` file, then flags), each with the words that
    name where it came from in an error message."""
    given = {}
    if args.config:
        for k, v in AcceleratorConfig.load(args.config).to_dict().items():
            given[k] = (v, f"--config {args.config}: {k} {v}")
    for f in dataclasses.fields(AcceleratorConfig):
        v = getattr(args, f.name)
        if v is not None:
            given[f.name] = (v, f"{_flag(f.name)} {v}")
    return given


def make_config(given: dict[str, tuple[object, str]], model: str | None = None,
                defaults: dict | None = None) -> AcceleratorConfig:
    """The config from ``given`` settings over ``defaults``, or, with a ``model`` dir, the
    smallest config that runs it with ``given`` limits widening it (:func:`model_config`)."""
    if model:
        return model_config(model, given)
    values = dict(defaults or {})
    values.update({k: v for k, (v, _) in given.items()})
    return AcceleratorConfig.from_dict(values)


def config_from_args(args) -> AcceleratorConfig:
    return make_config(given_settings(args), args.model)


def model_config(path: str, given: dict[str, tuple[object, str]]) -> AcceleratorConfig:
    """``network.config_for`` the model dir at ``path``, with the user's unroll and engine (the
    dataclass defaults otherwise). A given field of
    :data:`MODEL_FIXED` must equal the model's; any other may only raise the model's minimum,
    so the hardware always runs the model bit for bit."""
    from .format import load_model
    from .network import config_for

    m = load_model(path)
    chosen = {k: given[k][0] if k in given else getattr(AcceleratorConfig, k) for k in MODEL_CHOSEN}
    need = config_for(m, **chosen)
    widened = {}
    for k, (v, src) in given.items():
        want = getattr(need, k)
        if k in MODEL_CHOSEN or v == want:
            continue
        if k in MODEL_FIXED or not isinstance(want, int):
            raise UsageError(f"{src} contradicts the model {path}, which needs {k} {want}")
        if v < want:
            raise UsageError(f"{src} is below what the model {path} needs: {k} {want} or more")
        widened[k] = v
    return dataclasses.replace(need, **widened)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m wino_gen", description=__doc__)
    add_config_flags(p)
    p.add_argument("--rtlil", action="store_true",
                   help="write RTLIL (self-contained, for yosys synthesis) instead of Verilog")
    p.add_argument("--config-out", metavar="FILE", help="write the JSON config used")
    p.add_argument("--name", default="wino_top", help="top module name")
    p.add_argument("--no-progress", action="store_true", help="no elapsed-time line on stderr")
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


__all__ = ["main", "generate", "config_from_args", "make_config", "given_settings", "add_config_flags",
           "ConfigError"]
