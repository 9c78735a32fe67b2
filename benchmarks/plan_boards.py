"""Inference time with real memory: ResNet-20 (Fashion-MNIST 28x28) and ResNet-18 (ImageNet
224x224) planned by wino_gen.plan on the ULX3S-85F (32 MB SDR SDRAM) and the iCEBreaker (SPRAM
on chip, weights from QSPI flash), batch 1 and 8, U vs spatial weights, F2/F4/F6 vs direct at
(nearly) equal multipliers. Writes benchmarks/results/plan_boards.json and prints the README's
markdown table.

    python benchmarks/plan_boards.py

Configs are checked against the board with perf.estimate_resources (DSP, LUT, BRAM) before
planning. Clocks are the README's measured Fmax (benchmarks/results/synth.json): ULX3S 4x4
81.6 MHz for every ~144-multiplier engine (only the 4x4 was built at that size), ULX3S 2x1
112.0 MHz, iCEBreaker 2x1 32.7 MHz (also used for its direct engine).
"""

import json
import time
from pathlib import Path

from wino_gen import boards, nets, perf, plan
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError

OUT = Path(__file__).parent / "results" / "plan_boards.json"

# board -> [(label, config fields, clock MHz, clock source)]
ENGINES = {
    "ulx3s-85f": [
        ("F2x9", dict(tile=2, unroll=9), 81.6, "4x4 build"),
        ("F4x4", dict(tile=4, unroll=4), 81.6, "4x4 build"),
        ("F6x2", dict(tile=6, unroll=2), 81.6, "4x4 build"),
        ("direct144", dict(tile=4, unroll=4, algo="direct"), 81.6, "4x4 build"),
        ("F2x1", dict(tile=2, unroll=1), 112.0, "2x1 build"),
        ("direct16", dict(tile=2, unroll=1, algo="direct"), 112.0, "2x1 build"),
    ],
    "icebreaker": [
        ("F2x1", dict(tile=2, unroll=1, bias_bits=16), 32.7, "2x1 build"),
        ("direct16", dict(tile=2, unroll=1, bias_bits=16, algo="direct"), 32.7, "2x1 build"),
    ],
}
# buffers sized to the network: the widest Winograd input and the deepest split the board holds
BUFFERS = {
    ("ulx3s-85f", "resnet20"): dict(max_channels=64, max_width=32),
    ("ulx3s-85f", "resnet18"): dict(max_channels=128, max_width=64),
    ("icebreaker", "resnet20"): dict(max_channels=16, max_width=32),
    ("icebreaker", "resnet18"): dict(max_channels=16, max_width=64),
}
DIRECT_PAIR = {"F2x9": "direct144", "F4x4": "direct144", "F6x2": "direct144", "F2x1": "direct16"}


def fits(cfg: AcceleratorConfig, board: str) -> tuple[dict, list[str]]:
    est = perf.estimate_resources(cfg, board)
    return est, boards.misfit(est, boards.get_board(board))


def row(p: plan.Plan) -> dict:
    B = p.options.batch
    mem_layers = [lp.layer.name for lp in p.layers if lp.bound == "memory"]
    return {
        "ms_per_image": round(p.ms_per_image, 4),
        "cycles_per_image": round(p.cycles_per_image),
        "compute_cycles_per_image": round(p.compute_cycles / B),
        "bytes_per_image": round(p.bytes_per_image),
        "bound_cycles_per_image": round(p.bound_cycles / B),
        "bound_ms_per_image": round(p.bound_cycles / B / (p.clock_mhz * 1e3), 4),
        "bound_bytes_per_image": round(p.bound_bytes / B),
        "ratio_to_bound": round(p.ratio_to_bound, 3),
        "traffic_ratio": None if p.traffic_ratio == float("inf") else round(p.traffic_ratio, 3),
        "bound": "memory" if sum(lp.cost.memory for lp in p.layers) > p.compute_cycles else "compute",
        "memory_bound_layers": len(mem_layers),
        "memory_bound_share": round(sum(lp.cost.total for lp in p.layers if lp.bound == "memory") / p.cycles, 3),
        "act_scratch_bytes": p.act_bytes,
        "weight_scratch_bytes": p.weight_bytes,
        "images_one_by_one": p.repeat > 1,
        "resident_weight_layers": sum(lp.placement.get(lp.layer.name + ".w") == "resident" for lp in p.layers),
    }


