"""Fake quantizers that round exactly like ``wino_gen.golden.rq``, with straight-through
estimators, and the learnable scales.

Conventions
-----------
* The quantized network carries integer-valued tensors (float dtype) plus a scalar scale tensor
  (``real = int * scale``), so every step is a step of the integer data path (x, V, U, M, y;
  docs/format.md, "Arithmetic", defines each one as ``wino_gen.golden`` computes it). In
  evaluation the tensors are float64 and every value is an exactly representable integer, which
  makes the fake-quant network bit-exact with ``wino_gen.golden``.
* :func:`fq` is ``clamp(floor(v * r + 1/2))`` (= ``golden.fake_rq``) with a straight-through
  estimator: d/dv = r and d/dr = v inside the range, 0 where it saturates. With ratios computed
  from the scales (``r = s_in / s_out``) the chain rule gives LSQ's scale gradient (Esser et al.
  2020) without writing it out.
* Every requant ratio goes through :func:`exact_ratio`, which replaces the real ratio by the
  (mult, shift) value ``golden.quantize_ratio`` picks (straight-through), so the forward pass uses
  exactly the hardware's ratio.
* :class:`Scale` holds ``log2`` of a scale (a scalar or one per Winograd tap); in ``pow2`` mode
  the forward value is ``2**round(log2)`` (straight-through). Scales are calibrated from data
  (:class:`Observer`), then trained by gradient descent in the log domain.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from wino_gen import golden
from wino_gen.limits import int_range


def keep_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the quantizers keep the scaled values ``t = v * r`` in for the backward: float16
    for float32 training (half the bytes; it only decides the straight-through mask and feeds
    the scale gradient, so a value within 2**-11 of a saturation edge may count as saturated),
    exact otherwise (float64 evaluation and gradient checks)."""
    return torch.float16 if dtype == torch.float32 else dtype


def ste_grads(g: torch.Tensor, t: torch.Tensor, r: torch.Tensor, bits: int, need_v: bool, need_r: bool,
              overwrite: bool = False):
    """The straight-through backward of ``round_sat(v * r, bits)`` from ``t = v * r``: d/dv = r
    and d/dr = v = t / r where ``lo - 1/2 <= t < hi + 1/2`` (not saturated), 0 elsewhere.
    Returns (grad v, grad r); d/dr is summed to ``r``'s shape (a scalar or one per tap).
    ``overwrite``: ``g`` and ``t`` are the caller's temporaries, reused as buffers."""
    lo, hi = int_range(bits)
    t_own = overwrite or t.dtype != g.dtype
    if t.dtype != g.dtype:         # kept in float16: saturated values (inf there) need only stay saturated
        t = t.to(g.dtype).clamp_(lo - 1, hi + 1)
    # hardtanh's backward passes the gradient where min < t < max, in one fused pass
    below = _below(lo - 0.5, t.dtype)
    hardtanh_bw = torch.ops.aten.hardtanh_backward
    gi = hardtanh_bw.grad_input(g, t, below, hi + 0.5, grad_input=g) if overwrite else \
        hardtanh_bw(g, t, below, hi + 0.5)
    gr = None
    if need_r:
        if r.numel() == 1:
            gr = torch.dot(gi.reshape(-1), t.reshape(-1)).reshape(r.shape) / r
        else:
            gt = t.mul_(gi) if t_own else gi * t
            if r.dim() == 3 and r.shape[1:] == (1, 1) and gt.dim() == 3 and gt.shape[0] == r.shape[0]:
                gr = gt.reshape(r.shape[0], -1).sum(1).reshape(r.shape) / r
            else:
                gr = _reduce_to(gt, r.shape) / r
    return (gi.mul_(r) if need_v else None), gr


