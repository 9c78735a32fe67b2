"""Synthesis sweep: build the self-test bitstream for tile x unroll configs with the YoWASP flow
and record resources, Fmax and the wall time of each build; or (``--core``) place and route the
compute core (``rtl.core.Core``) and its direct-only build.

    python benchmarks/synth.py                                   # default ULX3S-85F sweep
    python benchmarks/synth.py --board icebreaker --configs 2x1
    python benchmarks/synth.py --configs 4x4 --target-mhz 150
    python benchmarks/synth.py --core dual,direct-only           # the core, F4 unroll 4, ULX3S-85F
    python benchmarks/synth.py --core dual --nextpnr-stop pack   # its utilisation only

Results go to benchmarks/results/synth.json (one record per build, merged with earlier
records of other configs) and a Markdown table on stdout. Builds run one at a time.

``--core``: the core has hundreds of stream and command bits and no pins of its own, so it is
built inside :class:`CoreHarness`: every input bit of the core is a flip-flop of one shift
register fed by an LFSR (nothing is constant, so nothing is optimised away, and every input
path starts at a register, as behind the system's feeders), every output bit is registered
and the registers XOR-reduced into one flip-flop on the board's first LED. The harness's own
flip-flops (``harness.ff_at_most``: yosys drops the captures of constant output bits) and
XOR LUTs are counted and taken off before the comparison with
``wino_gen.perf.estimate_resources(cfg, max_kernel=...)``. The board's oscillator pin clocks
it; nextpnr aims at ``--target-mhz`` (default 125). The PE array's ``unroll x unroll_in x n²``
multipliers take 144 of the 85F's 156 DSPs and the element-wise unit has 13 more: where the
DSPs run out, the avgpool requant's (one) is built in LUTs (:data:`SOFT_MULTIPLIERS`). One report JSON per build,
``benchmarks/results/synth_core_<build>.json``. ``--nextpnr-stop pack|place`` ends nextpnr
after packing (utilisation) or placement (estimated Fmax and critical paths), for builds
whose routing takes longer than there is time for; a rerun on an unchanged netlist reuses
yosys' (``--work`` keeps it).
"""

import argparse
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Cat, Module, Signal, Value  # noqa: E402
from amaranth.lib import io, wiring  # noqa: E402
from amaranth.lib.wiring import Out  # noqa: E402

from rtl.core import Core  # noqa: E402
from wino_gen import perf  # noqa: E402
from wino_gen.boards import BOARDS, Board, get_board  # noqa: E402
from wino_gen.config import AcceleratorConfig  # noqa: E402
from wino_gen.errors import UsageError  # noqa: E402
from wino_gen.flow import build  # noqa: E402
from wino_gen.flow.platforms import make_platform  # noqa: E402
from wino_gen.procs import run_in_group  # noqa: E402
from wino_gen.schedule import eltwise_multipliers  # noqa: E402

DEFAULT = "2x1,2x4,2x8,4x1,4x2,4x4,6x1,6x2"
RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def record(rep: dict) -> dict:
    r = rep["resources"]
    return {
        "board": rep["board"], "tile": rep["config"]["tile"], "unroll": rep["config"]["unroll"],
        "unroll_in": rep["config"]["unroll_in"], "multipliers": rep["multipliers"],
        "dsp_mapping": rep["dsp_mapping"], "engine": rep["engine"],
        "max_channels": rep["config"]["max_channels"], "max_width": rep["config"]["max_width"],
        **{f"{k}_used": v["used"] for k, v in r.items()},
        **{f"{k}_available": v["available"] for k, v in r.items()},
        **{f"{k}_estimate": v.get("estimate") for k, v in r.items()},
        "estimate_source": rep["estimate_source"],
        "fmax_mhz": round(rep["fmax_mhz"], 2) if rep["fmax_mhz"] else None,
        "target_mhz": rep["target_mhz"],
        "gops_at_fmax": rep["throughput"].get("gops_at_fmax"),
        "gops_per_dsp": rep["throughput"].get("gops_per_dsp"),
        "cycles_source": rep["throughput"]["cycles_source"],
        "wall_s": rep["wall_s"]["total"],
        "loadavg_1min_at_end": rep["wall_s"].get("loadavg_1min_at_end"),
    }


