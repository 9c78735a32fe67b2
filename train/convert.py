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
                 balance: str = "none", weights: str = "winograd"):
        super().__init__()
        self.specs = specs
        self.layers = nn.ModuleDict({_key(n): m for n, m in layers.items()})
        self.input_shape = list(input_shape)
        self.tile, self.granularity, self.requant, self.algo = tile, granularity, requant, algo
        self.balance, self.weights = balance, weights
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
_RELUS = (F.relu, torch.relu)


def convert(model: nn.Module, *, input_shape, tile: int = 4, granularity: str = "layer",
            requant: str = "pow2", algo: str = "winograd", stem_direct: bool = True,
            model_name: str | None = None, act_bits: int = 8, max_tap_shift: int = 12,
            balance: str = "smooth", weights: str = "winograd") -> QuantNet:
    """Convert ``model`` (an FP32 nn.Module; batch-norms are folded with their running
    statistics) into a :class:`QuantNet` for ``input_shape = (C, H, W)``. ``algo='direct'``
    makes every convolution direct (the PTQ-direct baseline); ``stem_direct`` keeps the first
    convolution direct (its input has few channels); ``weights='spatial'`` makes the Winograd
    layers quantize int8 3x3 kernels and transform them as the hardware does
    (:meth:`~train.winograd_conv.WinogradConv2d.spatial_weights`)."""
    if tile not in (2, 4, 6):
        raise UsageError(f"tile {tile}: allowed 2, 4, 6")
    model = model.eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot trace the model with torch.fx: {e}") from None
    ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    conv = _Converter(gm, input_shape, tile=tile, granularity=granularity, requant=requant, algo=algo,
                      stem_direct=stem_direct, act_bits=act_bits, max_tap_shift=max_tap_shift, balance=balance,
                      weights=weights)
    specs, layers = conv.run()
    return QuantNet(specs, layers, input_shape, tile=tile, granularity=granularity, requant=requant,
                    algo=algo, model_name=model_name or type(model).__name__.lower(), act_bits=act_bits,
                    balance=balance, weights=weights)


