"""Verilator backend: the same :meth:`run` as :class:`sim.backend.PysimBackend`, on a
Verilator build of the exported Verilog (``python -m wino_gen``'s output) with a small C++
harness that streams the beats from a file.

Once built, a layer runs 250-650x faster than on pysim, which makes ResNet-size layers
practical; the build itself takes 35-130 s per engine, so builds are cached by a hash of the
Verilog in ``$WINO_VERILATOR_CACHE`` (default ``<tmp>/wino-verilator``). A build is made in a
temporary folder of the cache and renamed into place when complete, so an interrupted build
never leaves a half-built model that a later run would use. The harness keeps ``o.ready`` high
and feeds a beat every cycle the core takes one; the cycle count is defined exactly as in
pysim (cycles from ``start`` up to and including the one in which the last output beat is
taken).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import verilog

from rtl.ram import VERILOG as RAM_VERILOG
from rtl.ram import ExportPlatform
from wino_gen import progress
from wino_gen.errors import UsageError
from wino_gen.procs import run_in_group

CACHE_ENV = "WINO_VERILATOR_CACHE"

_HARNESS = r"""
#include "Vwino_top.h"
#include "verilated.h"
// Verilator escapes the double underscore of Amaranth port names as ___05F
#include <cstdio>
#include <cstdint>
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
template <typename T> static std::string get(const T &port, int bits) {
    uint64_t v = (uint64_t)port;
    char buf[32];
    snprintf(buf, sizeof buf, "%llx", (unsigned long long)v);
    return buf;
}
template <std::size_t N> static std::string get(const VlWide<N> &port, int bits) {
    std::string s;
    char buf[16];
    for (int i = (int)N - 1; i >= 0; i--) {
        snprintf(buf, sizeof buf, "%08x", (unsigned)port[i]);
        s += buf;
    }
    return s;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    std::ifstream in(argv[1]);
    std::string tag, hex;
    size_t count, n_out;
    in >> tag >> hex;
    Word layer = parse(hex);
    std::vector<Word> xs, ws;
    in >> tag >> count;
    for (size_t i = 0; i < count; i++) { in >> hex; xs.push_back(parse(hex)); }
    in >> tag >> count;
    for (size_t i = 0; i < count; i++) { in >> hex; ws.push_back(parse(hex)); }
    in >> tag >> n_out;
    Vwino_top *top = new Vwino_top;
    top->clk = 0; top->rst = 1; top->eval();
    top->clk = 1; top->eval();
    top->clk = 0; top->rst = 0; top->eval();
    put(top->layer, layer);
    size_t xi = 0, wi = 0, outs = 0;
    uint64_t cycle = 0;
    std::ofstream out(argv[2]);
    uint64_t limit = 64ull * (xs.size() + ws.size() + n_out) + 100000;
    while (outs < n_out && cycle < limit) {
        top->clk = 0;
        top->start = cycle == 0;
        bool feed = cycle >= 1;
        top->x___05Fvalid = feed && xi < xs.size();
        if (top->x___05Fvalid) put(top->x___05Fpayload, xs[xi]);
        top->w___05Fvalid = feed && wi < ws.size();
        if (top->w___05Fvalid) put(top->w___05Fpayload, ws[wi]);
        top->o___05Fready = 1;
        top->eval();
        bool xf = top->x___05Fvalid && top->x___05Fready, wf = top->w___05Fvalid && top->w___05Fready;
        if (top->o___05Fvalid) { out << get(top->o___05Fpayload, 0) << "\n"; outs++; }
        top->clk = 1;
        top->eval();
        if (xf) xi++;
        if (wf) wi++;
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


class VerilatorBackend:
    name = "verilator"

    def __init__(self, vcd: str | None = None, *, jobs: int = 2, show: bool = False):
        """``show``: a progress line while Verilator builds (see :func:`wino_gen.progress.step`)."""
        if shutil.which("verilator") is None:
            raise UsageError("--backend verilator: verilator is not on PATH; install Verilator 5 "
                             "or use --backend pysim")
        if vcd:
            raise UsageError("--vcd needs --backend pysim")
        self.jobs = jobs
        self.show = show
        self.cache = cache_dir()
        self._built: dict[str, Path] = {}

    def build(self, dut) -> Path:
        text = verilog.convert(dut, name="wino_top", platform=ExportPlatform(), emit_src=False)
        text += RAM_VERILOG
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        if key not in self._built:
            d = self.cache / key
            if not (d / "obj" / "Vwino_top").exists():
                with progress.step(f"building Verilator model of {type(dut).__name__}", self.show):
                    self._build_into(d, text)
            self._built[key] = d / "obj" / "Vwino_top"
        return self._built[key]

    def _build_into(self, d: Path, text: str) -> None:
        """Build in a temporary sibling of ``d`` and rename it to ``d`` when complete; a failed
        build leaves its output in ``d.log`` and nothing else. Called only when ``d`` holds no
        complete build."""
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
        except OSError as e:
            raise _cache_error(d.parent, e.strerror or str(e)) from None
        try:
            (tmp / "top.v").write_text(text)
            (tmp / "harness.cpp").write_text(_HARNESS)
            cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--top-module", "wino_top", "-Mdir", "obj", "-j", str(self.jobs),
                   "top.v", "harness.cpp"]
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
            if not (d / "obj" / "Vwino_top").exists():   # else another process built it first
                raise _cache_error(d.parent, e.strerror or str(e)) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run(self, dut, layer_word: int, streams: dict[str, list[int]], n_out: int):
        exe = self.build(dut)
        with tempfile.TemporaryDirectory() as td:
            inp, outp = Path(td) / "in.txt", Path(td) / "out.txt"
            lines = [f"layer {layer_word:x}"]
            for name in ("x", "w"):
                beats = streams.get(name, [])
                lines.append(f"{name} {len(beats)}")
                lines += [f"{b:x}" for b in beats]
            lines.append(f"n_out {n_out}")
            inp.write_text("\n".join(lines) + "\n")
            r = subprocess.run([str(exe), str(inp), str(outp)], capture_output=True, text=True)
            text = outp.read_text().split() if outp.exists() else []
        if r.returncode != 0:
            raise RuntimeError(f"verilator run failed (status {r.returncode}): {r.stderr[-1000:]}")
        cycles = int(text[-1])
        outs = [int(h, 16) for h in text[:-2]]
        return outs, cycles
