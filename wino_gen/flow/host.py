"""Host side of the accelerator's interface: turn one layer (int8 input, weights, requant
parameters) into the config word and stream beats of the tops in :mod:`rtl.top`, and output
beats back into an image.

The stream orders are :mod:`wino_gen.schedule`'s and the numeric limits :mod:`wino_gen.limits`';
only the bit layouts come from ``rtl`` (its ``amaranth.lib.data`` layouts). Whoever runs a layer
builds the top itself: the simulator (``sim.driver``) and the self-test, whose ROMs hold the
layer that :func:`selftest_layer` makes and :func:`selftest_data` encodes.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data
from numpy.lib.stride_tricks import sliding_window_view

from rtl.pe import weight_stream_layout
from rtl.selftest import SelfTestData
from rtl.tilebuf import input_beat_layout
from rtl.top import (
    direct_layer_layout,
    direct_out_layout,
    direct_x_layout,
    winograd_layer_layout,
    winograd_out_layout,
    winograd_w_layout,
)

from .. import golden, limits, schedule
from ..config import AcceleratorConfig
from ..errors import UsageError

# -- bit patterns -----------------------------------------------------------------------------


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
    lo, hi = limits.int_range(s.width) if s.signed else (0, (1 << s.width) - 1)
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


# -- layers -----------------------------------------------------------------------------------


class DoesNotFit(UsageError):
    """The layer exceeds what the generated hardware was built for (a config limit)."""


def _pack_config(layout, d):
    try:
        return pack(layout, d)
    except ValueError as e:
        raise DoesNotFit(f"layer does not fit the accelerator's config port: {e} ({d})") from None


def _params(req_mult, req_shift, n_p, fixed, what):
    """The config port's requant fields: ``n_p`` (mult,) shift pairs in the hardware's ranges."""
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
    lo, hi = limits.HW_SHIFT_RANGE
    if np.any(shift < lo) or np.any(shift > hi):
        raise DoesNotFit(f"{what}: shift out of the hardware range {lo}..{hi}")
    out = {"shift": shift.tolist()}
    if fixed:
        out["mult"] = mult.tolist()
    return out


class WinogradLayer:
    """Streams of one Winograd layer for :class:`rtl.top.WinogradAccel`: the Winograd-domain
    weights ``U[K, C, n, n]``, or, for an engine with ``cfg.weights == "spatial"``, the int8
    kernels ``W[K, C, 3, 3]`` and their U requant ``u`` (the engine computes
    ``golden.transform_weights(W, u)`` itself)."""

    def __init__(self, cfg: AcceleratorConfig, U=None, bias=None, *, v, m, y, W=None, u=None, m_align=0,
                 padding=1, relu=False):
        self.cfg = cfg
        n, mt, ui, un = cfg.n, cfg.tile, cfg.unroll_in, cfg.unroll
        spatial = cfg.weights == "spatial"
        if spatial != (W is not None) or spatial != (u is not None) or spatial == (U is not None):
            raise ValueError("a weights='spatial' engine takes W and u, a weights='winograd' engine U")
        wts = np.asarray(W if spatial else U, dtype=np.int64)
        K, C = wts.shape[:2]
        taps = (3, 3) if spatial else (n, n)
        if wts.shape[2:] != taps:
            raise DoesNotFit(f"U is for n={wts.shape[2]}, the accelerator has tile {mt} (n={n})" if not spatial
                             else f"W holds {wts.shape[2]}x{wts.shape[3]} kernels, the weight transform takes 3x3")
        if max(C, K) > cfg.max_channels:
            raise DoesNotFit(f"C={C}, K={K}: channels exceed max_channels={cfg.max_channels}")
        lo, hi = limits.HOST_PADDING
        if not lo <= padding <= hi:
            raise DoesNotFit(f"padding {padding}: the tile buffer supports {lo}..{hi}")
        self.K, self.C, self.pad, self.relu = K, C, padding, bool(relu)
        # the channel blocking needs no image: take it from the smallest image's geometry
        blocks = schedule.winograd_geometry(cfg, C, K, 3, 3, padding)
        self.n_cg, self.n_kb = blocks.n_cg, blocks.n_kb
        T = taps[0] * taps[1]
        Up = np.zeros((self.n_kb * un, self.n_cg * ui, T), dtype=np.int64)
        Up[:K, :C] = wts.reshape(K, C, T)
        self.Up = Up
        self.bias = np.zeros(self.n_kb * un, dtype=np.int64)
        self.bias[:K] = np.asarray(bias, dtype=np.int64)
        S = schedule.pe_geometry(cfg).taps
        n_p = S if cfg.granularity == "tap" else 1
        fixed = cfg.requant == "fixed"
        align = np.broadcast_to(np.asarray(m_align, dtype=np.int64), (n, n)).ravel()
        if np.any(align < 0) or np.any(align > cfg.tap_shift):
            raise DoesNotFit(f"m_align exceeds the accelerator's tap shift ({cfg.tap_shift})")
        self.params = {"v": _params(v.mult, v.shift, n_p, fixed, "v requant"),
                       "out": {"m": _params(m.mult, m.shift, n_p, fixed, "m requant"),
                               "y": _params(y.mult, y.shift, 1, fixed, "y requant"),
                               "relu": int(bool(relu))}}
        if spatial:     # the U requant is per tap in every granularity (the factors d_i d_j are)
            self.params["wt"] = _params(u.mult, u.shift, S, fixed, "u requant")
        if cfg.tap_shift:
            self.params["out"]["align"] = align.tolist()
        self.wlay = winograd_w_layout(cfg)
        self.xlay = input_beat_layout(cfg)

    def geometry(self, H, W) -> schedule.WinogradGeometry:
        """The layer's geometry on an H x W image, refused where it does not fit the build."""
        cfg = self.cfg
        if max(H, W) > cfg.max_width:
            raise DoesNotFit(f"image {H}x{W} exceeds max_width={cfg.max_width}")
        try:
            g = schedule.winograd_geometry(cfg, self.C, self.K, H, W, self.pad)
        except ValueError:
            raise DoesNotFit(f"image {H}x{W} with padding {self.pad} has no 3x3 output") from None
        if g.nxb > schedule.line_buffer(cfg).xb_max:
            raise DoesNotFit("row too long for the line buffer")
        return g

    def word(self, H, W):
        g = self.geometry(H, W)
        d = {"geom": {"h": H, "w": W, "pad": self.pad, "n_cg": g.n_cg, "n_kb": g.n_kb,
                      "th": g.th, "tw": g.tw, "nxb": g.nxb}, **self.params}
        return _pack_config(winograd_layer_layout(self.cfg), d)

    def x_beats(self, x):
        """x[C, H, W] in :func:`schedule.winograd_x_order` (padded columns hold zeros)."""
        C, H, W = x.shape
        g = self.geometry(H, W)
        n, ui = g.n, g.unroll_in
        xp = np.zeros((g.n_cg * ui, H, g.nxb * n), dtype=np.int64)
        xp[:C, :, self.pad:self.pad + W] = x
        return [pack(self.xlay, xp[b.cg * ui:(b.cg + 1) * ui, b.y, b.xb * n:(b.xb + 1) * n].T.tolist())
                for b in schedule.winograd_x_order(g)]

    def _w_word(self, kb, cg):
        """The ``w`` beats of block ``kb``, channel group ``cg``: one weight word with the block's
        biases, or (spatial) its kernels ``weight_lanes`` per beat, each with its channel's bias."""
        ui, un = self.cfg.unroll_in, self.cfg.unroll
        w = self.Up[kb * un:(kb + 1) * un, cg * ui:(cg + 1) * ui]
        b = self.bias[kb * un:(kb + 1) * un]
        if self.cfg.weights != "spatial":
            return [pack(self.wlay, {"data": w.tolist(), "bias": b.tolist()})]
        kern = schedule.word_kernels(self.cfg)
        L = self.cfg.weight_lanes
        return [pack(self.wlay, {"data": [w[k, c].tolist() for k, c in kern[i:i + L]],
                                 "tag": [int(b[k]) for k, _ in kern[i:i + L]]})
                for i in range(0, len(kern), L)]

    def w_beats(self, H, W):
        """``w`` beats in :func:`schedule.winograd_w_order` (each word's beats packed once)."""
        word = functools.cache(self._w_word)
        return [beat for b in schedule.winograd_w_order(self.geometry(H, W)) for beat in word(b.kb, b.cg)]

    def collect(self, beats, H, W):
        """The output image ``[K, Ho, Wo]`` from beats in :func:`schedule.winograd_output_order`."""
        g = self.geometry(H, W)
        olay = winograd_out_layout(self.cfg)
        t = np.zeros((1, g.n_kb * g.unroll, g.th, g.tw, g.m, g.m), dtype=np.int64)
        for ob, beat in zip(schedule.winograd_output_order(g), beats, strict=True):
            t[0, ob.kb * g.unroll + ob.k, ob.ty, ob.tx] = np.array(unpack(olay, beat)).reshape(g.m, g.m)
        return golden.untile_output(t, g.Ho, g.Wo)[0, :self.K]


