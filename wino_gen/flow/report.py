"""``python -m wino_gen report [generator flags]``: what the generated accelerator is and what
it should do.

Multipliers, derived bit widths, estimated cycles of every ResNet-18 (ImageNet) convolution
and end to end (``wino_gen.perf``; Winograd vs the direct engine with the same multipliers),
the LUT/FF/DSP/BRAM estimate, and whether that estimate fits the board.
"""

from __future__ import annotations

import dataclasses
import json

from .. import perf
from ..boards import BOARDS, get_board, misfit
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, config_from_args
from ..errors import ArgumentParser, number


def parser():
    p = ArgumentParser(prog="python -m wino_gen report", description=__doc__)
    add_config_flags(p)
    p.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS),
                   help="board for the BRAM estimate and the fit check")
    p.add_argument("--mhz", type=number(float, lo=0, lo_open=True, hi=10_000), default=50.0,
                   help="clock for the time column, in MHz (0 < MHZ <= 10000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def board_fit(cfg: AcceleratorConfig, board_name: str) -> dict:
    """Whether the accelerator's estimate fits the board, mapped as ``build --dsp auto`` maps
    it: multipliers on DSP blocks when they all fit, else in LUTs. ``over`` names each
    resource that does not fit; ``dsp_needed`` is the DSP blocks all multipliers would take."""
    board = get_board(board_name)
    dsp = perf.estimate_resources(cfg, board=board.name, use_dsp=True)["dsp"]
    over = misfit(perf.estimate_resources(cfg, board=board.name, use_dsp=dsp <= board.dsp), board)
    return {"fits": not over, "dsp_mapping": "DSP" if dsp <= board.dsp else "LUT", "dsp_needed": dsp,
            "over": over}


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
        "fit": board_fit(cfg, board),
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
    out.append(format_fit(rep))
    return "\n".join(out)


def format_fit(rep: dict) -> str:
    fit, board = rep["fit"], get_board(rep["board"])
    where = ("on DSP blocks" if fit["dsp_mapping"] == "DSP"
             else f"in LUTs, as they need {fit['dsp_needed']} DSP blocks and it has {board.dsp}")
    if fit["fits"]:
        return f"fits the {board.name} ({board.device}) by the estimate, multipliers {where}"
    return (f"DOES NOT FIT the {board.name} by the estimate (multipliers {where}): "
            f"{'; '.join(fit['over'])}; `python -m wino_gen build --board {board.name} "
            f"--check-only` with these flags names the largest config that fits")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    cfg = config_from_args(args)
    rep = build_report(cfg, args.board, args.mhz)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