def compute_only(layers, cfg) -> int:
    """Cycles with an ideal host (today's compute-only headline): perf.layer_perf of every conv
    and linear layer, each whole, no memory, no buffer limits, add/pool not counted."""
    return sum(perf.layer_perf(cfg, la.in_shape[0], la.out_shape[0], la.in_shape[1], la.in_shape[2],
                               la.kernel, la.stride, la.padding)["cycles"] for la in layers if la.has_weights)


def main():
    rows, t0 = [], time.perf_counter()
    for board, engines in ENGINES.items():
        for net_name in ("resnet20", "resnet18"):
            layers = nets.network(net_name)
            for label, fields, clock, src in engines:
                cfg = AcceleratorConfig(**fields, **BUFFERS[(board, net_name)])
                est, over = fits(cfg, board)
                base = {"board": board, "net": net_name, "engine": label, "config": cfg.to_dict(),
                        "multipliers": cfg.multipliers, "clock_mhz": clock, "clock_source": src,
                        "estimate": est, "fits_board": not over,
                        "compute_only_ms": round(compute_only(layers, cfg) / (clock * 1e3), 4)}
                if over:
                    rows.append({**base, "error": "; ".join(over)})
                    continue
                for batch in (1, 8):
                    for weights in plan.WEIGHT_FORMATS if cfg.algo == "winograd" else ("spatial",):
                        t = time.perf_counter()
                        try:
                            p = plan.plan(layers, cfg, board, clock, plan.Options(batch=batch, weights=weights))
                            res = row(p)
                        except UsageError as e:
                            res = {"error": str(e)}
                        rows.append({**base, "batch": batch, "weights": weights, **res,
                                     "plan_s": round(time.perf_counter() - t, 1)})
                        print(board, net_name, label, batch, weights, res.get("ms_per_image", res.get("error")),
                              flush=True)
    add_speedups(rows)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"command": "python benchmarks/plan_boards.py", "rows": rows,
                               "wall_s": round(time.perf_counter() - t0, 1)}, indent=1) + "\n")
    print(markdown(rows))


def markdown(rows) -> str:
    """The README table: one line per plan, then the configs and plans that could not be made."""
    out = ["| net | board | engine (mults, MHz) | batch | weights | ms/image | bound ms | ratio to bound | MB/image "
           "| bound MB | limited by | vs direct | compute-only ms |", "|" + "---|" * 13]
    for r in rows:
        if "ms_per_image" not in r:
            continue
        batch = f"{r['batch']}{' (1 by 1)' if r['images_one_by_one'] else ''}"
        weights = "spatial (direct)" if r["config"]["algo"] == "direct" else {"winograd": "U"}.get(r["weights"],
                                                                                                  r["weights"])
        vs = f"{r['speedup_vs_direct']:.2f}x" if "speedup_vs_direct" in r else "-"
        out.append(f"| {r['net']} | {r['board']} | {r['engine']} ({r['multipliers']}, {r['clock_mhz']:g}) | {batch} "
                   f"| {weights} | {r['ms_per_image']:.2f} | {r['bound_ms_per_image']:.2f} | {r['ratio_to_bound']:.2f} "
                   f"| {r['bytes_per_image'] / 1e6:.3f} | {r['bound_bytes_per_image'] / 1e6:.3f} | {r['bound']} "
                   f"({r['memory_bound_share']:.0%} of time in memory-bound layers) | {vs} "
                   f"| {r['compute_only_ms']:.2f} |")
    out.append("")
    out.append("Not planned:")
    for r in rows:
        if "error" in r:
            what = f", batch {r['batch']}, {r['weights']} weights" if "batch" in r else ""
            out.append(f"- {r['net']} on {r['board']}, {r['engine']} ({r['multipliers']}, {r['clock_mhz']:g}){what}: "
                       f"{r['error']}")
    return "\n".join(out)


def add_speedups(rows):
    """Direct ms over Winograd ms on the same board, network, batch and multipliers."""
    direct = {(r["board"], r["net"], r["engine"], r["batch"]): r for r in rows
              if "ms_per_image" in r and r["config"]["algo"] == "direct"}
    for r in rows:
        d = direct.get((r["board"], r["net"], DIRECT_PAIR.get(r["engine"]), r.get("batch")))
        if d and "ms_per_image" in r:
            r["speedup_vs_direct"] = round(d["ms_per_image"] / r["ms_per_image"], 3)


if __name__ == "__main__":
    main()
