"""A small synthetic network written as a model dir, for examples, tests and simulation.

``tiny``: two Winograd 3x3 layers, a residual add, a direct stride-2 3x3 layer, a third
Winograd layer, global average pooling and a linear classifier. Float weights come from a fixed
seed; every requant ratio is calibrated on the integer data itself (max-abs per step, per tap in
``tap`` mode), and the reference outputs are produced by :mod:`wino_gen.golden` through
:mod:`wino_gen.network`, so the files are exactly what the integer model computes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import golden, winograd
from .format import INPUT, Layer, Model, load_model, write_model
from .limits import int_range
from .network import run_layer

HI = int_range(8)[1]  # calibrate to the int8 maximum


def _i32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int32)


def _req(ratio, mode) -> golden.Requant:
    r = golden.quantize_ratio(ratio, mode)
    return golden.Requant(_i32(r.mult), _i32(r.shift))


def _tap_pow2(t: np.ndarray, granularity: str) -> np.ndarray:
    """Per-tap multipliers on a layer scale: 1 everywhere (layer), else powers of two that
    bring each tap's max-abs ``t[i, j]`` close to the largest one (tap)."""
    if granularity == "layer":
        return np.ones_like(t, dtype=np.float64)
    t = np.maximum(t, 1e-12)
    return np.exp2(np.floor(np.log2(t.max() / t)))