def table(records) -> str:
    head = ("| board | tile | unroll | mults | DSP | LUT (est) | FF | BRAM | Fmax MHz | GOPS@Fmax "
            "| GOPS/DSP | build s |")
    rows = [head, "|" + "---|" * 12]
    for r in records:
        est = r.get("lut_estimate")
        err = f" ({est}, {100 * (est - r['lut_used']) / r['lut_used']:+.0f}%)" if est and r["lut_used"] else ""
        rows.append(f"| {r['board']} | {r['tile']} | {r['unroll']} | {r['multipliers']} | "
                    f"{r['dsp_used']}/{r['dsp_available']} | {r['lut_used']}{err} | {r['ff_used']} | "
                    f"{r['bram_used']} | {r['fmax_mhz']} | {r['gops_at_fmax']} | "
                    f"{r['gops_per_dsp']} | {r['wall_s']:.0f} |")
    return "\n".join(rows)


CORE_BUILDS = {"dual": False, "direct-only": True}
#: The core's build: F4, unroll 4, unroll_in 1 (4 x 1 x 36 = 144 DSPs of the 85F's 156;
#: unroll_in 2 would need 288), the system's max_kernel and pooling window, the board's
#: buffer limits (max_channels 128, max_width 64).
CORE_CONFIG = {"tile": 4, "unroll": 4, "unroll_in": 1}
CORE_MAX_KERNEL = 3
#: yosys, before ``synth_ecp5``, where the core's multipliers outnumber the DSPs: the pool's
#: (the avgpool requant's, ``unroll_in`` of them) made LUT multipliers (``booth``, the mapping
#: synth_lattice uses where there are no DSPs; it needs ``proc`` first), so that DSP
#: inference, which takes every ``$mul``, leaves them alone.
SOFT_MULTIPLIERS = "proc *.elt.pool; booth *.elt.pool/t:$mul"
#: the build flow's (it leaves out the asynchronous read ports)
NO_COLLISION_CHECK = build.NO_COLLISION_CHECK
#: nextpnr's flag for each stage a core build may stop after.
NEXTPNR_STOP = {"pack": "--pack-only", "place": "--no-route"}
CORE_RESULTS = RESULTS.parent / "synth_core_{build}.json"
LFSR_TAPS = (31, 21, 1, 0)      # x^32 + x^22 + x^2 + x + 1, maximal length


