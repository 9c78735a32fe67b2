"""One ResNet-18-size layer on the whole system in Verilator (issue 13: "Verilator for ResNet-20-
and ResNet-18-size layers, a 56x56x64 layer F4 and direct"): layer1's convolution of ResNet-18
(64 -> 64 channels, 56 x 56, 3x3 stride 1) as a one-layer model dir with random calibrated
weights, run by ``python -m sim DIR --system --backend verilator --memory sdram-ulx3s`` on the
dual core (Winograd mode, F4, unroll 4 x 1: 144 multipliers) and, exported as a direct
convolution, on the direct-only core with the same multipliers. Writes
benchmarks/results/system_layer56.json (each run's ``--json`` report and its wall time) and
prints a markdown table.

    python benchmarks/system_layer.py [--work DIR] [--size 56] [--channels 64]

Each run is the CLI itself: the layer's output is compared with the golden model's (a mismatch
exits 1, which stops the benchmark), each COMPUTE's cycles with the plan's, the whole run with
``plan.program_cycles``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wino_gen.example import _Builder  # noqa: E402
from wino_gen.format import INPUT, write_model  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "system_layer56.json"
TILE, UNROLL = 4, 4


def model_dir(path: Path, op: str, channels: int, size: int) -> Path:
    """A one-layer model dir: ``op`` (``winograd`` or ``direct``) 3x3 stride 1, one sample."""
    b = _Builder(TILE, "layer", "pow2", np.random.default_rng(0), 1, (channels, size, size), 1 / 32)
    if op == "winograd":
        b.winograd("conv", INPUT, channels)
    else:
        b.direct("conv", INPUT, channels, stride=1)
    write_model(path, b.manifest, b.arrays)
    return path


def run(path: Path, report: Path, direct_only: bool) -> dict:
    cmd = [sys.executable, "-m", "sim", str(path), "--system", "--backend", "verilator", "--memory", "sdram-ulx3s",
           "--images", "1", "--no-trace", "--unroll", str(UNROLL), "--json", str(report), "--no-progress"]
    if direct_only:
        cmd.append("--direct-only")
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
    return {"command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "report": json.loads(report.read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, help="folder for the model dirs and reports (default: a temporary one)")
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--channels", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = {}
        for name, op, direct_only in (("dual core, Winograd F4", "winograd", False),
                                      ("direct-only core", "direct", True)):
            d = model_dir(work / op, op, args.channels, args.size)
            runs[name] = run(d, work / f"{op}.json", direct_only)
    out = {"layer": {"C": args.channels, "K": args.channels, "H": args.size, "W": args.size, "kernel": 3,
                     "stride": 1}, "tile": TILE, "unroll": UNROLL, "multipliers": UNROLL * (TILE + 2) ** 2,
           "memory": "sdram-ulx3s", "runs": runs}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("| core | COMPUTE cycles | plan | cycles (run) | plan.program_cycles | bound | mismatches | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        rep = r["report"]
        lay = rep["layers"][0]
        print(f"| {name} | {lay['measured']:,} | {lay['plan']:,} | {rep['cycles']:,} | {rep['plan_cycles']:,} | "
              f"{lay['bound']} | {rep['mismatches']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
