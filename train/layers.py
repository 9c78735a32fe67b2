"""The other quantizable layers of an integer-executable network (direct conv, linear, residual
add, max/avg pooling), each with a real path (calibration, FP32) and an integer path that matches
the matching ``wino_gen.golden`` function bit for bit in float64."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wino_gen import golden, limits

from .quant import Observer, Scale, exact_ratio, fq, fq_real, round_ste
from .winograd_conv import INT32, QLayer


class _Weighted(QLayer):
    """Shared by direct conv and linear: per-tensor int8 weights, int32 bias, one output requant."""

    def __init__(self, weight: torch.Tensor, bias, relu: bool, requant: str, act_bits=8, weight_bits=8):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.relu, self.requant = relu, requant
        self.act_bits, self.weight_bits = act_bits, weight_bits
        p2 = requant == "pow2"
        self.s_x, self.s_W, self.s_y = Scale((), p2), Scale((), p2), Scale((), p2)

    def _op(self, x, w, b=None):
        raise NotImplementedError

    def forward_real(self, x):
        self._observe("x", x)
        if "x" in self.steps:
            x = fq_real(x, self.s_x(), self.act_bits)
        w = self.weight
        if "W" in self.steps or "U" in self.steps:
            w = fq_real(w, self.s_W(), self.weight_bits)
        return self._output(self._op(x, w.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype)))

    def forward_int(self, x, s_x):
        dt = x.dtype
        s_W, s_y = self.s_W().to(dt), self.s_y().to(dt)
        s_acc = s_x.to(dt) * s_W
        W = fq(self.weight.to(dt), 1.0 / s_W, self.weight_bits)
        acc = self._op(x, W)
        if self.bias is not None:
            b = round_ste(self.bias.to(dt) / s_acc).clamp(*INT32)
        else:
            b = torch.zeros(W.shape[0], dtype=dt, device=x.device)
        acc = acc + b.reshape(1, -1, *([1] * (acc.dim() - 2)))
        r, req = exact_ratio(s_acc / s_y, self.requant)
        y = fq(acc, r, self.act_bits)
        if self.relu:
            y = F.relu(y)
        if not self.training:
            self.last = {"W": W.detach().cpu().numpy().astype(np.int8),
                         "bias": b.detach().cpu().numpy().astype(np.int32),
                         "y_mult": np.int32(req.mult), "y_shift": np.int32(req.shift),
                         "scale_out": float(s_y.detach())}
        return y, self.s_y()

    @torch.no_grad()
    def apply_calibration(self, method: str = "omse") -> None:
        method = "mse" if method == "omse" else method
        p2 = self.requant == "pow2"
        for key in ("x", "y"):
            if key in self.observers:
                getattr(self, "s_" + key).set(self.observers[key].scale(self.act_bits, method, p2))
        wo = Observer(0, keep=1 << 20)
        wo.update(self.weight)
        self.s_W.set(wo.scale(self.weight_bits, method, p2))


class QConv2d(_Weighted):
    """Direct int8 convolution (any kernel/stride/padding): ``golden.direct_conv``."""

    op = "direct_conv"

    def __init__(self, conv: nn.Conv2d, relu=False, requant="pow2", **kw):
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" \
                or conv.padding[0] != conv.padding[1] or conv.stride[0] != conv.stride[1]:
            raise ValueError(f"unsupported convolution {conv}")
        super().__init__(conv.weight, conv.bias, relu, requant, **kw)
        self.stride, self.padding = conv.stride[0], conv.padding[0]
        self.kernel_size = conv.kernel_size

    def _op(self, x, w, b=None):
        return F.conv2d(x, w, b, self.stride, self.padding)


class QLinear(_Weighted):
    """Fully connected layer on the flattened input: ``golden.linear``."""

    op = "linear"

    def __init__(self, lin: nn.Linear, relu=False, requant="pow2", **kw):
        super().__init__(lin.weight, lin.bias, relu, requant, **kw)

    def _op(self, x, w, b=None):
        return F.linear(x.flatten(1), w, b)


class QAdd(QLayer):
    """Residual add with one rounding: ``golden.add`` (``rq(a*a_mult + b*b_mult, 1, shift)``)."""

    op = "add"

    def __init__(self, relu=False, requant="pow2", act_bits=8):
        super().__init__()
        self.relu, self.requant, self.act_bits = relu, requant, act_bits
        self.s_y = Scale((), requant == "pow2")

    def forward_real(self, a, b):
        return self._output(a + b)

    def forward_int(self, a, s_a, b, s_b):
        dt = a.dtype
        s_y = self.s_y().to(dt)
        ra, rb = s_a.to(dt) / s_y, s_b.to(dt) / s_y
        shift = int(golden.quantize_ratio(float(torch.maximum(ra, rb).detach()), "fixed", 15).shift)
        lo, hi = limits.ADD_SHIFT_RANGE
        shift = min(max(shift, lo), hi)
        am = round_ste(ra * 2.0 ** shift).clamp(*limits.ADD_MULT_RANGE)
        bm = round_ste(rb * 2.0 ** shift).clamp(*limits.ADD_MULT_RANGE)
        y = fq(a * am + b * bm, torch.tensor(2.0 ** -shift, dtype=dt, device=a.device), self.act_bits)
        if self.relu:
            y = F.relu(y)
        if not self.training:
            self.last = {"a_mult": np.int32(int(am.detach())), "b_mult": np.int32(int(bm.detach())),
                         "shift": np.int32(shift), "scale_out": float(s_y.detach())}
        return y, self.s_y()

    @torch.no_grad()
    def apply_calibration(self, method: str = "omse") -> None:
        method = "mse" if method == "omse" else method
        self.s_y.set(self.observers["y"].scale(self.act_bits, method, self.requant == "pow2"))


class QMaxPool(QLayer):
    op = "maxpool"

    def __init__(self, kernel: int, stride: int, padding: int = 0):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward_real(self, x):
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def forward_int(self, x, s_x):
        if not self.training:
            self.last = {"scale_out": float(s_x.detach())}
        return F.max_pool2d(x, self.kernel, self.stride, self.padding), s_x

    def apply_calibration(self, method="omse"):
        pass


class QAvgPool(QLayer):
    """Window sum times ``mult * 2**-shift`` ~ 1/kernel²: ``golden.avgpool``. Its output scale
    follows from the input scale and the exact ratio."""

    op = "avgpool"

    def __init__(self, kernel: int, stride: int, requant="pow2", act_bits=8):
        super().__init__()
        self.kernel, self.stride, self.act_bits = kernel, stride, act_bits
        self.req = golden.quantize_ratio(1.0 / kernel**2, requant)
        self.ratio = float(golden.ratio_of(self.req))

    def forward_real(self, x):
        return F.avg_pool2d(x, self.kernel, self.stride)

    def forward_int(self, x, s_x):
        s = F.avg_pool2d(x, self.kernel, self.stride, divisor_override=1)
        y = fq(s, torch.tensor(self.ratio, dtype=x.dtype, device=x.device), self.act_bits)
        s_y = s_x / (self.kernel**2 * self.ratio)
        if not self.training:
            self.last = {"mult": np.int32(self.req.mult), "shift": np.int32(self.req.shift),
                         "scale_out": float(s_y.detach())}
        return y, s_y

    def apply_calibration(self, method="omse"):
        pass
