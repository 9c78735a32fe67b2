"""Cost of a Winograd-aware (full-int8 fake-quant) training step vs the plain-conv training step
of the same ResNet-20 and batch: time (median and best of steps after a warm-up) and memory,
each variant in a fresh process. Memory three ways: the growth of the process's peak RSS over
its RSS before the first step; the same in a second run with glibc told to ``mmap`` every block
over 64 KiB (``MALLOC_MMAP_THRESHOLD_``), so freed tensors leave the RSS and its peak is the live
peak, not the allocator's cache; and the bytes of the tensors autograd keeps for the backward.

    python benchmarks/train_step.py            -> benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(variant: str, batch: int, steps: int, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F

    from train import models
    from train.convert import convert

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = models.resnet20(10, 1)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    if variant != "plain":
        algo, tile, gran = ("direct", 4, "layer") if variant == "qat-direct" else \
            ("winograd", int(variant.split("/")[1][1:]), variant.split("/")[2])
        model.eval()
        net = convert(model, input_shape=(1, 28, 28), tile=tile, granularity=gran, algo=algo)
        net.calibrate([x])
        model = net
        params = [{"params": net.weight_parameters()}, {"params": net.scale_parameters()}]
    else:
        params = model.parameters()
    model.train()
    opt = torch.optim.Adam(params, lr=1e-4)  # the QAT optimizer (Adam normalizes the scale gradients)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    kept: dict = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(x), y)
    base = _rss_mb()
    step()                                  # warm-up (allocator, optimizer state)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "step_s": statistics.median(times), "step_min_s": min(times), "steps": steps,
            "peak_rss_growth_mb": round(peak - base, 1), "rss_before_mb": round(base, 1),
            "saved_for_backward_mb": round(sum(kept.values()) / 2**20, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=[
        "plain", "qat-direct", "qat/F2/layer", "qat/F4/layer", "qat/F4/tap", "qat/F6/layer"])
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", default=str(RESULTS / "train_step.json"))
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.batch, a.steps, a.threads)))
        return
    rows = []
    def run(v, steps, env=None):
        r = subprocess.run([sys.executable, __file__, "--child", v, "--batch", str(a.batch), "--steps",
                            str(steps), "--threads", str(a.threads)], capture_output=True, text=True,
                           env={**os.environ, **(env or {})})
        if r.returncode:
            sys.exit(r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    for v in a.variants:
        rows.append(run(v, a.steps))
        live = run(v, 2, {"MALLOC_MMAP_THRESHOLD_": str(64 << 10)})
        rows[-1]["peak_live_growth_mb"] = live["peak_rss_growth_mb"]
        print(rows[-1], flush=True)
    plain = rows[0] if rows[0]["variant"] == "plain" else None
    for r in rows:
        if plain:
            r["time_ratio"] = round(r["step_s"] / plain["step_s"], 2)
            r["mem_ratio"] = round(r["peak_rss_growth_mb"] / max(plain["peak_rss_growth_mb"], 1e-9), 2)
            r["live_ratio"] = round(r["peak_live_growth_mb"] / max(plain["peak_live_growth_mb"], 1e-9), 2)
            r["saved_ratio"] = round(r["saved_for_backward_mb"] / plain["saved_for_backward_mb"], 2)
    res = {"model": "resnet20", "input": [1, 28, 28], "batch": a.batch, "threads": a.threads,
           "load_avg_1m": os.getloadavg()[0], "command": "python " + " ".join(sys.argv), "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print("| variant | step (s) | x plain | peak RSS growth (MB) | x plain | live peak growth (MB) | x plain "
          "| kept for backward (MB) | x plain |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['step_s']:.3f} | {r.get('time_ratio', '')} | {r['peak_rss_growth_mb']} | "
              f"{r.get('mem_ratio', '')} | {r['peak_live_growth_mb']} | {r.get('live_ratio', '')} | "
              f"{r['saved_for_backward_mb']} | {r.get('saved_ratio', '')} |")


if __name__ == "__main__":
    main()