class DirectLayer:
    """Streams of one direct convolution (any kernel, stride, padding) for
    :class:`rtl.top.DirectAccel`: im2col chunks of ``unroll_in * n²`` patch elements; a pixel
    at least ``min_steps`` of them (zero chunks after its patch: the compute core's pace,
    :func:`wino_gen.schedule.core_window_geometry`)."""

    def __init__(self, cfg: AcceleratorConfig, W, bias, *, y, stride=1, padding=0, relu=False, min_steps: int = 1):
        self.cfg, self.min_steps = cfg, min_steps
        W = np.asarray(W, dtype=np.int64)
        K, C, kh, kw = W.shape
        self.K, self.C, self.kh, self.kw = K, C, kh, kw
        if K > cfg.max_channels:
            raise DoesNotFit(f"K={K} exceeds max_channels={cfg.max_channels}")
        self.stride, self.pad, self.relu = stride, padding, bool(relu)
        pe = schedule.pe_geometry(cfg)
        # the chunking needs no image: take it from the geometry of a kernel-sized one
        blocks = schedule.direct_geometry(cfg, C, K, kh, kw, kernel=(kh, kw), stride=stride, padding=padding)
        self.n_step, self.n_kb = max(blocks.n_step, min_steps), blocks.n_kb
        if self.n_step > pe.depth:
            raise DoesNotFit(f"{C}x{kh}x{kw} patch needs {self.n_step} weight words per block, "
                             f"the buffer has {pe.depth} (raise max_channels)")
        un, E = cfg.unroll, blocks.patch
        Wf = np.zeros((self.n_kb * un, self.n_step * pe.lanes), dtype=np.int64)
        Wf[:K, :E] = W.reshape(K, E)
        self.Wf = Wf
        self.bias = np.zeros(self.n_kb * un, dtype=np.int64)
        self.bias[:K] = np.asarray(bias, dtype=np.int64)
        self.params = {"y": _params(y.mult, y.shift, 1, cfg.requant == "fixed", "y requant"),
                       "relu": int(bool(relu))}
        self.wlay = weight_stream_layout(cfg)
        self.S, self.L = pe.taps, pe.lanes

    def geometry(self, H, W) -> schedule.DirectGeometry:
        """The layer's geometry on an H x W image, refused where it does not fit the build."""
        try:
            g = schedule.direct_geometry(self.cfg, self.C, self.K, H, W, kernel=(self.kh, self.kw),
                                         stride=self.stride, padding=self.pad)
        except ValueError:
            raise DoesNotFit(f"image {H}x{W} is smaller than the {self.kh}x{self.kw} kernel") from None
        if max(g.Ho, g.Wo) > self.cfg.max_width:
            raise DoesNotFit(f"output {g.Ho}x{g.Wo} exceeds max_width={self.cfg.max_width}")
        return dataclasses.replace(g, n_step=self.n_step)

    def word(self, H, W):
        g = self.geometry(H, W)
        d = {"n_step": g.n_step, "n_pix": g.n_pix, "n_kb": g.n_kb, **self.params}
        return _pack_config(direct_layer_layout(self.cfg), d)

    def x_beats(self, x):
        """The im2col chunk of every step of :func:`schedule.direct_steps` (each packed once)."""
        C, H, W = x.shape
        g = self.geometry(H, W)
        xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (self.pad,) * 2, (self.pad,) * 2))
        win = sliding_window_view(xp, (self.kh, self.kw), axis=(1, 2))[:, ::self.stride, ::self.stride]
        cols = win[:, :g.Ho, :g.Wo].transpose(1, 2, 0, 3, 4).reshape(g.n_pix, -1)
        flat = np.zeros((g.n_pix, g.n_step * self.L), dtype=np.int64)
        flat[:, :cols.shape[1]] = cols
        xlay, ui, L = direct_x_layout(self.cfg), self.cfg.unroll_in, self.L

        @functools.cache
        def chunk(pix, c):
            return pack(xlay, flat[pix, c * L:(c + 1) * L].reshape(ui, self.S).tolist())
        return [chunk(st.pix, st.chunk) for st in schedule.direct_steps(g)]

    def w_beats(self, H, W):
        """Weight words in :func:`schedule.direct_w_order`."""
        un, ui, S, L = self.cfg.unroll, self.cfg.unroll_in, self.S, self.L
        beats = []
        for kb, c in schedule.direct_w_order(self.geometry(H, W)):
            w = self.Wf[kb * un:(kb + 1) * un, c * L:(c + 1) * L].reshape(un, ui, S)
            beats.append(pack(self.wlay, {"data": w.tolist(), "bias": self.bias[kb * un:(kb + 1) * un].tolist()}))
        return beats

    def collect(self, beats, H, W):
        """The output image ``[K, Ho, Wo]`` from beats in :func:`schedule.direct_output_order`."""
        g = self.geometry(H, W)
        olay = direct_out_layout(self.cfg)
        un = self.cfg.unroll
        out = np.zeros((g.n_kb * un, g.n_pix), dtype=np.int64)
        for (kb, pix), beat in zip(schedule.direct_output_order(g), beats, strict=True):
            out[kb * un:(kb + 1) * un, pix] = unpack(olay, beat)
        return out[:self.K].reshape(self.K, g.Ho, g.Wo)


