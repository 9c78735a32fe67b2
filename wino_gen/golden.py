"""The bit-exact integer model of the wino-int8 data path: the one definition of its arithmetic.

Every step of the arithmetic in docs/format.md is a function here. ``train`` quantizes against
:func:`rq` / :func:`fake_rq`, ``rtl`` implements these functions, and ``sim`` compares the
hardware with them. Integer arrays are int64 inside; layer outputs are int8 (or the configured width) as int64
values. Channel sums run as float64 BLAS products, exact because every partial sum is an integer
below 2**53 (checked).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import schedule, winograd
from .config import AcceleratorConfig, Widths, signed_bits
from .limits import FLOAT_EXACT, SHIFT_RANGE, int_range


class Requant(NamedTuple):
    """A fixed-point ratio ``mult * 2**-shift``; ``mult`` and ``shift`` may be per-tap arrays."""

    mult: np.ndarray | int
    shift: np.ndarray | int


class OverflowInPath(ArithmeticError):
    """An intermediate value does not fit the width the configuration derived for it."""


# -- rounding and requantization -------------------------------------------------------------

def rq(v, mult, shift, bits: int = 8) -> np.ndarray:
    """Requantize: ``sat((v * mult + 2**(shift-1)) >> shift)``, round half up, saturate to
    ``bits`` signed (2..62). ``shift <= 0`` is an exact left shift by ``-shift``.

    Exact for every integer ``v``, ``mult`` and ``shift``: a product is shifted left only
    after it is clamped to the values that still saturate the same way (so the shift cannot
    overflow), and the product and rounding run in Python integers whenever their int64 bound
    could be exceeded (|v| * mult >= 2**62, or a right shift above 62)."""
    if not 2 <= bits <= 62:
        raise ValueError(f"rq: bits must be 2..62, got {bits}")
    v, mult, shift = (_int_array(a) for a in (v, mult, shift))
    wide = object in (v.dtype, mult.dtype, shift.dtype) or (
        v.size and mult.size and (_absmax(v) * _absmax(mult) >= 1 << 62 or int(shift.max(initial=0)) > 62))
    dt = object if wide else np.int64
    p = np.asarray(v.astype(dt, copy=False) * mult.astype(dt, copy=False))
    if shift.ndim == 0:
        out = _down(p, int(shift)) if shift > 0 else _up(p, -int(shift), bits)
    else:
        right, left = np.maximum(shift, 0), np.maximum(-shift, 0)
        out = np.where(shift > 0, _down(p.copy(), right.astype(dt)), _up(p, left.astype(dt), bits))
    lo, hi = int_range(bits)
    return np.clip(out, lo, hi, out=out).astype(np.int64, copy=False)


def _down(p: np.ndarray, right) -> np.ndarray:
    """``(p + 2**(right-1)) >> right`` (``p`` unchanged where ``right`` is 0), in place."""
    half = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0).astype(p.dtype) \
        if np.ndim(right) else p.dtype.type(1 << (right - 1))
    p += half
    p >>= right
    return p


def _up(p: np.ndarray, left, bits: int) -> np.ndarray:
    """``p << left`` saturated to ``bits``, in place: ``p`` is first clamped to just outside
    the values that stay in range, which saturates the same way and cannot overflow."""
    lo, hi = int_range(bits)
    left = np.minimum(left, bits)
    np.clip(p, (lo >> left) - 1, (hi >> left) + 1, out=p)
    p <<= left
    return p


def _int_array(a) -> np.ndarray:
    """``a`` as an int64 array, or an object array of Python ints where int64 cannot hold it."""
    try:
        return np.asarray(a, dtype=np.int64)
    except OverflowError:
        return np.asarray(a, dtype=object)


def _absmax(a: np.ndarray) -> int:
    return max(abs(int(a.max())), abs(int(a.min())))


def round_sat(t, bits: int = 8, inplace: bool = False):
    """``clamp(floor(t + 1/2))`` to ``bits`` signed, for numpy arrays or torch tensors: the
    rounding of :func:`rq` on a value that is already scaled. ``inplace`` overwrites a float
    ``t`` (the training path rounds large tensors without temporaries)."""
    lo, hi = int_range(bits)
    if not inplace:
        t = t + 0.5
        if hasattr(t, "clamp"):
            return t.floor().clamp(lo, hi)
        return np.clip(np.floor(t), lo, hi)
    if hasattr(t, "clamp_"):
        return t.add_(0.5).floor_().clamp_(lo, hi)
    np.add(t, 0.5, out=t)
    np.floor(t, out=t)
    return np.clip(t, lo, hi, out=t)


def fake_rq(v, ratio, bits: int = 8):
    """Float form of :func:`rq` for fake quantization (numpy arrays or torch tensors):
    ``clamp(floor(v * ratio + 1/2))``. Equal to :func:`rq` whenever ``ratio`` is the exact
    value ``mult * 2**-shift`` and ``v * ratio`` is representable."""
    return round_sat(v * ratio, bits)


def quantize_ratio(ratio, mode: str, mult_bits: int = 16) -> Requant:
    """The (mult, shift) for a positive real ratio: ``pow2`` rounds log2 to the nearest
    integer (mult = 1); ``fixed`` takes the largest shift with ``mult < 2**mult_bits``."""
    r = np.asarray(ratio, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"requant ratio must be finite and positive, got {ratio!r}")
    if mode == "pow2":
        shift = np.rint(-np.log2(r)).astype(np.int64)
        return Requant(np.ones_like(shift), np.clip(shift, *SHIFT_RANGE))
    if mode != "fixed":
        raise ValueError(f"requant mode {mode!r}: allowed pow2, fixed")
    top = (1 << mult_bits) - 1
    lo, hi = SHIFT_RANGE
    shift = np.clip(np.floor(np.log2(top / r)).astype(np.int64), lo, hi)
    mult = np.rint(r * np.exp2(shift.astype(np.float64))).astype(np.int64)
    shift = np.where((mult > top) & (shift > lo), shift - 1, shift)
    # a ratio beyond top * 2**16 saturates at the largest representable one
    mult = np.minimum(np.rint(r * np.exp2(shift.astype(np.float64))).astype(np.int64), top)
    return Requant(mult, shift)


def ratio_of(req: Requant) -> np.ndarray:
    """The exact real ratio a (mult, shift) pair stands for."""
    return np.asarray(req.mult, dtype=np.float64) * np.exp2(-np.asarray(req.shift, dtype=np.float64))


# -- Winograd steps --------------------------------------------------------------------------

def tile_input(x: np.ndarray, tile: int, padding: int = 1) -> np.ndarray:
    """Overlapping n x n input tiles with stride ``tile``: ``[N, C, Th, Tw, n, n]``, zeros
    outside the image (``padding`` on top/left, and as much as needed on bottom/right)."""
    N, C, H, W = x.shape
    _, _, th, tw = schedule.tile_grid(H, W, tile, padding)
    n = tile + 2
    xp = np.pad(np.asarray(x, dtype=np.int64),
                ((0, 0), (0, 0), (padding, th * tile + 2 - H - padding),
                 (padding, tw * tile + 2 - W - padding)))
    return sliding_window_view(xp, (n, n), axis=(2, 3))[:, :, ::tile, ::tile]


def untile_output(y: np.ndarray, Ho: int, Wo: int) -> np.ndarray:
    """Inverse of the tiling on outputs: ``[N, K, Th, Tw, m, m]`` -> ``[N, K, Ho, Wo]``."""
    N, K, th, tw, m, _ = y.shape
    return y.transpose(0, 1, 2, 4, 3, 5).reshape(N, K, th * m, tw * m)[:, :, :Ho, :Wo]


def input_transform(d: np.ndarray, tile: int, balance: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """``(BT d, BT d B)`` on tiles ``d[..., n, n]`` with the integer Bᵀ: exact integers."""
    BT = winograd.integer_forms(tile, balance).BT
    s1 = BT @ np.asarray(d, dtype=np.int64)
    return s1, s1 @ BT.T


def output_transform(M: np.ndarray, tile: int, balance: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """``(AT M, AT M A)`` on ``M[..., n, n]`` with the integer Aᵀ: exact integers."""
    AT = winograd.integer_forms(tile, balance).AT
    s1 = AT @ np.asarray(M, dtype=np.int64)
    return s1, s1 @ AT.T


def channel_sum(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``P[N, K, T, s] = sum_c U[K, C, s] * V[N, C, T, s]``, exact."""
    U = np.asarray(U, dtype=np.int64)
    V = np.asarray(V, dtype=np.int64)
    bound = U.shape[1] * (int(np.abs(U).max(initial=0)) * int(np.abs(V).max(initial=0)))
    if bound >= FLOAT_EXACT:
        raise OverflowInPath("channel sum exceeds 2**53")
    N, C, T, S = V.shape
    Ut = U.transpose(2, 0, 1).astype(np.float64)                      # [S, K, C]
    Vt = V.transpose(3, 1, 0, 2).reshape(S, C, N * T).astype(np.float64)  # [S, C, N*T]
    P = np.rint(np.einsum("skc,sct->skt", Ut, Vt, optimize=True)).astype(np.int64)  # [S, K, N*T]
    return P.reshape(S, -1, N, T).transpose(2, 1, 3, 0)


