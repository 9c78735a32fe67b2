"""The full system (:class:`rtl.system.System`) on Verilator: the same :class:`sim.system.SystemRun`
as :func:`sim.system.run_image`, cycle for cycle, much faster.

The exported design is the system inside :class:`Monitored`, a thin wrapper whose ports are
plain signals (the start stream, the memory port, the status, the transfer windows) plus the
few internal strobes :func:`sim.system.run_image`'s monitor samples (a COMPUTE handed to the
compute unit, the core's start, the unit's answer, and the sequencer's trace: per queue an
instruction issued and retired, with its index), so that the harness measures each COMPUTE
and times every instruction exactly as pysim does without any change to ``rtl/``. The C++ harness
(``sim/cpp/``) owns the external memory and serves the port with :mod:`sim.memory`'s
:class:`~sim.memory.MemoryModel` and timings (``memory.h``), their parameters written by
:func:`params` from the same Python objects pysim uses (never typed twice), and the same
seeded stall pattern (``stall.h``, :mod:`sim.streams`).

One build serves every image and memory timing of one (config, scratchpad sizes, port): the
image, the inputs, the timing and the stall pattern are run-time inputs. One harness run takes
N image batches; before each it resets the system, reloads the memory image, writes the input
slot and restarts the sequencer, so that every batch's cycles and bytes equal a fresh pysim run's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import subprocess
import sys
import tempfile
from pathlib import Path

import amaranth
import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.core import DEFAULT_MAX_POOL
from rtl.mem.port import cmd_layout, w_layout
from rtl.ram import VERILOG as RAM_VERILOG
from rtl.system import System
from wino_gen.compile import image as im
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import pack
from wino_gen.isa import QUEUE_ORDER

from . import memory as sm
from . import system
from .streams import lane_id
from .verilator import build_cached, require_verilator

ROOT = Path(__file__).resolve().parent.parent
CPP = Path(__file__).resolve().parent / "cpp"
#: the harness's sources (sim/cpp), all in the build
SOURCES = ("stall.h", "memory.h", "system_harness.cpp")
#: the memory model's stall lanes (sim.memory.MemoryModel.serve's names)
CMD_LANE, DATA_LANE = "mem.cmd", "mem.data"
_STATUS = ("busy", "done", "status", "index", "cycles")
_WINDOWS = ("load_lo", "load_hi", "store_lo", "store_hi")


class Monitored(wiring.Component):
    """The system ``dut`` with plain-signal ports for the harness (see the module doc)."""

    def __init__(self, dut: System):
        if not isinstance(dut, System):
            raise ValueError(f"dut {dut!r}: must be an rtl.system.System")
        self.dut = dut
        sm_ = dut.signature.members
        port = sm_["mem"].signature
        width = {k: v.shape for k, v in sm_.items() if not v.is_signature}
        start_bits = dut.start.payload.shape().size
        cmd_bits, w_bits = cmd_layout(port.addr_width, port.max_burst).size, w_layout(port.data_width).size
        if max(start_bits, cmd_bits, w_bits) > 64:
            raise ValueError(f"dut: start/cmd/w payloads of {start_bits}/{cmd_bits}/{w_bits} bits; the harness "
                             f"takes at most 64")
        cu = dut.cu
        super().__init__({
            "start_valid": In(1), "start_ready": Out(1), "start_payload": In(start_bits),
            "cmd_valid": Out(1), "cmd_ready": In(1), "cmd_payload": Out(cmd_bits),
            "w_valid": Out(1), "w_ready": In(1), "w_payload": Out(w_bits),
            "r_valid": In(1), "r_ready": Out(1), "r_payload": In(port.data_width),
            **{k: Out(width[k]) for k in _STATUS},
            **{k: In(width[k]) for k in _WINDOWS},
            "mon_issue": Out(1), "mon_issue_index": Out(cu.instr.payload.index.shape()),
            "mon_core_start": Out(1), "mon_answer": Out(1),
            **{f"mon_{q}_{k}": Out(1) for q in QUEUE_ORDER for k in ("issue", "retire")},
            **{f"mon_{q}_index": Out(dut.seq.trace[q].index.shape()) for q in QUEUE_ORDER},
        })

    def elaborate(self, platform):
        m = Module()
        s = m.submodules.system = self.dut
        cu, tr = s.cu, s.seq.trace
        m.d.comb += [
            s.start.valid.eq(self.start_valid), self.start_ready.eq(s.start.ready),
            s.start.payload.eq(self.start_payload),
            self.cmd_valid.eq(s.mem.cmd.valid), s.mem.cmd.ready.eq(self.cmd_ready),
            self.cmd_payload.eq(s.mem.cmd.payload),
            self.w_valid.eq(s.mem.w.valid), s.mem.w.ready.eq(self.w_ready), self.w_payload.eq(s.mem.w.payload),
            s.mem.r.valid.eq(self.r_valid), self.r_ready.eq(s.mem.r.ready), s.mem.r.payload.eq(self.r_payload),
            *[getattr(self, k).eq(getattr(s, k)) for k in _STATUS],
            *[getattr(s, k).eq(getattr(self, k)) for k in _WINDOWS],
            self.mon_issue.eq(cu.instr.valid & cu.instr.ready), self.mon_issue_index.eq(cu.instr.payload.index),
            self.mon_core_start.eq(cu.core_start), self.mon_answer.eq(cu.done.valid & cu.done.ready),
            *[getattr(self, f"mon_{q}_{k}").eq(tr[q][k]) for q in QUEUE_ORDER for k in ("issue", "retire", "index")],
        ]
        return m


def export(dut: System) -> str:
    """The Verilog of ``dut`` in :class:`Monitored`, the core's RAMs as instances of
    :data:`rtl.ram.MODULE` (as the engine builds export them: emitting them is slow; the
    system takes no build options yet, so they are set on its core before elaboration)."""
    dut.core.options = dataclasses.replace(dut.core.options, blackbox_ram=True)
    return verilog.convert(Monitored(dut), name="wino_top", emit_src=False) + RAM_VERILOG


def repo_modules(module: str) -> list[Path]:
    """The repository's source files a fresh interpreter loads to import ``module`` (asked of
    one, so that nothing else this process has loaded counts)."""
    code = f"import sys, {module}; print(*(getattr(m, '__file__', None) or '' for m in list(sys.modules.values())))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    env = Path(sys.prefix).resolve()
    return sorted(f for f in (Path(p).resolve() for p in r.stdout.split() if p)
                  if ROOT in f.parents and env not in f.parents)


def _design_files() -> list[Path]:
    """The repository's source files the system's design comes from (:func:`repo_modules` of
    :mod:`rtl.system`) and the harness's sources."""
    return repo_modules("rtl.system") + [CPP / n for n in SOURCES]


