"""``python -m wino_gen report [generator flags]``: what the generated accelerator is and what
it should do: multipliers, derived bit widths, estimated cycles of every ResNet-18 (ImageNet)
convolution and end to end (``wino_gen.perf``; Winograd vs the direct engine with the same
multipliers), and the LUT/FF/DSP/BRAM estimate."""

from __future__ import annotations

import argparse
import dataclasses
import json

from . import perf
from .config import AcceleratorConfig
from .errors import UsageError
from .generate import add_config_flags, config_from_args


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parser():
    p = _Parser(prog="python -m wino_gen report", description=__doc__.splitlines()[0])
    add_config_flags(p)
    p.add_argument("--board", default="ulx3s-85f", choices=["ulx3s-85f", "icebreaker"],
                   help="FPGA family for the BRAM estimate (default ulx3s-85f)")
    p.add_argument("--mhz", type=float, default=50.0, help="clock for the time column (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def build_report(cfg: AcceleratorConfig, board: str = "ulx3s-85f", mhz: float = 50.0) -> dict:
    direct = dataclasses.replace(cfg, algo="direct")
    rows = []
    tot = {"cycles": 0, "direct_cycles": 0, "macs": 0}
    for r in perf.resnet18(cfg):
        d = perf.layer_perf(direct, r["C"], r["K"], r["H"], r["H"], r["kernel"], r["stride"],
                            1 if r["kernel"] == 3 else (3 if r["kernel"] == 7 else 0))
        row = {k: r[k] for k in ("name", "C", "K", "H", "kernel", "stride", "count", "engine",
                                 "cycles", "utilization", "steady_utilization")}
        row["direct_cycles"] = d["cycles"]
        row["speedup_vs_direct"] = d["cycles"] / r["cycles"]
        rows.append(row)
        tot["cycles"] += r["count"] * r["cycles"]
        tot["direct_cycles"] += r["count"] * d["cycles"]
        tot["macs"] += r["count"] * r["direct_macs"]
    tot["speedup_vs_direct"] = tot["direct_cycles"] / tot["cycles"]
    tot["ms_at_mhz"] = tot["cycles"] / (mhz * 1e3)
    tot["effective_macs_per_cycle"] = tot["macs"] / tot["cycles"]
    target = perf.winograd_layer(cfg, 64, 64, 56, 56) if cfg.algo == "winograd" else None
    return {
        "config": cfg.to_dict(),
        "multipliers": cfg.multipliers,
        "widths": dataclasses.asdict(cfg.widths),
        "resnet18": rows,
        "end_to_end": tot,
        "mhz": mhz,
        "utilization_56x56x64": target and {k: target[k] for k in ("cycles", "utilization",
                                                                  "steady_utilization")},
        "resources": perf.estimate_resources(cfg, board=board),
        "memories": [dict(zip(("name", "count", "depth", "width"), m, strict=True)) for m in perf.memories(cfg)],
        "board": board,
    }


def format_report(rep: dict) -> str:
    c = rep["config"]
    out = []
    name = (f"{c['algo']} F({c['tile']}x{c['tile']},3x3)" if c["algo"] == "winograd"
            else f"direct (n={c['tile'] + 2} multiplier groups)")
    out.append(f"wino accelerator: {name}, unroll {c['unroll']} x unroll_in {c['unroll_in']}, "
               f"{c['granularity']}/{c['requant']} requant, act/weight/transform bits "
               f"{c['act_bits']}/{c['weight_bits']}/{c['transform_bits']}")
    out.append(f"multipliers: {rep['multipliers']}")
    out.append("derived widths: " + ", ".join(f"{k} {v}" for k, v in rep["widths"].items()))
    out.append("")
    out.append("ResNet-18 (224x224) convolutions, one image (wino_gen.perf cycle model):")
    out.append(f"  {'layer':<16}{'C':>5}{'K':>5}{'H':>5} {'k/s':>5} {'x':>2}  {'engine':<9}"
               f"{'cycles':>10}{'util':>7}{'steady':>7}{'direct':>10}{'speedup':>8}")
    for r in rep["resnet18"]:
        out.append(f"  {r['name']:<16}{r['C']:>5}{r['K']:>5}{r['H']:>5} {r['kernel']}/{r['stride']:<3}"
                   f" {r['count']:>2}  {r['engine']:<9}{r['cycles']:>10}{r['utilization']:>7.1%}"
                   f"{r['steady_utilization']:>7.1%}{r['direct_cycles']:>10}"
                   f"{r['speedup_vs_direct']:>7.2f}x")
    t = rep["end_to_end"]
    out.append(f"  end to end: {t['cycles']} cycles ({t['ms_at_mhz']:.2f} ms at {rep['mhz']:g} MHz), "
               f"direct engine {t['direct_cycles']} cycles, speedup {t['speedup_vs_direct']:.2f}x, "
               f"{t['effective_macs_per_cycle']:.0f} effective MAC/cycle")
    u = rep["utilization_56x56x64"]
    if u:
        out.append(f"  56x56x64->64: {u['cycles']} cycles, multiplier utilization "
                   f"{u['utilization']:.1%} (steady state {u['steady_utilization']:.1%})")
    out.append("")
    r = rep["resources"]
    out.append(f"resource estimate ({rep['board']}, accelerator only, calibrated on the synthesis "
               f"benchmarks): LUT {r['lut']}, FF {r['ff']}, DSP {r['dsp']}, BRAM {r['bram']} "
               f"({r['memory_bits'] / 1e6:.2f} Mbit)")
    for mm in rep["memories"]:
        out.append(f"  {mm['name']}: {mm['count']} x {mm['depth']} x {mm['width']} bit")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.mhz <= 0:
        raise UsageError("--mhz must be positive")
    cfg = config_from_args(args)
    rep = build_report(cfg, args.board, args.mhz)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