def _check(name: str, v: np.ndarray, bits: int | None) -> None:
    if bits is None or v.size == 0:
        return
    lo, hi = int_range(bits)
    if v.min() < lo or v.max() > hi:
        raise OverflowInPath(f"{name}: value range [{v.min()}, {v.max()}] exceeds {bits} bits")


def winograd_channel_sum(x, U, *, tile: int, v: Requant, padding: int = 1, balance: str = "none",
                         transform_bits: int = 8, widths: Widths | None = None,
                         trace: dict | None = None) -> np.ndarray:
    """docs/format.md's steps 1-4: tiles ``d``, ``V = rq(Bᵀ d B)``, ``P = Σ_c U ⊙ V``, as
    ``P[N, K, Th, Tw, n, n]``. The quantity an M requant scales: calibrators read its range
    here instead of running a whole layer. ``widths`` checks the intermediates; ``trace``
    receives ``d``, ``V_raw``, ``V`` and ``P``."""
    x = np.asarray(x, dtype=np.int64)
    U = np.asarray(U, dtype=np.int64)
    N, C, H, W = x.shape
    K, Cu, n, n2 = U.shape
    if (Cu, n, n2) != (C, tile + 2, tile + 2):
        raise ValueError(f"U shape {U.shape} does not match C={C}, tile {tile}")
    d = tile_input(x, tile, padding)                       # [N, C, Th, Tw, n, n]
    th, tw = d.shape[2:4]
    s1, Vraw = input_transform(d, tile, balance)
    _check("input transform stage 1", s1, widths and widths.in_stage1)
    _check("input transform", Vraw, widths and widths.in_full)
    Vq = rq(Vraw, v.mult, v.shift, transform_bits)
    P = channel_sum(U.reshape(K, C, n * n), Vq.reshape(N, C, th * tw, n * n))
    _check("channel accumulator", P, widths and widths.accumulator)
    P = P.reshape(N, K, th, tw, n, n)
    if trace is not None:
        trace.update(d=d, V_raw=Vraw, V=Vq, P=P)
    return P


