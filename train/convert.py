"""Conversion of any traceable ``nn.Module`` (torchvision ``resnet18``, ``train.models``) into an
integer-executable :class:`QuantNet`.

``convert(model, tile=4, ...)`` traces the model with ``torch.fx``, folds every batch-norm into
the convolution before it, fuses ReLUs into the conv/linear/add that feeds them, and maps every
op onto an op of the model-dir format: eligible 3x3 stride-1 convolutions become
:class:`~train.winograd_conv.WinogradConv2d`, every other convolution (stride 2, 1x1, 7x7, the
stem) a direct int8 :class:`~train.layers.QConv2d`; linear, residual adds, max and (adaptive)
average pooling get their integer forms. Flatten/view are aliases. Anything else is refused with
the op named. The network's layer list is the manifest's, one to one.
"""

from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from wino_gen.errors import UsageError

from .layers import QAdd, QAvgPool, QConv2d, QLinear, QMaxPool
from .quant import Observer, Scale, fq
from .winograd_conv import WinogradConv2d, eligible

MODES = ("float", "calib", "real", "quant")


class QuantNet(nn.Module):
    """A network as a list of format-level layers. ``mode``: ``float`` (real path, no
    quantization), ``calib`` (real path with observers), ``real`` (real path, each layer
    fake-quantizing its ``steps``: the ablation), ``quant`` (integer path; float64 and
    bit-exact with ``wino_gen.golden`` in eval)."""

    def __init__(self, specs: list[dict], layers: dict[str, nn.Module], input_shape, *, tile: int,
                 granularity: str, requant: str, algo: str, model_name: str = "model", act_bits: int = 8,
                 balance: str = "none"):
        super().__init__()
        self.specs = specs
        self.layers = nn.ModuleDict({_key(n): m for n, m in layers.items()})
        self.input_shape = list(input_shape)
        self.tile, self.granularity, self.requant, self.algo = tile, granularity, requant, algo
        self.balance = balance
        self.model_name, self.act_bits = model_name, act_bits
        self.s_in = Scale((), requant == "pow2")
        self.in_observer: Observer | None = None
        self.mode = "quant"
        self.exact_eval = True
        self.record: dict | None = None   # set to {} to capture integer activations

    def layer(self, name: str) -> nn.Module:
        return self.layers[_key(name)]

    def named_qlayers(self):
        for spec in self.specs:
            yield spec["name"], self.layer(spec["name"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode != "quant":
            if self.in_observer is not None:
                self.in_observer.update(x)
            env = {"input": x}
            for spec in self.specs:
                env[spec["name"]] = self.layer(spec["name"]).forward_real(*[env[i] for i in spec["inputs"]])
            return env[self.specs[-1]["name"]]
        dt = torch.float64 if (self.exact_eval and not self.training) else x.dtype
        s_in = self.s_in()
        xi = fq(x.to(dt), 1.0 / s_in.to(dt), self.act_bits)
        env = {"input": (xi, s_in)}
        if self.record is not None:
            self.record["input"] = xi.detach()
        for spec in self.specs:
            args = [t for i in spec["inputs"] for t in env[i]]
            env[spec["name"]] = self.layer(spec["name"]).forward_int(*args)
            if self.record is not None:
                self.record[spec["name"]] = env[spec["name"]][0].detach()
        y, s = env[self.specs[-1]["name"]]
        return (y * s.to(y.dtype)).to(x.dtype)

    # -- calibration ----------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, batches, method: str = "omse") -> None:
        """Observe the real (FP32) intermediates on ``batches`` and set every scale."""
        was, mode = self.training, self.mode
        self.eval()
        self.mode = "calib"
        self.in_observer = Observer()
        for _, m in self.named_qlayers():
            m.observers = {}
        for x in batches:
            self(x)
        p2 = self.requant == "pow2"
        self.s_in.set(self.in_observer.scale(self.act_bits, "mse" if method == "omse" else method, p2))
        for _, m in self.named_qlayers():
            m.apply_calibration(method)
            m.observers = None
        self.in_observer = None
        self.mode = mode
        self.train(was)

    def set_steps(self, steps_by_op: dict[str, set]) -> None:
        """Ablation: which steps each op kind fake-quantizes on the real path."""
        for _, m in self.named_qlayers():
            m.steps = set(steps_by_op.get(m.op, ()))

    def scale_parameters(self):
        return [p for n, p in self.named_parameters() if n.endswith(".log2") or n == "s_in.log2"]

    def weight_parameters(self):
        ids = {id(p) for p in self.scale_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]


def _key(name: str) -> str:
    return name.replace(".", "__")


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` with the batch-norm's running statistics."""
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    with torch.no_grad():
        inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        new.weight.copy_(conv.weight * inv.reshape(-1, 1, 1, 1))
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new.bias.copy_(bn.bias + (b - bn.running_mean) * inv)
    return new


_ADDS = (operator.add, operator.iadd, torch.add)
_FLATTEN = (torch.flatten,)


def convert(model: nn.Module, *, input_shape, tile: int = 4, granularity: str = "layer",
            requant: str = "pow2", algo: str = "winograd", stem_direct: bool = True,
            model_name: str | None = None, act_bits: int = 8, max_tap_shift: int = 12,
            balance: str = "smooth") -> QuantNet:
    """Convert ``model`` (an FP32 nn.Module; batch-norms are folded with their running
    statistics) into a :class:`QuantNet` for ``input_shape = (C, H, W)``. ``algo='direct'``
    makes every convolution direct (the PTQ-direct baseline); ``stem_direct`` keeps the first
    convolution direct (its input has few channels)."""
    if tile not in (2, 4, 6):
        raise UsageError(f"tile {tile}: allowed 2, 4, 6")
    model = model.eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot trace the model with torch.fx: {e}") from None
    ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    mods = dict(gm.named_modules())
    specs, layers = [], {}
    alias: dict[torch.fx.Node, str] = {}
    absorbed: set[torch.fx.Node] = set()
    first_conv = True
    out_shapes = {"input": list(input_shape)}

    def shape(node):
        return list(node.meta["tensor_meta"].shape[1:])

    def sole_user(node, kind):
        users = list(node.users)
        if len(users) != 1:
            return None
        u = users[0]
        if kind == "bn" and u.op == "call_module" and isinstance(mods[u.target], nn.BatchNorm2d):
            return u
        if kind == "relu" and ((u.op == "call_module" and isinstance(mods[u.target], nn.ReLU))
                               or (u.op == "call_function" and u.target in (F.relu, torch.relu))
                               or (u.op == "call_method" and u.target == "relu")):
            return u
        return None

    def src(node):
        return alias[node]

    for node in gm.graph.nodes:
        if node in absorbed:
            continue
        if node.op == "placeholder":
            alias[node] = "input"
            continue
        if node.op == "output":
            break
        if node.op == "get_attr":
            raise UsageError(f"unsupported graph node {node.name} (get_attr {node.target})")
        mod = mods.get(node.target) if node.op == "call_module" else None
        end, relu = node, False
        spec = {"inputs": [src(a) for a in node.args if isinstance(a, torch.fx.Node)]}
        if isinstance(mod, nn.Conv2d):
            conv = mod
            bn = sole_user(node, "bn")
            if bn is not None:
                conv = fold_bn(conv, mods[bn.target])
                absorbed.add(bn)
                end = bn
            r = sole_user(end, "relu")
            if r is not None:
                absorbed.add(r)
                end, relu = r, True
            name = node.target
            if algo == "winograd" and eligible(conv) and not (stem_direct and first_conv):
                layer = WinogradConv2d.from_conv(conv, tile=tile, granularity=granularity, requant=requant,
                                                 relu=relu, bias=True, act_bits=act_bits,
                                                 max_tap_shift=max_tap_shift, balance=balance)
                layer.s_M.log2.data.fill_(0)
                spec.update(op="winograd_conv3x3", padding=conv.padding[0], relu=relu)
            else:
                layer = QConv2d(conv, relu=relu, requant=requant, act_bits=act_bits)
                spec.update(op="direct_conv", stride=conv.stride[0], padding=conv.padding[0], relu=relu)
            first_conv = False
        elif isinstance(mod, nn.Linear):
            r = sole_user(node, "relu")
            if r is not None:
                absorbed.add(r)
                end, relu = r, True
            name = node.target
            layer = QLinear(mod, relu=relu, requant=requant, act_bits=act_bits)
            spec.update(op="linear", relu=relu)
        elif isinstance(mod, nn.MaxPool2d):
            k, s, p = (_single(mod.kernel_size), _single(mod.stride), _single(mod.padding))
            if mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
                raise UsageError(f"{node.target}: max pool with dilation or ceil_mode is not supported")
            name = node.target
            layer = QMaxPool(k, s, p)
            spec.update(op="maxpool", kernel=k, stride=s, padding=p)
        elif isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            H, W = shape(node.args[0])[1:]
            if isinstance(mod, nn.AdaptiveAvgPool2d):
                if _single(mod.output_size) != 1 or H != W:
                    raise UsageError(f"{node.target}: only global average pooling of square maps")
                k = s = H
            else:
                k, s = _single(mod.kernel_size), _single(mod.stride or mod.kernel_size)
                if _single(mod.padding) != 0:
                    raise UsageError(f"{node.target}: padded average pooling is not supported")
            name = node.target
            layer = QAvgPool(k, s, requant=requant, act_bits=act_bits)
            spec.update(op="avgpool", kernel=k, stride=s)
        elif (node.op == "call_function" and node.target in _ADDS) or \
                (node.op == "call_method" and node.target in ("add", "add_", "__iadd__")):
            if len(spec["inputs"]) != 2 or node.kwargs:
                raise UsageError(f"{node.name}: only the sum of two tensors is supported")
            r = sole_user(node, "relu")
            if r is not None:
                absorbed.add(r)
                end, relu = r, True
            name = node.name
            layer = QAdd(relu=relu, requant=requant, act_bits=act_bits)
            spec.update(op="add", relu=relu)
        elif (node.op == "call_function" and node.target in _FLATTEN) or \
                (node.op == "call_method" and node.target in ("flatten", "view", "reshape")):
            alias[node] = src(node.args[0])
            continue
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            alias[node] = src(node.args[0])
            continue
        else:
            what = (type(mod).__name__ if mod is not None
                    else f"{node.op} {getattr(node.target, '__name__', node.target)}")
            raise UsageError(f"unsupported op in the model: {node.name} ({what})")
        spec["name"] = name
        spec["in_shape"] = list(out_shapes[spec["inputs"][0]])   # as produced (no flatten)
        spec["out_shape"] = shape(end)
        specs.append(spec)
        out_shapes[name] = spec["out_shape"]
        layers[name] = layer
        alias[end] = name
    if not specs:
        raise UsageError("the model has no convertible layers")
    return QuantNet(specs, layers, input_shape, tile=tile, granularity=granularity, requant=requant,
                    algo=algo, model_name=model_name or type(model).__name__.lower(), act_bits=act_bits,
                    balance=balance)


def _single(v):
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise UsageError(f"non-square pooling parameter {v}")
        return int(v[0])
    return int(v)
