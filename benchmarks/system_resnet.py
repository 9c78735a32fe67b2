"""A network on the whole system, the Winograd system vs the direct-only system at equal
multipliers, per layer, on the ULX3S SDRAM model (issue 14): runs ``python -m sim MODEL_DIR
--system --backend verilator --memory sdram-ulx3s`` on a Winograd model dir and, with
``--direct-only``, on the same network exported with direct convolutions only, and with
``--spatial DIR`` on the network exported with spatial Winograd weights (``--weights spatial
--weight-lanes N``: the core transforms the 3x3 kernels, 9 bytes a kernel from memory instead of
U's n²); writes benchmarks/results/system_<net>.json and prints a markdown table.

    python benchmarks/system_resnet.py WINOGRAD_DIR DIRECT_DIR [--spatial DIR [--weight-lanes 4]]
        [--cores winograd,direct-only,spatial] [--net resnet20] [--images 2] [--batch N] [--inference-only]

Each run is the CLI itself (its ``--json`` report: per layer the measured COMPUTE cycles, the
plan's, their ratio, the plan's bound, the bytes the layer's LOAD/STOREs move and their share of
the SDRAM model's sustained rate over the layer's window; the whole run beside
``plan.program_cycles``; ms per image at the plan's clock, the SDRAM timing's 100 MHz: the
system's Fmax is unmeasured). Each system runs twice: with every layer output stored (every
layer compared with the image interpreter's; the per-layer table) and ``--no-trace``, the
inference's own program (the network output compared; the ms per image); ``--inference-only``
only the latter. ``--batch N`` compiles both for batches of N images (``python -m sim --batch``:
the images padded to whole batches, cycles per image over every slot). A layer's window is
measured (the sequencer's trace), its utilization the bytes over it. A run that fails keeps its
last line in the JSON. The runs are merged into the JSON's earlier ones by (system, program,
batch), so that a batch-8 run keeps the batch-1 results. A layer's direct-only / Winograd ratio
is that of its windows (same layer name in both model dirs).
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
CORES = ("winograd", "direct-only", "spatial")
#: the JSON's core names as the table shows them
SYSTEMS = {"dual": "winograd (dual core)", "direct-only": "direct-only", "winograd": "winograd (dual core)",
           "dual-spatial": "winograd, spatial weights (dual core)", "spatial": "winograd, spatial weights (dual core)"}
#: kernels a cycle into a spatial core's weight transform: a weight word's (the CLI's unroll 4 x 1)
DEFAULT_LANES = 4


def command(model_dir: str, core: str, trace: bool, images: int, batch: int, json_out: Path,
            lanes: int = DEFAULT_LANES) -> list[str]:
    """The ``python -m sim`` command line of one run."""
    flags = {"direct-only": ["--direct-only"], "spatial": ["--weights", "spatial", "--weight-lanes", str(lanes)]}
    return [sys.executable, "-m", "sim", model_dir, "--system", "--backend", "verilator", "--memory", MEMORY,
            "--images", str(images), "--batch", str(batch), "--no-progress", "--json", str(json_out),
            *flags.get(core, []), *([] if trace else ["--no-trace"])]


def run(model_dir: str, core: str, trace: bool, images: int, batch: int, lanes: int = DEFAULT_LANES) -> dict:
    """One run of the CLI: its JSON report with the command and the wall time, or the failure's
    last line and exit status."""
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "report.json"
        argv = command(model_dir, core, trace, images, batch, out, lanes)
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        wall = round(time.perf_counter() - t0, 1)
        shown = shlex.join(["python", *command(model_dir, core, trace, images, batch, Path("REPORT.json"),
                                               lanes)[1:]])
        base = {"core": core, "trace": trace, "batch": batch, "command": shown, "wall_s": wall,
                "returncode": r.returncode}
        if r.returncode != 0:
            lines = (r.stdout.strip() or r.stderr.strip() or "no output").splitlines()
            return {**base, "failed": lines[-1]}
        return {**base, **json.loads(out.read_text()), "summary": r.stdout.strip().splitlines()[-1]}


def slots(report: dict) -> int:
    """The image slots a report's runs held: runs x batch (the images of a report from before
    ``--batch``)."""
    return report["runs"] * report["batch"] if "runs" in report else report["images"]


def per_image(report: dict) -> dict:
    """The report's layers keyed by name, cycles and bytes per image slot."""
    n = slots(report)
    keys = ("measured", "plan", "perf_core", "bytes", "window", "plan_total", "plan_window")
    return {r["layer"]: {**r, **{k: r[k] / n for k in keys if k in r}} for r in report["layers"]}


