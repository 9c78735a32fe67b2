"""Seeded random stalls on every input stream and on the output (sim.streams.Stalls): the same
outputs as without stalls, more cycles, and -- since both backends evaluate one pattern cycle
for cycle -- identical outputs and cycle counts on pysim and Verilator."""

import shutil
import subprocess

import numpy as np
import pytest

from sim.backend import PysimBackend
from sim.driver import DirectLayer, WinogradLayer, run_layer
from sim.layers import random_direct, random_winograd
from sim.streams import MAX_STALL, Stalls, lane_id
from wino_gen import golden, perf
from wino_gen.config import AcceleratorConfig

HAVE_VERILATOR = shutil.which("verilator") is not None
# the layers of tests/test_sim_verilator.py, so that the Verilator builds are shared
WCFG = AcceleratorConfig(tile=4, unroll=2, max_width=16, max_channels=16)
DCFG = AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=16, algo="direct")
LANES = [lane_id(n) for n in ("x", "w", "o")]


def _winograd():
    x, kw = random_winograd(WCFG, 3, 3, 9, 9, np.random.default_rng(0))
    return WinogradLayer(WCFG, **kw), x, golden.winograd_conv3x3(x, tile=4, cfg=WCFG, **kw)


def _direct():
    x, kw = random_direct(DCFG, 3, 3, 9, 9, np.random.default_rng(0), stride=2)
    return DirectLayer(DCFG, **kw), x, golden.direct_conv(x, cfg=DCFG, **kw)


def test_pattern_is_a_seeded_function_of_lane_and_cycle():
    s = Stalls(0.3, 7)
    bits = np.array([[s.stalled(lane, c) for c in range(4000)] for lane in LANES])
    assert abs(bits.mean() - 0.3) < 0.02
    assert (bits == np.array([[Stalls(0.3, 7).stalled(lane, c) for c in range(4000)]
                              for lane in LANES])).all()
    assert (bits[0] != bits[1]).any() and (bits[0] != bits[2]).any()
    assert (bits[0] != [Stalls(0.3, 8).stalled(LANES[0], c) for c in range(4000)]).any()
    assert not any(Stalls(0.0, 7).stalled(lane, c) for lane in LANES for c in range(1000))


@pytest.mark.parametrize("p,seed", [(-0.1, 0), (MAX_STALL + 0.01, 0), (0.2, -1), (0.2, 1 << 64)])
def test_pattern_rejects_bad_parameters(p, seed):
    with pytest.raises(ValueError, match="stall"):
        Stalls(p, seed)


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_harness_pattern_equals_python(tmp_path):
    """The C++ copy of the pattern in the Verilator harness, compiled alone, stalls in exactly
    the cycles that the Python one does."""
    from sim.verilator import STALL_CPP
    s = Stalls(0.37, 0xDEADBEEF12345678)
    main = ("#include <cstdio>\nint main() {\n"
            f"  const uint64_t lanes[] = {{{', '.join(f'{lane}ull' for lane in LANES)}}};\n"
            "  for (int l = 0; l < 3; l++) for (uint64_t c = 0; c < 3000; c++)\n"
            f"    putchar(stalled({s.threshold}ull, {s.seed}ull, lanes[l], c) ? '1' : '0');\n"
            "}\n")
    (tmp_path / "p.cpp").write_text(STALL_CPP + main)
    subprocess.run(["c++", "-O1", "-o", "p", "p.cpp"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "p")], capture_output=True, text=True, check=True).stdout
    assert got == "".join("1" if s.stalled(lane, c) else "0" for lane in LANES for c in range(3000))


def test_pysim_stalls_keep_outputs_and_cost_cycles():
    spec, x, want = _winograd()
    free = run_layer(spec, x, PysimBackend())
    assert free.cycles == perf.winograd_layer(WCFG, 3, 3, 9, 9)["cycles"]
    runs = [run_layer(spec, x, PysimBackend(stall=0.3, seed=s)) for s in (1, 1, 2)]
    for r in runs:
        np.testing.assert_array_equal(r.y, want)
        assert r.cycles > free.cycles
    assert runs[0].cycles == runs[1].cycles      # the pattern, not the run, decides the cycles


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_VERILATOR, reason="no verilator")
@pytest.mark.parametrize("layer", [_winograd, _direct], ids=["winograd", "direct"])
def test_verilator_equals_pysim_under_stalls(layer):
    from sim.verilator import VerilatorBackend
    spec, x, want = layer()
    for p, seed in ((0.3, 11), (0.6, 12)):
        ref = run_layer(spec, x, PysimBackend(stall=p, seed=seed))
        got = run_layer(spec, x, VerilatorBackend(stall=p, seed=seed))
        np.testing.assert_array_equal(ref.y, want)
        np.testing.assert_array_equal(got.y, want)
        assert got.cycles == ref.cycles


@pytest.mark.skipif(not HAVE_VERILATOR, reason="no verilator")
def test_verilator_refuses_streams_the_harness_does_not_drive():
    from sim.verilator import VerilatorBackend
    with pytest.raises(ValueError, match="harness drives only x, w"):
        VerilatorBackend()._input(0, {"x": [1], "y": [2]}, 1)