def winograd_output_sum(P, bias, *, tile: int, m: Requant, m_align=0, balance: str = "none",
                        transform_bits: int = 8, widths: Widths | None = None,
                        trace: dict | None = None) -> np.ndarray:
    """docs/format.md's steps 5-6 on ``P`` from :func:`winograd_channel_sum`: ``M = rq(P)``
    aligned by ``m_align``, ``Aᵀ M A + bias`` as ``[N, K, Th, Tw, m, m]``, the quantity the y
    requant scales (what a calibrator reads). ``trace`` receives ``M`` and ``Y`` (before the
    bias)."""
    Mq = rq(P, m.mult, m.shift, transform_bits)
    Ma = Mq << np.asarray(m_align, dtype=np.int64)
    o1, Y = output_transform(Ma, tile, balance)
    _check("output transform stage 1", o1, widths and widths.out_stage1)
    _check("output transform", Y, widths and widths.out_full)
    Yb = Y + np.asarray(bias, dtype=np.int64)[None, :, None, None, None, None]
    _check("bias add", Yb, widths and widths.out_sum)
    if trace is not None:
        trace.update(M=Mq, Y=Y)
    return Yb


def winograd_conv3x3(x, U, bias, *, tile: int, v: Requant, m: Requant, y: Requant,
                     m_align=0, padding: int = 1, relu: bool = False,
                     cfg: AcceleratorConfig | None = None, trace: dict | None = None,
                     act_bits: int | None = None, transform_bits: int | None = None,
                     balance: str | None = None) -> np.ndarray:
    """Full-int8 Winograd 3x3 stride-1 convolution, docs/format.md's steps 1-7 one by one.

    ``x[N, C, H, W]`` int8, ``U[K, C, n, n]`` int8 Winograd-domain weights, ``bias[K]`` in the
    scale of ``AT M A``; ``v``/``m`` requant ratios are scalars or ``[n, n]`` per tap and
    ``m_align[n, n]`` left-shifts per-tap M onto the common output-transform scale. With
    ``cfg`` every intermediate is checked against the derived widths (and its bit widths
    are used); ``trace`` receives the intermediates. ``act_bits``/``transform_bits`` override
    the saturation widths (default: the config's, else 8); ``balance`` picks the integer forms
    (default: the config's, else ``none``).
    """
    balance = balance or (cfg.balance if cfg else "none")
    if cfg and cfg.balance != balance:
        raise ValueError(f"balance {balance!r} differs from the config's {cfg.balance!r}")
    act_bits = act_bits or (cfg.act_bits if cfg else 8)
    t_bits = transform_bits or (cfg.transform_bits if cfg else 8)
    w = cfg.widths if cfg else None
    P = winograd_channel_sum(x, U, tile=tile, v=v, padding=padding, balance=balance, transform_bits=t_bits,
                             widths=w, trace=trace)
    Yb = winograd_output_sum(P, bias, tile=tile, m=m, m_align=m_align, balance=balance, transform_bits=t_bits,
                             widths=w, trace=trace)
    out = output_requant(Yb, 0, y, relu, act_bits)    # the bias is in Yb (winograd_output_sum)
    if trace is not None:
        trace["y_tiles"] = out
    H, W = np.shape(x)[2:]
    Ho, Wo, _, _ = schedule.tile_grid(H, W, tile, padding)
    return untile_output(out, Ho, Wo)