# -- element-wise layers on the compute core --------------------------------------------------

#: The core's element-wise modes (``rtl.core.ELTWISE_MODES``, ``wino_gen.isa.MODES``' names).
ELTWISE_OPS = ("add", "maxpool", "avgpool")


def segment_beats(g: schedule.SegmentGeometry, x) -> list:
    """``x[C, H, W]`` as row segments in :func:`wino_gen.schedule.segment_order` (nested lists
    ``[column][channel]``, zeros past the image and past C)."""
    n, ui = g.n, g.unroll_in
    xp = np.zeros((g.groups * ui, g.H, g.nxb * n), dtype=np.int64)
    xp[:g.C, :, :g.W] = x
    return [xp[cg * ui:(cg + 1) * ui, y, xb * n:(xb + 1) * n].T.tolist() for cg, y, xb in schedule.segment_order(g)]


def segment_image(g: schedule.SegmentGeometry, beats) -> np.ndarray:
    """:func:`segment_beats`' inverse: ``[C, H, W]`` from segments (``[column][channel]``)."""
    n, ui = g.n, g.unroll_in
    xp = np.zeros((g.groups * ui, g.H, g.nxb * n), dtype=np.int64)
    for (cg, y, xb), b in zip(schedule.segment_order(g), beats, strict=True):
        xp[cg * ui:(cg + 1) * ui, y, xb * n:(xb + 1) * n] = np.asarray(b).reshape(n, ui).T
    return xp[:g.C, :, :g.W]


