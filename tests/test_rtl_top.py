"""Whole small layers on the accelerator tops, bit-exact against golden (m = 2, 4, 6 and the
direct engine), with random stalls on every stream, and cycle counts against wino_gen.perf."""

import numpy as np
import pytest

from rtl.top import build_top
from sim.backend import PysimBackend
from sim.driver import DirectLayer, WinogradLayer, run_layer
from sim.layers import random_direct, random_winograd
from wino_gen import golden
from wino_gen.config import AcceleratorConfig
from wino_gen.options import BuildOptions

CASES = [
    # tile, unroll, unroll_in, granularity, requant, C, K, H, W
    (2, 2, 1, "layer", "pow2", 4, 4, 8, 8),
    (4, 2, 2, "layer", "fixed", 4, 5, 10, 9),
    (4, 3, 1, "tap", "pow2", 5, 4, 9, 11),
    (6, 2, 1, "tap", "fixed", 4, 4, 8, 8),
    pytest.param((6, 2, 2, "layer", "pow2", 6, 3, 14, 13), marks=pytest.mark.slow),
]


def _cfg(tile, unroll, ui, gran, mode, **kw):
    return AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, granularity=gran, requant=mode,
                             max_width=16, max_channels=16, max_tap_shift=2, **kw)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"F{c[0]}-u{c[1]}x{c[2]}-{c[3]}-{c[4]}")
def test_winograd_layer(case):
    tile, unroll, ui, gran, mode, C, K, H, W = case
    cfg = _cfg(tile, unroll, ui, gran, mode)
    rng = np.random.default_rng(sum(case[:3]) + C * K)
    x, kw = random_winograd(cfg, C, K, H, W, rng, extremes=True)
    want = golden.winograd_conv3x3(x, tile=tile, cfg=cfg, **kw)
    assert len(np.unique(want)) > 20          # the scales give a spread, not all-saturated
    r = run_layer(WinogradLayer(cfg, **kw), x, PysimBackend(stall=0.25, seed=3))
    np.testing.assert_array_equal(r.y, want)


@pytest.mark.parametrize("tile", [4, 6])
def test_winograd_layer_smooth_balance(tile):
    """The balanced integer forms (wider Aᵀ/Bᵀ entries) through the whole datapath."""
    cfg = _cfg(tile, 2, 1, "layer", "pow2", balance="smooth")
    rng = np.random.default_rng(11 + tile)
    x, kw = random_winograd(cfg, 4, 3, 9, 10, rng, extremes=True)
    want = golden.winograd_conv3x3(x, tile=tile, cfg=cfg, **kw)
    assert len(np.unique(want)) > 20
    r = run_layer(WinogradLayer(cfg, **kw), x, PysimBackend(stall=0.25, seed=5))
    np.testing.assert_array_equal(r.y, want)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), (1, 1, 0)])
def test_direct_layer(kernel, stride, padding):
    cfg = _cfg(2, 2, 1, "layer", "pow2", algo="direct")
    rng = np.random.default_rng(kernel + stride)
    x, kw = random_direct(cfg, 4, 3, 8, 9, rng, kernel=kernel, stride=stride, padding=padding,
                          relu=stride == 2, extremes=True)
    want = golden.direct_conv(x, cfg=cfg, **{k: v for k, v in kw.items()})
    r = run_layer(DirectLayer(cfg, **kw), x, PysimBackend(stall=0.25, seed=5))
    np.testing.assert_array_equal(r.y, want)


def test_mismatch_is_detected():
    """The comparison can fail: a wrong bias gives a different result."""
    cfg = _cfg(2, 2, 1, "layer", "pow2")
    rng = np.random.default_rng(1)
    x, kw = random_winograd(cfg, 2, 2, 6, 6, rng)
    want = golden.winograd_conv3x3(x, tile=2, cfg=cfg, **kw)
    kw["bias"] = kw["bias"] + 1000
    r = run_layer(WinogradLayer(cfg, **kw), x)
    assert np.any(r.y != want)


@pytest.mark.parametrize("bits", [dict(act_bits=4, weight_bits=4, transform_bits=6),
                                  dict(act_bits=12, weight_bits=10, transform_bits=12, bias_bits=24,
                                       requant="fixed", mult_bits=20)],
                         ids=["4bit", "12bit-fixed"])
@pytest.mark.parametrize("tile", [2, 6])
def test_other_bit_widths(tile, bits):
    cfg = AcceleratorConfig(tile=tile, unroll=2, max_width=16, max_channels=8, **bits)
    x, kw = random_winograd(cfg, 3, 3, 9, 9, np.random.default_rng(tile), extremes=True)
    want = golden.winograd_conv3x3(x, tile=tile, cfg=cfg, **kw)
    r = run_layer(WinogradLayer(cfg, **kw), x, PysimBackend(stall=0.2, seed=tile))
    np.testing.assert_array_equal(r.y, want)


def test_skid_buffer_changes_no_word_and_no_cycle():
    """The line buffer's skid buffer (left out with ``BuildOptions(skid=False)``, the iCE40
    builds) is invisible at the streams: same outputs and cycles with and without it, under
    stalls."""
    cfg = _cfg(2, 2, 1, "layer", "pow2")
    x, kw = random_winograd(cfg, 3, 3, 7, 6, np.random.default_rng(5))
    runs = []
    for options in (BuildOptions(), BuildOptions(skid=False)):
        for stall in (0.0, 0.3):
            runs.append(run_layer(WinogradLayer(cfg, **kw), x, PysimBackend(stall=stall, seed=4),
                                  top=lambda options=options: build_top(cfg, options)))
    assert runs[0].cycles == runs[2].cycles and runs[1].cycles == runs[3].cycles
    for r in runs:
        np.testing.assert_array_equal(r.y, runs[0].y)
