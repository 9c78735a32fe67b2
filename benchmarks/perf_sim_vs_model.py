"""Cycles of whole small layers on the simulated accelerator (pysim) against wino_gen.perf,
with bit-exactness checked; writes benchmarks/results/perf_sim_vs_model.json.

    python benchmarks/perf_sim_vs_model.py [--out FILE]
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

from sim.driver import DirectLayer, WinogradLayer, run_layer  # noqa: E402
from sim.layers import random_direct, random_winograd  # noqa: E402
from wino_gen import golden, perf  # noqa: E402
from wino_gen.config import AcceleratorConfig  # noqa: E402

CASES = [  # algo, tile, unroll, unroll_in, C, K, H, W
    ("winograd", 2, 4, 1, 8, 8, 8, 8),
    ("winograd", 4, 4, 1, 16, 8, 12, 12),
    ("winograd", 4, 4, 2, 16, 16, 14, 14),
    ("winograd", 6, 2, 1, 8, 4, 14, 14),
    ("direct", 2, 4, 1, 8, 8, 8, 8),
    ("direct", 4, 4, 1, 16, 8, 12, 12),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "perf_sim_vs_model.json"))
    args = p.parse_args(argv)
    rows = []
    for algo, tile, un, ui, C, K, H, W in CASES:
        cfg = AcceleratorConfig(tile=tile, unroll=un, unroll_in=ui, algo=algo, max_width=16,
                                max_channels=16)
        rng = np.random.default_rng(C * K + H)
        t0 = time.perf_counter()
        if algo == "winograd":
            x, kw = random_winograd(cfg, C, K, H, W, rng)
            want = golden.winograd_conv3x3(x, tile=tile, cfg=cfg, **kw)
            r = run_layer(WinogradLayer(cfg, **kw), x)
            model = perf.winograd_layer(cfg, C, K, H, W)
        else:
            x, kw = random_direct(cfg, C, K, H, W, rng)
            want = golden.direct_conv(x, cfg=cfg, **kw)
            r = run_layer(DirectLayer(cfg, **kw), x)
            model = perf.direct_layer(cfg, C, K, H, W)
        dt = time.perf_counter() - t0
        row = {"algo": algo, "tile": tile, "unroll": un, "unroll_in": ui, "C": C, "K": K, "H": H,
               "W": W, "multipliers": cfg.multipliers, "sim_cycles": r.cycles,
               "perf_cycles": model["cycles"], "steps": r.steps,
               "mismatches": int(np.count_nonzero(r.y != want)), "outputs": int(want.size),
               "utilization_model": round(model["utilization"], 4), "sim_seconds": round(dt, 1),
               "sim_cycles_per_s": round(r.cycles / dt)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"backend": "pysim", "rows": rows}, indent=1) + "\n")
    bad = [r for r in rows if r["mismatches"] or r["sim_cycles"] != r["perf_cycles"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
