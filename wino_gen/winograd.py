"""Winograd F(m x m, 3 x 3) transform matrices, built by Cook–Toom in exact rationals.

The algorithm computes a 1-D correlation ``y_i = sum_k d[i+k] g[k]`` (i < m, k < r) as
``AT @ ((G @ g) * (BT @ d))``, and the 2-D one as ``AT @ ((G g Gᵀ) ⊙ (BT d B)) @ A``.

Construction (Lavin & Gray 2016; the same form andravin/wincnn prints), for the finite points
``a_0 .. a_{n-2}`` and the point at infinity, ``n = m + r - 1``:

- ``AT[j, i] = a_i ** j`` for finite points; the infinity column is ``e_{m-1}``.
- ``G[i, k] = a_i ** k / f_i`` with ``f_i = prod_{l != i} (a_i - a_l)``; the infinity row is
  ``e_{r-1}``.
- ``BT[i, :]`` holds the coefficients (lowest degree first) of ``prod_{l != i} (x - a_l)``;
  the infinity row those of ``prod_l (x - a_l)``.

Hardware wants integer ``AT`` and ``BT`` (shift-add networks). :func:`integer_forms` scales
row ``i`` of ``BT`` by ``kb[i]`` and column ``i`` of ``AT`` by ``ka[i]`` to the smallest
integer vectors, and divides row ``i`` of ``G`` by ``ka[i] * kb[i]``: every Winograd-domain
position ``(i, j)`` then carries the factor ``ka[i] ka[j] kb[i] kb[j]`` once in the data path
and its inverse once in the weights, so the algorithm is unchanged exactly.

``balance="smooth"`` multiplies those factors by powers of two chosen so that every row of V
and every row of M has about the same range (see :func:`balance_shifts`): with one scale per
layer for V and M (``granularity: layer``, the minimal set of scales) no Winograd tap is then
rounded to zero while another saturates. With per-tap power-of-two scales the balance is
absorbed exactly by the scales and changes nothing but the widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, reduce

import numpy as np

#: Interpolation points (finite ones; infinity is always appended); docs/format.md prints the
#: integer matrices they give.
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
    6: (
        Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2),
        Fraction(1, 2), Fraction(-1, 2),
    ),
}

R = 3  # the filter size this project is about

#: Integer-form balances: ``none`` (smallest integer rows/columns) or ``smooth``.
BALANCES = ("none", "smooth")


def _poly_mul(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def _poly_from_roots(roots) -> list[Fraction]:
    """Coefficients, lowest degree first, of prod (x - root)."""
    return reduce(_poly_mul, ([-Fraction(a), Fraction(1)] for a in roots), [Fraction(1)])


def cook_toom(m: int, points, r: int = R) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AT, G, BT) of F(m, r) for the given ``m + r - 2`` distinct finite points."""
    pts = [Fraction(p) for p in points]
    n = m + r - 1
    if len(pts) != n - 1:
        raise ValueError(f"F({m},{r}) needs {n - 1} finite points, got {len(pts)}")
    if len(set(pts)) != len(pts):
        raise ValueError("interpolation points must be distinct")
    AT = np.full((m, n), Fraction(0), dtype=object)
    G = np.full((n, r), Fraction(0), dtype=object)
    BT = np.full((n, n), Fraction(0), dtype=object)
    for i, a in enumerate(pts):
        others = pts[:i] + pts[i + 1:]
        f = math.prod((a - b for b in others), start=Fraction(1))
        for j in range(m):
            AT[j, i] = a**j
        for k in range(r):
            G[i, k] = a**k / f
        BT[i, : n - 1] = _poly_from_roots(others)
    AT[m - 1, n - 1] = Fraction(1)
    G[n - 1, r - 1] = Fraction(1)
    BT[n - 1, :] = _poly_from_roots(pts)
    return AT, G, BT