#: the per-layer and whole-run ratios the tables show: (numerator, denominator) systems
RATIOS = (("direct-only", "winograd"), ("direct-only", "spatial"))


def layer_table(net: str, reports: dict, trace: bool, batch: int) -> list[str]:
    """Per layer the systems that ran side by side, for one program (``trace``) and ``batch``."""
    runs = {c: reports.get(key(c, trace, batch), {}) for c in CORES}
    ok = {c: per_image(r) for c, r in runs.items() if "layers" in r}
    cores = [c for c in CORES if c in ok]
    ratios = [(a, b) for a, b in RATIOS if a in ok and b in ok]
    names = list(dict.fromkeys(n for c in ok for n in ok[c]))
    head = "| layer |" + "".join(f" {c}: engine, bound | measured | plan | ratio | window | modelled | util |"
                                 for c in cores) + "".join(f" {a} / {b} |" for a, b in ratios)
    what = "every layer stored" if trace else "inference"
    out = [f"{net} on the system ({what}, batch {batch}), {MEMORY}, per image: COMPUTE cycles measured and planned; "
           f"util: bytes over the layer's measured window, % of the sustained rate, memory-bound layers", "", head,
           "|" + "---|" * (1 + 7 * len(cores) + len(ratios))]
    for name in names:
        cells = []
        for c in cores:
            r = ok.get(c, {}).get(name)
            if r is None:
                cells.append(" - |" * 7)
                continue
            util = f"{r['utilization']:.1%}" if r["bound"] == "memory" and r["utilization"] is not None else "-"
            modelled = f"{r['plan_window']:.0f}" if "plan_window" in r else "-"
            cells.append(f" {r['engine']}, {r['bound']} | {r['measured']:.0f} | {r['plan']:.0f} | {r['ratio']:.3f} "
                         f"| {r['window']:.0f} | {modelled} | {util} |")
        for a, b in ratios:
            num, den = ok[a].get(name), ok[b].get(name)
            cells.append(f" {num['window'] / den['window']:.2f}x |" if num and den else " - |")
        out.append(f"| {name} |" + "".join(cells))
    out.append("")
    out.append("(window: measured from the sequencer's trace; modelled: plan.program_cycles on the plan's COMPUTE "
               "cycles; a / b per layer: the ratio of the layers' measured windows)")
    return out


def totals_table(runs: dict) -> list[str]:
    """The whole runs (``runs``: the JSON's, earlier ones included): traced (every layer stored)
    and the inference's own program, every batch."""
    out = ["| system | program | batch | cycles/image | plan | ratio | ms/image | MHz | sustained B/cycle "
           "| mismatches | wall s |", "|" + "---|" * 11]
    for r in runs.values():
        what = "every layer stored" if r["trace"] else "inference (output stored)"
        batch = r.get("batch", 1)
        if "layers" not in r:
            out.append(f"| {SYSTEMS[r['core']]} | {what} | {batch} | failed: {r['failed']} | | | | | | | "
                       f"{r['wall_s']} |")
            continue
        out.append(f"| {SYSTEMS[r['core']]} | {what} | {batch} | {r['cycles_per_image']} "
                   f"| {r['plan_cycles'] / slots(r):.0f} | {r['cycles'] / r['plan_cycles']:.4f} "
                   f"| {r['ms_per_image']:.3f} | {r['clock_mhz']:g} | {r['sustained_bytes_per_cycle']} "
                   f"| {r['mismatches']} | {r['wall_s']} |")
    pairs = dict.fromkeys((r["trace"], r.get("batch", 1)) for r in runs.values())
    for trace, batch in pairs:
        for a, b in RATIOS:
            num, den = (runs.get(key(c, trace, batch), {}) for c in (a, b))
            if "layers" in num and "layers" in den:
                out.append(f"\n{a} / {b}, whole network ({'every layer stored' if trace else 'inference'}, "
                           f"batch {batch}): {num['cycles_per_image'] / den['cycles_per_image']:.2f}x")
    return out


