"""Random test layers with scales chosen (through the golden model) so that the int8 outputs
spread over the range instead of saturating: for the rtl top tests and the cycle checks."""

from __future__ import annotations

import numpy as np

from wino_gen import golden
from wino_gen.config import AcceleratorConfig
from wino_gen.limits import int_range


def _ratio(peak, bits, per_tap=None):
    hi = int_range(bits)[1]
    peak = np.maximum(np.asarray(peak, dtype=np.float64), 1.0)
    return hi / peak


def random_winograd(cfg: AcceleratorConfig, C, K, H, W, rng, *, padding=1, relu=True,
                    extremes=False):
    """(x[1,C,H,W], kwargs for golden.winograd_conv3x3 / sim.driver.WinogradLayer)."""
    n = cfg.n
    wlo, whi = int_range(cfg.weight_bits)
    x = _random_x(cfg, C, H, W, rng, extremes)
    U = rng.integers(wlo, whi + 1, size=(K, C, n, n))
    if extremes:
        U[0] = wlo
        U[-1, :, ::2] = whi
    return x, dict(U=U, **_calibrate(cfg, x, U, rng, padding, relu))


def random_spatial(cfg: AcceleratorConfig, C, K, H, W, rng, *, padding=1, relu=True, extremes=False):
    """(x[1,C,H,W], kwargs for a ``weights='spatial'`` sim.driver.WinogradLayer: int8 kernels
    ``W``, their per-tap U requant ``u``, ...) and ``U = golden.transform_weights(W, u)`` for
    golden.winograd_conv3x3. ``u`` takes every tap to about half the U range (pow2: the exact
    shifts of ``golden.pow2_tap_scales``; fixed: one layer scale), a few taps a little beyond
    it (saturation); ``extremes`` adds the all-min / all-max kernels."""
    wlo, whi = int_range(cfg.weight_bits)
    x = _random_x(cfg, C, H, W, rng, extremes)
    Wt = rng.integers(wlo, whi + 1, size=(K, C, 3, 3))
    if extremes:
        Wt[0] = wlo
        Wt[-1, :, ::2] = whi
    T = golden.spatial_transform(Wt, cfg.tile)
    peak = np.maximum(np.abs(T).max(axis=(0, 1)), 1).astype(np.float64)
    target = whi / peak * 1.3                            # per-tap ratios T -> U
    if cfg.requant == "pow2":
        u = golden.quantize_ratio(target, "pow2")
    else:
        u = golden.quantize_ratio(np.full_like(target, target.min()), "fixed", cfg.mult_bits)
    u = golden.Requant(np.broadcast_to(u.mult, T.shape[2:]).astype(np.int64),
                       np.broadcast_to(u.shift, T.shape[2:]).astype(np.int64))
    U = golden.transform_weights(Wt, u, cfg.tile, cfg.weight_bits)
    return x, dict(W=Wt, u=u, **_calibrate(cfg, x, U, rng, padding, relu)), U


def _random_x(cfg, C, H, W, rng, extremes):
    lo, hi = int_range(cfg.act_bits)
    x = rng.integers(lo, hi + 1, size=(1, C, H, W))
    if extremes:
        x[0, 0] = lo
        x[0, -1, ::2] = hi
    return x


def _calibrate(cfg, x, U, rng, padding, relu):
    """Bias and the V, M, y requants of a layer ``x``, ``U`` that spread its outputs."""
    n, tile = cfg.n, cfg.tile
    K = U.shape[0]
    tap = cfg.granularity == "tap"
    mode = cfg.requant
    Vraw = golden.input_transform(golden.tile_input(x, tile, padding), tile, cfg.balance)[1]
    axes = (0, 1, 2, 3)
    peak = np.abs(Vraw).max(axis=axes) if tap else np.abs(Vraw).max()
    v = golden.quantize_ratio(_ratio(peak, cfg.transform_bits) * 1.5, mode, cfg.mult_bits)
    P = golden.winograd_channel_sum(x, U, tile=tile, v=v, padding=padding, balance=cfg.balance,
                                    transform_bits=cfg.transform_bits)
    peak = np.abs(P).max(axis=axes) if tap else np.abs(P).max()
    m = golden.quantize_ratio(_ratio(peak, cfg.transform_bits) * 2, mode, cfg.mult_bits)
    m_align = np.zeros((n, n), dtype=np.int64)
    if tap and cfg.tap_shift:
        m_align = rng.integers(0, min(cfg.tap_shift, 2) + 1, size=(n, n))
    Y = golden.winograd_output_sum(P, np.zeros(K, np.int64), tile=tile, m=m, m_align=m_align, balance=cfg.balance,
                                   transform_bits=cfg.transform_bits)
    Ypk = np.abs(Y).max()
    bias = rng.integers(-Ypk // 4 - 1, Ypk // 4 + 1, size=K)
    y = golden.quantize_ratio(float(_ratio(Ypk, cfg.act_bits)) * 3, mode, cfg.mult_bits)
    y = golden.Requant(int(np.asarray(y.mult).item()), int(np.asarray(y.shift).item()))
    return dict(bias=bias, v=v, m=m, y=y, m_align=m_align, padding=padding, relu=relu)


def random_direct(cfg: AcceleratorConfig, C, K, H, W, rng, *, kernel=3, stride=1, padding=1,
                  relu=False, extremes=False):
    """(x[1,C,H,W], kwargs for golden.direct_conv / sim.driver.DirectLayer); ``kernel`` is a
    size or (kh, kw)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    lo, hi = int_range(cfg.act_bits)
    wlo, whi = int_range(cfg.weight_bits)
    x = rng.integers(lo, hi + 1, size=(1, C, H, W))
    Wt = rng.integers(wlo, whi + 1, size=(K, C, kh, kw))
    if extremes:
        x[0, 0] = lo
        Wt[0] = wlo
    peak = C * kh * kw * hi * whi / 8
    bias = rng.integers(-int(peak) // 8, int(peak) // 8 + 1, size=K)
    y = golden.quantize_ratio(float(_ratio(peak, cfg.act_bits)), cfg.requant, cfg.mult_bits)
    y = golden.Requant(int(np.asarray(y.mult).item()), int(np.asarray(y.shift).item()))
    return x, dict(W=Wt, bias=bias, y=y, stride=stride, padding=padding, relu=relu)
