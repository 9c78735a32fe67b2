"""Accelerator tops: the Winograd engine and the direct-convolution engine (same multipliers).

Winograd engine data path::

    x beats ─► TileBuffer ◄─ LayerController (cmd)            w beats ─┐
                 │ n x n tiles (unroll_in channels)                    ▼
                 ▼                                          PEArray (+ WeightBuffer)
           InputTransform ─► Requantizer (V) ───────────────► │ acc[unroll][n²]
                                                               ▼
                                     Serializer ─► OutputStage ─► o: y[m x m] per channel

The blocks from the line buffer to the PE array pass one PE-array step per beat in one
payload shape (:func:`rtl.pipeline.beat_layout`), so they connect with ``wiring.connect``.
Structural choices (skid buffer, SB_MAC16 products, black-box RAMs) are a
``wino_gen.options.BuildOptions`` passed to the top and on to the blocks.

Interface (``wino_gen.flow.host`` encodes it; all streams are valid/ready, any stall is
allowed):

- ``layer`` (config port, :func:`winograd_layer_layout`): image ``h``, ``w``, ``pad``; ``n_cg``
  = ceil(C / unroll_in), ``n_kb`` = ceil(K / unroll), tile rows/columns ``th``, ``tw``,
  ``nxb`` = ceil((tw * m + 2) / n); V requant, M requant, tap alignment, y requant, ReLU.
  Hold it constant during a layer; pulse ``start`` (one cycle) to begin.
- ``x``: for each image row y, each channel group, ``nxb`` beats of n consecutive padded
  columns (column xs holds x = xs - pad; values outside the image are ignored), each column
  ``unroll_in`` channels.
- ``w``: for each tile row, each output-channel block: ``n_cg`` words of ``unroll`` x
  ``unroll_in`` x n² weights (the block's ``unroll`` biases ride on the first word). With
  ``cfg.weights == "spatial"`` each word comes as ``unroll * unroll_in / weight_lanes`` beats of
  ``weight_lanes`` int8 3x3 kernels and their biases (:func:`rtl.wtransform.kernel_layout`,
  ``wino_gen.schedule.word_kernels`` order) through :class:`rtl.wtransform.SpatialWeights`,
  and the layer word carries its U requant (``wt``, :func:`rtl.wtransform.wt_params_layout`).
- ``o``: for each tile row, block, tile column, channel in the block: one beat of m x m
  outputs (partial tiles at the bottom/right are full tiles; the host crops them).

Direct engine (:class:`DirectAccel`): ``x`` carries im2col chunks of ``unroll_in * n²`` patch
elements (for each block, pixel, chunk), ``w`` one word per chunk per block, ``o`` one beat of
``unroll`` outputs per (block, pixel).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from wino_gen.config import AcceleratorConfig
from wino_gen.options import BuildOptions
from wino_gen.schedule import latencies, pe_geometry

from .arith import rq_pipeline
from .pe import PEArray, Serializer, step_tag_layout, weight_stream_layout
from .pipeline import delay, stage_enable
from .requant import Requantizer, requant_params_layout
from .skid import SkidBuffer
from .tilebuf import LayerController, TileBuffer, input_beat_layout, shape_layout
from .transform import InputTransform, OutputStage, output_params_layout
from .wtransform import SpatialWeights, kernel_layout, wt_params_layout

#: The structure of a top built without options: skid buffer, inferred multipliers, memories.
DEFAULT_OPTIONS = BuildOptions()


def _mult_bits(cfg):
    return cfg.mult_bits if cfg.requant == "fixed" else None


def winograd_layer_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    S = cfg.n * cfg.n
    n_p = S if cfg.granularity == "tap" else 1
    fields = {
        "geom": shape_layout(cfg),
        "v": requant_params_layout(n_p, _mult_bits(cfg)),
        "out": output_params_layout(cfg),
    }
    if cfg.weights == "spatial":
        fields["wt"] = wt_params_layout(cfg)
    return data.StructLayout(fields)


def winograd_w_layout(cfg: AcceleratorConfig) -> data.Layout:
    """A ``w`` beat: a weight word (U weights) or ``weight_lanes`` spatial kernels."""
    if cfg.weights == "spatial":
        return kernel_layout(cfg, cfg.weight_lanes)
    return weight_stream_layout(cfg)


def winograd_out_layout(cfg):
    return data.ArrayLayout(signed(cfg.act_bits), cfg.tile ** 2)


def direct_x_layout(cfg):
    S = pe_geometry(cfg).taps
    return data.ArrayLayout(data.ArrayLayout(signed(cfg.act_bits), S), cfg.unroll_in)


def direct_out_layout(cfg):
    return data.ArrayLayout(signed(cfg.act_bits), cfg.unroll)


class WinogradAccel(wiring.Component):
    """The Winograd F(m x m, 3 x 3) engine. Set ``layer``, pulse ``start``, stream ``x`` and
    ``w``; ``o`` carries m x m outputs per (tile, output channel). ``options`` chooses the
    structure (:class:`~wino_gen.options.BuildOptions`); no choice changes a word or a
    cycle. ``cfg.weights`` chooses what ``w`` carries (U words, or spatial kernels that the
    weight-transform unit turns into them, ``cfg.weight_lanes`` per beat)."""

    def __init__(self, cfg: AcceleratorConfig, options: BuildOptions = DEFAULT_OPTIONS):
        if cfg.algo != "winograd":
            raise ValueError("WinogradAccel needs algo='winograd'")
        self.cfg, self.options = cfg, options
        super().__init__({
            "layer": In(winograd_layer_layout(cfg)),
            "start": In(1),
            "busy": Out(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "w": In(stream.Signature(winograd_w_layout(cfg))),
            "o": Out(stream.Signature(winograd_out_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, opt = self.cfg, self.options
        S = cfg.n * cfg.n
        n_p = S if cfg.granularity == "tap" else 1
        tag = step_tag_layout(cfg)
        m.submodules.ctrl = ctrl = LayerController(cfg)
        m.submodules.tbuf = tbuf = TileBuffer(cfg, blackbox_ram=opt.blackbox_ram)
        m.submodules.itf = itf = InputTransform(cfg, tag)
        m.submodules.vrq = vrq = Requantizer(groups=cfg.unroll_in, lanes=S, in_bits=cfg.widths.in_full,
                                             out_bits=cfg.transform_bits, n_params=n_p,
                                             mult_bits=_mult_bits(cfg), tag_shape=tag)
        m.submodules.pe = pe = PEArray(cfg, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)
        m.submodules.ser = ser = Serializer(cfg)
        m.submodules.ost = ost = OutputStage(cfg)
        lay = self.layer
        m.d.comb += [
            ctrl.geom.eq(lay.geom), ctrl.start.eq(self.start),
            tbuf.geom.eq(lay.geom), tbuf.start.eq(self.start),
            vrq.params.eq(lay.v), ost.params.eq(lay.out),
            pe.steps.eq(lay.geom.n_cg), pe.clear.eq(self.start),
        ]
        wiring.connect(m, ctrl.cmd, tbuf.cmd)
        wiring.connect(m, wiring.flipped(self.x), tbuf.x)
        if opt.skid:
            # the skid buffer ends the stall chain (PE ready -> transforms -> line-buffer RAM
            # enables) at the line buffer, whose enables fan out to every bank across the die.
            # It changes no word and no cycle, so a build that does not need the speed (the
            # iCE40 at 12 MHz) saves its cells
            m.submodules.skid = skid = SkidBuffer(tbuf.o.payload.shape())
            wiring.connect(m, tbuf.o, skid.i)
            wiring.connect(m, skid.o, itf.i)
        else:
            wiring.connect(m, tbuf.o, itf.i)
        wiring.connect(m, itf.o, vrq.i)
        wiring.connect(m, vrq.o, pe.i)
        if cfg.weights == "spatial":
            m.submodules.wxf = wxf = SpatialWeights(cfg, cfg.weight_lanes)
            m.d.comb += wxf.params.eq(lay.wt)
            wiring.connect(m, wiring.flipped(self.w), wxf.i)
            wiring.connect(m, wxf.o, pe.w)
        else:
            wiring.connect(m, wiring.flipped(self.w), pe.w)
        wiring.connect(m, pe.o, ser.i)
        m.d.comb += [
            ost.i.valid.eq(ser.o.valid), ser.o.ready.eq(ost.i.ready),
            ost.i.payload.data.eq(ser.o.payload.data), ost.i.payload.bias.eq(ser.o.payload.bias),
        ]
        m.d.comb += [self.o.valid.eq(ost.o.valid), ost.o.ready.eq(self.o.ready),
                     self.o.payload.eq(ost.o.payload.data), self.busy.eq(ctrl.busy)]
        return m


def direct_layer_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({
        "n_step": unsigned(ceil_log2(pe_geometry(cfg).depth + 1)),   # chunks per output pixel
        "n_pix": unsigned(ceil_log2(cfg.max_width ** 2 + 1)),  # output pixels
        "n_kb": unsigned(ceil_log2(cfg.max_channels // 1 + 1)),  # output-channel blocks
        "y": requant_params_layout(1, _mult_bits(cfg)),
        "relu": unsigned(1),
    })


class DirectAccel(wiring.Component):
    """Direct convolution on the same ``unroll`` x ``unroll_in`` x n² multipliers: each step
    reduces a chunk of ``unroll_in * n²`` patch elements (im2col order, zero-filled to whole
    chunks) for ``unroll`` output channels. ``x`` carries the chunks (for each block, each
    pixel, each chunk); ``o`` one beat of ``unroll`` outputs per (block, pixel). ``options``:
    the PE array's (``ice40_mac16``, ``blackbox_ram``); ``skid`` concerns no block here."""

    def __init__(self, cfg: AcceleratorConfig, options: BuildOptions = DEFAULT_OPTIONS):
        if cfg.algo != "direct":
            raise ValueError("DirectAccel needs algo='direct'")
        self.cfg, self.options = cfg, options
        super().__init__({
            "layer": In(direct_layer_layout(cfg)),
            "start": In(1),
            "busy": Out(1),
            "x": In(stream.Signature(direct_x_layout(cfg))),
            "w": In(stream.Signature(weight_stream_layout(cfg))),
            "o": Out(stream.Signature(direct_out_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self.cfg, self.layer
        opt = self.options
        m.submodules.pe = pe = PEArray(cfg, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)
        m.d.comb += [pe.steps.eq(lay.n_step), pe.clear.eq(self.start)]
        wiring.connect(m, wiring.flipped(self.w), pe.w)
        # controller: tags for (block, pixel, chunk)
        step, pix, kb = Signal.like(lay.n_step), Signal.like(lay.n_pix), Signal.like(lay.n_kb)
        bank = Signal()
        t = pe.i.payload.tag
        last_s, last_p, last_k = step + 1 == lay.n_step, pix + 1 == lay.n_pix, kb + 1 == lay.n_kb
        m.d.comb += [
            pe.i.valid.eq(self.x.valid & self.busy), self.x.ready.eq(pe.i.ready & self.busy),
            pe.i.payload.data.eq(self.x.payload),
            t.addr.eq(step), t.bank.eq(bank), t.first.eq(step == 0), t.last.eq(last_s),
            t.eob.eq(last_s & last_p),
        ]
        with m.If(pe.i.valid & pe.i.ready):
            m.d.sync += step.eq(step + 1)
            with m.If(last_s):
                m.d.sync += [step.eq(0), pix.eq(pix + 1)]
                with m.If(last_p):
                    m.d.sync += [pix.eq(0), kb.eq(kb + 1), bank.eq(~bank)]
                    with m.If(last_k):
                        m.d.sync += self.busy.eq(0)
        with m.If(self.start):
            m.d.sync += [step.eq(0), pix.eq(0), kb.eq(0), bank.eq(0), self.busy.eq(1)]
        # output: bias add + y requant + ReLU on all unroll lanes
        en = stage_enable(m, self.o, pe.o)
        w = cfg.widths
        ymult = lay.y.mult[0] if _mult_bits(cfg) is not None else None
        for k in range(cfg.unroll):
            s = Signal(signed(w.out_sum), name=f"sum{k}")
            with m.If(en):
                m.d.sync += s.eq(pe.o.payload.acc[k][0] + pe.o.payload.bias[k])
            o = rq_pipeline(m, en, s, w.out_sum, ymult, lay.y.shift[0], cfg.act_bits,
                            relu=lay.relu, name=f"yrq{k}")
            m.d.comb += self.o.payload[k].eq(o)
        stages = latencies(cfg).direct_output     # the sum register, then rq_pipeline's
        m.d.comb += self.o.valid.eq(delay(m, en, pe.o.valid, stages, "ov"))
        return m


def build_top(cfg: AcceleratorConfig, options: BuildOptions = DEFAULT_OPTIONS) -> wiring.Component:
    """The engine ``cfg.algo`` names, built with ``options``."""
    cls = WinogradAccel if cfg.algo == "winograd" else DirectAccel
    return cls(cfg, options)
