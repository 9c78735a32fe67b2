"""Generation time of `python -m wino_gen --tile 4 --unroll 16` (target < 10 s): wall and CPU
time of the generator process, best of 3. Writes benchmarks/results/generate_time.json.

    python benchmarks/generate_time.py
"""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "generate_time.json"
CMD = [sys.executable, "-m", "wino_gen", "--tile", "4", "--unroll", "16"]


def main():
    runs = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run(CMD, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "verilog_bytes": len(r.stdout)})
    best = min(runs, key=lambda x: x["wall_s"])
    result = {"command": "python benchmarks/generate_time.py", "generator": "python -m wino_gen --tile 4 --unroll 16",
              "load_average": os.getloadavg()[0], "best": best, "runs": runs, "target_s": 10}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"generation: best {best['wall_s']} s wall, {best['cpu_s']} s CPU (load {result['load_average']:.1f})")


if __name__ == "__main__":
    main()