class EltwiseLayer:
    """Streams of one element-wise layer for the compute core (:class:`rtl.core.Core`): ``add``
    (``golden.add``'s ``a_mult``, ``b_mult``, ``shift``, ``relu``), ``maxpool`` (``kernel``,
    ``stride``, ``padding``) or ``avgpool`` (``kernel``, ``stride``, ``mult``, ``shift``). Its
    command word, its ``x`` (and ``add``'s ``x2``) row segments, its output segments back into
    an image. ``rtl.core`` and ``rtl.eltwise`` are imported where they are used: ``rtl.eltwise``
    imports this module's segment encoders."""

    def __init__(self, cfg: AcceleratorConfig, mode: str, *, a_mult: int = 1, b_mult: int = 1, shift: int = 0,
                 relu: bool = False, kernel: int = 1, stride: int = 1, padding: int = 0, mult: int = 1):
        if mode not in ELTWISE_OPS:
            raise ValueError(f"mode {mode!r}: an element-wise layer is one of {ELTWISE_OPS}")
        self.cfg, self.mode = cfg, mode
        self.add = dict(a_mult=a_mult, b_mult=b_mult, shift=shift, relu=relu)
        self.pool = dict(kernel=kernel, stride=stride, padding=padding, mult=mult, shift=shift)
        self.xlay = input_beat_layout(cfg)

    def geometry(self, C: int, H: int, W: int):
        """The input's and the output's segments and (pools) the pooling geometry of a ``[C, H, W]``
        input, refused where it does not fit the build."""
        if max(H, W) > self.cfg.max_width or C > self.cfg.max_channels:
            raise DoesNotFit(f"tensor {C}x{H}x{W} exceeds max_width={self.cfg.max_width} / "
                             f"max_channels={self.cfg.max_channels}")
        gi = schedule.segment_geometry(self.cfg, C, H, W)
        if self.mode == "add":
            return gi, gi, None
        p = self.pool
        try:
            pg = schedule.pool_geometry(H, W, p["kernel"], p["stride"], p["padding"])
        except ValueError as e:
            raise DoesNotFit(f"{self.mode} on {H}x{W}: {e}") from None
        return gi, schedule.segment_geometry(self.cfg, C, pg.oh, pg.ow), pg

    def word(self, core, C: int, H: int, W: int) -> int:
        """The command word of ``core`` (a :class:`rtl.core.Core`) for a ``[C, H, W]`` input."""
        from rtl.core import command_word, eltwise_word
        from rtl.eltwise import add_params

        gi, go, pg = self.geometry(C, H, W)
        lay = core.layer.shape()
        try:
            if pg is None:
                add = add_params(**self.add)
                word = eltwise_word(lay, beats=go.beats, add=add)
            else:
                avg = self.mode == "avgpool"
                pool = core.pool_fields(pg, groups=gi.groups, avg=avg, mult=self.pool["mult"], shift=self.pool["shift"])
                word = eltwise_word(lay, beats=go.beats, pool=pool)
        except ValueError as e:
            raise DoesNotFit(f"{self.mode} does not fit the core: {e}") from None
        return command_word(lay, self.mode, word)

    def x_beats(self, x) -> list[int]:
        """``x[C, H, W]`` (or ``add``'s second operand, for ``x2``) as packed ``x`` segments."""
        gi, _, _ = self.geometry(*np.shape(x))
        return [pack(self.xlay, b) for b in segment_beats(gi, x)]

    def collect(self, beats, C: int, H: int, W: int) -> np.ndarray:
        """The output ``[C, Ho, Wo]`` from the core's ``o`` beats (a segment in the first
        ``n * unroll_in`` elements) for a ``[C, H, W]`` input."""
        from rtl.core import core_out_layout

        _, go, _ = self.geometry(C, H, W)
        olay, seg = core_out_layout(self.cfg), self.cfg.n * self.cfg.unroll_in
        return segment_image(go, [unpack(olay, b)[:seg] for b in beats])


