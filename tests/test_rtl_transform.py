"""Input transform and output stage vs golden, all tiles, extremes, random stalls."""

import numpy as np
import pytest

from rtl.transform import InputTransform, OutputStage
from sim.streams import run_block
from wino_gen import golden, winograd
from wino_gen.config import AcceleratorConfig, int_range


def _sim(dut, items, n_out, seed, params=None):
    return run_block(dut, items, n_out, seed=seed, params=params)


def worst_tiles(T, lo, hi):
    """Tiles whose sign pattern drives each output position of T d Tᵀ to its extremes."""
    out = []
    for i in range(T.shape[0]):
        for j in range(T.shape[0]):
            s = np.sign(np.outer(T[i], T[j]))
            out += [np.where(s >= 0, hi, lo), np.where(s >= 0, lo, hi)]
    return out


@pytest.mark.parametrize("tile,ui,bits", [(2, 2, 8), (4, 1, 8), (6, 1, 8), (4, 2, 4), (2, 1, 12)])
def test_input_transform(tile, ui, bits):
    cfg = AcceleratorConfig(tile=tile, unroll=1, unroll_in=ui, act_bits=bits, max_channels=2 * ui)
    n = cfg.n
    lo, hi = int_range(bits)
    rng = np.random.default_rng(tile * 10 + ui)
    tiles = worst_tiles(winograd.integer_forms(tile).BT, lo, hi)
    tiles += [rng.integers(lo, hi + 1, size=(n, n)) for _ in range(10)]
    if len(tiles) % ui:
        tiles += tiles[: ui - len(tiles) % ui]
    d = np.array(tiles).reshape(-1, ui, n, n)
    items = [{"data": [t.ravel().tolist() for t in beat]} for beat in d]
    out = _sim(InputTransform(cfg), items, len(items), seed=tile)
    got = np.array([o["data"] for o in out]).reshape(d.shape)
    np.testing.assert_array_equal(got, golden.input_transform(d, tile)[1])


@pytest.mark.parametrize("tile,gran,mode", [(2, "layer", "pow2"), (4, "tap", "pow2"),
                                            (4, "layer", "fixed"), (6, "tap", "fixed")])
def test_output_stage(tile, gran, mode):
    cfg = AcceleratorConfig(tile=tile, unroll=1, granularity=gran, requant=mode, max_channels=64,
                            max_tap_shift=3)
    n, S = cfg.n, cfg.n * cfg.n
    rng = np.random.default_rng(tile)
    n_p = S if gran == "tap" else 1
    alo, ahi = int_range(cfg.widths.accumulator)
    m_shift = rng.integers(0, 10, size=n_p)
    m_mult = rng.integers(1, 1 << 16, size=n_p) if mode == "fixed" else np.ones(n_p, int)
    if mode == "fixed":
        m_shift = m_shift + 14
    align = rng.integers(0, cfg.tap_shift + 1, size=S) if cfg.tap_shift else np.zeros(S, int)
    y_shift = int(rng.integers(3, 9))
    y_mult = int(rng.integers(1, 1 << 16)) if mode == "fixed" else 1
    if mode == "fixed":
        y_shift += 15
    P = [rng.integers(-3000, 3000, size=S) for _ in range(8)]
    P += [np.full(S, alo), np.full(S, ahi), rng.choice([alo, ahi], size=S)]
    # accumulator extremes in the worst sign pattern of each output position: M saturates to
    # the transform-range extremes and Aᵀ Ma A reaches its bound
    AT = winograd.integer_forms(tile).AT
    for i in range(tile):
        s = np.sign(np.outer(AT[i], AT[i])).ravel()
        P += [np.where(s >= 0, ahi, alo), np.where(s >= 0, alo, ahi)]
    P = np.array(P)
    blo, bhi = int_range(cfg.bias_bits)
    bias = rng.integers(-5000, 5000, size=len(P))
    bias[:2] = [blo // 4, bhi // 4]
    relu = 1
    params = {"m": {"shift": m_shift.tolist(), "mult": m_mult.tolist()},
              "y": {"shift": [y_shift], "mult": [y_mult]}, "relu": relu}
    if cfg.tap_shift:
        params["align"] = align.tolist()
    items = [{"data": p.tolist(), "bias": int(b)} for p, b in zip(P, bias, strict=True)]
    for relu in (1, 0):
        params["relu"] = relu
        out = _sim(OutputStage(cfg), items, len(items), seed=relu, params=params)
        got = np.array([o["data"] for o in out]).reshape(len(P), tile, tile)
        idx = np.arange(S) % n_p
        M = golden.rq(P, m_mult[idx], m_shift[idx], cfg.transform_bits)
        Ma = (M << align).reshape(-1, n, n)
        Y = golden.output_transform(Ma, tile)[1] + bias[:, None, None]
        want = golden.rq(Y, y_mult, y_shift, cfg.act_bits)
        if relu:
            want = np.maximum(want, 0)
        np.testing.assert_array_equal(got, want)
