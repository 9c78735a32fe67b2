"""ResNet-18 (ImageNet 224x224) on the compute core (rtl.core): the dual core (Winograd mode
for 3x3 stride-1 layers, direct mode for the rest) vs the direct-only core (the same
multipliers, every layer direct through the on-chip window generator) vs the host-fed im2col
direct engine (rtl.top.DirectAccel, one L-element chunk a cycle from the host), all from
wino_gen.perf's cycle model, which the core's and the engine's tests check against pysim.
Writes benchmarks/results/direct_core.json and prints a markdown table.

    python benchmarks/direct_core.py

The window generator's line buffer is sized for the network (max_width 224, max_channels 512,
max_kernel 7); its block-RAM count (ECP5 DP16KD, perf's shapes) is reported next to the
table, and for the buffers the ULX3S plan uses for ResNet-18 (max_width 64, max_channels 128),
with the default channel sets and with one (a group a read: the generator before banking).
"""

import dataclasses
import json
from pathlib import Path

from wino_gen import perf, schedule
from wino_gen.config import AcceleratorConfig

OUT = Path(__file__).parent / "results" / "direct_core.json"
MAX_KERNEL = 7
CONFIGS = {   # F4, equal multipliers: unroll x unroll_in x 36
    "F4 16x1": dict(tile=4, unroll=16, unroll_in=1),
    "F4 4x4": dict(tile=4, unroll=4, unroll_in=4),
}


def layer_row(cfg: AcceleratorConfig, name, C, K, H, k, s, p, count) -> dict:
    """One ResNet-18 layer's cycles on the three designs (per instance) and its count."""
    def core(direct_only):
        mode = "winograd" if not direct_only and (k, s) == (3, 1) else "direct"
        return perf.core_cycles(cfg, mode, C, K, H, H, kernel=k, stride=s, padding=p,
                                max_kernel=MAX_KERNEL, direct_only=direct_only)
    im2col = perf.direct_layer(dataclasses.replace(cfg, algo="direct"), C, K, H, H, k, s, p)["cycles"]
    return {"name": name, "C": C, "K": K, "H": H, "kernel": k, "stride": s, "count": count,
            "dual": core(False), "direct_only": core(True), "im2col": im2col}


def line_buffer(cfg: AcceleratorConfig, max_width: int, max_channels: int, sets=None) -> dict:
    buf = schedule.window_buffer(schedule.direct_view(cfg), max_width, max_channels, MAX_KERNEL, sets)
    mem = buf.memory
    return {"max_width": max_width, "max_channels": max_channels, "sets": buf.sets, "banks": mem.count,
            "depth": mem.depth, "word_bits": mem.width,
            "ecp5_brams": mem.count * perf._brams(mem.depth, mem.width, "ecp5")}


def table(label: str, fields: dict) -> dict:
    cfg = AcceleratorConfig(**fields, max_width=224, max_channels=512)
    rows = [layer_row(cfg, *layer) for layer in perf.RESNET18]
    total = {key: sum(r[key] * r["count"] for r in rows) for key in ("dual", "direct_only", "im2col")}
    small = AcceleratorConfig(**fields, max_width=64, max_channels=128)
    return {"config": label, "fields": fields, "multipliers": cfg.multipliers, "layers": rows, "total": total,
            "window_buffer": line_buffer(cfg, 224, 512),
            "window_buffers": [line_buffer(c, c.max_width, c.max_channels, sets)
                               for c in (cfg, small) for sets in (None, 1)]}


def markdown(t: dict) -> str:
    bufs = ", ".join(f"{b['max_width']}/{b['max_channels']} P={b['sets']}: {b['banks']} banks, "
                     f"{b['ecp5_brams']} BRAMs" for b in t["window_buffers"])
    lines = [f"**{t['config']}** ({t['multipliers']} multipliers; line buffer (width/channels) {bufs})", "",
             "| layer | x | dual core | direct-only core | im2col engine | direct-only / im2col |",
             "|---|---|---|---|---|---|"]
    for r in t["layers"] + [{"name": "total", "count": 1, **t["total"]}]:
        lines.append(f"| {r['name']} | {r['count']} | {r['dual']} | {r['direct_only']} | {r['im2col']} | "
                     f"{r['direct_only'] / r['im2col']:.2f} |")
    return "\n".join(lines)


def main():
    tables = [table(label, fields) for label, fields in CONFIGS.items()]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"max_kernel": MAX_KERNEL, "tables": tables}, indent=1) + "\n")
    for t in tables:
        print(markdown(t) + "\n")


if __name__ == "__main__":
    main()
