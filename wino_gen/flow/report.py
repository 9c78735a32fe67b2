"""``python -m wino_gen report [generator flags]``: what the generated accelerator is and what
it should do.

Multipliers and derived bit widths; the memory-aware plan of a network on the board
(``wino_gen.plan``: per layer where its tensors live, compute and memory cycles, what bounds
it; end to end ms/image at ``--mhz`` with the board's memory, beside the compute and traffic
bounds; Winograd vs the direct engine of the same multipliers on the same board and memory);
the compute-only cycle count with an ideal host (``wino_gen.perf``, labelled as such); the
LUT/FF/DSP/BRAM estimate, and whether that estimate fits the board.

``--model`` names the network the report plans: ``resnet18`` (the default, ImageNet shapes),
``resnet20`` (Fashion-MNIST shapes) or a model dir, which also sizes the config as it does for
the generator. A config that does not fit the board gets no plan (the fit line says why).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from .. import memory, nets, perf, plan
from ..boards import BOARDS, get_board, misfit
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, given_settings, make_config
from ..errors import ArgumentParser, UsageError, number
from ..safeio import atomic_file, check_output_file

IDEAL = "compute-only (ideal host: x and w streamed one beat per cycle, no memory, add/pool not counted)"


def _memory_spec(text: str) -> str:
    try:
        memory.parse_memory(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--memory: ")) from None
    return text


def parser():
    p = ArgumentParser(prog="python -m wino_gen report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(p)
    model = next(a for a in p._actions if a.dest == "model")
    model.metavar = "resnet18|resnet20|MODEL_DIR"
    model.help = ("the network to plan (default resnet18); a model dir also sizes the config to run it: its "
                  "tile, granularity, balance, requant, bit widths, channels and image width")
    p.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS),
                   help="board for the plan, the BRAM estimate and the fit check")
    p.add_argument("--mhz", type=number(float, lo=0, lo_open=True, hi=10_000), default=50.0,
                   help="clock of the engine and its memory, in MHz (0 < MHZ <= 10000)")
    p.add_argument("--batch", type=number(int, lo=1), default=1,
                   help="images per batch: weights fetched once per batch (default 1)")
    p.add_argument("--memory", type=_memory_spec, metavar="BYTES_PER_CYCLE,LATENCY",
                   help="replace the board's external memory and weight store by a generic one (studies)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the plan's roofline, one point per layer (matplotlib)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def board_fit(cfg: AcceleratorConfig, board_name: str) -> dict:
    """Whether the accelerator's estimate fits the board, mapped as ``build --dsp auto`` maps
    it: multipliers on DSP blocks when they all fit, else in LUTs. ``over`` names each
    resource that does not fit; ``dsp_needed`` is the DSP blocks all multipliers would take."""
    board = get_board(board_name)
    dsp = perf.estimate_resources(cfg, board=board.name, use_dsp=True)["dsp"]
    over = misfit(perf.estimate_resources(cfg, board=board.name, use_dsp=dsp <= board.dsp), board)
    return {"fits": not over, "dsp_mapping": "DSP" if dsp <= board.dsp else "LUT", "dsp_needed": dsp,
            "over": over}


# -- compute-only: today's cycle model with an ideal host -------------------------------------------

def _conv_shapes(net: str, layers) -> list[tuple]:
    """(name, C, K, H, W, kernel, stride, padding, count) of the layers perf counts: ResNet-18's
    grouped table (the README's compute-only figures), else every conv/linear layer once."""
    if net == "resnet18":
        return [(n, C, K, H, H, k, s, p, c) for n, C, K, H, k, s, p, c in perf.RESNET18]
    return [(la.name, la.in_shape[0], la.out_shape[0], la.in_shape[1], la.in_shape[2], la.kernel, la.stride,
             la.padding, 1) for la in layers if la.has_weights]


def compute_only(cfg: AcceleratorConfig, net: str, layers) -> dict:
    direct = dataclasses.replace(cfg, algo="direct")
    rows = []
    tot = {"cycles": 0, "direct_cycles": 0, "macs": 0}
    for name, C, K, H, W, k, s, p, count in _conv_shapes(net, layers):
        r = perf.layer_perf(cfg, C, K, H, W, k, s, p)
        d = perf.layer_perf(direct, C, K, H, W, k, s, p)
        row = {"name": name, "C": C, "K": K, "H": H, "kernel": k, "stride": s, "count": count,
               **{key: r[key] for key in ("engine", "cycles", "utilization", "steady_utilization")}}
        row["direct_cycles"] = d["cycles"]
        row["speedup_vs_direct"] = d["cycles"] / r["cycles"]
        rows.append(row)
        tot["cycles"] += count * r["cycles"]
        tot["direct_cycles"] += count * d["cycles"]
        tot["macs"] += count * r["direct_macs"]
    tot["speedup_vs_direct"] = tot["direct_cycles"] / tot["cycles"]
    tot["effective_macs_per_cycle"] = tot["macs"] / tot["cycles"]
    target = perf.winograd_layer(cfg, 64, 64, 56, 56) if cfg.algo == "winograd" else None
    return {"label": IDEAL, "network": net, "layers": rows, "end_to_end": tot,
            "utilization_56x56x64": target and {k: target[k] for k in ("cycles", "utilization",
                                                                      "steady_utilization")}}


# -- memory-aware plan ------------------------------------------------------------------------------

def _short(place: str) -> str:
    return {"external": "ext", "resident": "res"}.get(place, place)


def _layer_row(lp: plan.LayerPlan, per_pass: float) -> dict:
    c, t, lay = lp.cost, lp.tiling, lp.layer
    ins = "+".join(_short(lp.placement[s]) for s in lay.inputs)
    where = f"{ins}->{_short(lp.placement[lay.name])}"
    if lay.has_weights:
        where += f" w:{_short(lp.placement[lay.name + '.w'])}"
    return {
        "name": lay.name, "op": lay.op, "engine": lp.engine, "compute_cycles": c.compute,
        "bytes": c.read + c.written, "memory_cycles": c.memory, "cycles": c.total, "bound": lp.bound,
        # products over multipliers x cycles (the add/pool unit has no multipliers)
        "utilization": None if lp.engine == "eltwise" else lp.bound_compute / max(1, c.total),
        "bound_compute_cycles": lp.bound_compute, "bound_bytes": lp.bound_bytes, "where": where,
        "placement": lp.placement, "tiling": dataclasses.asdict(t), "steps": len(lp.steps),
        "images_per_pass": per_pass,
    }


def plan_summary(p: plan.Plan, net: str) -> dict:
    B, bm = p.options.batch, memory.board_memory(p.board, None)
    mem_total = sum(lp.cost.total for lp in p.layers if lp.bound == "memory")
    return {
        "network": net, "board": p.board, "clock_mhz": p.clock_mhz, "batch": B, "weights": p.options.weights,
        "multipliers": p.cfg.multipliers, "images_one_by_one": p.repeat > 1,
        "on_chip_blocks": bm.on_chip.blocks, "engine_blocks": memory.engine_blocks(p.cfg, p.board),
        "act_scratch_bytes": p.act_bytes, "weight_scratch_bytes": p.weight_bytes,
        "cycles_per_image": p.cycles_per_image, "ms_per_image": p.ms_per_image,
        "bytes_per_image": p.bytes_per_image, "compute_cycles_per_image": p.compute_cycles / B,
        "bound_cycles_per_image": p.bound_cycles / B,
        "bound_ms_per_image": p.bound_cycles / B / (p.clock_mhz * 1e3),
        "bound_bytes_per_image": p.bound_bytes / B, "ratio_to_bound": p.ratio_to_bound,
        "traffic_ratio": None if p.traffic_ratio == float("inf") else p.traffic_ratio,
        "limited_by": "memory" if sum(lp.cost.memory for lp in p.layers) > p.compute_cycles else "compute",
        "memory_bound_share": mem_total * p.repeat / max(1, p.cycles),
        "layers": [_layer_row(lp, B / p.repeat) for lp in p.layers],
    }


def _memory_info(board: str, memory_spec: str | None) -> dict:
    bm = memory.board_memory(board, memory_spec)
    ext, store = bm.external, bm.weight_store
    return {"external": ext and ext.part, "external_bytes": ext and ext.capacity,
            "weight_store": store.part, "weight_store_bytes": store.capacity,
            "peak_bytes_per_cycle": (ext or store).peak_bytes_per_cycle,
            "on_chip_blocks": bm.on_chip.blocks, "block_bytes": bm.on_chip.block_bytes,
            "spram_bytes": bm.on_chip.spram_bytes}


def _try_plan(layers, cfg, args, weights) -> plan.Plan | str:
    try:
        return plan.plan(layers, cfg, args.board, args.mhz, plan.Options(batch=args.batch, weights=weights),
                         args.memory)
    except UsageError as e:
        return str(e)


def memory_plan(layers, cfg: AcceleratorConfig, net: str, args) -> dict:
    """The plan of ``layers`` on the board for ``cfg`` (the faster weight format unless one is
    asked for) and for the direct engine of the same multipliers. A config that does not fit
    the board gets none; a network that cannot run is bad input (one line, exit 2)."""
    info = {"memory": _memory_info(args.board, args.memory)}
    if not board_fit(cfg, args.board)["fits"]:
        return {**info, "plan": None, "not_planned": "the engine does not fit the board by the estimate"}
    formats = [args.weights] if args.weights else (list(plan.WEIGHT_FORMATS) if cfg.algo == "winograd"
                                                   else ["spatial"])
    tried = {w: _try_plan(layers, cfg, args, w) for w in formats}
    plans = {w: p for w, p in tried.items() if not isinstance(p, str)}
    if not plans:
        raise UsageError(tried[formats[-1]])   # the spatial plan's: it asks the least of the board
    best = min(plans.values(), key=lambda p: p.cycles)
    out = {**info, "plan": plan_summary(best, net),
           "other_weights": {w: (p if isinstance(p, str) else {"ms_per_image": p.ms_per_image})
                             for w, p in tried.items() if p is not best}}
    if cfg.algo == "winograd":
        dcfg = dataclasses.replace(cfg, algo="direct")
        d = (_try_plan(layers, dcfg, args, "spatial") if board_fit(dcfg, args.board)["fits"]
             else "the direct engine does not fit the board by the estimate")
        out["direct"] = {"error": d} if isinstance(d, str) else plan_summary(d, net)
        if not isinstance(d, str):
            out["winograd_vs_direct"] = d.cycles_per_image / best.cycles_per_image
    return out


# -- the report -------------------------------------------------------------------------------------

def build_report(cfg: AcceleratorConfig, board: str = "ulx3s-85f", mhz: float = 50.0, net: str = "resnet18",
                 layers=None, args=None) -> dict:
    layers = nets.network(net) if layers is None else layers
    args = args or argparse.Namespace(board=board, mhz=mhz, batch=1, weights=None, memory=None)
    return {
        "config": cfg.to_dict(),
        "multipliers": cfg.multipliers,
        "widths": dataclasses.asdict(cfg.widths),
        "network": net,
        "mhz": mhz,
        **memory_plan(layers, cfg, net, args),
        "compute_only": compute_only(cfg, net, layers),
        "resources": perf.estimate_resources(cfg, board=board),
        "memories": [dict(zip(("name", "count", "depth", "width"), m, strict=True)) for m in perf.memories(cfg)],
        "board": board,
        "fit": board_fit(cfg, board),
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB"


def format_plan(rep: dict) -> list[str]:
    p, m = rep["plan"], rep["memory"]
    out = []
    if p is None:
        return [f"memory-aware plan of {rep['network']} on {rep['board']}: none, {rep['not_planned']} (see the "
                f"fit line below)"]
    how = f"{p['weights']} weights" + ("" if not rep["other_weights"] else " (faster than " + "; ".join(
        f"{w}: {v if isinstance(v, str) else format(v['ms_per_image'], '.2f') + ' ms/image'}"
        for w, v in rep["other_weights"].items()) + ")")
    out.append(f"memory-aware plan (wino_gen.plan): {p['network']} on {p['board']} at {p['clock_mhz']:g} MHz, "
               f"batch {p['batch']}{', images one by one' if p['images_one_by_one'] else ''}, {how}")
    ext = f"{m['external']} ({m['external_bytes'] / 2**20:.0f} MiB)" if m["external"] else "no external RAM"
    store = "" if m["weight_store"] == m["external"] else f", weights from {m['weight_store']}"
    out.append(f"  memory: {ext}{store}, {m['peak_bytes_per_cycle']:g} B/cycle peak; on chip "
               f"{p['on_chip_blocks']} block RAMs, {p['engine_blocks']} for the engine, scratchpads "
               f"{p['act_scratch_bytes']} B activations + {p['weight_scratch_bytes']} B weights"
               + (f" (+ {m['spram_bytes']} B SPRAM)" if m["spram_bytes"] else ""))
    per = p["layers"][0]["images_per_pass"] if p["layers"] else 1
    out.append(f"  per layer, per pass of {per:g} image(s):")
    out.append(f"  {'layer':<20}{'engine':<9}{'compute':>10}{'bytes':>10}{'memory':>10}{'cycles':>10} "
               f"{'bound':<8}{'util':>6}  where")
    for r in p["layers"]:
        util = "-" if r["utilization"] is None else f"{r['utilization']:.0%}"
        out.append(f"  {r['name']:<20}{r['engine']:<9}{r['compute_cycles']:>10}{r['bytes']:>10}"
                   f"{r['memory_cycles']:>10}{r['cycles']:>10} {r['bound']:<8}{util:>6}  {r['where']}")
    out.append(f"  end to end: {p['cycles_per_image']:.0f} cycles/image = {p['ms_per_image']:.2f} ms/image at "
               f"{p['clock_mhz']:g} MHz, {_mb(p['bytes_per_image'])}/image; limited by {p['limited_by']} "
               f"({p['memory_bound_share']:.0%} of the time in memory-bound layers)")
    tr = "-" if p["traffic_ratio"] is None else f"{p['traffic_ratio']:.2f}"
    out.append(f"  bounds: {p['bound_cycles_per_image']:.0f} cycles/image = {p['bound_ms_per_image']:.2f} ms "
               f"(peak compute of {p['multipliers']} multipliers, or each tensor crossing once at peak bandwidth; "
               f"{_mb(p['bound_bytes_per_image'])}/image); plan / bound {p['ratio_to_bound']:.2f}, "
               f"bytes / minimum {tr}")
    d = rep.get("direct")
    if d is not None:
        if "error" in d:
            out.append(f"  direct engine (same multipliers): not planned: {d['error']}")
        else:
            out.append(f"  direct engine ({d['multipliers']} multipliers, same board and memory): "
                       f"{d['ms_per_image']:.2f} ms/image, {_mb(d['bytes_per_image'])}/image, limited by "
                       f"{d['limited_by']}; Winograd vs direct: {rep['winograd_vs_direct']:.2f}x")
    return out


def format_compute_only(rep: dict) -> list[str]:
    co, out = rep["compute_only"], []
    nw = max([16, *(len(r["name"]) + 1 for r in co["layers"])])
    out.append(f"{co['network']} convolutions, one image, {co['label']} (wino_gen.perf cycle model):")
    out.append(f"  {'layer':<{nw}}{'C':>5}{'K':>5}{'H':>5} {'k/s':>5} {'x':>2}  {'engine':<9}"
               f"{'cycles':>10}{'util':>7}{'steady':>7}{'direct':>10}{'speedup':>8}")
    for r in co["layers"]:
        out.append(f"  {r['name']:<{nw}}{r['C']:>5}{r['K']:>5}{r['H']:>5} {r['kernel']}/{r['stride']:<3}"
                   f" {r['count']:>2}  {r['engine']:<9}{r['cycles']:>10}{r['utilization']:>7.1%}"
                   f"{r['steady_utilization']:>7.1%}{r['direct_cycles']:>10}"
                   f"{r['speedup_vs_direct']:>7.2f}x")
    t = co["end_to_end"]
    out.append(f"  end to end, compute-only: {t['cycles']} cycles ({t['cycles'] / (rep['mhz'] * 1e3):.2f} ms at "
               f"{rep['mhz']:g} MHz), direct engine {t['direct_cycles']} cycles, speedup "
               f"{t['speedup_vs_direct']:.2f}x, {t['effective_macs_per_cycle']:.0f} effective MAC/cycle")
    u = co["utilization_56x56x64"]
    if u:
        out.append(f"  56x56x64->64: {u['cycles']} cycles, multiplier utilization "
                   f"{u['utilization']:.1%} (steady state {u['steady_utilization']:.1%})")
    return out


def format_report(rep: dict) -> str:
    c = rep["config"]
    out = []
    name = (f"{c['algo']} F({c['tile']}x{c['tile']},3x3)" if c["algo"] == "winograd"
            else f"direct (n={c['tile'] + 2} multiplier groups)")
    out.append(f"wino accelerator: {name}, unroll {c['unroll']} x unroll_in {c['unroll_in']}, "
               f"{c['granularity']}/{c['requant']} requant, act/weight/transform bits "
               f"{c['act_bits']}/{c['weight_bits']}/{c['transform_bits']}")
    out.append(f"multipliers: {rep['multipliers']}")
    out.append("derived widths: " + ", ".join(f"{k} {v}" for k, v in rep["widths"].items()))
    out.append("")
    out.extend(format_plan(rep))
    out.append("")
    out.extend(format_compute_only(rep))
    out.append("")
    r = rep["resources"]
    out.append(f"resource estimate ({rep['board']}, accelerator only, calibrated on the synthesis "
               f"benchmarks): LUT {r['lut']}, FF {r['ff']}, DSP {r['dsp']}, BRAM {r['bram']} "
               f"({r['memory_bits'] / 1e6:.2f} Mbit)")
    for mm in rep["memories"]:
        out.append(f"  {mm['name']}: {mm['count']} x {mm['depth']} x {mm['width']} bit")
    out.append(format_fit(rep))
    return "\n".join(out)


def format_fit(rep: dict) -> str:
    fit, board = rep["fit"], get_board(rep["board"])
    where = ("on DSP blocks" if fit["dsp_mapping"] == "DSP"
             else f"in LUTs, as they need {fit['dsp_needed']} DSP blocks and it has {board.dsp}")
    if fit["fits"]:
        return f"fits the {board.name} ({board.device}) by the estimate, multipliers {where}"
    return (f"DOES NOT FIT the {board.name} by the estimate (multipliers {where}): "
            f"{'; '.join(fit['over'])}; `python -m wino_gen build --board {board.name} "
            f"--check-only` with these flags names the largest config that fits")


# -- the roofline -----------------------------------------------------------------------------------

def plot_roofline(rep: dict, path) -> None:
    """Operational intensity (multiplier products per byte crossing the memory boundary) against
    achieved products per cycle, one point per conv/linear layer of the plan (and of the direct
    engine's), under the two roofs: the multipliers and the memory's peak bandwidth. A layer
    that moves no bytes sits at the right edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p, peak = rep["plan"], rep["memory"]["peak_bytes_per_cycle"]
    mults = p["multipliers"]
    series = [("Winograd" if rep["config"]["algo"] == "winograd" else "direct", p)]
    if rep.get("direct") and "error" not in rep["direct"]:
        series.append(("direct engine", rep["direct"]))
    pts = [(label, r) for label, s in series for r in s["layers"] if r["utilization"] is not None]
    ints = [r["bound_compute_cycles"] * mults / r["bytes"] for _, r in pts if r["bytes"]]
    lo, hi = min([*ints, 1.0]) / 2, max([*ints, 4 * mults / peak]) * 4
    fig = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(mults, peak * x) for x in xs], color="black", lw=1.5,
            label=f"roof: {mults} multipliers, {peak:g} B/cycle")
    for (label, _), marker in zip(series, ("o", "s"), strict=False):
        for bound, color in (("compute", "tab:blue"), ("memory", "tab:red")):
            sel = [r for lab, r in pts if lab == label and r["bound"] == bound]
            if sel:
                ax.scatter([r["bound_compute_cycles"] * mults / r["bytes"] if r["bytes"] else hi / 1.5 for r in sel],
                           [r["bound_compute_cycles"] * mults / r["cycles"] for r in sel], marker=marker,
                           color=color, alpha=0.75, label=f"{label}, {bound}-bound layers")
    if any(not r["bytes"] for _, r in pts):
        ax.axvline(hi / 1.5, color="grey", ls=":", lw=1)
        ax.text(hi / 1.5, mults / 8, "no off-chip traffic ", color="grey", fontsize=8, ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0.5, mults * 2)
    ax.set_xlabel("operational intensity (multiplier products per byte of off-chip traffic)")
    ax.set_ylabel("achieved products per cycle (Winograd: transformed-domain products)")
    ax.set_title(f"{p['network']} on {p['board']}, {p['weights']} weights, batch {p['batch']}: "
                 f"{p['ms_per_image']:.2f} ms/image at {p['clock_mhz']:g} MHz", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    with atomic_file(path, "--plot") as tmp:
        fig.savefig(tmp, format="png")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.plot:
        check_output_file(args.plot, "--plot")
    memory.board_memory(args.board)   # a board without a memory model: one line, before any work
    net = args.model or "resnet18"
    cfg = make_config(given_settings(args), None if net in nets.NETWORKS else net)
    rep = build_report(cfg, args.board, args.mhz, net, nets.network(net), args)
    if args.plot:
        if rep["plan"] is None:
            raise UsageError(f"--plot {args.plot}: no plan to draw: {rep['not_planned']}")
        plot_roofline(rep, args.plot)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