def _code_digest() -> str:
    """A hash of :func:`_design_files`, of the Python here that shapes the design (the wrapper,
    the export, :func:`sim.system.build` and its burst) and of the Amaranth version."""
    h = hashlib.sha256(f"{amaranth.__version__} {system.MAX_BURST}".encode())
    for f in (Monitored, export, system.build):
        h.update(inspect.getsource(f).encode())
    for p in _design_files():
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def model(img: im.Image, cfg: AcceleratorConfig, mem_bytes: int, word_bytes: int, max_pool: int, *,
          show: bool = False, jobs: int = 2) -> tuple[Path, System]:
    """The harness executable for ``img``'s system (:func:`sim.system.build`) and the system:
    built once per (config, scratchpad sizes, port, program length, pool window, code), so that a
    cached build is found without exporting the design."""
    dut = system.build(img, cfg, mem_bytes, word_bytes, max_pool)
    what = (repr(cfg), img.act_scratch, img.wgt_scratch, img.param_scratch, mem_bytes, word_bytes, max_pool,
            len(img.program), _code_digest())
    key = hashlib.sha256(repr(what).encode()).hexdigest()

    def sources():
        return {"top.v": export(dut), **{n: (CPP / n).read_text() for n in SOURCES}}
    exe = build_cached(sources, what="the system", key=key, show=show, jobs=jobs)
    _described(dut)
    return exe, dut