class _Builder:
    def __init__(self, tile, granularity, requant, rng, samples, in_shape, in_scale, balance="none"):
        self.tile, self.gran, self.mode, self.rng, self.balance = tile, granularity, requant, rng, balance
        self.manifest = {"model": "tiny", "tile": tile, "granularity": granularity, "requant": requant,
                         "act_bits": 8, "weight_bits": 8, "transform_bits": 8,
                         "input": {"shape": list(in_shape), "scale": in_scale}, "layers": []}
        if balance != "none":
            self.manifest["balance"] = balance
        self.arrays: dict[str, dict] = {}
        lo, hi = int_range(8)
        self.acts = {INPUT: rng.integers(lo // 2, hi // 2 + 1, (samples, *in_shape))}
        self.scales = {INPUT: in_scale}

    def _add(self, spec, arrays, scale_out):
        model = Model(Path("."), self.manifest, [])
        layer = Layer(spec["name"], spec["op"], spec["inputs"], spec, f"{spec['name']}.npz", arrays)
        y = run_layer(model, layer, [self.acts[s] for s in spec["inputs"]])
        arrays["x"] = self.acts[spec["inputs"][0]].astype(np.int8)
        if spec["op"] == "add":
            arrays["x2"] = self.acts[spec["inputs"][1]].astype(np.int8)
        arrays["y"] = y.astype(np.int8)
        spec["in_shape"] = list(self.acts[spec["inputs"][0]].shape[1:])
        spec["out_shape"] = list(y.shape[1:])
        spec["scale_out"] = float(scale_out)
        self.manifest["layers"].append(spec)
        self.arrays[spec["name"]] = arrays
        self.acts[spec["name"]] = y
        self.scales[spec["name"]] = scale_out

    def winograd(self, name, src, K, relu=True):
        x = self.acts[src]
        C, n, m = x.shape[1], self.tile + 2, self.tile
        g = self.rng.normal(0, math.sqrt(2 / (9 * C)), (K, C, 3, 3))
        Uf = winograd.weight_transform(g, m, self.balance)
        u_max = np.abs(Uf).max(axis=(0, 1))
        s_u = u_max.max() / HI / _tap_pow2(u_max, self.gran)
        U = golden.quantize_weights_winograd(g, m, s_u, balance=self.balance)
        # V: calibrate on the exact transformed input
        _, vraw = golden.input_transform(golden.tile_input(x, m), m, self.balance)
        v_max = np.abs(vraw).max(axis=(0, 1, 2, 3))
        rv = HI / v_max.max() * _tap_pow2(v_max, self.gran)
        v = _req(rv, self.mode)
        s_v = 1 / golden.ratio_of(v)                       # V scale in units of s_x
        P = golden.winograd_channel_sum(x, U, tile=m, v=v, balance=self.balance)
        p_max = np.maximum(np.abs(P).max(axis=(0, 1, 2, 3)), 1)
        s_p = s_u * s_v
        want = p_max * s_p / HI                           # desired M scale per tap
        s_m0 = want.min() if self.gran == "tap" else want.max()
        align = np.clip(np.ceil(np.log2(want / s_m0) - 1e-9), 0, 8).astype(np.int64)
        mreq = _req(s_p / (s_m0 * np.exp2(align)), self.mode)
        s_m0 = float((s_p / golden.ratio_of(mreq) / np.exp2(align)).flat[0])
        bias = _i32(np.rint(self.rng.normal(0, 0.05, K) / (s_m0 * self.scales[src])))
        yb = golden.winograd_output_sum(P, bias, tile=m, m=mreq, m_align=align, balance=self.balance)
        y_max = max(int((np.maximum(yb, 0) if relu else np.abs(yb)).max()), 1)
        yreq = _req(HI / y_max, self.mode)
        arrays = {"U": U.astype(np.int8), "bias": bias, "v_mult": _i32(np.broadcast_to(v.mult, (n, n))),
                  "v_shift": _i32(np.broadcast_to(v.shift, (n, n))),
                  "m_mult": _i32(np.broadcast_to(mreq.mult, (n, n))),
                  "m_shift": _i32(np.broadcast_to(mreq.shift, (n, n))), "m_align": _i32(align * np.ones((n, n))),
                  "y_mult": _i32(yreq.mult), "y_shift": _i32(yreq.shift)}
        spec = {"name": name, "op": "winograd_conv3x3", "inputs": [src], "padding": 1, "relu": relu}
        self._add(spec, arrays, self.scales[src] * s_m0 / float(golden.ratio_of(yreq)))

    def direct(self, name, src, K, stride, relu=True):
        x = self.acts[src]
        C = x.shape[1]
        w = self.rng.normal(0, math.sqrt(2 / (9 * C)), (K, C, 3, 3))
        s_w = np.abs(w).max() / HI
        W = golden.fake_rq(w, 1 / s_w).astype(np.int8)
        bias = _i32(np.rint(self.rng.normal(0, 0.05, K) / (s_w * self.scales[src])))
        acc = golden.direct_accumulate(x, W, stride=stride, padding=1) + bias[None, :, None, None]
        yreq = _req(HI / max(int(np.maximum(acc, 0).max() if relu else np.abs(acc).max()), 1), self.mode)
        arrays = {"W": W, "bias": bias, "y_mult": _i32(yreq.mult), "y_shift": _i32(yreq.shift)}
        spec = {"name": name, "op": "direct_conv", "inputs": [src], "stride": stride, "padding": 1, "relu": relu}
        self._add(spec, arrays, self.scales[src] * s_w / float(golden.ratio_of(yreq)))

    def add(self, name, a, b, relu=True):
        s_a, s_b = self.scales[a], self.scales[b]
        s_o = 2 * max(s_a, s_b)
        shift = 14
        arrays = {"a_mult": _i32(round(s_a / s_o * (1 << shift))), "b_mult": _i32(round(s_b / s_o * (1 << shift))),
                  "shift": _i32(shift)}
        self._add({"name": name, "op": "add", "inputs": [a, b], "relu": relu}, arrays, s_o)

    def avgpool(self, name, src):
        k = self.acts[src].shape[2]
        shift = 16
        arrays = {"mult": _i32(round((1 << shift) / (k * k))), "shift": _i32(shift)}
        self._add({"name": name, "op": "avgpool", "inputs": [src], "kernel": k, "stride": k},
                  arrays, self.scales[src])

    def linear(self, name, src, out):
        x = self.acts[src].reshape(len(self.acts[src]), -1)
        w = self.rng.normal(0, math.sqrt(1 / x.shape[1]), (out, x.shape[1]))
        s_w = np.abs(w).max() / HI
        W = golden.fake_rq(w, 1 / s_w).astype(np.int8)
        acc = golden.linear_accumulate(x, W)
        yreq = _req(HI / max(int(np.abs(acc).max()), 1), self.mode)
        arrays = {"W": W, "bias": _i32(np.zeros(out)), "y_mult": _i32(yreq.mult), "y_shift": _i32(yreq.shift)}
        self._add({"name": name, "op": "linear", "inputs": [src], "relu": False}, arrays,
                  self.scales[src] * s_w / float(golden.ratio_of(yreq)))


def make_tiny(path: str | Path, *, tile: int = 4, granularity: str = "layer", requant: str = "pow2",
              seed: int = 0, samples: int = 2, channels: int = 8, size: int = 10, balance: str = "none") -> Model:
    """Write the ``tiny`` network as a model dir at ``path`` and return it (validated)."""
    b = _Builder(tile, granularity, requant, np.random.default_rng(seed), samples,
                 (channels // 2, size, size), 1 / 32, balance)
    b.winograd("conv1", INPUT, channels)
    b.winograd("conv2", "conv1", channels)
    b.add("res", "conv2", "conv1")
    b.direct("down", "res", 2 * channels, stride=2)
    b.winograd("conv3", "down", 2 * channels)
    b.avgpool("pool", "conv3")
    b.linear("fc", "pool", 10)
    write_model(path, b.manifest, b.arrays)
    return load_model(path)