# -- direct convolution and host ops ---------------------------------------------------------

def direct_accumulate(x, W, *, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The exact accumulation ``acc[N, K, Ho, Wo]`` of a direct convolution, before the bias:
    what its y requant scales (calibrators read it here)."""
    x = np.asarray(x, dtype=np.int64)
    W = np.asarray(W, dtype=np.int64)
    N, C, H, Wd = x.shape
    K, Cw, kh, kw = W.shape
    if Cw != C:
        raise ValueError(f"weight shape {W.shape} does not match C={C}")
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    Ho, Wo = win.shape[2:4]
    if C * kh * kw * int(np.abs(W).max(initial=0)) * int(np.abs(x).max(initial=0)) >= FLOAT_EXACT:
        raise OverflowInPath("direct accumulation exceeds 2**53")
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw).astype(np.float64)
    acc = np.rint(cols @ W.reshape(K, -1).T.astype(np.float64)).astype(np.int64)
    return acc.reshape(N, Ho, Wo, K).transpose(0, 3, 1, 2)


def direct_conv(x, W, bias, *, y: Requant, stride: int = 1, padding: int = 0, relu: bool = False,
                cfg: AcceleratorConfig | None = None, trace: dict | None = None,
                act_bits: int | None = None) -> np.ndarray:
    """int8 direct convolution, any kernel, stride and padding: exact int accumulation,
    ``+ bias``, then :func:`rq` to the activation width. ``trace`` receives ``acc``."""
    act_bits = act_bits or (cfg.act_bits if cfg else 8)
    acc = direct_accumulate(x, W, stride=stride, padding=padding)
    if cfg:
        _check("accumulator", acc, cfg.widths.accumulator)
    if trace is not None:
        trace["acc"] = acc
    return output_requant(acc, bias, y, relu, act_bits, sum_bits=cfg.widths.out_sum if cfg else None)


def output_requant(acc, bias, y: Requant, relu: bool, bits: int, *, sum_bits: int | None = None) -> np.ndarray:
    """The tail every conv and linear layer ends with (docs/format.md's last step): ``acc +
    bias`` (``bias[K]`` per channel, axis 1 of ``acc``; a scalar where the bias is already in,
    as in :func:`winograd_output_sum`), checked against ``sum_bits`` when given, ``rq`` by ``y``
    to ``bits``, then ReLU if ``relu``. One definition, for golden and the image interpreter."""
    acc = np.asarray(acc, dtype=np.int64)
    v = acc + np.asarray(bias, dtype=np.int64).reshape((-1,) + (1,) * (acc.ndim - 2))
    _check("bias add", v, sum_bits)
    out = rq(v, y.mult, y.shift, bits)
    return np.maximum(out, 0) if relu else out


def add(a, b, *, a_mult: int, b_mult: int, shift: int, relu: bool = False, bits: int = 8) -> np.ndarray:
    """Residual add of two int8 tensors in different scales with one rounding:
    ``rq(a * a_mult + b * b_mult, 1, shift)``."""
    v = np.asarray(a, dtype=np.int64) * a_mult + np.asarray(b, dtype=np.int64) * b_mult
    out = rq(v, 1, shift, bits)
    return np.maximum(out, 0) if relu else out


def maxpool(x, *, kernel: int, stride: int, padding: int = 0, bits: int = 8) -> np.ndarray:
    """Max pooling; padding counts as the smallest representable value (never the max)."""
    lo, _ = int_range(bits)
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                constant_values=lo)
    return sliding_window_view(xp, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(-2, -1))


def avgpool(x, *, kernel: int, stride: int, mult: int, shift: int, bits: int = 8) -> np.ndarray:
    """Average pooling as a window sum requantized by ``mult * 2**-shift`` (~ 1/kernel²)."""
    x = np.asarray(x, dtype=np.int64)
    s = sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride].sum(axis=(-2, -1))
    return rq(s, mult, shift, bits)


def linear_accumulate(x, W) -> np.ndarray:
    """The exact accumulation ``acc[N, K]`` of a fully connected layer on flattened input,
    before the bias: what its y requant scales (calibrators read it here)."""
    x = np.asarray(x, dtype=np.int64).reshape(len(x), -1)
    W = np.asarray(W, dtype=np.int64)
    if x.shape[1] * int(np.abs(W).max(initial=0)) * int(np.abs(x).max(initial=0)) >= FLOAT_EXACT:
        raise OverflowInPath("linear accumulation exceeds 2**53")
    return np.rint(x.astype(np.float64) @ W.T.astype(np.float64)).astype(np.int64)


def linear(x, W, bias, *, y: Requant, relu: bool = False, bits: int = 8,
           trace: dict | None = None) -> np.ndarray:
    """Fully connected layer on flattened int8 input: int accumulation, bias, :func:`rq`.
    ``trace`` receives ``acc``."""
    acc = linear_accumulate(x, W)
    if trace is not None:
        trace["acc"] = acc
    return output_requant(acc, bias, y, relu, bits)


def quantize_weights_winograd(g: np.ndarray, tile: int, scale, bits: int = 8,
                              balance: str = "none") -> np.ndarray:
    """Offline weight transform and quantization: ``U = sat(round(G_int g G_intᵀ / s_U))``
    in float64 (``scale`` scalar or ``[n, n]``), round half up like :func:`rq`."""
    return fake_rq(winograd.weight_transform(g, tile, balance), 1.0 / np.asarray(scale, dtype=np.float64),
                   bits).astype(np.int64)



# -- spatial weights, transformed on chip ----------------------------------------------------
#
# U = sat(round(G_int g G_intᵀ / s_U)) has fractions in G_int (1/4, 1/6, 1/24 at F4). Scaling
# row i of G_int by the smallest positive integer d[i] that makes it integer gives G' = diag(d)
# G_int, so G_int W G_intᵀ = (G' W G'ᵀ) / (d dᵀ): the integer transform is exact and the factor
# 1 / (d[i] d[j]) goes into the per-tap U requant, U = rq(G' W G'ᵀ, u_mult, u_shift). G' is the
# same for both balances (they differ in G_int by powers of two, absorbed by d).


def spatial_forms(tile: int, balance: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """``(G', d)``: the integer weight-transform matrix ``G' = diag(d) G_int`` (int64 ``[n, 3]``)
    and its row factors ``d`` (int64 ``[n]``, each the smallest positive integer that makes row
    ``i`` of ``winograd.integer_forms(tile, balance).G`` integer)."""
    G = winograd.integer_forms(tile, balance).G
    d = []
    for row in G:
        den = math.lcm(*(x.denominator for x in row))
        d.append(den // math.gcd(*(int(x * den) for x in row)))
    Gp = np.array([[int(x * k) for x in row] for row, k in zip(G, d, strict=True)], dtype=np.int64)
    return Gp, np.array(d, dtype=np.int64)


def spatial_widths(tile: int, weight_bits: int = 8) -> tuple[int, int]:
    """Signed widths ``(stage1, full)`` of ``G' W`` and ``G' W G'ᵀ`` for any ``weight_bits``
    spatial ``W``: worst case ``|G'| |W|`` row by row, the extreme ``-2**(weight_bits-1)`` on
    every weight of the sign that maximizes each output."""
    Gp, _ = spatial_forms(tile)
    lo, hi = int_range(weight_bits)
    row = np.abs(Gp).sum(1)
    s1 = int(row.max()) * max(-lo, hi)
    full = int(np.outer(row, row).max()) * max(-lo, hi)
    return signed_bits(-s1, s1), signed_bits(-full, full)


def spatial_transform(W, tile: int) -> np.ndarray:
    """``T = G' W G'ᵀ`` on int ``W[..., 3, 3]``: exact integers ``[..., n, n]``."""
    Gp, _ = spatial_forms(tile)
    return np.einsum("ik,...kl,jl->...ij", Gp, np.asarray(W, dtype=np.int64), Gp)


def transform_weights(W, u: Requant, tile: int, bits: int = 8) -> np.ndarray:
    """Winograd-domain weights of spatial int ``W[K, C, 3, 3]``:
    ``U[k, c, i, j] = rq(T[k, c, i, j], u.mult[i, j], u.shift[i, j], bits)`` with ``T`` from
    :func:`spatial_transform` (``u`` scalars or ``[n, n]``): the weight-transform unit's
    arithmetic and the U a model dir may store beside ``W``."""
    return rq(spatial_transform(W, tile), u.mult, u.shift, bits)


def weight_ratio(s_w, s_u, tile: int, balance: str = "none") -> np.ndarray:
    """The exact per-tap U requant ratio ``s_w / (s_u[i, j] d[i] d[j])`` (``[n, n]``) that
    makes :func:`transform_weights` equal ``quantize_weights_winograd(s_w * W, s_u)`` up to
    the rounding of the ratio: ``s_w`` the spatial scale, ``s_u`` scalar or ``[n, n]``."""
    _, d = spatial_forms(tile, balance)
    return float(s_w) / (np.asarray(s_u, dtype=np.float64) * np.outer(d, d).astype(np.float64))


def pow2_tap_scales(s_w, s_u, tile: int, balance: str = "none") -> np.ndarray:
    """Per-tap U scales ``s_w / (d[i] d[j]) * 2**-k[i, j]`` nearest to ``s_u`` (scalar or
    ``[n, n]``): the ones whose U requant is an exact shift (:func:`weight_ratio` a power of
    two). The odd part of ``d[i] d[j]`` then lives in the M requant's ``fixed`` multiplier."""
    r = weight_ratio(s_w, s_u, tile, balance)
    return np.asarray(s_u, dtype=np.float64) * r / np.exp2(np.rint(np.log2(r)))
