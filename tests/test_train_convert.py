"""Conversion (fx tracing, BN folding, op mapping) and export to the model dir."""

import numpy as np
import pytest
import torch

from train import models
from train.convert import convert
from train.export import evaluate_int, export, integer_pass
from wino_gen import check as wcheck
from wino_gen.errors import UsageError

torch.set_num_threads(1)


def _trained_bn(model, shape):
    """Give the batch-norms non-trivial running statistics."""
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        for _ in range(3):
            model(torch.randn(8, *shape))
    return model.eval()


def test_resnet20_float_equals_model_after_bn_folding():
    torch.manual_seed(0)
    m = _trained_bn(models.resnet20(10, 1), (1, 16, 16))
    for tile in (2, 4, 6):
        q = convert(m, input_shape=(1, 16, 16), tile=tile)
        q.mode = "float"
        q.eval()
        x = torch.randn(4, 1, 16, 16)
        with torch.no_grad():
            assert (q(x) - m(x)).abs().max().item() < 1e-4
    ops = [s["op"] for s in q.specs]
    assert ops.count("winograd_conv3x3") == 16      # 19 3x3 convs minus the stem and 2 stride-2
    assert ops.count("direct_conv") == 5            # stem, 2 stride-2 3x3, 2 1x1 shortcuts
    assert ops.count("add") == 9 and ops[-2:] == ["avgpool", "linear"]


def test_resnet18_imagenet_shapes():
    m = models.resnet18()
    q = convert(m, input_shape=(3, 224, 224), tile=4)
    ops = [s["op"] for s in q.specs]
    assert ops.count("winograd_conv3x3") == 13 and ops.count("direct_conv") == 7
    assert ops.count("maxpool") == 1 and ops.count("add") == 8
    assert q.specs[0]["out_shape"] == [64, 112, 112] and q.specs[-1]["out_shape"] == [1000]
    names = {s["name"] for s in q.specs}
    assert {"conv1", "layer1.0.conv1", "layer4.1.conv2", "layer2.0.downsample.0", "fc"} <= names


def test_torchvision_resnet18_if_available():
    tv = pytest.importorskip("torchvision")
    q = convert(tv.models.resnet18(), input_shape=(3, 64, 64), tile=2)
    assert sum(s["op"] == "winograd_conv3x3" for s in q.specs) == 13


def test_unsupported_op_is_a_usage_error():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    with pytest.raises(UsageError, match="unsupported op"):
        convert(Odd(), input_shape=(1, 4, 4))


@pytest.mark.parametrize("tile", [2, 4, 6])
def test_export_passes_wino_gen_check(tile, tmp_path, capsys):
    torch.manual_seed(tile)
    m = _trained_bn(models.resnet20(10, 1), (1, 12, 12))
    gran = "tap" if tile == 4 else "layer"
    q = convert(m, input_shape=(1, 12, 12), tile=tile, granularity=gran,
                requant="fixed" if tile == 6 else "pow2")
    x = torch.randn(16, 1, 12, 12)
    q.calibrate([x])
    r = export(q, tmp_path / "model", x[:3])
    assert r["fake_vs_golden_mismatches"] == 0
    assert wcheck.main([str(tmp_path / "model")]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    loader = [(x[3:11], torch.zeros(8, dtype=torch.long))]
    res = evaluate_int(q, tmp_path / "model", loader, compare=True)
    assert res["fake_vs_int_logit_diffs"] == 0
    assert res["int_test_acc"] == res["fake_test_acc"]


def test_integer_pass_is_integer():
    m = _trained_bn(models.resnet20(10, 1), (1, 8, 8))
    q = convert(m, input_shape=(1, 8, 8), tile=2)
    x = torch.randn(4, 1, 8, 8)
    q.calibrate([x])
    rec = integer_pass(q, x)
    for v in rec.values():
        assert v.min() >= -128 and v.max() <= 127
    assert np.count_nonzero(rec["fc"]) > 0