# -- the self-test layer ----------------------------------------------------------------------


def selftest_layer(cfg: AcceleratorConfig, *, channels: int = 4, outputs: int | None = None,
                   size: int = 6, seed: int = 1) -> dict:
    """A small calibrated Winograd 3x3 layer for ``cfg`` (layer-granularity pow2/fixed requant as
    the config says): ``x[1, C, size, size]``, ``U[K, C, n, n]``, ``bias[K]``, the three
    requants and the golden output ``y``; ``trace`` holds golden's intermediates."""
    rng = np.random.default_rng(seed)
    K = outputs or cfg.unroll
    C, m, n = channels, cfg.tile, cfg.n
    lo, hi = limits.int_range(cfg.act_bits)
    x = rng.integers(lo, hi + 1, (1, C, size, size))
    wlo, whi = limits.int_range(cfg.weight_bits)
    U = rng.integers(wlo, whi + 1, (K, C, n, n))
    tmax = limits.int_range(cfg.transform_bits)[1]
    amax = limits.int_range(cfg.act_bits)[1]

    def req(ratio):
        r = golden.quantize_ratio(ratio, cfg.requant, cfg.mult_bits)
        return golden.Requant(int(r.mult), int(r.shift))

    sums = {"balance": cfg.balance, "transform_bits": cfg.transform_bits, "widths": cfg.widths}
    _, vraw = golden.input_transform(golden.tile_input(x, m), m, cfg.balance)
    v = req(tmax / max(int(np.abs(vraw).max()), 1))
    P = golden.winograd_channel_sum(x, U, tile=m, v=v, **sums)
    mq = req(tmax / max(int(np.abs(P).max()), 1) * 2)   # let a few taps saturate
    bias = rng.integers(-64, 65, K)
    yb = golden.winograd_output_sum(P, bias, tile=m, m=mq, **sums)
    yq = req(amax / max(int(np.abs(yb).max()), 1) * 2)
    trace: dict = {}
    y = golden.winograd_conv3x3(x, U, bias, tile=m, v=v, m=mq, y=yq, cfg=cfg, trace=trace)
    return {"cfg": cfg, "x": x, "U": U, "bias": bias, "v": v, "m": mq, "y_req": yq, "y": y,
            "trace": trace, "relu": False}


