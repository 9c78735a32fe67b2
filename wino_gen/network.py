"""Replay a model dir in integers: each manifest op dispatched to its :mod:`wino_gen.golden`
function with the layer's stored parameters."""

from __future__ import annotations

import math

import numpy as np

from . import golden
from .config import AcceleratorConfig, signed_bits
from .format import INPUT, Layer, Model


def requant(layer: Layer, prefix: str) -> golden.Requant:
    a = layer.arrays
    return golden.Requant(a[f"{prefix}_mult"].astype(np.int64), a[f"{prefix}_shift"].astype(np.int64))


def winograd_weights(model: Model, layer: Layer) -> np.ndarray:
    """The Winograd-domain weights ``U`` of a ``winograd_conv3x3`` layer: stored, or (a layer
    with spatial weights only) golden's transform of ``W`` by its ``u_mult``/``u_shift``."""
    a = layer.arrays
    if "U" in a:
        return a["U"]
    return golden.transform_weights(a["W"], requant(layer, "u"), model.tile, model.weight_bits)


def run_layer(model: Model, layer: Layer, inputs: list[np.ndarray],
              cfg: AcceleratorConfig | None = None) -> np.ndarray:
    """One layer of ``model`` on int8 ``inputs`` (one array, two for ``add``), in the golden
    model, saturating at the model's ``act_bits`` and ``transform_bits``; with ``cfg`` the
    hardware ops are checked against its derived widths."""
    a, s, bits = layer.arrays, layer.spec, model.act_bits
    x = inputs[0]
    if layer.op == "winograd_conv3x3":
        return golden.winograd_conv3x3(
            x, winograd_weights(model, layer), a["bias"], tile=model.tile, v=requant(layer, "v"), m=requant(layer, "m"),
            y=requant(layer, "y"), m_align=a["m_align"].astype(np.int64), padding=s["padding"],
            relu=s["relu"], cfg=cfg, balance=model.balance, act_bits=bits,
            transform_bits=model.transform_bits)
    if layer.op == "direct_conv":
        return golden.direct_conv(x, a["W"], a["bias"], y=requant(layer, "y"), stride=s["stride"],
                                  padding=s["padding"], relu=s["relu"], cfg=cfg, act_bits=bits)
    if layer.op == "add":
        return golden.add(x, inputs[1], a_mult=int(a["a_mult"]), b_mult=int(a["b_mult"]),
                          shift=int(a["shift"]), relu=s["relu"], bits=bits)
    if layer.op == "maxpool":
        return golden.maxpool(x, kernel=s["kernel"], stride=s["stride"], padding=s.get("padding", 0), bits=bits)
    if layer.op == "avgpool":
        return golden.avgpool(x, kernel=s["kernel"], stride=s["stride"], mult=int(a["mult"]),
                              shift=int(a["shift"]), bits=bits)
    if layer.op == "linear":
        return golden.linear(x, a["W"], a["bias"], y=requant(layer, "y"), relu=s["relu"], bits=bits)
    raise ValueError(f"unknown op {layer.op!r}")


def config_for(model: Model, *, unroll: int = 4, unroll_in: int = 1, algo: str = "winograd",
               **overrides) -> AcceleratorConfig:
    """The smallest accelerator config that runs every conv and linear layer of ``model`` bit for
    bit: its tile, granularity, balance, requant mode and bit widths, and buffers, channel count,
    tap shift, multiplier and bias widths sized to its layers (narrower bias registers would
    wrap; a linear layer runs on the compute core, so its bias and requant count too).
    ``overrides`` set other fields (or widen)."""
    width, chans, align, mult = 4, unroll_in, 0, 2
    bias_lo = bias_hi = 0
    for layer in model.layers:
        if layer.op not in ("winograd_conv3x3", "direct_conv", "linear"):
            continue
        bias_lo = min(bias_lo, int(layer.arrays["bias"].min(initial=0)))
        bias_hi = max(bias_hi, int(layer.arrays["bias"].max(initial=0)))
        for key in ("v_mult", "m_mult", "y_mult", "u_mult"):
            if key in layer.arrays and layer.arrays[key].size:
                mult = max(mult, int(np.max(layer.arrays[key])).bit_length())
        if layer.op == "linear":     # the core runs it as a 1x1 direct layer: its bias and requant only
            continue
        c, h, w = layer.in_shape
        width = max(width, h, w, *layer.out_shape[1:])
        chans = max(chans, c, layer.out_shape[0])
        if "m_align" in layer.arrays:
            align = max(align, int(np.max(layer.arrays["m_align"], initial=0)))
    if algo == "direct":   # patches of up to 7x7: room for C * k * k elements per block
        taps = max((math.prod(layer.arrays["W"].shape[-2:]) for layer in model.layers
                    if layer.op == "direct_conv"), default=9)
        chans = max(chans, -(-chans * taps // 9))
    chans = -(-chans // unroll_in) * unroll_in
    m = model.manifest
    fields = dict(
        tile=model.tile, unroll=unroll, unroll_in=unroll_in, act_bits=model.act_bits,
        weight_bits=m.get("weight_bits", 8), transform_bits=m.get("transform_bits", 8),
        granularity=model.granularity, balance=model.balance, requant=model.requant, algo=algo,
        max_width=width, max_channels=chans, mult_bits=max(16, mult),
        bias_bits=max(8, signed_bits(bias_lo, bias_hi)),
        max_tap_shift=max(align, 1 if model.granularity == "tap" else 0) or 8)
    fields.update(overrides)
    return AcceleratorConfig(**fields)


def stored_inputs(layer: Layer) -> list[np.ndarray]:
    """The reference inputs a layer's npz holds (``x``, and ``x2`` for ``add``)."""
    return [layer.arrays["x"]] + ([layer.arrays["x2"]] if layer.op == "add" else [])


def run_model(model: Model, x: np.ndarray, cfg: AcceleratorConfig | None = None) -> dict[str, np.ndarray]:
    """Run the whole network from the int8 network input ``x``; returns every layer's output."""
    acts = {INPUT: np.asarray(x, dtype=np.int64)}
    for layer in model.layers:
        acts[layer.name] = run_layer(model, layer, [acts[src] for src in layer.inputs], cfg)
    return acts
