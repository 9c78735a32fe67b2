# amaranth: UnusedElaboratable=no
"""The weight-transform unit vs golden.transform_weights: every tile, pow2 and fixed U
requants, extreme kernels (each T output driven to its bounds, saturating shifts), lanes,
random stalls on both streams; the packed words equal the host's weight-stream encoding."""

import dataclasses

import numpy as np
import pytest

from rtl.wtransform import SpatialWeights, WeightTransform
from sim.streams import run_block
from wino_gen import golden, perf
from wino_gen.config import AcceleratorConfig
from wino_gen.schedule import steady_lanes


def _run(dut, params, items, n_out, seed):
    return run_block(dut, items, n_out, seed=seed, params=params)


def _kernels(tile, count, seed):
    """Extremes first: for each T output, the kernels that drive it to +max and -max."""
    Gp, _ = golden.spatial_forms(tile)
    out = []
    for i in range(tile + 2):
        for j in range(tile + 2):
            s = np.sign(np.outer(Gp[i], Gp[j]))
            out += [np.where(s >= 0, 127, -128), np.where(s >= 0, -128, 127)]
    out += list(np.random.default_rng(seed).integers(-128, 128, (count, 3, 3)))
    return np.array(out)


def _params(cfg, rng):
    """Per-tap U requant: shifts from left shifts to beyond the T width (saturation, zero)."""
    S = cfg.n * cfg.n
    shift = rng.integers(-2, 16, S)
    req = golden.Requant(rng.integers(1, 1 << cfg.mult_bits, S) if cfg.requant == "fixed" else np.ones(S, int),
                         shift)
    p = {"shift": shift.tolist()}
    if cfg.requant == "fixed":
        p["mult"] = req.mult.tolist()
    return p, golden.Requant(req.mult.reshape(cfg.n, cfg.n), shift.reshape(cfg.n, cfg.n))


@pytest.mark.parametrize("tile,mode,lanes", [(2, "pow2", 1), (4, "pow2", 1), (6, "pow2", 2), (4, "fixed", 1)])
def test_weight_transform(tile, mode, lanes):
    cfg = AcceleratorConfig(tile=tile, unroll=2, requant=mode, mult_bits=12, max_channels=2)
    rng = np.random.default_rng(tile)
    params, req = _params(cfg, rng)
    W = _kernels(tile, 8, tile)
    W = W[: len(W) // lanes * lanes]
    bias = rng.integers(-(1 << 31), 1 << 31, len(W))
    items = [{"data": [k.ravel().tolist() for k in W[b:b + lanes]], "tag": bias[b:b + lanes].tolist()}
             for b in range(0, len(W), lanes)]
    out = _run(WeightTransform(cfg, lanes), params, items, len(items), seed=tile)
    got = np.array([o["data"] for o in out]).reshape(len(W), cfg.n, cfg.n)
    want = golden.transform_weights(W, req, tile, cfg.weight_bits)
    np.testing.assert_array_equal(got, want)
    assert np.any(np.abs(want) == 128) or np.any(want == 127)     # saturation was exercised
    np.testing.assert_array_equal(np.concatenate([o["tag"] for o in out]), bias)


@pytest.mark.parametrize("tile,ui,lanes", [(4, 1, 1), (2, 2, 2)])
def test_spatial_weights_words_equal_the_host_encoding(tile, ui, lanes):
    """K x C kernels, k-major per word, come out as the words of a weight stream."""
    cfg = AcceleratorConfig(tile=tile, unroll=2, unroll_in=ui, max_channels=2 * ui)
    rng = np.random.default_rng(5)
    params, req = _params(cfg, rng)
    K, C, words = cfg.unroll, ui, 5
    W = rng.integers(-128, 128, (words, K, C, 3, 3))
    bias = rng.integers(-1000, 1000, (words, K))
    flat = [(W[w, k, c], bias[w, k]) for w in range(words) for k in range(K) for c in range(C)]
    items = [{"data": [f[0].ravel().tolist() for f in flat[b:b + lanes]], "tag": [int(f[1]) for f in flat[b:b + lanes]]}
             for b in range(0, len(flat), lanes)]
    dut = SpatialWeights(cfg, lanes)
    out = _run(dut, params, items, words, seed=9)
    n = cfg.n
    for w, o in enumerate(out):
        U = golden.transform_weights(W[w], req, tile)
        assert o == {"data": U.reshape(K, C, n * n).tolist(), "bias": bias[w].tolist()}


def test_constructor_checks():
    with pytest.raises(ValueError, match="lanes"):
        WeightTransform(AcceleratorConfig(tile=4, unroll=4), lanes=3)
    with pytest.raises(ValueError, match="cfg"):
        WeightTransform(AcceleratorConfig(tile=4, unroll=4, algo="direct"))


def test_rate_and_resources():
    cfg = AcceleratorConfig(tile=4, unroll=16, weights="spatial")
    assert steady_lanes(cfg, 14) == 2 and steady_lanes(cfg, 2) == 8 and steady_lanes(cfg, 16) == 1
    r1 = perf.weight_transform_resources(cfg)
    r2 = perf.weight_transform_resources(dataclasses.replace(cfg, weight_lanes=2))
    assert r1["multipliers"] == 0 and r2["adders"] == 2 * r1["adders"] > 0
    assert r2["registers"] > r1["registers"]
    fixed = dataclasses.replace(cfg, requant="fixed")
    assert perf.weight_transform_resources(fixed)["multipliers"] == 36
    # the estimate counts the unit for spatial configs only, its multipliers on DSPs
    base = perf.estimate_resources(dataclasses.replace(cfg, weights="winograd"))
    est = perf.estimate_resources(cfg)
    assert est["lut"] > base["lut"] and est["ff"] > base["ff"] and est["dsp"] == base["dsp"]
    assert (perf.estimate_resources(fixed)["dsp"]
            == perf.estimate_resources(dataclasses.replace(fixed, weights="winograd"))["dsp"] + 36)
