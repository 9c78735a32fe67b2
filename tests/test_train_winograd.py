"""WinogradConv2d and the fake quantizers: FP32 equality with nn.Conv2d, and bit-exactness of
the fake-quant layer with wino_gen.golden on the exported integers."""

import numpy as np
import pytest
import torch
from trainlayers import calibrated_layer

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
    return calibrated_layer(tile * 7 + len(gran) + len(rq), tile=tile, granularity=gran, requant=rq, relu=relu,
                            bias=True, balance=balance)


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


@pytest.mark.parametrize("m", [2, 4, 6])
def test_output_tiles_backward_is_the_adjoint(m):
    from train.winograd_conv import _OutputTiles

    Y = torch.randn(m * m, 3 * 2 * 2 * 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _OutputTiles.apply(t, m, 3, 2, 2, 3), (Y,))


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


@pytest.mark.parametrize("tile,gran,padding", [(2, "layer", 1), (4, "tap", 1), (6, "tap", 0)])
def test_fused_core_gradients_equal_plain_autograd(tile, gran, padding):
    """The fused input-quantizer + channel-sum node (V recomputed in the backward) gives the same
    value and gradients (x, U, the V ratio) as autograd through the separate ops."""
    from train.winograd_conv import _WinogradCore

    torch.manual_seed(tile)
    w = WinogradConv2d(5, 4, tile=tile, granularity=gran, padding=padding)
    xi = torch.randint(-128, 128, (2, 5, 9, 11), dtype=torch.float64).requires_grad_(True)
    U = (torch.randn(w.n * w.n, 4, 5, dtype=torch.float64) * 30).round().requires_grad_(True)
    r = (0.05 * torch.rand((w.n, w.n) if gran == "tap" else (), dtype=torch.float64) + 0.02).requires_grad_(True)
    g = torch.randn(w.n * w.n, 4, 2 * (-(-(9 + 2 * padding - 2) // tile)) * (-(-(11 + 2 * padding - 2) // tile)),
                    dtype=torch.float64)

    fused = _WinogradCore.apply(xi, r, U, w, 8)
    fused.backward(g)
    got = [fused.detach(), xi.grad.clone(), U.grad.clone(), r.grad.clone()]
    for t in (xi, U, r):
        t.grad = None
    plain = torch.bmm(U, fq(w.input_transform(xi), w._tapshape(r)))
    plain.backward(g)
    want = [plain.detach(), xi.grad, U.grad, r.grad]
    assert torch.equal(got[0], want[0])
    for a, b in zip(got[1:], want[1:], strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)
    assert (got[1] != 0).any() and (got[3] != 0).all()


def test_fq_float32_keeps_half_precision_and_matches_float64_gradients():
    """Float32 training keeps ``v * r`` in float16 for the backward: the values (rounded in place)
    are the same as golden's, the gradients match the exact float64 ones to float16 precision."""
    torch.manual_seed(0)
    v64 = (torch.randn(4, 3, 500, dtype=torch.float64) * 300).requires_grad_(True)
    r64 = torch.full((4, 1, 1), 0.37, dtype=torch.float64, requires_grad=True)
    v32 = v64.detach().float().requires_grad_(True)
    r32 = r64.detach().float().requires_grad_(True)
    g = torch.randn(4, 3, 500, dtype=torch.float64)
    out64, out32 = fq(v64, r64), fq(v32, r32)
    assert torch.equal(out32.double(), golden.round_sat(v32.detach().double() * r32.detach().double()))
    out64.backward(g)
    out32.backward(g.float())
    edge = ((v64.detach() * 0.37).abs() - 127.5).abs() < 0.25     # near saturation float16 may differ
    assert torch.allclose(v32.grad.double()[~edge], v64.grad[~edge], rtol=1e-6)
    gv = g.abs() * v64.detach().abs()
    bound = 2.0**-10 * gv.sum((1, 2), keepdim=True) + (gv * edge).sum((1, 2), keepdim=True)
    assert ((r32.grad.double() - r64.grad).abs() <= bound).all()


def test_fq_float32_gradients_stay_finite_beyond_float16_range():
    v = torch.tensor([1e6, -1e7, 3.0, 100.0], requires_grad=True)
    r = torch.tensor(0.5, requires_grad=True)
    fq(v, r).backward(torch.ones(4))
    assert torch.equal(v.grad, torch.tensor([0.0, 0.0, 0.5, 0.5]))
    assert r.grad.item() == 103.0


def test_round_sat_in_place_equals_the_definition():
    t = np.array([-200.0, -128.5, -128.49, -0.5, 0.49, 0.5, 127.49, 127.5, 1e9])
    want = golden.round_sat(t)
    assert np.array_equal(golden.round_sat(t.copy(), inplace=True), want)
    tt = torch.tensor(t)
    assert golden.round_sat(tt, inplace=True) is tt and np.array_equal(tt.numpy(), want)
