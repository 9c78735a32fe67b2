"""Verilator backend: the same :meth:`run` as :class:`sim.backend.PysimBackend`, on a
Verilator build of the exported Verilog (``python -m wino_gen``'s output) with a small C++
harness that streams the beats from a file.

Once built, a layer runs 250-650x faster than on pysim, which makes ResNet-size layers
practical; the build itself takes 35-130 s per engine, so builds are cached by a hash of the
Verilog and the harness in ``$WINO_VERILATOR_CACHE`` (default ``<tmp>/wino-verilator``). A build
is made in a temporary folder of the cache and renamed into place when complete, so an
interrupted build never leaves a half-built model that a later run would use; a lock file per
build (``<key>.lock``) makes a second process that wants the same build (two test workers, two
runs) wait for the first one's rather than make it too. The harness
drives the streams as :mod:`sim.streams` does, with the same stall pattern evaluated per cycle
(``stalled`` below mirrors :meth:`sim.streams.Stalls.stalled`; the pattern is a run-time input,
so one build serves every pattern), and counts cycles exactly as pysim (cycles from ``start``
up to and including the one in which the last output beat is taken).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import verilog

from rtl.ram import VERILOG as RAM_VERILOG
from wino_gen import progress
from wino_gen.errors import UsageError
from wino_gen.procs import run_in_group

from .streams import Stalls, lane_id

CACHE_ENV = "WINO_VERILATOR_CACHE"
_INPUTS = ("x", "w")     # the input streams of both tops, in the harness's order

# The stall pattern of sim.streams.Stalls (mix64 of seed, lane, cycle), shared with the system
# harness: sim/cpp/stall.h's code after its header lines (inlined into this harness's one file).
STALL_CPP = (Path(__file__).resolve().parent / "cpp" / "stall.h").read_text().split("#pragma once", 1)[1]

_HARNESS = STALL_CPP + r"""
#include "Vwino_top.h"
#include "verilated.h"
// Verilator escapes the double underscore of Amaranth port names as ___05F
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <fstream>
#include <iostream>

typedef std::vector<uint32_t> Word;

static Word parse(const std::string &hex) {
    Word w;
    int n = hex.size();
    for (int end = n; end > 0; end -= 8) {
        int start = end - 8 < 0 ? 0 : end - 8;
        w.push_back((uint32_t)strtoul(hex.substr(start, end - start).c_str(), nullptr, 16));
    }
    return w;
}
static uint32_t at(const Word &w, size_t i) { return i < w.size() ? w[i] : 0; }

template <typename T> static void put(T &port, const Word &w) {
    uint64_t v = (uint64_t)at(w, 0) | ((uint64_t)at(w, 1) << 32);
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N> &port, const Word &w) {
    for (std::size_t i = 0; i < N; i++) port[i] = at(w, i);
}
template <typename T> static std::string get(const T &port) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llx", (unsigned long long)(uint64_t)port);
    return buf;
}
template <std::size_t N> static std::string get(const VlWide<N> &port) {
    std::string s;
    char buf[16];
    for (int i = (int)N - 1; i >= 0; i--) {
        snprintf(buf, sizeof buf, "%08x", (unsigned)port[i]);
        s += buf;
    }
    return s;
}

// One input stream as sim.streams.put drives it: from cycle 1, a source that holds no beat
// offers its next one unless the pattern stalls it; an offered beat stays until taken.
struct Source {
    uint64_t lane = 0;
    std::vector<Word> beats;
    size_t next = 0;
    bool offered = false;
    void offer(uint64_t threshold, uint64_t seed, uint64_t cycle) {
        if (!offered && cycle >= 1 && next < beats.size() && !stalled(threshold, seed, lane, cycle))
            offered = true;
    }
};

