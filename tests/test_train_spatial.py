"""Spatial int8 weights in training (``WinogradConv2d(weights="spatial")``): W fake-quantized
first, then U = golden's transform of W; bit-exact with golden's integer layer, finite
straight-through gradients, an export that stores W instead of U and passes ``check``, and
the ``--weights`` flag of ``python -m train``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from trainlayers import calibrated_layer

from train import cli, models
from train.convert import convert
from train.export import export
from train.quant import fq
from train.winograd_conv import WinogradConv2d
from wino_gen import check as wcheck
from wino_gen import format as wformat
from wino_gen import golden
from wino_gen.errors import run_cli

torch.set_num_threads(1)
HAVE_FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()
R = golden.Requant


def _layer(tile, gran, rq, balance="smooth"):
    return calibrated_layer(tile * 11 + len(gran) + len(rq), tile=tile, granularity=gran, requant=rq, relu=True,
                            balance=balance, weights="spatial")


@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("gran", ["layer", "tap"])
@pytest.mark.parametrize("rq,balance", [("pow2", "smooth"), ("fixed", "none")])
def test_spatial_fake_quant_bit_exact_with_golden(tile, gran, rq, balance):
    w, x = _layer(tile, gran, rq, balance)
    w.eval()
    s_x = torch.tensor(0.0371, dtype=torch.float64)
    xi = fq(x.double(), 1 / s_x)
    with torch.no_grad():
        y, _ = w.forward_int(xi, s_x)
    p = w.last
    s_W = float(w.s_W().detach())
    assert np.array_equal(p["W"], golden.fake_rq(w.weight.detach().double().numpy(), 1 / s_W))
    u = R(p["u_mult"].astype(np.int64), p["u_shift"].astype(np.int64))
    U = golden.transform_weights(p["W"], u, tile)
    assert np.array_equal(U, p["U"])
    ratio = golden.weight_ratio(s_W, w.s_U().detach().double().numpy(), tile, balance)
    mode = "fixed" if (gran, rq) == ("layer", "fixed") else "pow2"   # else the U requant is a shift
    want_u = golden.quantize_ratio(ratio, mode)
    assert np.array_equal(u.mult, want_u.mult) and np.array_equal(u.shift, want_u.shift)
    want = golden.winograd_conv3x3(
        xi.numpy().astype(np.int64), U, p["bias"], tile=tile, v=R(p["v_mult"], p["v_shift"]),
        m=R(p["m_mult"], p["m_shift"]), y=R(p["y_mult"], p["y_shift"]), m_align=p["m_align"],
        padding=1, relu=True, balance=balance)
    assert np.array_equal(y.numpy().astype(np.int64), want)
    assert np.count_nonzero(want) > want.size // 10


def test_tap_scales_are_golden_pow2_tap_scales():
    """With tap scales the U scale the layer uses is the one its shift-only U requant
    realizes: ``golden.pow2_tap_scales`` of the calibrated ones."""
    w, _ = _layer(4, "tap", "fixed")
    _, s_U, _ = w.spatial_weights(exact=True)
    s_W, s_cal = float(w.s_W().detach()), w.s_U().detach().double().numpy()
    assert np.allclose(s_U.detach().numpy(), golden.pow2_tap_scales(s_W, s_cal, 4, w.balance), rtol=1e-12)


def test_training_forward_equals_eval_and_gradients_finite():
    w, x = _layer(4, "tap", "pow2")
    s_x = torch.tensor(0.0371, dtype=torch.float64, requires_grad=True)
    w.double().train()
    y, s_y = w.forward_int(fq(x.double(), 1 / s_x), s_x)
    (y * s_y).square().mean().backward()
    assert torch.isfinite(w.weight.grad).all() and w.weight.grad.abs().sum() > 0
    for s in (w.s_W, w.s_V, w.s_U, w.s_M, w.s_y):
        assert s.log2.grad is not None and torch.isfinite(s.log2.grad).all()
    assert w.s_W.log2.grad.abs() > 0
    w.eval()
    with torch.no_grad():
        y_eval, _ = w.forward_int(fq(x.double(), 1 / s_x.detach()), s_x.detach())
    assert torch.equal(y.detach(), y_eval)     # the training quantizer is the golden one


def test_default_is_winograd_and_bad_weights_refused():
    assert WinogradConv2d(4, 4).weights == "winograd" and not hasattr(WinogradConv2d(4, 4), "s_W")
    with pytest.raises(ValueError, match="weights 'U'"):
        WinogradConv2d(4, 4, weights="U")


@pytest.mark.parametrize("tile,gran,rq", [(4, "tap", "pow2"), (2, "layer", "fixed")])
def test_export_stores_spatial_weights_and_passes_check(tile, gran, rq, tmp_path, capsys):
    torch.manual_seed(tile)
    m = models.resnet20(10, 1).eval()
    q = convert(m, input_shape=(1, 12, 12), tile=tile, granularity=gran, requant=rq, weights="spatial")
    x = torch.randn(16, 1, 12, 12)
    q.calibrate([x])
    r = export(q, tmp_path / "model", x[:3])
    assert r["fake_vs_golden_mismatches"] == 0
    model = wformat.load_model(tmp_path / "model")
    assert model.manifest["format"] == wformat.FORMAT_SPATIAL
    conv = [lay for lay in model.layers if lay.op == "winograd_conv3x3"]
    assert conv and all("W" in lay.arrays and "U" not in lay.arrays for lay in conv)
    assert wcheck.main([str(tmp_path / "model")]) == 0
    assert "0 mismatches" in capsys.readouterr().out


def main(argv):
    return run_cli(cli.main, argv)


@pytest.mark.parametrize("args, needle", [
    (["--weights", "U"], "--weights: 'U'; allowed: winograd, spatial"),
    (["--weights", "spatial"], "--weights spatial: for --mode ptq-winograd or qat only (not fp32)"),
    (["--weights", "spatial", "--mode", "ptq-direct"], "(not ptq-direct)"),
])
def test_weights_flag_refused_one_line(args, needle, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "r"), "--limit-train", "8", "--limit-test", "8"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err


def test_weights_flag_in_help(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--weights" in out and "(default: winograd)" in out


@pytest.mark.skipif(not HAVE_FASHION, reason="dataset-fashion-mnist not installed")
def test_cli_ptq_spatial_export(tmp_path):
    common = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--no-progress",
              "--threads", "1", "--calib-batches", "1"]
    fp = tmp_path / "fp32"
    assert main(["--mode", "fp32", "--epochs", "0", "--out", str(fp)] + common) == 0
    q = tmp_path / "ptq"
    assert main(["--mode", "ptq-winograd", "--tile", "4", "--weights", "spatial", "--init", str(fp / "model.pt"),
                 "--out", str(q), "--export", str(q / "model")] + common) == 0
    met = json.loads((q / "metrics.json").read_text())
    assert met["weights"] == "spatial" and met["fake_vs_golden_mismatches"] == 0
    assert json.loads((q / "model" / "manifest.json").read_text())["format"] == wformat.FORMAT_SPATIAL
    assert wcheck.main([str(q / "model")]) == 0
