"""Cook–Toom matrices: exact against direct correlation, float64 agreement, and equality with
the matrices published by andravin/wincnn (https://github.com/andravin/wincnn, README: F(2,3)
with points (0, 1, -1) and F(4,3) with points (0, 1, -1, 2, -2)) up to per-point signs."""

from fractions import Fraction as F
from itertools import permutations

import numpy as np
import pytest

from wino_gen import winograd

rng = np.random.default_rng(1)


def frac(rows):
    return np.array([[F(x) for x in r] for r in rows], dtype=object)


def correlate2d(d, g):
    m = d.shape[0] - 2
    return np.array([[sum(d[i + a, j + b] * g[a, b] for a in range(3) for b in range(3))
                      for j in range(m)] for i in range(m)], dtype=object)


def winograd2d(AT, G, BT, d, g):
    U = G.dot(g).dot(G.T)
    V = BT.dot(d).dot(BT.T)
    return AT.dot(U * V).dot(AT.T)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_exact_against_direct_rationals(m):
    AT, G, BT = winograd.matrices(m)
    for _ in range(5):
        d = np.array(rng.integers(-9, 10, (m + 2, m + 2)).tolist(), dtype=object) + F(0)
        g = np.array(rng.integers(-9, 10, (3, 3)).tolist(), dtype=object) + F(0)
        assert (winograd2d(AT, G, BT, d, g) == correlate2d(d, g)).all()


@pytest.mark.parametrize("balance", winograd.BALANCES)
@pytest.mark.parametrize("m", [2, 4, 6])
def test_integer_forms_are_integer_and_exact(m, balance):
    f = winograd.integer_forms(m, balance)
    assert f.AT.dtype == np.int64 and f.BT.dtype == np.int64
    d = np.array(rng.integers(-128, 128, (m + 2, m + 2)).tolist(), dtype=object)
    g = np.array(rng.integers(-128, 128, (3, 3)).tolist(), dtype=object) + F(0)
    AT = f.AT.astype(object)
    BT = f.BT.astype(object)
    assert (winograd2d(AT, f.G, BT, d, g) == correlate2d(d, g)).all()
    # the folded scalings are exactly what the docstring says
    AT0, G0, BT0 = winograd.matrices(m)
    assert (AT0 * np.array(f.ka, dtype=object)[None, :] == AT).all()
    assert (np.array(f.kb, dtype=object)[:, None] * BT0 == BT).all()


@pytest.mark.parametrize("m", [2, 4, 6])
def test_float64_agreement(m):
    AT, G, BT = (winograd.to_float(a) for a in winograd.matrices(m))
    d = rng.normal(size=(64, m + 2, m + 2))
    g = rng.normal(size=(64, 3, 3))
    got = np.einsum("ai,nij,bj->nab", AT, np.einsum("ik,nkl,jl->nij", G, g, G)
                    * np.einsum("ik,nkl,jl->nij", BT, d, BT), AT)
    ref = np.array([[[sum(d[k, i + a, j + b] * g[k, a, b] for a in range(3) for b in range(3))
                      for j in range(m)] for i in range(m)] for k in range(64)])
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-9


WINCNN = {
    2: (frac([[1, 1, 1, 0], [0, 1, -1, 1]]),
        frac([[1, 0, 0], ["1/2", "1/2", "1/2"], ["1/2", "-1/2", "1/2"], [0, 0, 1]]),
        frac([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]])),
    4: (frac([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
        frac([["1/4", 0, 0], ["-1/6", "-1/6", "-1/6"], ["-1/6", "1/6", "-1/6"],
              ["1/24", "1/12", "1/6"], ["1/24", "-1/12", "1/6"], [0, 0, 1]]),
        frac([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])),
}


def equal_up_to_order_and_sign(mine, theirs):
    """True if some permutation of the finite points and per-point signs (a sign on AT's
    column j, G's row j and BT's row j whose product is 1) maps one triple onto the other."""
    AT, G, BT = mine
    AT2, G2, BT2 = theirs
    n = AT.shape[1]
    for perm in permutations(range(n - 1)):
        p = list(perm) + [n - 1]
        ok = True
        for j, pj in enumerate(p):
            found = False
            for sa in (1, -1):
                for sg in (1, -1):
                    sb = sa * sg  # sa * sg * sb == 1
                    if ((AT[:, pj] * sa == AT2[:, j]).all() and (G[pj] * sg == G2[j]).all()
                            and (BT[pj] * sb == BT2[j]).all()):
                        found = True
            if not found:
                ok = False
                break
        if ok:
            return True
    return False


@pytest.mark.parametrize("m", [2, 4])
def test_matches_wincnn(m):
    assert equal_up_to_order_and_sign(winograd.matrices(m), WINCNN[m])


def test_wrong_matrix_does_not_match_wincnn():
    AT, G, BT = winograd.matrices(4)
    G = G.copy()
    G[1, 0] = -G[1, 0]
    assert not equal_up_to_order_and_sign((AT, G, BT), WINCNN[4])


def test_any_m_with_given_points():
    AT, G, BT = winograd.cook_toom(3, [0, 1, -1, F(1, 2)])
    d = np.array(rng.integers(-9, 10, (5, 5)).tolist(), dtype=object) + F(0)
    g = np.array(rng.integers(-9, 10, (3, 3)).tolist(), dtype=object) + F(0)
    assert (winograd2d(AT, G, BT, d, g) == correlate2d(d, g)).all()


def test_bad_points():
    with pytest.raises(ValueError, match="needs 3 finite points"):
        winograd.cook_toom(2, [0, 1])
    with pytest.raises(ValueError, match="distinct"):
        winograd.cook_toom(2, [0, 1, 1])
    with pytest.raises(ValueError, match="allowed"):
        winograd.matrices(3)


def _row_rms_spread(m, balance, samples=4000):
    """log2(max/min) of the per-row RMS of V = BT d and of M = (G g) * (BT d) over smooth
    operands: non-negative tiles and kernels with a common offset plus noise."""
    f = winograd.integer_forms(m, balance)
    G, BT = winograd.to_float(f.G), f.BT.astype(np.float64)
    d = 1.0 + rng.normal(size=(samples, m + 2))
    g = 1.0 + rng.normal(size=(samples, 3))
    V = d @ BT.T
    M = (g @ G.T) * V
    spread = lambda t: float(np.log2(np.sqrt((t ** 2).mean(0)).max() / np.sqrt((t ** 2).mean(0)).min()))  # noqa: E731
    return spread(V), spread(M)


@pytest.mark.parametrize("m", [4, 6])
def test_smooth_balance_equalizes_rows(m):
    """The ``smooth`` forms keep every V row and every M row within about a factor 2 of the
    others (power-of-two rounding), where the primitive forms spread M over 3.5 (F4) to
    more than 5 (F6) octaves: one scale per layer then rounds whole taps away."""
    v0, m0 = _row_rms_spread(m, "none")
    v1, m1 = _row_rms_spread(m, "smooth")
    assert m0 > 3.4 and m1 < 1.3 and v1 < 1.3 and v1 <= v0 + 0.05


def test_smooth_balance_is_powers_of_two_of_primitive():
    for m in (2, 4, 6):
        f0, f1 = winograd.integer_forms(m), winograd.integer_forms(m, "smooth")
        u, t = winograd.balance_shifts(m)
        assert (f1.BT == f0.BT * (2 ** np.array(u))[:, None]).all()
        assert (f1.AT == f0.AT * (2 ** np.array(t))[None, :]).all()
    with pytest.raises(ValueError, match="balance 'x'"):
        winograd.integer_forms(4, "x")