def selftest_data(layer: dict) -> SelfTestData:
    """What the self-test's ROMs hold for ``layer`` (:func:`selftest_layer`): the config word,
    the ``x`` and ``w`` beats, and every m x m tile the hardware emits (golden's ``y_tiles``,
    zeros for the block's channels beyond K) in :func:`schedule.winograd_output_order`."""
    cfg = layer["cfg"]
    if cfg.algo != "winograd":
        raise ValueError("the self-test layer is a Winograd layer (algo=winograd)")
    x = layer["x"][0]
    C, H, W = x.shape
    spec = WinogradLayer(cfg, layer["U"], layer["bias"], v=layer["v"], m=layer["m"],
                         y=layer["y_req"], relu=layer["relu"])
    g = spec.geometry(H, W)
    yt = layer["trace"]["y_tiles"][0]            # [K, th, tw, m, m]
    olay = winograd_out_layout(cfg)
    expected = []
    for ob in schedule.winograd_output_order(g):
        ch = ob.kb * g.unroll + ob.k
        tile = yt[ch, ob.ty, ob.tx].ravel() if ch < g.K else np.zeros(g.m * g.m, dtype=np.int64)
        expected.append(pack(olay, tile.tolist()))
    return SelfTestData(layer=spec.word(H, W), x=tuple(spec.x_beats(x)), w=tuple(spec.w_beats(H, W)),
                        expected=tuple(expected))