class _Converter:
    """One pass over a traced graph: each node is absorbed (a batch-norm or ReLU fused into the
    layer before it), an alias (flatten, view, identity, dropout), or a format layer made by the
    handler of its module type or function (``_conv``, ``_linear``, ``_maxpool``, ``_avgpool``,
    ``_add``). A handler returns the layer, the last node it covers and the layer's op keys."""

    def __init__(self, gm: torch.fx.GraphModule, input_shape, *, tile, granularity, requant, algo, stem_direct,
                 act_bits, max_tap_shift, balance, weights="winograd"):
        self.gm, self.mods = gm, dict(gm.named_modules())
        self.tile, self.granularity, self.requant, self.algo = tile, granularity, requant, algo
        self.stem_direct, self.act_bits = stem_direct, act_bits
        self.max_tap_shift, self.balance, self.weights = max_tap_shift, balance, weights
        self.specs: list[dict] = []
        self.layers: dict[str, nn.Module] = {}
        self.alias: dict[torch.fx.Node, str] = {}
        self.absorbed: set[torch.fx.Node] = set()
        self.first_conv = True
        self.out_shapes = {"input": list(input_shape)}

    def run(self) -> tuple[list[dict], dict[str, nn.Module]]:
        for node in self.gm.graph.nodes:
            if node in self.absorbed:
                continue
            if node.op == "placeholder":
                self.alias[node] = "input"
                continue
            if node.op == "output":
                break
            if node.op == "get_attr":
                raise UsageError(f"unsupported graph node {node.name} (get_attr {node.target})")
            self._node(node)
        if not self.specs:
            raise UsageError("the model has no convertible layers")
        return self.specs, self.layers

    def _node(self, node: torch.fx.Node) -> None:
        mod = self.mods.get(node.target) if node.op == "call_module" else None
        inputs = [self.alias[a] for a in node.args if isinstance(a, torch.fx.Node)]
        if _is_alias(node, mod):
            self.alias[node] = self.alias[node.args[0]]
            return
        handler = self._handler(node, mod)
        if handler is None:
            what = (type(mod).__name__ if mod is not None
                    else f"{node.op} {getattr(node.target, '__name__', node.target)}")
            raise UsageError(f"unsupported op in the model: {node.name} ({what})")
        layer, end, fields = handler(node, mod, inputs)
        name = node.target if mod is not None else node.name
        spec = {"inputs": inputs, **fields, "name": name,
                "in_shape": list(self.out_shapes[inputs[0]]),     # as produced (no flatten)
                "out_shape": _shape(end)}
        self.specs.append(spec)
        self.out_shapes[name] = spec["out_shape"]
        self.layers[name] = layer
        self.alias[end] = name

    def _handler(self, node, mod):
        if isinstance(mod, nn.Conv2d):
            return self._conv
        if isinstance(mod, nn.Linear):
            return self._linear
        if isinstance(mod, nn.MaxPool2d):
            return self._maxpool
        if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            return self._avgpool
        if (node.op == "call_function" and node.target in _ADDS) or \
                (node.op == "call_method" and node.target in ("add", "add_", "__iadd__")):
            return self._add
        return None

    # -- fusion ---------------------------------------------------------------------------
    def _sole_user(self, node, kind):
        """The node's only user if it is a batch-norm (``kind='bn'``) or a ReLU (``'relu'``)."""
        users = list(node.users)
        if len(users) != 1:
            return None
        u = users[0]
        if kind == "bn" and u.op == "call_module" and isinstance(self.mods[u.target], nn.BatchNorm2d):
            return u
        if kind == "relu" and ((u.op == "call_module" and isinstance(self.mods[u.target], nn.ReLU))
                               or (u.op == "call_function" and u.target in _RELUS)
                               or (u.op == "call_method" and u.target == "relu")):
            return u
        return None

    def _fuse_relu(self, node) -> tuple[torch.fx.Node, bool]:
        """``(last node, relu)``: a ReLU that is the node's only user becomes part of the layer."""
        r = self._sole_user(node, "relu")
        if r is None:
            return node, False
        self.absorbed.add(r)
        return r, True

    # -- handlers -------------------------------------------------------------------------
    def _conv(self, node, conv: nn.Conv2d, inputs):
        bn = self._sole_user(node, "bn")
        end = node
        if bn is not None:
            conv = fold_bn(conv, self.mods[bn.target])
            self.absorbed.add(bn)
            end = bn
        end, relu = self._fuse_relu(end)
        winograd = self.algo == "winograd" and eligible(conv) and not (self.stem_direct and self.first_conv)
        self.first_conv = False
        if winograd:
            layer = WinogradConv2d.from_conv(conv, tile=self.tile, granularity=self.granularity,
                                             requant=self.requant, relu=relu, bias=True, act_bits=self.act_bits,
                                             max_tap_shift=self.max_tap_shift, balance=self.balance,
                                             weights=self.weights)
            layer.s_M.log2.data.fill_(0)
            return layer, end, {"op": "winograd_conv3x3", "padding": conv.padding[0], "relu": relu}
        layer = QConv2d(conv, relu=relu, requant=self.requant, act_bits=self.act_bits)
        return layer, end, {"op": "direct_conv", "stride": conv.stride[0], "padding": conv.padding[0], "relu": relu}

    def _linear(self, node, mod: nn.Linear, inputs):
        end, relu = self._fuse_relu(node)
        return (QLinear(mod, relu=relu, requant=self.requant, act_bits=self.act_bits), end,
                {"op": "linear", "relu": relu})

    def _maxpool(self, node, mod: nn.MaxPool2d, inputs):
        k, s, p = (_single(mod.kernel_size), _single(mod.stride), _single(mod.padding))
        if mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
            raise UsageError(f"{node.target}: max pool with dilation or ceil_mode is not supported")
        return QMaxPool(k, s, p), node, {"op": "maxpool", "kernel": k, "stride": s, "padding": p}

    def _avgpool(self, node, mod: nn.AdaptiveAvgPool2d | nn.AvgPool2d, inputs):
        H, W = _shape(node.args[0])[1:]
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            if _single(mod.output_size) != 1 or H != W:
                raise UsageError(f"{node.target}: only global average pooling of square maps")
            k = s = H
        else:
            k, s = _single(mod.kernel_size), _single(mod.stride or mod.kernel_size)
            if _single(mod.padding) != 0:
                raise UsageError(f"{node.target}: padded average pooling is not supported")
        return (QAvgPool(k, s, requant=self.requant, act_bits=self.act_bits), node,
                {"op": "avgpool", "kernel": k, "stride": s})

    def _add(self, node, mod, inputs):
        if len(inputs) != 2 or node.kwargs:
            raise UsageError(f"{node.name}: only the sum of two tensors is supported")
        end, relu = self._fuse_relu(node)
        return QAdd(relu=relu, requant=self.requant, act_bits=self.act_bits), end, {"op": "add", "relu": relu}


def _is_alias(node: torch.fx.Node, mod) -> bool:
    """Flatten, view, reshape, identity and dropout pass their input through unchanged."""
    return ((node.op == "call_function" and node.target in _FLATTEN)
            or (node.op == "call_method" and node.target in ("flatten", "view", "reshape"))
            or isinstance(mod, (nn.Identity, nn.Dropout)))


def _shape(node: torch.fx.Node) -> list[int]:
    return list(node.meta["tensor_meta"].shape[1:])


def _single(v):
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise UsageError(f"non-square pooling parameter {v}")
        return int(v[0])
    return int(v)