def key(core: str, trace: bool, batch: int = 1) -> str:
    """A run's name in the JSON (batch-1 names as before ``--batch``)."""
    return core + ("" if trace else " --no-trace") + ("" if batch == 1 else f" --batch {batch}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("winograd_dir", help="the network's Winograd model dir")
    p.add_argument("direct_dir", help="the same network exported with direct convolutions only")
    p.add_argument("--spatial", metavar="DIR", help="the same network exported with spatial Winograd weights "
                   "(W and u_mult/u_shift): the spatial-weight system runs it too")
    p.add_argument("--weight-lanes", type=int, default=DEFAULT_LANES,
                   help=f"--spatial: kernels a cycle into the weight transform (default {DEFAULT_LANES})")
    p.add_argument("--cores", default=None, help="comma-separated systems to run, of "
                   f"{', '.join(CORES)} (default: every one with a model dir)")
    p.add_argument("--net", default="resnet20", help="the network's name in the output file (default resnet20)")
    p.add_argument("--images", type=int, default=2, help="images per run (default 2)")
    p.add_argument("--batch", type=int, default=1, help="images per run, the image compiled for it (default 1)")
    p.add_argument("--inference-only", action="store_true",
                   help="only the inference's own program (--no-trace), not the every-layer-stored runs")
    p.add_argument("--out", help="the JSON file (default benchmarks/results/system_<net>.json)")
    a = p.parse_args(argv)
    dirs = {"winograd": a.winograd_dir, "direct-only": a.direct_dir, "spatial": a.spatial}
    cores = a.cores.split(",") if a.cores else [c for c in CORES if dirs[c]]
    if not set(cores) <= set(CORES) or not all(dirs[c] for c in cores):
        p.error(f"--cores {a.cores}: systems of {', '.join(CORES)} with a model dir (spatial: --spatial DIR)")
    out = Path(a.out) if a.out else RESULTS / f"system_{a.net}.json"
    t0 = time.perf_counter()
    reports = {}
    for trace in (False,) if a.inference_only else (True, False):
        for core in cores:
            k = key(core, trace, a.batch)
            r = reports[k] = run(dirs[core], core, trace, a.images, a.batch, a.weight_lanes)
            print(f"{k}: {r.get('summary', r.get('failed'))} ({r['wall_s']} s)", file=sys.stderr, flush=True)
    line = shlex.join(["python", "benchmarks/system_resnet.py", *(sys.argv[1:] if argv is None else argv)])
    runs = write(out, a.net, line, reports, round(time.perf_counter() - t0, 1))
    tables = [layer_table(a.net, reports, trace, a.batch) + [""] for trace in dict.fromkeys(r["trace"] for r in
                                                                                         reports.values())]
    print("\n".join(sum(tables, []) + totals_table(runs)))
    return 0 if all("layers" in r for r in reports.values()) else 1


def write(out: Path, net: str, line: str, reports: dict, wall: float) -> dict:
    """The JSON at ``out``: its earlier runs (of the same net and memory) with ``reports`` merged
    over them, each run with the command line that made it; returns the merged runs."""
    old = json.loads(out.read_text()) if out.exists() else {}
    runs = old.get("runs", {}) if (old.get("net"), old.get("memory")) == (net, MEMORY) else {}
    for r in runs.values():
        r.setdefault("benchmark_command", old.get("command"))
    runs.update({k: {**r, "benchmark_command": line, "benchmark_wall_s": wall} for k, r in reports.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"net": net, "memory": MEMORY, "runs": runs}, indent=1) + "\n")
    return runs


if __name__ == "__main__":
    sys.exit(main())
