# amaranth: UnusedElaboratable=no
"""The Winograd engine with spatial weights (``cfg.weights == "spatial"``): int8 3x3 kernels on
``w`` through the weight-transform unit into the PE array, bit-exact against golden (F2, F4, F6,
layer and tap, pow2 and fixed, 1 to 4 kernels per beat) with random stalls on every stream and
extreme kernels, and measured cycles against ``wino_gen.perf`` (weight-bound and line-bound)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_rtl_lint import lint, needs_verilator

from rtl.top import WinogradAccel
from sim.backend import PysimBackend
from sim.driver import WinogradLayer, run_layer
from sim.layers import random_spatial
from wino_gen import golden, perf, schedule
from wino_gen.config import AcceleratorConfig


def _cfg(tile, unroll, ui, lanes, gran="layer", mode="pow2"):
    return AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, granularity=gran, requant=mode,
                             max_width=16, max_channels=16, max_tap_shift=2, weights="spatial",
                             weight_lanes=lanes)


def _layer(cfg, C, K, H, W, seed):
    x, kw, U = random_spatial(cfg, C, K, H, W, np.random.default_rng(seed), extremes=True)
    ref = {k: v for k, v in kw.items() if k not in ("W", "u")}
    return x, kw, golden.winograd_conv3x3(x, U, tile=cfg.tile, cfg=cfg, **ref)


STALLED = [
    # tile, unroll, unroll_in, lanes, granularity, requant, C, K, H, W
    (2, 2, 1, 1, "layer", "pow2", 4, 4, 8, 8),
    (4, 3, 1, 3, "tap", "pow2", 5, 4, 9, 7),
    (4, 2, 2, 2, "layer", "fixed", 4, 5, 6, 9),
    pytest.param((6, 2, 1, 1, "tap", "fixed", 3, 3, 8, 8), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("case", STALLED, ids=lambda c: f"F{c[0]}-u{c[1]}x{c[2]}-l{c[3]}-{c[4]}-{c[5]}")
def test_spatial_layer_bit_exact_under_stalls(case):
    tile, un, ui, lanes, gran, mode, C, K, H, W = case
    cfg = _cfg(tile, un, ui, lanes, gran, mode)
    x, kw, want = _layer(cfg, C, K, H, W, seed=sum(case[:4]))
    assert len(np.unique(want)) > 20
    r = run_layer(WinogradLayer(cfg, **kw), x, PysimBackend(stall=0.3, seed=7))
    np.testing.assert_array_equal(r.y, want)


CYCLES = [
    # weight-bound from the first block (8 kernel beats per word); both banks full while the
    # first tile row's rows load, so the packer waits for a bank's release; line-buffer bound;
    # one word per cycle (as U weights), several lanes
    (2, 4, 2, 1, "pow2", 6, 7, 6, 6),
    (2, 4, 2, 2, "pow2", 8, 8, 10, 4),
    pytest.param((2, 4, 2, 1, "fixed", 8, 8, 10, 4), marks=pytest.mark.slow),
    pytest.param((4, 3, 1, 1, "pow2", 5, 7, 9, 11), marks=pytest.mark.slow),
    pytest.param((2, 2, 1, 2, "pow2", 12, 5, 4, 14), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("case", CYCLES, ids=lambda c: f"F{c[0]}-u{c[1]}x{c[2]}-l{c[3]}-{c[4]}-{c[5]}x{c[6]}")
def test_spatial_cycles_equal_perf(case):
    tile, un, ui, lanes, mode, C, K, H, W = case
    cfg = _cfg(tile, un, ui, lanes, mode=mode)
    x, kw, want = _layer(cfg, C, K, H, W, seed=3)
    r = run_layer(WinogradLayer(cfg, **kw), x, PysimBackend())
    np.testing.assert_array_equal(r.y, want)
    assert r.cycles == perf.winograd_layer(cfg, C, K, H, W)["cycles"]


def test_weight_bound_layers_cost_what_the_kernel_beats_take():
    """Where a block's kernels take longer than its steps the layer runs at the weight rate;
    from ``steady_lanes`` kernels per beat on it costs what the U-weight engine does."""
    C, K, H, W = 16, 16, 6, 6
    u_cfg = AcceleratorConfig(tile=2, unroll=4, unroll_in=2, max_width=16, max_channels=16)
    base = perf.winograd_layer(u_cfg, C, K, H, W)["cycles"]
    g = schedule.winograd_geometry(u_cfg, C, K, H, W)
    slow = _cfg(2, 4, 2, 1)
    assert perf.winograd_layer(slow, C, K, H, W)["cycles"] >= g.w_beats * schedule.beats_per_word(slow) > base
    steady = schedule.steady_lanes(u_cfg, g.tw)
    lanes = min(d for d in (1, 2, 4, 8) if d >= steady)
    assert perf.winograd_layer(_cfg(2, 4, 2, lanes), C, K, H, W)["cycles"] == base
    assert perf.winograd_layer(_cfg(2, 4, 2, lanes // 2), C, K, H, W)["cycles"] > base


def test_spatial_top_ports_and_checks():
    cfg = _cfg(4, 4, 1, 2)
    top = WinogradAccel(cfg)
    assert "wt" in top.layer.shape().members
    assert top.w.payload.shape().size == 2 * (9 * 8 + 32)
    with pytest.raises(ValueError, match="W and u"):
        WinogradLayer(cfg, np.zeros((4, 1, 6, 6)), np.zeros(4), v=golden.Requant(1, 0), m=golden.Requant(1, 0),
                      y=golden.Requant(1, 0))


@pytest.mark.slow
@needs_verilator
def test_spatial_top_passes_verilator_lint(tmp_path):
    lint(_cfg(4, 2, 1, 2, mode="fixed"), tmp_path)


@pytest.mark.slow
def test_generator_exports_a_spatial_top(tmp_path):
    """``python -m wino_gen --engine --tile 4 --unroll 4 --weights spatial`` elaborates and writes the
    weight-transform unit into the Verilog and ``weights`` into the config JSON."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "wino_gen", "--engine", "--tile", "4", "--unroll", "4", "--weights",
                        "spatial", "--max-width", "16", "--max-channels", "16",
                        "--config-out", str(tmp_path / "top.json")],
                       capture_output=True, text=True, cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wino_top.wxf.xf" in r.stdout
    assert AcceleratorConfig.load(tmp_path / "top.json").weights == "spatial"
