"""wino_gen.perf's cycle model against the simulated accelerator (exact on small layers), the
utilization target, and the resource estimate's shape."""

import numpy as np
import pytest

from sim.driver import DirectLayer, WinogradLayer, run_layer
from sim.layers import random_direct, random_winograd
from wino_gen import perf
from wino_gen.config import AcceleratorConfig


@pytest.mark.parametrize("tile,unroll,ui,C,K,H,W", [
    (2, 2, 1, 3, 3, 7, 9), (4, 4, 1, 2, 8, 10, 10), (6, 2, 2, 8, 4, 14, 14), (4, 1, 1, 4, 2, 16, 16)])
def test_winograd_cycles_match_sim(tile, unroll, ui, C, K, H, W):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, max_width=16, max_channels=16)
    x, kw = random_winograd(cfg, C, K, H, W, np.random.default_rng(0))
    r = run_layer(WinogradLayer(cfg, **kw), x)
    assert r.cycles == perf.winograd_layer(cfg, C, K, H, W)["cycles"]


@pytest.mark.parametrize("algo", ["winograd", "direct"])
def test_fixed_requant_cycles_match_sim(algo):
    """``fixed`` requantizers take one stage more than ``pow2`` ones (the product)."""
    cfg = AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=16, requant="fixed",
                            algo=algo)
    rng = np.random.default_rng(1)
    if algo == "winograd":
        x, kw = random_winograd(cfg, 3, 3, 6, 6, rng)
        r = run_layer(WinogradLayer(cfg, **kw), x)
        assert r.cycles == perf.winograd_layer(cfg, 3, 3, 6, 6)["cycles"]
    else:
        x, kw = random_direct(cfg, 3, 3, 6, 6, rng)
        r = run_layer(DirectLayer(cfg, **kw), x)
        assert r.cycles == perf.direct_layer(cfg, 3, 3, 6, 6)["cycles"]


@pytest.mark.parametrize("tile,unroll,ui,C,K,H,k,s,p", [
    (2, 2, 1, 4, 5, 8, 3, 2, 1), (4, 3, 1, 8, 4, 6, 1, 1, 0), (2, 1, 2, 5, 2, 9, 3, 1, 1)])
def test_direct_cycles_match_sim(tile, unroll, ui, C, K, H, k, s, p):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, max_width=16, max_channels=16,
                            algo="direct")
    x, kw = random_direct(cfg, C, K, H, H, np.random.default_rng(0), kernel=k, stride=s, padding=p)
    r = run_layer(DirectLayer(cfg, **kw), x)
    assert r.cycles == perf.direct_layer(cfg, C, K, H, H, k, s, p)["cycles"]


def test_utilization_target_56x56x64():
    r = perf.winograd_layer(AcceleratorConfig(tile=4, unroll=16), 64, 64, 56, 56)
    assert r["steady_utilization"] >= 0.9
    assert r["utilization"] >= 0.9          # including the line-buffer fill and the drain


def test_layer_cycles_and_resources_api():
    cfg = AcceleratorConfig(tile=4, unroll=16)
    assert perf.layer_cycles(cfg, C=64, K=64, H=56, W=56) > 50176
    est = perf.estimate_resources(cfg)
    assert {"lut", "ff", "dsp", "bram"} <= set(est)
    assert est["dsp"] == cfg.multipliers
    small = perf.estimate_resources(AcceleratorConfig(tile=2, unroll=1, max_channels=16, max_width=16))
    assert all(small[k] <= est[k] for k in ("lut", "ff", "dsp", "bram"))
    rows = perf.resnet18(cfg)
    assert {r["engine"] for r in rows} == {"winograd", "direct"}
