"""The Verilator backend: the same layers, bit-exact, with exactly pysim's (and perf's) cycle
counts. Slow: each engine is a Verilator build (~1 min)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.driver import DirectLayer, WinogradLayer, run_layer
from sim.layers import random_direct, random_winograd
from wino_gen import golden, perf
from wino_gen.config import AcceleratorConfig

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("verilator") is None, reason="no verilator")]
ROOT = Path(__file__).resolve().parent.parent


def test_winograd_and_direct_layers():
    from sim.verilator import VerilatorBackend
    be = VerilatorBackend()
    cfg = AcceleratorConfig(tile=4, unroll=2, max_width=16, max_channels=16)
    x, kw = random_winograd(cfg, 3, 3, 9, 9, np.random.default_rng(0))
    r = run_layer(WinogradLayer(cfg, **kw), x, be)
    np.testing.assert_array_equal(r.y, golden.winograd_conv3x3(x, tile=4, cfg=cfg, **kw))
    assert r.cycles == perf.winograd_layer(cfg, 3, 3, 9, 9)["cycles"]
    cfg = AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=16, algo="direct")
    x, kw = random_direct(cfg, 3, 3, 9, 9, np.random.default_rng(0), stride=2)
    r = run_layer(DirectLayer(cfg, **kw), x, be)
    np.testing.assert_array_equal(r.y, golden.direct_conv(x, cfg=cfg, **kw))
    assert r.cycles == perf.direct_layer(cfg, 3, 3, 9, 9, 3, 2, 1)["cycles"]


def test_sim_cli_verilator():
    r = subprocess.run([sys.executable, "-m", "sim", "--backend", "verilator"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 mismatches, " in r.stdout.strip().splitlines()[-1]
