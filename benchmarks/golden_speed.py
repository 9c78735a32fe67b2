"""Golden-model speed: one ResNet-size Winograd layer (56x56x64 -> 64, batch 1) per tile,
and the direct convolution of the same layer. Writes benchmarks/results/golden_speed.json.

    python benchmarks/golden_speed.py
"""

import json
import platform
import time
from pathlib import Path

import numpy as np

from wino_gen import golden
from wino_gen.config import AcceleratorConfig

OUT = Path(__file__).parent / "results" / "golden_speed.json"


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 64, 56, 56))
    bias = rng.integers(-1000, 1000, 64)
    rows = []
    for m in (2, 4, 6):
        cfg = AcceleratorConfig(tile=m)
        U = rng.integers(-128, 128, (64, 64, m + 2, m + 2))
        t = best_of(lambda U=U, m=m, cfg=cfg: golden.winograd_conv3x3(
            x, U, bias, tile=m, v=golden.Requant(1, 7), m=golden.Requant(1, 14), y=golden.Requant(1, 8), cfg=cfg))
        rows.append({"layer": "56x56x64->64", "op": f"winograd F{m}", "seconds": round(t, 4)})
    W = rng.integers(-128, 128, (64, 64, 3, 3))
    t = best_of(lambda: golden.direct_conv(x, W, bias, y=golden.Requant(1, 12), padding=1))
    rows.append({"layer": "56x56x64->64", "op": "direct 3x3", "seconds": round(t, 4)})
    result = {"command": "python benchmarks/golden_speed.py", "machine": f"{platform.machine()}, "
              f"{__import__('os').cpu_count()} cores", "numpy": np.__version__, "best_of": 5, "rows": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['layer']:<14} {r['op']:<12} {r['seconds'] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