static void read_source(std::ifstream &in, Source &s) {
    std::string tag, hex;
    size_t count;
    in >> tag >> s.lane >> count;
    for (size_t i = 0; i < count; i++) { in >> hex; s.beats.push_back(parse(hex)); }
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    std::ifstream in(argv[1]);
    std::string tag, hex;
    uint64_t threshold, seed, o_lane;
    size_t n_out;
    in >> tag >> hex;
    Word layer = parse(hex);
    in >> tag >> threshold >> seed;
    Source x, w;
    read_source(in, x);
    read_source(in, w);
    in >> tag >> o_lane >> n_out;
    Vwino_top *top = new Vwino_top;
    top->clk = 0; top->rst = 1; top->eval();
    top->clk = 1; top->eval();
    top->clk = 0; top->rst = 0; top->eval();
    put(top->layer, layer);
    size_t outs = 0;
    uint64_t cycle = 0;
    std::ofstream out(argv[2]);
    uint64_t slow = threshold ? (1ull << 32) / ((1ull << 32) - threshold) + 1 : 1;
    uint64_t limit = (64ull * (x.beats.size() + w.beats.size() + n_out) + 100000) * slow * slow;
    while (outs < n_out && cycle < limit) {
        top->clk = 0;
        top->start = cycle == 0;
        x.offer(threshold, seed, cycle);
        w.offer(threshold, seed, cycle);
        top->x___05Fvalid = x.offered;
        if (x.offered) put(top->x___05Fpayload, x.beats[x.next]);
        top->w___05Fvalid = w.offered;
        if (w.offered) put(top->w___05Fpayload, w.beats[w.next]);
        top->o___05Fready = !stalled(threshold, seed, o_lane, cycle);
        top->eval();
        bool xf = x.offered && top->x___05Fready, wf = w.offered && top->w___05Fready;
        if (top->o___05Fvalid && top->o___05Fready) { out << get(top->o___05Fpayload) << "\n"; outs++; }
        top->clk = 1;
        top->eval();
        if (xf) { x.next++; x.offered = false; }
        if (wf) { w.next++; w.offered = false; }
        cycle++;
    }
    out << "cycles " << cycle << "\n";
    out.close();
    delete top;
    return outs == n_out ? 0 : 3;
}
"""


def _cache_error(d: Path, reason: str) -> UsageError:
    return UsageError(f"Verilator cache {d}: {reason}; set {CACHE_ENV} to a writable folder")


def cache_dir() -> Path:
    """The build cache, created if needed; a folder that cannot be written is one line naming it
    and the variable that moves it, before any build."""
    d = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "wino-verilator")
    if d.exists() and not d.is_dir():
        raise _cache_error(d, "not a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cache_error(d, e.strerror or str(e)) from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise _cache_error(d, "not writable")
    return d


def require_verilator() -> None:
    """A UsageError (one line) when no ``verilator`` is on PATH."""
    if shutil.which("verilator") is None:
        raise UsageError("--backend verilator: verilator is not on PATH; install Verilator 5 "
                         "or use --backend pysim")


def build_cached(sources, *, what: str, key: str | None = None, jobs: int = 2, show: bool = False,
                 cache: Path | None = None) -> Path:
    """The executable ``Vwino_top`` built from ``sources`` (file name -> text: the Verilog of a
    ``wino_top`` module in ``.v`` files, the harness in ``.cpp`` files, headers beside them; or
    a function returning them, called only when the build is not cached), built once per cache
    (:func:`cache_dir`) under ``key`` (default: a hash of the sources' texts in order)."""
    cache = cache or cache_dir()
    if key is None:     # the sources in order (the engine builds' key before this function)
        key = hashlib.sha256("".join(sources.values()).encode()).hexdigest()
    d = cache / key[:16]
    exe = d / "obj" / "Vwino_top"
    if not exe.exists():
        with _key_lock(d, what, show):
            if not exe.exists():     # else the process this one waited for built it
                with progress.step(f"building Verilator model of {what}", show):
                    _build_into(d, sources() if callable(sources) else sources, jobs)
    return exe


@contextlib.contextmanager
def _key_lock(d: Path, what: str, show: bool):
    """Hold the exclusive lock (``fcntl.flock``) of build ``d``, waiting, with a progress line,
    while another process holds it. The lock file stays (a tiny file per build): removing it
    would let a third process lock a new file while the second still waits on the old one."""
    try:
        f = open(d.with_suffix(".lock"), "a")
    except OSError as e:
        raise _cache_error(d.parent, e.strerror or str(e)) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with progress.step(f"waiting for another process's Verilator build of {what}", show):
                fcntl.flock(f, fcntl.LOCK_EX)
        yield       # closing the file releases the lock


def _build_into(d: Path, sources: dict[str, str], jobs: int) -> None:
    """Build in a temporary sibling of ``d`` and rename it to ``d`` when complete; a failed
    build leaves its output in ``d.log`` and nothing else. Called only with ``d``'s lock held
    (:func:`_key_lock`) and when ``d`` holds no complete build."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
    except OSError as e:
        raise _cache_error(d.parent, e.strerror or str(e)) from None
    try:
        for name, text in sources.items():
            (tmp / name).write_text(text)
        # split functions (gcc is superlinear in a function's size: a big design's one
        # 8000-line function took most of its build) and the run-once initial code at -O0:
        # the system's build of examples/tiny takes 99 s of CPU instead of 460, runs as fast
        cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
               "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
               "--output-split-cfuncs", "1000", "-MAKEFLAGS", "OPT_SLOW=-O0",
               "--top-module", "wino_top", "-Mdir", "obj", "-j", str(jobs),
               *sorted(n for n in sources if n.endswith((".v", ".cpp")))]
        with open(tmp / "build.log", "w") as f:
            rc = run_in_group(cmd, cwd=tmp, env=None, stdout=f)
        log = d.with_suffix(".log")
        if rc != 0 or not (tmp / "obj" / "Vwino_top").exists():
            shutil.copyfile(tmp / "build.log", log)
            raise UsageError(f"Verilator build failed (status {rc}); its output is in {log}")
        log.unlink(missing_ok=True)
        if d.exists():      # a build left incomplete by an earlier version of this code
            shutil.rmtree(d)
        os.replace(tmp, d)
    except OSError as e:
        # a process of a version without the lock (another checkout sharing the cache) may
        # have renamed its build into place first
        if not (d / "obj" / "Vwino_top").exists():
            raise _cache_error(d.parent, e.strerror or str(e)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export(dut):
    """``dut`` as the Verilog export builds it: a top (a component with ``cfg`` and ``options``,
    :func:`rtl.top.build_top`) again with its RAMs as instances of :data:`rtl.ram.MODULE`
    (emitting memories takes minutes), any other component as it is."""
    if not hasattr(dut, "options"):
        return dut
    return type(dut)(dut.cfg, dataclasses.replace(dut.options, blackbox_ram=True))


class VerilatorBackend:
    name = "verilator"

    def __init__(self, vcd: str | None = None, *, jobs: int = 2, show: bool = False,
                 stall: float = 0.0, seed: int = 0):
        """``show``: a progress line while Verilator builds (see :func:`wino_gen.progress.step`);
        ``stall``/``seed``: the stall pattern, as for :class:`sim.backend.PysimBackend`."""
        require_verilator()
        if vcd:
            raise UsageError("--vcd needs --backend pysim")
        self.stalls = Stalls(stall, seed)
        self.jobs = jobs
        self.show = show
        self.cache = cache_dir()
        self._built: dict = {}     # (top class, config, options) or component -> model

    def build(self, dut) -> Path:
        """The model of ``dut`` (see :func:`_export`), converted once per backend and built once
        per cache."""
        dut._MustUse__used = True      # it describes the model; Amaranth would warn of it unused
        key = (type(dut), dut.cfg, dut.options) if hasattr(dut, "options") else dut
        if key not in self._built:
            self._built[key] = self._model(_export(dut), type(dut).__name__)
        return self._built[key]

    def _model(self, top, what: str) -> Path:
        text = verilog.convert(top, name="wino_top", emit_src=False) + RAM_VERILOG
        return build_cached({"top.v": text, "harness.cpp": _HARNESS}, what=what, jobs=self.jobs, show=self.show,
                            cache=self.cache)

    def run(self, dut, layer_word: int, streams: dict[str, list[int]], n_out: int):
        exe = self.build(dut)
        with tempfile.TemporaryDirectory() as td:
            inp, outp = Path(td) / "in.txt", Path(td) / "out.txt"
            inp.write_text(self._input(layer_word, streams, n_out))
            r = subprocess.run([str(exe), str(inp), str(outp)], capture_output=True, text=True)
            text = outp.read_text().split() if outp.exists() else []
        if r.returncode != 0:
            raise RuntimeError(f"verilator run failed (status {r.returncode}): {r.stderr[-1000:]}")
        cycles = int(text[-1])
        outs = [int(h, 16) for h in text[:-2]]
        return outs, cycles

    def _input(self, layer_word: int, streams: dict[str, list[int]], n_out: int) -> str:
        """The harness's input file: the layer word, the stall pattern, the lane and beats of
        each input stream, the output lane and beat count."""
        if set(streams) - set(_INPUTS):
            raise ValueError(f"streams {sorted(set(streams) - set(_INPUTS))}: the harness drives "
                             f"only {', '.join(_INPUTS)}")
        lines = [f"layer {layer_word:x}", f"stall {self.stalls.threshold} {self.stalls.seed}"]
        for name in _INPUTS:
            beats = streams.get(name, [])
            lines.append(f"{name} {lane_id(name)} {len(beats)}")
            lines += [f"{b:x}" for b in beats]
        lines.append(f"o {lane_id('o')} {n_out}")
        return "\n".join(lines) + "\n"
