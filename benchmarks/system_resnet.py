"""A network on the whole system, the Winograd system vs the direct-only system at equal
multipliers, per layer, on the ULX3S SDRAM model (issue 14): runs ``python -m sim MODEL_DIR
--system --backend verilator --memory sdram-ulx3s`` on a Winograd model dir and, with
``--direct-only``, on the same network exported with direct convolutions only; writes
benchmarks/results/system_<net>.json and prints a markdown table.

    python benchmarks/system_resnet.py WINOGRAD_DIR DIRECT_DIR [--net resnet20] [--images 2]

Each run is the CLI itself (its ``--json`` report: per layer the measured COMPUTE cycles, the
plan's, their ratio, the plan's bound, the bytes the layer's LOAD/STOREs move and their share of
the SDRAM model's sustained rate over the layer's window; the whole run beside
``plan.program_cycles``; ms per image at the plan's clock, the SDRAM timing's 100 MHz: the
system's Fmax is unmeasured). Each system runs twice: with every layer output stored (every
layer compared with the image interpreter's; the per-layer table) and ``--no-trace``, the
inference's own program (the network output compared; the ms per image). A run that fails
keeps its last line in the JSON. A layer's direct-only / Winograd ratio is that of its windows
(same layer name in both model dirs).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MEMORY = "sdram-ulx3s"
CORES = ("winograd", "direct-only")
#: the JSON's core names as the table shows them
SYSTEMS = {"dual": "winograd (dual core)", "direct-only": "direct-only", "winograd": "winograd (dual core)"}


def command(model_dir: str, core: str, trace: bool, images: int, json_out: Path) -> list[str]:
    """The ``python -m sim`` command line of one run."""
    return [sys.executable, "-m", "sim", model_dir, "--system", "--backend", "verilator", "--memory", MEMORY,
            "--images", str(images), "--no-progress", "--json", str(json_out),
            *(["--direct-only"] if core == "direct-only" else []), *([] if trace else ["--no-trace"])]


def run(model_dir: str, core: str, trace: bool, images: int) -> dict:
    """One run of the CLI: its JSON report with the command and the wall time, or the failure's
    last line and exit status."""
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "report.json"
        argv = command(model_dir, core, trace, images, out)
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        wall = round(time.perf_counter() - t0, 1)
        shown = shlex.join(["python", *command(model_dir, core, trace, images, Path("REPORT.json"))[1:]])
        base = {"core": core, "trace": trace, "command": shown, "wall_s": wall, "returncode": r.returncode}
        if r.returncode != 0:
            lines = (r.stdout.strip() or r.stderr.strip() or "no output").splitlines()
            return {**base, "failed": lines[-1]}
        return {**base, **json.loads(out.read_text()), "summary": r.stdout.strip().splitlines()[-1]}


def per_image(report: dict) -> dict:
    """The report's layers keyed by name, cycles and bytes per image."""
    n = report["images"]
    keys = ("measured", "plan", "perf_core", "bytes", "window", "plan_total")
    return {r["layer"]: {**r, **{k: r[k] / n for k in keys}} for r in report["layers"]}


def layer_table(net: str, reports: dict) -> list[str]:
    """Per layer (the traced runs: every layer compared) both systems side by side."""
    ok = {c: per_image(reports[c]) for c in CORES if "layers" in reports[c]}
    names = list(dict.fromkeys(n for c in ok for n in ok[c]))
    head = "| layer |" + "".join(f" {c}: engine, bound | measured | plan | ratio | util |" for c in CORES) + \
        " direct-only / winograd |"
    out = [f"{net} on the system, {MEMORY}, per image: COMPUTE cycles measured and planned; util: bytes over the "
           f"layer's window, % of the sustained rate, memory-bound layers", "", head,
           "|" + "---|" * (2 + 5 * len(CORES))]
    for name in names:
        cells = []
        for c in CORES:
            r = ok.get(c, {}).get(name)
            if r is None:
                cells.append(" - | - | - | - | - |")
                continue
            util = f"{r['utilization']:.1%}" if r["bound"] == "memory" and r["utilization"] is not None else "-"
            cells.append(f" {r['engine']}, {r['bound']} | {r['measured']:.0f} | {r['plan']:.0f} | {r['ratio']:.3f} "
                         f"| {util} |")
        w, d = (ok.get(c, {}).get(name) for c in CORES)
        vs = f"{d['window'] / w['window']:.2f}x" if w and d else "-"
        out.append(f"| {name} |" + "".join(cells) + f" {vs} |")
    out.append("")
    out.append("(direct-only / winograd per layer: the ratio of the layers' windows)")
    return out


def totals_table(reports: dict) -> list[str]:
    """The whole runs: traced (every layer stored) and the inference's own program."""
    out = ["| system | program | cycles/image | plan | ratio | ms/image | MHz | sustained B/cycle | mismatches "
           "| wall s |", "|" + "---|" * 10]
    for r in reports.values():
        what = "every layer stored" if r["trace"] else "inference (output stored)"
        if "layers" not in r:
            out.append(f"| {SYSTEMS[r['core']]} | {what} | failed: {r['failed']} | | | | | | | {r['wall_s']} |")
            continue
        out.append(f"| {SYSTEMS[r['core']]} | {what} | {r['cycles_per_image']} | {r['plan_cycles'] / r['images']:.0f} "
                   f"| {r['cycles'] / r['plan_cycles']:.4f} | {r['ms_per_image']:.3f} | {r['clock_mhz']:g} "
                   f"| {r['sustained_bytes_per_cycle']} | {r['mismatches']} | {r['wall_s']} |")
    for trace in (True, False):
        w, d = (reports.get(key(c, trace), {}) for c in CORES)
        if "layers" in w and "layers" in d:
            out.append(f"\ndirect-only / winograd, whole network ({'every layer stored' if trace else 'inference'}): "
                       f"{d['cycles_per_image'] / w['cycles_per_image']:.2f}x")
    return out


def key(core: str, trace: bool) -> str:
    return core if trace else f"{core} --no-trace"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("winograd_dir", help="the network's Winograd model dir")
    p.add_argument("direct_dir", help="the same network exported with direct convolutions only")
    p.add_argument("--net", default="resnet20", help="the network's name in the output file (default resnet20)")
    p.add_argument("--images", type=int, default=2, help="images per run (default 2)")
    p.add_argument("--out", help="the JSON file (default benchmarks/results/system_<net>.json)")
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else RESULTS / f"system_{a.net}.json"
    t0 = time.perf_counter()
    reports = {}
    for trace in (True, False):
        for core, d in zip(CORES, (a.winograd_dir, a.direct_dir), strict=True):
            r = reports[key(core, trace)] = run(d, core, trace, a.images)
            print(f"{key(core, trace)}: {r.get('summary', r.get('failed'))} ({r['wall_s']} s)", file=sys.stderr,
                  flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    line = shlex.join(["python", "benchmarks/system_resnet.py", *(sys.argv[1:] if argv is None else argv)])
    out.write_text(json.dumps({"command": line, "net": a.net, "memory": MEMORY, "runs": reports,
                               "wall_s": round(time.perf_counter() - t0, 1)}, indent=1) + "\n")
    print("\n".join(layer_table(a.net, reports) + [""] + totals_table(reports)))
    return 0 if all("layers" in r for r in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