@functools.cache
def _below(x: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value under ``x``: ``t > _below(x)`` is ``t >= x`` in ``dtype``."""
    return float(torch.nextafter(torch.tensor(x, dtype=dtype), torch.tensor(-np.inf, dtype=dtype)))


class _FQ(torch.autograd.Function):
    """Forward ``golden.round_sat(v * r)`` (rounded in place). The backward keeps only
    ``t = v * r``, in :func:`keep_dtype` (half of ``v``'s bytes in float32 training)."""

    @staticmethod
    def forward(ctx, v, r, bits):
        t = v * r
        ctx.bits = bits
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(t.to(keep_dtype(t.dtype), copy=True), r)
        return golden.round_sat(t, bits, inplace=True)

    @staticmethod
    def backward(ctx, g):
        t, r = ctx.saved_tensors
        gv, gr = ste_grads(g, t, r, ctx.bits, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return gv, gr, None


def _reduce_to(t: torch.Tensor, shape) -> torch.Tensor:
    while t.dim() > len(shape):
        t = t.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and t.shape[i] != 1:
            t = t.sum(i, keepdim=True)
    return t


def fq(v: torch.Tensor, r, bits: int = 8) -> torch.Tensor:
    """``clamp(floor(v * r + 1/2), int_range(bits))`` with the straight-through estimator."""
    if not torch.is_tensor(r):
        r = torch.tensor(r, dtype=v.dtype, device=v.device)
    return _FQ.apply(v, r.to(v.dtype), bits)


def fq_real(v: torch.Tensor, scale, bits: int = 8) -> torch.Tensor:
    """Real-domain fake quantization ``scale * fq(v / scale)`` (for ablations and calibration)."""
    return fq(v, 1.0 / scale, bits) * scale


def round_ste(t: torch.Tensor) -> torch.Tensor:
    """Round half up (``golden.round_sat``, saturating only at 64 bits), identity gradient."""
    return t + (golden.round_sat(t, 64) - t).detach()


def exact_ratio(r: torch.Tensor, mode: str, mult_bits: int = 16):
    """(ratio tensor equal to the hardware's ``mult * 2**-shift``, straight-through to ``r``;
    the ``golden.Requant``)."""
    req = golden.quantize_ratio(r.detach().double().cpu().numpy(), mode, mult_bits)
    exact = torch.as_tensor(golden.ratio_of(req), dtype=r.dtype, device=r.device)
    return r + (exact - r).detach(), req


class Scale(nn.Module):
    """A learnable positive scale (scalar or per tap), stored as log2."""

    def __init__(self, shape=(), pow2: bool = True):
        super().__init__()
        self.log2 = nn.Parameter(torch.zeros(shape))
        self.pow2 = pow2

    def forward(self) -> torch.Tensor:
        l = self.log2.clamp(-60.0, 60.0)
        return torch.exp2(round_ste(l) if self.pow2 else l)

    @torch.no_grad()
    def set(self, value) -> None:
        v = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32)
        self.log2.copy_(torch.log2(v.clamp_min(1e-30)).reshape(self.log2.shape))


class Observer:
    """Collects a random sample of |values| (one pool per tap for per-tap scales) during
    calibration, then picks the scale that minimizes the quantization MSE (or the max)."""

    def __init__(self, per_tap: int = 0, keep: int = 1 << 13):
        self.per_tap, self.keep = per_tap, keep
        self.pools: list[torch.Tensor] = []
        self.max = None

    def update(self, t: torch.Tensor) -> None:
        """``t``: ``[S, ...]`` with the tap first when per tap, any shape otherwise."""
        t = t.detach().abs().float()
        t = t.reshape(self.per_tap, -1) if self.per_tap else t.reshape(1, -1)
        m = t.max(1).values
        self.max = m if self.max is None else torch.maximum(self.max, m)
        if t.shape[1] > self.keep:
            t = t[:, torch.randint(0, t.shape[1], (self.keep,))]
        self.pools.append(t)

    def scale(self, bits: int, method: str = "mse", pow2: bool = True, shared: bool = False,
              tap_weights=None) -> np.ndarray:
        """The calibrated scale: ``max`` (no clipping), or the candidate with the least squared
        quantization error (``mse``). With per-tap pools, ``shared`` picks one scale for all
        taps (``layer`` granularity) minimizing the error weighted per tap by ``tap_weights``
        (the error's gain to the layer output: the ``omse`` calibration)."""
        if self.max is None:
            raise RuntimeError("observer saw no data")
        pool = torch.cat(self.pools, 1).double()                  # [T, P]
        mx = self.max.double().clamp_min(1e-8)                    # [T]
        qmax = int_range(bits)[1]
        if shared:
            mx = mx.max().reshape(1)
        if method == "max":
            s = (mx / qmax).numpy()
            s = np.exp2(np.ceil(np.log2(s))) if pow2 else s
            return s.reshape(()) if (shared or not self.per_tap) else s
        if pow2:
            top = torch.ceil(torch.log2(mx / qmax))
            cands = torch.exp2(top[:, None] - torch.arange(14, dtype=torch.float64)[None])   # [T', K]
        else:
            cands = (mx / qmax)[:, None] * torch.from_numpy(np.geomspace(1.0, 1 / 128, 57))[None]
        errs = torch.stack([((golden.round_sat(pool / c[:, None], bits) * c[:, None] - pool) ** 2)
                            .mean(1) for c in cands.T], 1)                                  # [T, K]
        if shared:
            w = torch.ones(len(pool), dtype=torch.float64) if tap_weights is None else \
                torch.as_tensor(np.asarray(tap_weights, dtype=np.float64)).reshape(-1)
            k = int(torch.argmin((errs * w[:, None]).sum(0)))
            return np.asarray(float(cands[0, k]))
        best = cands.gather(1, errs.argmin(1, keepdim=True)).squeeze(1).numpy()
        return best.reshape(()) if not self.per_tap else best

    def second_moment(self) -> np.ndarray:
        """Mean square per pool (per tap)."""
        return (torch.cat(self.pools, 1).double() ** 2).mean(1).numpy()
