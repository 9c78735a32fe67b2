"""Host side of the accelerator's interface: turn one layer (int8 input, weights, requant
parameters) into the config word and stream beats of :mod:`rtl.top`, and output beats back into
an image. The stream orders defined here are the hardware's interface; the simulator
(``sim.driver``) and the self-test top (:mod:`rtl.selftest`) both use them."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from wino_gen import golden
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError

from .pe import pe_geometry, weight_stream_layout
from .tilebuf import MAX_PAD, geometry, input_beat_layout
from .top import (
    DirectAccel,
    WinogradAccel,
    direct_layer_layout,
    direct_out_layout,
    direct_x_layout,
    winograd_layer_layout,
    winograd_out_layout,
)


def _width(shape) -> int:
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def pack(shape, value) -> int:
    """Integer bit pattern of ``value`` (nested lists / dicts / ints) in ``shape``."""
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        out = 0
        for i, v in enumerate(value):
            out |= pack(shape.elem_shape, v) << (i * w)
        return out
    if isinstance(shape, data.StructLayout):
        out = 0
        for name, field in shape:
            if name in value:
                out |= pack(field.shape, value[name]) << field.offset
        return out
    s = Shape.cast(shape)
    v = int(value)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{v} does not fit {s}")
    return v & ((1 << s.width) - 1) if s.width else 0


def unpack(shape, bits: int):
    """Inverse of :func:`pack` (signed shapes give negative ints)."""
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        return [unpack(shape.elem_shape, (bits >> (i * w)) & ((1 << w) - 1))
                for i in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: unpack(f.shape, (bits >> f.offset) & ((1 << _width(f.shape)) - 1))
                for name, f in shape}
    s = Shape.cast(shape)
    bits &= (1 << s.width) - 1
    if s.signed and s.width and bits >> (s.width - 1):
        bits -= 1 << s.width
    return bits


class DoesNotFit(UsageError):
    """The layer exceeds what the generated hardware was built for (a config limit)."""


def _ceil(a, b):
    return -(-a // b)


def _pack_config(layout, d):
    try:
        return pack(layout, d)
    except ValueError as e:
        raise DoesNotFit(f"layer does not fit the accelerator's config port: {e} ({d})") from None


def _params(req_mult, req_shift, n_p, fixed, what):
    shift = np.asarray(req_shift, dtype=np.int64).ravel()
    mult = np.asarray(req_mult, dtype=np.int64).ravel()
    if n_p == 1:
        if len(set(shift.tolist())) > 1 or len(set(mult.tolist())) > 1:
            raise DoesNotFit(f"{what}: per-tap scales need a granularity=tap accelerator")
        shift, mult = shift[:1], mult[:1]
    else:
        shift = np.broadcast_to(shift, (n_p,)) if shift.size == 1 else shift
        mult = np.broadcast_to(mult, (n_p,)) if mult.size == 1 else mult
    if not fixed and np.any(mult != 1):
        raise DoesNotFit(f"{what}: mult != 1 needs a requant=fixed accelerator")
    if np.any(shift < -128) or np.any(shift > 127):
        raise DoesNotFit(f"{what}: shift out of the hardware range -128..127")
    out = {"shift": shift.tolist()}
    if fixed:
        out["mult"] = mult.tolist()
    return out


class WinogradLayer:
    """Streams of one Winograd layer for :class:`rtl.top.WinogradAccel`."""

    def __init__(self, cfg: AcceleratorConfig, U, bias, *, v, m, y, m_align=0, padding=1,
                 relu=False):
        self.cfg = cfg
        n, mt, ui, un = cfg.n, cfg.tile, cfg.unroll_in, cfg.unroll
        U = np.asarray(U, dtype=np.int64)
        K, C = U.shape[:2]
        if U.shape[2:] != (n, n):
            raise DoesNotFit(f"U is for n={U.shape[2]}, the accelerator has tile {mt} (n={n})")
        if max(C, K) > cfg.max_channels:
            raise DoesNotFit(f"C={C}, K={K}: channels exceed max_channels={cfg.max_channels}")
        if not 0 <= padding <= min(MAX_PAD, 2):
            raise DoesNotFit(f"padding {padding}: the tile buffer supports 0..2")
        self.K, self.C, self.pad, self.relu = K, C, padding, bool(relu)
        self.n_cg, self.n_kb = _ceil(C, ui), _ceil(K, un)
        Up = np.zeros((self.n_kb * un, self.n_cg * ui, n * n), dtype=np.int64)
        Up[:K, :C] = U.reshape(K, C, n * n)
        self.Up = Up
        self.bias = np.zeros(self.n_kb * un, dtype=np.int64)
        self.bias[:K] = np.asarray(bias, dtype=np.int64)
        S = n * n
        n_p = S if cfg.granularity == "tap" else 1
        fixed = cfg.requant == "fixed"
        align = np.broadcast_to(np.asarray(m_align, dtype=np.int64), (n, n)).ravel()
        if np.any(align < 0) or np.any(align > cfg.tap_shift):
            raise DoesNotFit(f"m_align exceeds the accelerator's tap shift ({cfg.tap_shift})")
        self.params = {"v": _params(v.mult, v.shift, n_p, fixed, "v requant"),
                       "out": {"m": _params(m.mult, m.shift, n_p, fixed, "m requant"),
                               "y": _params(y.mult, y.shift, 1, fixed, "y requant"),
                               "relu": int(bool(relu))}}
        if cfg.tap_shift:
            self.params["out"]["align"] = align.tolist()
        self.wlay = weight_stream_layout(cfg)
        self.xlay = input_beat_layout(cfg)

    def top(self):
        return WinogradAccel(self.cfg)

    def geometry(self, H, W):
        cfg, n, mt = self.cfg, self.cfg.n, self.cfg.tile
        if max(H, W) > cfg.max_width:
            raise DoesNotFit(f"image {H}x{W} exceeds max_width={cfg.max_width}")
        Ho, Wo = H + 2 * self.pad - 2, W + 2 * self.pad - 2
        if min(Ho, Wo) < 1:
            raise DoesNotFit(f"image {H}x{W} with padding {self.pad} has no 3x3 output")
        th, tw = _ceil(Ho, mt), _ceil(Wo, mt)
        nxb = _ceil(tw * mt + 2, n)
        if nxb > geometry(cfg)["xb_max"]:
            raise DoesNotFit("row too long for the line buffer")
        return Ho, Wo, th, tw, nxb

    def word(self, H, W):
        _, _, th, tw, nxb = self.geometry(H, W)
        d = {"geom": {"h": H, "w": W, "pad": self.pad, "n_cg": self.n_cg, "n_kb": self.n_kb,
                      "th": th, "tw": tw, "nxb": nxb}, **self.params}
        return _pack_config(winograd_layer_layout(self.cfg), d)

    def x_beats(self, x):
        """x[C, H, W]: for each image row, channel group, n-column beat (padded columns)."""
        n, ui = self.cfg.n, self.cfg.unroll_in
        C, H, W = x.shape
        _, _, _, _, nxb = self.geometry(H, W)
        xp = np.zeros((self.n_cg * ui, H, nxb * n), dtype=np.int64)
        xp[:C, :, self.pad:self.pad + W] = x
        beats = []
        for y in range(H):
            for cg in range(self.n_cg):
                for xb in range(nxb):
                    blk = xp[cg * ui:(cg + 1) * ui, y, xb * n:(xb + 1) * n]   # [ui, n]
                    beats.append(pack(self.xlay, blk.T.tolist()))
        return beats

    def w_beats(self, H, W):
        _, _, th, _, _ = self.geometry(H, W)
        ui, un = self.cfg.unroll_in, self.cfg.unroll
        per_block = []
        for kb in range(self.n_kb):
            b = self.bias[kb * un:(kb + 1) * un].tolist()
            for cg in range(self.n_cg):
                w = self.Up[kb * un:(kb + 1) * un, cg * ui:(cg + 1) * ui]
                per_block.append(pack(self.wlay, {"data": w.tolist(), "bias": b}))
        return per_block * th

    def n_out(self, H, W):
        _, _, th, tw, _ = self.geometry(H, W)
        return th * self.n_kb * tw * self.cfg.unroll

    def steps(self, H, W):
        _, _, th, tw, _ = self.geometry(H, W)
        return th * self.n_kb * tw * self.n_cg

    def collect(self, beats, H, W):
        cfg, mt, un = self.cfg, self.cfg.tile, self.cfg.unroll
        Ho, Wo, th, tw, _ = self.geometry(H, W)
        olay = winograd_out_layout(cfg)
        t = np.zeros((1, self.n_kb * un, th, tw, mt, mt), dtype=np.int64)
        it = iter(beats)
        for ty in range(th):
            for kb in range(self.n_kb):
                for tx in range(tw):
                    for k in range(un):
                        t[0, kb * un + k, ty, tx] = np.array(unpack(olay, next(it))).reshape(mt, mt)
        return golden.untile_output(t, Ho, Wo)[0, :self.K]


class DirectLayer:
    """Streams of one direct convolution (any kernel, stride, padding) for
    :class:`rtl.top.DirectAccel`: im2col chunks of ``unroll_in * n²`` patch elements."""

    def __init__(self, cfg: AcceleratorConfig, W, bias, *, y, stride=1, padding=0, relu=False):
        self.cfg = cfg
        S, L, depth = pe_geometry(cfg)
        W = np.asarray(W, dtype=np.int64)
        K, C, kh, kw = W.shape
        self.K, self.C, self.kh, self.kw = K, C, kh, kw
        if K > cfg.max_channels:
            raise DoesNotFit(f"K={K} exceeds max_channels={cfg.max_channels}")
        self.stride, self.pad, self.relu = stride, padding, bool(relu)
        E = C * kh * kw
        self.n_step = _ceil(E, L)
        if self.n_step > depth:
            raise DoesNotFit(f"{C}x{kh}x{kw} patch needs {self.n_step} weight words per block, "
                             f"the buffer has {depth} (raise max_channels)")
        un = cfg.unroll
        self.n_kb = _ceil(K, un)
        Wf = np.zeros((self.n_kb * un, self.n_step * L), dtype=np.int64)
        Wf[:K, :E] = W.reshape(K, E)
        self.Wf = Wf
        self.bias = np.zeros(self.n_kb * un, dtype=np.int64)
        self.bias[:K] = np.asarray(bias, dtype=np.int64)
        self.params = {"y": _params(y.mult, y.shift, 1, cfg.requant == "fixed", "y requant"),
                       "relu": int(bool(relu))}
        self.wlay = weight_stream_layout(cfg)
        self.S, self.L = S, L

    def top(self):
        return DirectAccel(self.cfg)

    def geometry(self, H, W):
        Ho = (H + 2 * self.pad - self.kh) // self.stride + 1
        Wo = (W + 2 * self.pad - self.kw) // self.stride + 1
        if min(Ho, Wo) < 1:
            raise DoesNotFit(f"image {H}x{W} is smaller than the {self.kh}x{self.kw} kernel")
        if max(Ho, Wo) > self.cfg.max_width:
            raise DoesNotFit(f"output {Ho}x{Wo} exceeds max_width={self.cfg.max_width}")
        return Ho, Wo

    def word(self, H, W):
        Ho, Wo = self.geometry(H, W)
        d = {"n_step": self.n_step, "n_pix": Ho * Wo, "n_kb": self.n_kb, **self.params}
        return _pack_config(direct_layer_layout(self.cfg), d)

    def x_beats(self, x):
        from numpy.lib.stride_tricks import sliding_window_view
        C, H, W = x.shape
        Ho, Wo = self.geometry(H, W)
        xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (self.pad,) * 2, (self.pad,) * 2))
        win = sliding_window_view(xp, (self.kh, self.kw), axis=(1, 2))[:, ::self.stride, ::self.stride]
        cols = win[:, :Ho, :Wo].transpose(1, 2, 0, 3, 4).reshape(Ho * Wo, -1)
        flat = np.zeros((Ho * Wo, self.n_step * self.L), dtype=np.int64)
        flat[:, :cols.shape[1]] = cols
        xlay = direct_x_layout(self.cfg)
        ui, S = self.cfg.unroll_in, self.S
        one = [pack(xlay, flat[p, s * self.L:(s + 1) * self.L].reshape(ui, S).tolist())
               for p in range(Ho * Wo) for s in range(self.n_step)]
        return one * self.n_kb

    def w_beats(self, H, W):
        un, ui, S, L = self.cfg.unroll, self.cfg.unroll_in, self.S, self.L
        beats = []
        for kb in range(self.n_kb):
            b = self.bias[kb * un:(kb + 1) * un].tolist()
            for s in range(self.n_step):
                w = self.Wf[kb * un:(kb + 1) * un, s * L:(s + 1) * L].reshape(un, ui, S)
                beats.append(pack(self.wlay, {"data": w.tolist(), "bias": b}))
        return beats

    def n_out(self, H, W):
        Ho, Wo = self.geometry(H, W)
        return self.n_kb * Ho * Wo

    def steps(self, H, W):
        Ho, Wo = self.geometry(H, W)
        return self.n_kb * Ho * Wo * self.n_step

    def collect(self, beats, H, W):
        Ho, Wo = self.geometry(H, W)
        olay = direct_out_layout(self.cfg)
        un = self.cfg.unroll
        out = np.zeros((self.n_kb * un, Ho * Wo), dtype=np.int64)
        it = iter(beats)
        for kb in range(self.n_kb):
            for p in range(Ho * Wo):
                out[kb * un:(kb + 1) * un, p] = unpack(olay, next(it))
        return out[:self.K].reshape(self.K, Ho, Wo)
