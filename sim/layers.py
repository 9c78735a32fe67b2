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
    n, tile = cfg.n, cfg.tile
    lo, hi = int_range(cfg.act_bits)
    wlo, whi = int_range(cfg.weight_bits)
    x = rng.integers(lo, hi + 1, size=(1, C, H, W))
    U = rng.integers(wlo, whi + 1, size=(K, C, n, n))
    if extremes:
        x[0, 0] = lo
        x[0, -1, ::2] = hi
        U[0] = wlo
        U[-1, :, ::2] = whi
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
    return x, dict(U=U, bias=bias, v=v, m=m, y=y, m_align=m_align, padding=padding, relu=relu)


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
