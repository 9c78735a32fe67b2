"""WinogradConv2d and the fake quantizers: FP32 equality with nn.Conv2d, and bit-exactness of
the fake-quant layer with wino_gen.golden on the exported integers."""

import numpy as np
import pytest
import torch

from train.quant import exact_ratio, fq
from train.winograd_conv import WinogradConv2d
from wino_gen import golden

torch.set_num_threads(1)


@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("padding", [0, 1])
def test_quant_off_equals_conv2d(tile, padding):
    torch.manual_seed(tile)
    conv = torch.nn.Conv2d(6, 5, 3, padding=padding, bias=True)
    w = WinogradConv2d.from_conv(conv, tile=tile)
    x = torch.randn(2, 6, 13, 11)
    assert (w(x) - conv(x)).abs().max().item() < 1e-5


def test_fq_matches_golden_rq():
    rng = np.random.default_rng(0)
    v = rng.integers(-40000, 40000, size=5000)
    for mode in ("pow2", "fixed"):
        for r in (0.37, 1 / 3, 2.0**-7, 5.5, 1e-3):
            rt, req = exact_ratio(torch.tensor(r, dtype=torch.float64), mode)
            got = fq(torch.tensor(v, dtype=torch.float64), rt).numpy()
            want = golden.rq(v, req.mult, req.shift)
            assert np.array_equal(got, want), (mode, r)


def _layer(tile, gran, rq, relu=True, balance="none"):
    torch.manual_seed(tile * 7 + len(gran) + len(rq))
    w = WinogradConv2d(12, 7, tile=tile, granularity=gran, requant=rq, relu=relu, bias=True, balance=balance)
    with torch.no_grad():
        w.bias.normal_()
    x = torch.randn(2, 12, 9, 10)
    w.observers = {}
    w.forward_real(x)
    w.apply_calibration()
    w.observers = None
    return w, x


@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("gran", ["layer", "tap"])
@pytest.mark.parametrize("rq,balance", [("pow2", "none"), ("fixed", "none"), ("pow2", "smooth")])
def test_fake_quant_bit_exact_with_golden(tile, gran, rq, balance):
    w, x = _layer(tile, gran, rq, balance=balance)
    w.eval()
    s_x = torch.tensor(0.0371)
    xi = fq(x.double(), 1 / s_x.double())
    with torch.no_grad():
        y, _ = w.forward_int(xi, s_x)
    p = w.last
    R = golden.Requant
    want = golden.winograd_conv3x3(
        xi.numpy().astype(np.int64), p["U"], p["bias"], tile=tile, v=R(p["v_mult"], p["v_shift"]),
        m=R(p["m_mult"], p["m_shift"]), y=R(p["y_mult"], p["y_shift"]), m_align=p["m_align"],
        padding=1, relu=True, balance=balance)
    assert y.shape == want.shape
    assert np.array_equal(y.numpy().astype(np.int64), want)
    assert np.count_nonzero(want) > want.size // 10      # not trivially all zero
    if gran == "layer":
        assert not p["m_align"].any()
    if rq == "pow2":
        assert (p["v_mult"] == 1).all() and (p["m_mult"] == 1).all() and p["y_mult"] == 1


@pytest.mark.parametrize("gran", ["layer", "tap"])
def test_gradients_reach_weights_and_scales(gran):
    w, x = _layer(4, gran, "pow2")
    w.train()
    s_x = torch.tensor(0.0371, requires_grad=True)
    y, s_y = w.forward_int(fq(x, 1 / s_x), s_x)
    (y * s_y).square().mean().backward()
    assert w.weight.grad is not None and w.weight.grad.abs().sum() > 0
    assert torch.isfinite(w.weight.grad).all()
    for s in (w.s_V, w.s_U, w.s_M, w.s_y):
        assert s.log2.grad is not None and torch.isfinite(s.log2.grad).all()
    assert s_x.grad is not None


def test_drop_in_quant_mode_close_to_conv():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    w = WinogradConv2d.from_conv(conv, tile=2)
    x = torch.randn(2, 8, 8, 8)
    w.observers = {}
    w.forward_real(x)
    w.apply_calibration()
    w.observers = None
    w.quant = True
    w.eval()
    with torch.no_grad():
        ref, got = conv(x), w(x)
    assert ((got - ref).abs().mean() / ref.abs().mean()).item() < 0.1


@pytest.mark.parametrize("n,m", [(4, 2), (6, 4), (8, 6)])
def test_tiles_backward_is_the_adjoint(n, m):
    """The hand-written tile backward (one F.fold) against autograd's numerical gradient."""
    from train.winograd_conv import _Tiles

    xp = torch.randn(2, 3, 3 * m + 2, 2 * m + 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _Tiles.apply(t, n, m), (xp,))


@pytest.mark.parametrize("learn_ratio", [True, False])
def test_fq_straight_through_gradients(learn_ratio):
    """d/dv = r and d/dr = v where the value is not saturated, 0 where it is (the mask is kept
    or recomputed in the backward depending on what learns)."""
    v = torch.tensor([-300.0, -129.0, -128.4, -3.3, 0.2, 126.9, 127.4, 127.6, 900.0], dtype=torch.float64,
                     requires_grad=True)
    r = torch.tensor(1.0, dtype=torch.float64, requires_grad=learn_ratio)
    g = torch.arange(1.0, 10.0, dtype=torch.float64)
    fq(v, r).backward(g)
    inside = torch.tensor([0, 0, 1, 1, 1, 1, 1, 0, 0], dtype=torch.float64)
    assert torch.equal(v.grad, g * inside)
    if learn_ratio:
        assert torch.isclose(r.grad, (g * inside * v.detach()).sum())
