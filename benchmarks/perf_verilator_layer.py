"""One ResNet-18-size layer (56x56x64 -> 64, F(4x4,3x3), unroll 16: 576 multipliers) on the
Verilator backend: bit-exact against golden, cycles against wino_gen.perf, utilization;
writes benchmarks/results/perf_verilator_layer.json.

    python benchmarks/perf_verilator_layer.py [--tile 4] [--unroll 16] [--size 56] [--channels 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl.top import build_top  # noqa: E402
from sim.driver import WinogradLayer, run_layer  # noqa: E402
from sim.layers import random_winograd  # noqa: E402
from sim.verilator import VerilatorBackend  # noqa: E402
from wino_gen import golden, perf  # noqa: E402
from wino_gen.config import AcceleratorConfig  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tile", type=int, default=4)
    p.add_argument("--unroll", type=int, default=16)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "perf_verilator_layer.json"))
    a = p.parse_args(argv)
    C = K = a.channels
    H = W = a.size
    cfg = AcceleratorConfig(tile=a.tile, unroll=a.unroll, max_width=H, max_channels=C)
    x, kw = random_winograd(cfg, C, K, H, W, np.random.default_rng(0))
    want = golden.winograd_conv3x3(x, tile=a.tile, cfg=cfg, **kw)
    be = VerilatorBackend()
    spec = WinogradLayer(cfg, **kw)
    t = time.perf_counter()
    be.build(build_top(cfg))
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    r = run_layer(spec, x, be)
    run_s = time.perf_counter() - t
    model = perf.winograd_layer(cfg, C, K, H, W)
    row = {"layer": f"{H}x{W}x{C}->{K}", "tile": a.tile, "unroll": a.unroll,
           "multipliers": cfg.multipliers, "mismatches": int(np.count_nonzero(r.y != want)),
           "outputs": int(want.size), "sim_cycles": r.cycles, "perf_cycles": model["cycles"],
           "pe_steps": r.steps, "utilization": round(r.steps / r.cycles, 4),
           "verilator_build_s": round(build_s), "run_s": round(run_s, 1)}
    print(json.dumps(row))
    Path(a.out).write_text(json.dumps(row, indent=1) + "\n")
    return 0 if row["mismatches"] == 0 and r.cycles == model["cycles"] else 1


if __name__ == "__main__":
    sys.exit(main())