class CoreHarness(wiring.Component):
    """``core`` with every input a flip-flop of one LFSR-fed shift register and every output
    registered and XOR-reduced to ``out`` (module doc). ``ff`` / ``xor_luts``: its own
    flip-flops and the LUT4s of the reduction, for the accounting."""

    def __init__(self, core: wiring.Component):
        if not isinstance(core, wiring.Component):
            raise ValueError(f"core: expected a wiring.Component, got {core!r}")
        self.core = core
        self.inputs, self.outputs = [], []
        for _, member, value in core.signature.flatten(core):
            (self.inputs if member.flow == wiring.In else self.outputs).append(Value.cast(value))
        self.chain_bits = sum(len(v) for v in self.inputs)
        self.xor_inputs = sum(len(v) for v in self.outputs)
        self.ff = 32 + self.chain_bits + self.xor_inputs + 1
        self.xor_luts = -(-(self.xor_inputs - 1) // 3) + 1     # the tree, the LFSR's feedback
        super().__init__({"out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        lfsr = Signal(32, init=1)
        m.d.sync += lfsr.eq(Cat(Cat(*(lfsr[t] for t in LFSR_TAPS)).xor(), lfsr[:-1]))
        chain = Signal(self.chain_bits)
        m.d.sync += chain.eq(Cat(lfsr[-1], chain[:-1]))
        m.d.comb += Cat(*self.inputs).eq(chain)
        cap = Signal(self.xor_inputs)
        m.d.sync += [cap.eq(Cat(*self.outputs)), self.out.eq(cap.xor())]
        return m


class BoardHarness(wiring.Component):
    """The harness on a board: its ``out`` on the first LED, the platform's default clock
    (the oscillator pin) as ``sync``."""

    def __init__(self, harness: CoreHarness, board: Board):
        self.harness, self.board = harness, board
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = self.harness
        name, num = self.board.leds[0].split(":")
        m.submodules.led = led = io.Buffer("o", platform.request(name, int(num), dir="-"))
        m.d.comb += led.o.eq(self.harness.out)
        return m


def core_config(board: Board) -> AcceleratorConfig:
    return replace(AcceleratorConfig(), **board.defaults, **CORE_CONFIG)


def soft_multipliers(cfg: AcceleratorConfig, board: Board, est: dict) -> int:
    """How many of the core's multipliers go to LUTs: none when the estimate's fit the DSPs,
    else the pool's (:data:`SOFT_MULTIPLIERS`) when that is enough."""
    over = est["dsp"] - board.dsp
    if over <= 0:
        return 0
    if over > cfg.unroll_in:
        raise UsageError(f"{board.name}: the core needs {est['dsp']} multipliers, {over} more than its "
                         f"{board.dsp} DSPs (the pool's {cfg.unroll_in} in LUTs would not do)")
    return cfg.unroll_in


def build_core(cfg: AcceleratorConfig, *, direct_only: bool, board: Board, target_mhz: float, work: Path,
               max_kernel: int = CORE_MAX_KERNEL, stop: str | None = None, report_only: bool = False) -> dict:
    """Elaborate the harnessed core, run yosys and nextpnr in ``work/build`` (no bitstream:
    the harness computes nothing) and return the report (:func:`core_report`). ``stop``:
    nextpnr stops after ``"pack"`` (the utilisation, no Fmax) or ``"place"`` (Fmax and
    critical paths are placement estimates: no routing), :data:`NEXTPNR_STOP`.
    ``report_only``: no tools, the report of the nextpnr run already in ``work/build``
    (made with the same ``stop``)."""
    if stop is not None and stop not in NEXTPNR_STOP:
        raise ValueError(f"stop: {stop!r} must be None or one of {', '.join(NEXTPNR_STOP)}")
    est = perf.estimate_resources(cfg, board=board.name, use_dsp=True, max_kernel=max_kernel,
                                  direct_only=direct_only)
    soft = soft_multipliers(cfg, board, est)
    core = Core(cfg, max_kernel=max_kernel, direct_only=direct_only,
                options=build.build_options(cfg, board, use_dsp=True))
    harness = CoreHarness(core)
    t0 = time.monotonic()
    script_after_read = "\n".join([NO_COLLISION_CHECK] + [SOFT_MULTIPLIERS] * bool(soft))
    nextpnr_opts = ["--report", "nextpnr-report.json", "--timing-allow-fail"] + ([NEXTPNR_STOP[stop]] if stop else [])
    prepared = make_platform(board, target_mhz).prepare(
        BoardHarness(harness, board), name="top", synth_opts=board.dsp_synth_opts, nextpnr_opts=nextpnr_opts,
        script_after_read=script_after_read)
    bdir = work / "build"
    before = _yosys_inputs(bdir)
    prepared.extract(str(bdir))
    reuse = before is not None and before == _yosys_inputs(bdir)
    script = (bdir / f"{prepared.script}.sh").read_text()
    wall = {"elaborate": round(time.monotonic() - t0, 1)}
    t0 = time.monotonic()
    skip = {"ecppack"} | ({"yosys"} if reuse else set()) | ({"yosys", "nextpnr-ecp5"} if report_only else set())
    if not reuse and not report_only:       # a netlist is only ever beside the RTLIL it was made from
        (bdir / "top.json").unlink(missing_ok=True)
    if stop == "pack":      # an unplaced design has no config to write (nextpnr aborts trying)
        script = script.replace(" --textcfg top.config", "")
    run_core_tools(script, board, bdir, work / "build.log", skip)
    wall["tools"] = round(time.monotonic() - t0, 1)
    build_info = {"max_kernel": max_kernel, "direct_only": direct_only,
                  "eltwise_multipliers": eltwise_multipliers(cfg), "multipliers_in_luts": soft,
                  "yosys_script_after_read": script_after_read.splitlines(), "yosys_reused": reuse,
                  "nextpnr_stopped_after": stop}
    return core_report(cfg, board, harness, bdir, est, target_mhz, wall, build_info)


def _yosys_inputs(bdir: Path) -> tuple[list[str], str] | None:
    """yosys' input (the RTLIL less its ``src`` attributes, which name Python source lines,
    and the script) where its netlist is there too, else None: the same input makes the same
    netlist, so a rerun (``--nextpnr-stop`` after a place and route that took too long) need
    not synthesise again."""
    if not (bdir / "top.json").is_file():
        return None
    rtlil = [ln for ln in (bdir / "top.il").read_text().splitlines() if not ln.lstrip().startswith("attribute \\src ")]
    return rtlil, (bdir / "top.ys").read_text()


def run_core_tools(script: str, board: Board, bdir: Path, log_path: Path, skip: set[str]) -> None:
    """yosys and nextpnr of the amaranth build script but those in ``skip``, in ``bdir``,
    logged to ``log_path``."""
    env = build.tool_env(board)
    with open(log_path, "w") as log:
        for tool, text in build.script_steps(script, board.family):
            if tool in skip:
                continue
            print(f"synth: {bdir}: {tool} ...", file=sys.stderr, flush=True)
            log.flush()
            rc = run_in_group(["sh", "-c", text], cwd=bdir, env=env, stdout=log)
            if rc != 0:
                raise build.BuildFailed(f"{tool} failed (exit {rc}); see {log_path}")


def core_report(cfg, board, harness, bdir, est, target_mhz, wall, build_info) -> dict:
    """nextpnr's utilisation and Fmax, less the harness (``core``), beside the estimate."""
    npr = build.parse_nextpnr_report(bdir / "nextpnr-report.json", board)
    cost = {"ff": harness.ff, "lut": harness.xor_luts, "dsp": 0, "bram": 0}
    res = {}
    for key, r in npr["resources"].items():
        core = r["used"] - cost[key] if r["used"] is not None else None
        res[key] = {**r, "harness": cost[key], "core": core, "estimate": est[key],
                    "estimate_error": round((est[key] - core) / core, 4) if core else None}
    fmax = min((v["achieved_mhz"] for v in npr["fmax"].values() if v.get("achieved_mhz")), default=None)
    if fmax is None and build_info["nextpnr_stopped_after"] == "place":   # the report has timing only when routed
        fmax = _log_fmax((bdir / "top.tim").read_text(errors="replace"))
    return {
        "wino_core_synth": 1, "board": board.name, "device": board.device,
        "config": cfg.to_dict(), "multipliers": cfg.multipliers, "core": build_info,
        "harness": {"input_bits": harness.chain_bits, "output_bits": harness.xor_inputs,
                    "ff_at_most": harness.ff, "xor_luts": harness.xor_luts},
        "resources": res,
        "estimate_source": f"wino_gen.perf.estimate_resources(cfg, use_dsp=True, max_kernel="
                           f"{build_info['max_kernel']}, direct_only={build_info['direct_only']})",
        "fmax_mhz": round(fmax, 2) if fmax else None, "target_mhz": target_mhz,
        "timing_met": bool(fmax and fmax >= target_mhz) if build_info["nextpnr_stopped_after"] is None else None,
        "fmax_is": {None: "routed", "place": "placement estimate (not routed)",
                    "pack": "not placed"}[build_info["nextpnr_stopped_after"]],
        "fmax_all_clocks": npr["fmax"], "critical_paths": npr["critical_paths"],
        "yosys_cells": build.parse_yosys_cells((bdir / "top.rpt").read_text(errors="replace")),
        "wall_s": {**wall, "loadavg_1min_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()},
        "tools": {k: v for k, v in build.tool_env(board).items() if k in build.TOOLS[board.family]},
    }


def _log_fmax(log: str) -> float | None:
    """The last ``Max frequency for clock ...: F MHz`` of a nextpnr log (after placement, when
    it did not route)."""
    found = re.findall(r"Max frequency for clock .*?: ([0-9.]+) MHz", log)
    return float(found[-1]) if found else None


def core_main(args) -> int:
    board = get_board(args.board)
    names = args.core.split(",")
    unknown = [n for n in names if n not in CORE_BUILDS]
    if unknown:
        raise UsageError(f"--core: {', '.join(unknown)}; builds: {', '.join(CORE_BUILDS)}")
    failed = False
    for name in names:
        work = Path(args.work) / f"core-{board.name}-{name}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            rep = build_core(core_config(board), direct_only=CORE_BUILDS[name], board=board,
                             target_mhz=args.target_mhz or board.default_target_mhz, work=work,
                             stop=args.nextpnr_stop, report_only=args.report_only)
        except build.BuildFailed as e:
            print(f"synth: {name}: {e}", file=sys.stderr)
            failed = True
            continue
        rep = {"build": name, "command": "python benchmarks/synth.py " + " ".join(args.argv), **rep}
        out = Path(str(CORE_RESULTS).format(build=name))
        out.write_text(json.dumps(rep, indent=1) + "\n")
        r = rep["resources"]
        print(f"synth: {name}: " + ", ".join(f"{k.upper()} {v['core']} (est {v['estimate']})" for k, v in r.items())
              + f"; Fmax {rep['fmax_mhz']} MHz; {rep['wall_s']['tools']:.0f} s; {out}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS))
    p.add_argument("--configs", default=DEFAULT, help=f"TILExUNROLL list (default {DEFAULT})")
    p.add_argument("--core", metavar="BUILDS", default=None,
                   help=f"place and route the compute core instead: a list of {', '.join(CORE_BUILDS)}")
    p.add_argument("--nextpnr-stop", choices=sorted(NEXTPNR_STOP), default=None,
                   help="--core: nextpnr stops after packing (utilisation, no Fmax) or placement "
                        "(Fmax and critical paths estimated, not routed)")
    p.add_argument("--report-only", action="store_true",
                   help="--core: run no tools, rewrite the report of the build already in --work")
    p.add_argument("--target-mhz", type=float, default=None)
    p.add_argument("--work", default="build/synth", help="build directories go here")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.core:
        return core_main(args)
    board = get_board(args.board)
    base = replace(AcceleratorConfig(), **board.defaults)
    path = Path(args.results)
    old = json.loads(path.read_text())["builds"] if path.exists() else []
    new = []
    for spec in args.configs.split(","):
        tile, unroll = (int(v) for v in spec.split("x"))
        cfg = replace(base, tile=tile, unroll=unroll)
        out = Path(args.work) / f"{board.name}-t{tile}u{unroll}"
        t0 = time.monotonic()
        try:
            rep = build.run_build(cfg, board, out, board_defaults=board.defaults,
                                  target_mhz=args.target_mhz)
        except (UsageError, build.BuildFailed) as e:
            print(f"synth: {spec}: {e}", file=sys.stderr)
            new.append({"board": board.name, "tile": tile, "unroll": unroll, "error": str(e),
                        "wall_s": round(time.monotonic() - t0, 1)})
            continue
        rec = record(rep)
        rec["command"] = "python benchmarks/synth.py " + " ".join(argv or sys.argv[1:])
        new.append(rec)
        print(f"synth: {spec}: LUT {rec['lut_used']} DSP {rec['dsp_used']} Fmax {rec['fmax_mhz']} "
              f"MHz, {rec['wall_s']:.0f} s", file=sys.stderr, flush=True)
        keys = {(r["board"], r["tile"], r["unroll"], r.get("engine")) for r in new}
        merged = [r for r in old if (r["board"], r["tile"], r["unroll"], r.get("engine")) not in keys] + new
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"command": "python benchmarks/synth.py " + " ".join(argv or sys.argv[1:]),
                                    "builds": merged}, indent=1) + "\n")
    print(table([r for r in new if "error" not in r]))
    return 1 if any("error" in r for r in new) else 0


if __name__ == "__main__":
    sys.exit(main())