@cache
def _matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if m not in POINTS:
        raise ValueError(f"no standard points for m={m}; allowed: {sorted(POINTS)} (or use cook_toom)")
    return cook_toom(m, POINTS[m])


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AT, G, BT) of F(m x m, 3 x 3) as object arrays of ``Fraction`` (fresh copies)."""
    return tuple(a.copy() for a in _matrices(m))


def _lcm_den(v) -> int:
    return math.lcm(*(Fraction(x).denominator for x in v))


def _primitive_scale(v) -> Fraction:
    """The positive factor that makes ``v`` the smallest integer vector along its direction."""
    den = _lcm_den(v)
    num = math.gcd(*(int(Fraction(x) * den) for x in v))
    return Fraction(den, num)


@dataclass(frozen=True)
class IntegerForms:
    """Integer hardware matrices of F(m x m, 3 x 3) and the scalings folded into ``G``.

    ``AT_int = AT @ diag(ka)``, ``BT_int = diag(kb) @ BT`` (int64 arrays), and
    ``G_int = diag(1 / (ka * kb)) @ G`` (Fractions), so that
    ``AT_int [(G_int g G_intᵀ) ⊙ (BT_int d B_int)] A_int == AT [(G g Gᵀ) ⊙ (BT d B)] A``.
    """

    m: int
    AT: np.ndarray
    BT: np.ndarray
    G: np.ndarray
    ka: tuple[Fraction, ...]
    kb: tuple[Fraction, ...]

    @property
    def n(self) -> int:
        return self.m + R - 1


def balance_shifts(m: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Left shifts ``(u, t)`` of the ``smooth`` balance: row ``i`` of ``BT`` times ``2**u[i]``,
    column ``i`` of ``AT`` times ``2**t[i]`` (``G`` row ``i`` divided by both).

    They equalize the expected magnitude of each Winograd row for *smooth* operands: an input
    tile ``d`` and a kernel ``g`` whose mean is as large as their spread (post-ReLU
    activations are non-negative; trained 3x3 kernels are mostly low-pass). Under that model
    ``E[(b·d)²] ∝ |b|² + (Σb)²`` for a row ``b`` of ``BT``, likewise for ``G``, so ``u`` lifts
    every V row to the largest one and ``t`` then lowers every M row (``|G_i| |B_i|``) to the
    smallest one, rounding to powers of two. V and M balanced means U balanced too. Measured on
    ResNet-20 / Fashion-MNIST (10k test images): per-layer PTQ at F4 goes from 24.1% to 91.7%
    (README)."""
    _, G, BT = (to_float(a) for a in _primitive(m)[:3])
    v = 0.5 * np.log2((BT ** 2).sum(1) + BT.sum(1) ** 2)
    u = np.rint(v.max() - v).astype(int)
    c = 0.5 * np.log2((G ** 2).sum(1) + G.sum(1) ** 2) + v + u
    t = np.rint(c - c.min()).astype(int)
    return tuple(map(int, u)), tuple(map(int, t))


@cache
def _primitive(m: int):
    """(AT_int, G_int, BT_int, ka, kb) with the smallest integer rows of BT and columns of AT."""
    AT, G, BT = _matrices(m)
    n = m + R - 1
    ka = tuple(_primitive_scale(AT[:, i]) for i in range(n))
    kb = tuple(_primitive_scale(BT[i, :]) for i in range(n))
    AT_int = [[AT[j, i] * ka[i] for i in range(n)] for j in range(m)]
    BT_int = [[BT[i, k] * kb[i] for k in range(n)] for i in range(n)]
    G_int = [[G[i, k] / (ka[i] * kb[i]) for k in range(R)] for i in range(n)]
    return AT_int, G_int, BT_int, ka, kb


@cache
def integer_forms(m: int, balance: str = "none") -> IntegerForms:
    if balance not in BALANCES:
        raise ValueError(f"balance {balance!r}: allowed {', '.join(BALANCES)}")
    AT0, G0, BT0, ka0, kb0 = _primitive(m)
    n = m + R - 1
    u, t = balance_shifts(m) if balance == "smooth" else ((0,) * n, (0,) * n)
    ka = tuple(k * 2 ** t[i] for i, k in enumerate(ka0))
    kb = tuple(k * 2 ** u[i] for i, k in enumerate(kb0))
    AT_int = np.array([[int(AT0[j][i] * 2 ** t[i]) for i in range(n)] for j in range(m)], dtype=np.int64)
    BT_int = np.array([[int(BT0[i][k] * 2 ** u[i]) for k in range(n)] for i in range(n)], dtype=np.int64)
    G_int = np.array([[G0[i][k] / 2 ** (t[i] + u[i]) for k in range(R)] for i in range(n)], dtype=object)
    for a in (AT_int, BT_int):
        a.setflags(write=False)
    G_int.setflags(write=False)
    return IntegerForms(m, AT_int, BT_int, G_int, ka, kb)


def to_float(a: np.ndarray) -> np.ndarray:
    return np.array([[float(x) for x in row] for row in a], dtype=np.float64)


def weight_transform(g: np.ndarray, m: int, balance: str = "none") -> np.ndarray:
    """``G_int g G_intᵀ`` in float64 for weights ``g[..., 3, 3]``: the offline weight transform
    that matches the integer data path of :func:`integer_forms`."""
    Gf = to_float(integer_forms(m, balance).G)
    return np.einsum("ik,...kl,jl->...ij", Gf, np.asarray(g, dtype=np.float64), Gf)
