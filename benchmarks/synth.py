"""Synthesis sweep: build the self-test bitstream for tile x unroll configs with the YoWASP flow
and record resources, Fmax and the wall time of each build.

    python benchmarks/synth.py                                   # default ULX3S-85F sweep
    python benchmarks/synth.py --board icebreaker --configs 2x1
    python benchmarks/synth.py --configs 4x4 --target-mhz 150

Results go to benchmarks/results/synth.json (one record per build, merged with earlier
records of other configs) and a Markdown table on stdout. Builds run one at a time.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wino_gen.boards import BOARDS, get_board  # noqa: E402
from wino_gen.config import AcceleratorConfig  # noqa: E402
from wino_gen.errors import UsageError  # noqa: E402
from wino_gen.flow import build  # noqa: E402

DEFAULT = "2x1,2x4,2x8,4x1,4x2,4x4,6x1,6x2"
RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def record(rep: dict) -> dict:
    r = rep["resources"]
    return {
        "board": rep["board"], "tile": rep["config"]["tile"], "unroll": rep["config"]["unroll"],
        "unroll_in": rep["config"]["unroll_in"], "multipliers": rep["multipliers"],
        "dsp_mapping": rep["dsp_mapping"], "engine": rep["engine"],
        "max_channels": rep["config"]["max_channels"], "max_width": rep["config"]["max_width"],
        **{f"{k}_used": v["used"] for k, v in r.items()},
        **{f"{k}_available": v["available"] for k, v in r.items()},
        **{f"{k}_estimate": v.get("estimate") for k, v in r.items()},
        "estimate_source": rep["estimate_source"],
        "fmax_mhz": round(rep["fmax_mhz"], 2) if rep["fmax_mhz"] else None,
        "target_mhz": rep["target_mhz"],
        "gops_at_fmax": rep["throughput"].get("gops_at_fmax"),
        "gops_per_dsp": rep["throughput"].get("gops_per_dsp"),
        "cycles_source": rep["throughput"]["cycles_source"],
        "wall_s": rep["wall_s"]["total"],
        "loadavg_1min_at_end": rep["wall_s"].get("loadavg_1min_at_end"),
    }


def table(records) -> str:
    head = ("| board | tile | unroll | mults | DSP | LUT (est) | FF | BRAM | Fmax MHz | GOPS@Fmax "
            "| GOPS/DSP | build s |")
    rows = [head, "|" + "---|" * 12]
    for r in records:
        est = r.get("lut_estimate")
        err = f" ({est}, {100 * (est - r['lut_used']) / r['lut_used']:+.0f}%)" if est and r["lut_used"] else ""
        rows.append(f"| {r['board']} | {r['tile']} | {r['unroll']} | {r['multipliers']} | "
                    f"{r['dsp_used']}/{r['dsp_available']} | {r['lut_used']}{err} | {r['ff_used']} | "
                    f"{r['bram_used']} | {r['fmax_mhz']} | {r['gops_at_fmax']} | "
                    f"{r['gops_per_dsp']} | {r['wall_s']:.0f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS))
    p.add_argument("--configs", default=DEFAULT, help=f"TILExUNROLL list (default {DEFAULT})")
    p.add_argument("--target-mhz", type=float, default=None)
    p.add_argument("--work", default="build/synth", help="build directories go here")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    board = get_board(args.board)
    base = replace(AcceleratorConfig(), **board.defaults)
    path = Path(args.results)
    old = json.loads(path.read_text())["builds"] if path.exists() else []
    new = []
    for spec in args.configs.split(","):
        tile, unroll = (int(v) for v in spec.split("x"))
        cfg = replace(base, tile=tile, unroll=unroll)
        out = Path(args.work) / f"{board.name}-t{tile}u{unroll}"
        t0 = time.monotonic()
        try:
            rep = build.run_build(cfg, board, out, board_defaults=board.defaults,
                                  target_mhz=args.target_mhz)
        except (UsageError, build.BuildFailed) as e:
            print(f"synth: {spec}: {e}", file=sys.stderr)
            new.append({"board": board.name, "tile": tile, "unroll": unroll, "error": str(e),
                        "wall_s": round(time.monotonic() - t0, 1)})
            continue
        rec = record(rep)
        rec["command"] = "python benchmarks/synth.py " + " ".join(argv or sys.argv[1:])
        new.append(rec)
        print(f"synth: {spec}: LUT {rec['lut_used']} DSP {rec['dsp_used']} Fmax {rec['fmax_mhz']} "
              f"MHz, {rec['wall_s']:.0f} s", file=sys.stderr, flush=True)
        keys = {(r["board"], r["tile"], r["unroll"], r.get("engine")) for r in new}
        merged = [r for r in old if (r["board"], r["tile"], r["unroll"], r.get("engine")) not in keys] + new
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"command": "python benchmarks/synth.py " + " ".join(argv or sys.argv[1:]),
                                    "builds": merged}, indent=1) + "\n")
    print(table([r for r in new if "error" not in r]))
    return 1 if any("error" in r for r in new) else 0


if __name__ == "__main__":
    sys.exit(main())
