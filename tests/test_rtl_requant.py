"""Requantizer vs golden.rq: random values, extremes, pow2/fixed, layer/tap, random stalls."""

import numpy as np
import pytest

from rtl.requant import Requantizer
from sim.streams import run_block
from wino_gen import golden


def run_rq(in_bits, out_bits, lanes, n_params, mult_bits, vals, mult, shift, seed):
    dut = Requantizer(lanes=lanes, in_bits=in_bits, out_bits=out_bits, n_params=n_params,
                      mult_bits=mult_bits)
    p = {"shift": list(shift)}
    if mult_bits is not None:
        p["mult"] = list(mult)
    out = run_block(dut, [{"data": [list(v)]} for v in vals], len(vals), seed=seed, params=p)
    return np.array([r["data"][0] for r in out])


@pytest.mark.parametrize("mode", ["pow2", "fixed"])
@pytest.mark.parametrize("n_params", [1, 4])
def test_requant_matches_golden(mode, n_params):
    rng = np.random.default_rng(7 + n_params)
    in_bits, out_bits, lanes = 16, 8, 4
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    vals = rng.integers(lo, hi + 1, size=(24, lanes))
    vals[0] = lo
    vals[1] = hi
    vals[2] = [lo, hi, -1, 0]
    vals[3] = [-128, 127, 128, -129]
    mult_bits = 12 if mode == "fixed" else None
    shift = rng.integers(-9, 20, size=n_params)
    shift[0] = 1
    if n_params > 1:
        shift[1:4] = [0, -3, 40][: n_params - 1]
    mult = rng.integers(1, 1 << 12, size=n_params) if mode == "fixed" else np.ones(n_params, int)
    if mode == "fixed":
        mult[0] = (1 << 12) - 1
    got = run_rq(in_bits, out_bits, lanes, n_params, mult_bits, vals, mult, shift, seed=1)
    idx = np.arange(lanes) % n_params
    want = golden.rq(vals, mult[idx][None, :], shift[idx][None, :], out_bits)
    np.testing.assert_array_equal(got, want)


def test_requant_exhaustive_small():
    """Every 8-bit input against every shift in -3..12 (layer mode, pow2): round half up."""
    vals = np.arange(-128, 128).reshape(-1, 4)
    for shift in (-3, 0, 1, 2, 5, 12):
        got = run_rq(8, 4, 4, 1, None, vals, [1], [shift], seed=shift + 10)
        np.testing.assert_array_equal(got, golden.rq(vals, 1, shift, 4))


@pytest.mark.parametrize("out_bits", [4, 8])
def test_requant_extremes_of_the_format(out_bits):
    """The format's whole range: 24-bit mults up to 2**24-1, shifts -16..62, a 40-bit input
    (wider than any bias sum), extreme values: the RTL's widths hold every case exactly."""
    in_bits, lanes, n_params, mult_bits = 40, 4, 4, 24
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    rng = np.random.default_rng(out_bits)
    vals = np.array([[lo, hi, -1, 1], [hi, lo, 0, -(1 << 31)], [(1 << 31) - 1, 1 << 20, lo + 1, hi - 1],
                     *rng.integers(lo, hi + 1, size=(5, lanes))])
    for shift in ([-16, 62, 1, 0], [61, -1, 40, 24], [2, 63, -16, 30]):
        mult = np.array([(1 << 24) - 1, (1 << 24) - 1, 1, (1 << 23) + 1])
        shift = np.array(shift)
        got = run_rq(in_bits, out_bits, lanes, n_params, mult_bits, vals, mult, shift, seed=2)
        want = golden.rq(vals, mult[None, :], shift[None, :], out_bits)
        np.testing.assert_array_equal(got, want)