def _described(obj, seen=None) -> None:
    """Mark ``obj`` and every elaboratable it holds as used: on a cached build the system only
    describes the harness's ports, and Amaranth would warn of each part never elaborated."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        items = obj
    elif isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, Elaboratable):
        obj._MustUse__used = True
        items = vars(obj).values()
    else:
        return
    for v in items:
        _described(v, seen)


def timing_params(t, word_bytes: int) -> list[str]:
    """The params lines of timing ``t`` (:func:`sim.memory.timing`'s object, pysim's own): its
    kind and constants, and the word interval as an exact fraction."""
    ivl = sm.interval(t, word_bytes)
    lines = [f"interval {ivl.numerator} {ivl.denominator}"]
    if isinstance(t, sm.BandwidthTiming):
        return lines + [f"timing bandwidth {t.latency}"]
    if isinstance(t, sm.SDRAMTiming):
        return lines + ["timing sdram " + " ".join(str(v) for v in (
            t.rcd, t.rp, t.ras, t.rc, t.rfc, t.cas, t.wr, t.refi, t.page, t.bank_bytes, t.banks))]
    if type(t) is sm.IdealTiming:
        return lines + ["timing ideal"]
    raise ValueError(f"timing {t!r}: the harness models IdealTiming, BandwidthTiming and SDRAMTiming")


def params(img: im.Image, dut: System, word_bytes: int, memory: str, stall: float, seeds, limit: int,
           files: dict[str, Path], outs: list[Path]) -> str:
    """The harness's params file (``sim/cpp/system_harness.cpp`` reads it): the memory and the
    inputs, the port, the timing, the stall lanes, the transfer windows, the start beat, the
    cycle limit, the input slot and per batch its stall patterns and its memory dump."""
    port = dut.signature.members["mem"].signature
    cl = cmd_layout(port.addr_width, port.max_burst)
    start = pack(dut.start.payload.shape(), system.start_beat(img))
    slot = img.slot(im.INPUT_SLOT)
    lines = [f"memory {files['memory']}", f"inputs {files['inputs']}", f"port {word_bytes} {system.MEMORY_DEPTH}",
             f"cmd {cl['addr'].offset} {cl['addr'].width} {cl['length'].offset} {cl['length'].width} "
             f"{cl['write'].offset}", f"w_data_bits {port.data_width}",
             *timing_params(sm.timing(memory), word_bytes),
             f"lanes {lane_id(CMD_LANE)} {lane_id(DATA_LANE)} {lane_id(system.START_LANE)}",
             "regions " + " ".join(str(v) for v in system.regions(img).values()),
             f"start {start}", f"limit {limit}", f"slot {slot.offset} {slot.size}"]
    for sd, out in zip(seeds, outs, strict=True):
        mem_st, start_st = system.stall_patterns(sd, stall)
        lines.append(f"batch {mem_st.threshold} {mem_st.seed} {start_st.threshold} {start_st.seed} {out}")
    return "\n".join(lines) + "\n"


def _results(text: str, limit: int) -> list[tuple]:
    """Per batch (status triple, computes, times) from the harness's results file."""
    runs = []
    for line in text.splitlines():
        tag, *v = line.split()
        if tag == "batch":
            runs.append([None, {}, {}])
        elif tag == "timeout":
            raise AssertionError(f"the system is not done after {limit} cycles")
        elif tag == "status":
            runs[-1][0] = tuple(int(a) for a in v)
        elif tag == "compute":
            i, cycles, setup = map(int, v)
            runs[-1][1][i] = (cycles, None if setup < 0 else setup)
        elif tag == "time":
            i, issue, retire = map(int, v)
            runs[-1][2][i] = (issue, None if retire < 0 else retire)
    return runs


def run_batches(img: im.Image, cfg: AcceleratorConfig, batches, *, seeds, word_bytes: int = 1,
                memory: str = "ideal", stall: float = 0.0, max_pool: int = DEFAULT_MAX_POOL, limit: int = 400_000,
                show: bool = False) -> list[system.SystemRun]:
    """:func:`sim.system.run_images` on Verilator: every batch in one harness run."""
    require_verilator()
    base = system.base_memory(img, word_bytes)
    exe, dut = model(img, cfg, len(base), word_bytes, max_pool, show=show)
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        files = {"memory": d / "memory.bin", "inputs": d / "inputs.bin"}
        base.tofile(files["memory"])
        np.concatenate([system.input_chunk(img, x) for x in batches]).tofile(files["inputs"])
        outs = [d / f"mem{k}.bin" for k in range(len(batches))]
        (d / "params.txt").write_text(params(img, dut, word_bytes, memory, stall, seeds, limit, files, outs))
        r = subprocess.run([str(exe), str(d / "params.txt"), str(d / "results.txt")], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"the Verilator system harness failed (status {r.returncode}): "
                               f"{r.stderr.strip()[-1000:]}")
        runs = _results((d / "results.txt").read_text(), limit)
        return [system.result(img, st, computes, times, np.fromfile(out, np.uint8))
                for (st, computes, times), out in zip(runs, outs, strict=True)]
