"""One compute core: Winograd F(m x m, 3 x 3) and direct k x k / stride s convolution on the
same ``unroll`` x ``unroll_in`` x n² multipliers, a mode per command.

::

                 ┌─ Winograd: TileBuffer ◄ LayerController ─► InputTransform ─► V requant ─┐
    x beats ─────┤                                                                         ├─► PEArray ─┐
                 └─ direct:   WindowGenerator ─► DirectSteps (tags) ───────────────────────┘   (dual)   │
    w beats ─────────────────────────────────────────────────────────────────────────────────────► ┘    │
                 ┌─ Winograd: Serializer ─► OutputStage (M requant, Aᵀ M A, bias, y requant) ─┐◄──────┘
    o beats ◄────┤                                                                            │
                 └─ direct:   DirectOutput (bias, y requant, ReLU) ───────────────────────────┘

The PE array is :class:`rtl.pe.PEArray` with ``modes=("winograd", "direct")``: one accumulator
per tap in both modes and, for direct mode, a tree over the taps behind them
(:func:`wino_gen.schedule.dual_pe`). ``direct_only=True`` compiles Winograd mode out: the
direct engine's own array (one tree over the chunk, one accumulator per channel) behind the
same window generator, with the same multipliers: the baseline at equal multipliers.

Interface (all streams valid/ready, any stall allowed):

- ``layer`` (:func:`core_layer_layout`): ``mode`` (numbered as ``wino_gen.isa.MODES``), the
  Winograd engine's config word (``wino``, :func:`rtl.top.winograd_layer_layout`; absent in a
  direct-only build) and the windowed direct engine's (``direct``,
  :func:`rtl.window.windowed_direct_layout`). Hold it during a command; pulse ``start`` while
  ``busy`` is low. ``busy`` stays high until the command's last output beat is taken, so
  every command finds the pipeline empty and a mode switch needs nothing else. (The name
  ``layer`` is the tops' config port's: ``sim.backend`` runs a core command like a top.)
- ``x``: :func:`rtl.tilebuf.input_beat_layout` beats, in the mode's order: the tile buffer's
  (``wino_gen.schedule.winograd_x_order``, padded columns) or the window generator's
  (``wino_gen.schedule.window_x_order``, the image once per output-channel block).
- ``w``: :func:`rtl.pe.weight_stream_layout` words in ``winograd_w_order`` / ``direct_w_order``.
- ``o``: one stream of :func:`core_out_layout`: ``max(m², unroll)`` activations, a Winograd
  beat (m x m outputs of one tile and channel) in the first m², a direct beat (``unroll``
  channels of one pixel) in the first ``unroll``, the rest zero. Element ``i`` sits where the
  engines' own layouts put it, so their host decoders read a core beat unchanged, and one
  activation writer takes both kinds.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.config import AcceleratorConfig
from wino_gen.isa import LAYOUTS, MODES
from wino_gen.options import BuildOptions
from wino_gen.schedule import (
    core_outputs_in_flight,
    core_window,
    direct_view,
    latencies,
    pe_geometry,
)

from .arith import rq_pipeline
from .pe import PEArray, Serializer, step_tag_layout, weight_stream_layout
from .pipeline import delay, stage_enable
from .requant import Requantizer
from .skid import SkidBuffer
from .tilebuf import LayerController, TileBuffer, input_beat_layout
from .top import (
    DEFAULT_OPTIONS,
    _mult_bits,
    direct_layer_layout,
    direct_out_layout,
    direct_x_layout,
    winograd_layer_layout,
)
from .transform import InputTransform, OutputStage
from .window import WindowGenerator, windowed_direct_layout

#: The ``wino_gen.isa`` COMPUTE modes a core runs.
CORE_MODES = ("winograd", "direct")
#: Width of the command's ``mode`` field: the instruction format's.
MODE_BITS = next(f.bits for f in LAYOUTS["COMPUTE"] if f.name == "mode")


def mode_number(mode: str) -> int:
    """The ``mode`` field's value for ``mode`` (its index in ``wino_gen.isa.MODES``)."""
    if mode not in CORE_MODES:
        raise ValueError(f"mode {mode!r}: the core runs {CORE_MODES}")
    return MODES.index(mode)


def core_layer_layout(cfg: AcceleratorConfig, max_kernel: int, *, direct_only: bool = False) -> data.StructLayout:
    """The command port: the mode and each built mode's config word."""
    fields = {"mode": unsigned(MODE_BITS)}
    if not direct_only:
        fields["wino"] = winograd_layer_layout(cfg)
    fields["direct"] = windowed_direct_layout(core_window(cfg, max_kernel), direct_view(cfg))
    return data.StructLayout(fields)


def core_out_layout(cfg: AcceleratorConfig) -> data.ArrayLayout:
    return data.ArrayLayout(signed(cfg.act_bits), max(cfg.tile ** 2, cfg.unroll))


def command_word(layout: data.StructLayout, mode: str, word: int) -> int:
    """A command of ``layout`` (:func:`core_layer_layout`): ``mode`` and its config word
    ``word`` (packed for the mode's field: ``WinogradLayer.word``, or the windowed direct
    engine's word); the other mode's field is zero."""
    field = "wino" if mode == "winograd" else "direct"
    return mode_number(mode) << layout["mode"].offset | word << layout[field].offset


class DirectSteps(wiring.Component):
    """Tags the window generator's chunks as PE-array steps: for block ``kb``, pixel ``pix``,
    chunk ``chunk`` (``wino_gen.schedule.direct_steps``) the weight word, the bank (alternating
    per block) and ``first``/``last``/``eob``; combinational, as ``rtl.top.DirectAccel``'s
    controller. ``step_shape``: the PE array's step layout (its values may be wider than the
    activations: sign-extended). ``busy`` from ``start`` to the last step taken."""

    def __init__(self, dcfg: AcceleratorConfig, step_shape: data.StructLayout):
        self.dcfg = dcfg
        super().__init__({
            "layer": In(direct_layer_layout(dcfg)),
            "start": In(1),
            "busy": Out(1),
            "i": In(stream.Signature(direct_x_layout(dcfg))),
            "o": Out(stream.Signature(step_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        lay, i, o = self.layer, self.i, self.o
        step, pix, kb = Signal.like(lay.n_step), Signal.like(lay.n_pix), Signal.like(lay.n_kb)
        bank = Signal()
        t = o.payload.tag
        last_s, last_p, last_k = step + 1 == lay.n_step, pix + 1 == lay.n_pix, kb + 1 == lay.n_kb
        m.d.comb += [
            o.valid.eq(i.valid & self.busy), i.ready.eq(o.ready & self.busy),
            t.addr.eq(step), t.bank.eq(bank), t.first.eq(step == 0), t.last.eq(last_s),
            t.eob.eq(last_s & last_p),
        ]
        for c in range(self.dcfg.unroll_in):
            for s in range(pe_geometry(self.dcfg).taps):
                m.d.comb += o.payload.data[c][s].eq(i.payload[c][s])
        with m.If(o.valid & o.ready):
            m.d.sync += step.eq(step + 1)
            with m.If(last_s):
                m.d.sync += [step.eq(0), pix.eq(pix + 1)]
                with m.If(last_p):
                    m.d.sync += [pix.eq(0), kb.eq(kb + 1), bank.eq(~bank)]
                    with m.If(last_k):
                        m.d.sync += self.busy.eq(0)
        with m.If(self.start):
            m.d.sync += [step.eq(0), pix.eq(0), kb.eq(0), bank.eq(0), self.busy.eq(1)]
        return m


class DirectOutput(wiring.Component):
    """Direct mode's tail on all ``unroll`` channels of a pixel: ``sum + bias``, y requant,
    ReLU (``golden.output_requant``), ``schedule.latencies(dcfg).direct_output`` stages. The
    sum register is ``max(sum_bits, bias_bits) + 1`` wide: it holds any sum of the two."""

    def __init__(self, dcfg: AcceleratorConfig, sum_bits: int):
        self.dcfg, self.sum_bits = dcfg, sum_bits
        super().__init__({
            "layer": In(direct_layer_layout(dcfg)),
            "i": In(stream.Signature(data.StructLayout({
                "sum": data.ArrayLayout(signed(sum_bits), dcfg.unroll),
                "bias": data.ArrayLayout(signed(dcfg.bias_bits), dcfg.unroll)}))),
            "o": Out(stream.Signature(direct_out_layout(dcfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self.dcfg, self.layer
        en = stage_enable(m, self.o, self.i)
        width = max(self.sum_bits, cfg.bias_bits) + 1
        ymult = lay.y.mult[0] if _mult_bits(cfg) is not None else None
        for k in range(cfg.unroll):
            s = Signal(signed(width), name=f"sum{k}")
            with m.If(en):
                m.d.sync += s.eq(self.i.payload.sum[k] + self.i.payload.bias[k])
            o = rq_pipeline(m, en, s, width, ymult, lay.y.shift[0], cfg.act_bits, relu=lay.relu, name=f"yrq{k}")
            m.d.comb += self.o.payload[k].eq(o)
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, latencies(cfg).direct_output, "ov"))
        return m


class Core(wiring.Component):
    """The compute core (module doc). ``cfg``: the multipliers, widths and buffer limits (a
    Winograd config; a direct-only build takes either algo). ``max_kernel``: the largest
    direct kernel side the window generator holds (``wino_gen.limits.WINDOW_KERNEL_RANGE``,
    at most ``cfg.max_width``). ``direct_only``: Winograd mode compiled out. ``options``: as
    for the tops (:class:`~wino_gen.options.BuildOptions`)."""

    def __init__(self, cfg: AcceleratorConfig, *, max_kernel: int, direct_only: bool = False,
                 options: BuildOptions = DEFAULT_OPTIONS):
        if not isinstance(max_kernel, int) or isinstance(max_kernel, bool):
            raise ValueError(f"max_kernel: expected an integer, got {max_kernel!r}")
        if not direct_only and cfg.algo != "winograd":
            raise ValueError("cfg.algo: a core with Winograd mode needs algo='winograd' (or direct_only=True)")
        if not direct_only and getattr(cfg, "weights", "winograd") != "winograd":
            # one ``w`` layout for both modes: U words (a spatial-weights front for Winograd
            # mode alone, rtl.wtransform, is not built in yet)
            raise ValueError("cfg.weights: the core's Winograd mode takes U words (weights='winograd')")
        self.buf = core_window(cfg, max_kernel)          # ValueError naming max_kernel
        self.cfg, self.dcfg = cfg, direct_view(cfg)
        self.max_kernel, self.direct_only = max_kernel, direct_only
        self.options = options
        super().__init__({
            "layer": In(core_layer_layout(cfg, max_kernel, direct_only=direct_only)),
            "start": In(1),
            "busy": Out(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "w": In(stream.Signature(weight_stream_layout(cfg))),
            "o": Out(stream.Signature(core_out_layout(cfg))),
        })

    def _pe(self) -> PEArray:
        opt = self.options
        if self.direct_only:
            return PEArray(self.dcfg, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)
        return PEArray(self.cfg, modes=CORE_MODES, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)

    def elaborate(self, platform):
        m = Module()
        cfg, dcfg, lay, opt = self.cfg, self.dcfg, self.layer, self.options
        m.submodules.pe = pe = self._pe()
        m.submodules.gen = gen = WindowGenerator(dcfg, max_width=self.buf.max_width,
                                                 max_channels=self.buf.max_channels,
                                                 max_kernel=self.buf.max_kernel, blackbox_ram=opt.blackbox_ram)
        m.submodules.steps = steps = DirectSteps(dcfg, pe.i.payload.shape())
        sum_bits = pe.acc_bits if self.direct_only else pe.sum_bits
        m.submodules.dout = dout = DirectOutput(dcfg, sum_bits)
        direct = Signal()
        m.d.comb += direct.eq(1 if self.direct_only else lay.mode == mode_number("direct"))
        eng = lay.direct.eng
        m.d.comb += [gen.layer.eq(lay.direct.win), steps.layer.eq(eng), dout.layer.eq(eng),
                     gen.start.eq(self.start & direct), steps.start.eq(self.start & direct),
                     pe.clear.eq(self.start)]
        wiring.connect(m, wiring.flipped(self.w), pe.w)
        wiring.connect(m, gen.o, steps.i)
        if self.direct_only:
            wiring.connect(m, steps.o, pe.i)
            wiring.connect(m, wiring.flipped(self.x), gen.x)
            m.d.comb += pe.steps.eq(eng.n_step)
            self._direct_tail(m, pe, dout, lambda k: pe.o.payload.acc[k][0])
            m.d.comb += [self.o.valid.eq(dout.o.valid), dout.o.ready.eq(self.o.ready)]
            self._out_payload(m, direct, None, dout.o.payload)
            issued = steps.o.valid & steps.o.ready & steps.o.payload.tag.last
            self._busy(m, steps.busy, issued)
            return m
        wino_x, wino_steps, wino_busy, wino_o = self._winograd_front(m, direct)
        m.d.comb += [pe.mode.eq(direct), pe.steps.eq(Mux(direct, eng.n_step, lay.wino.geom.n_cg))]
        # x: to the mode's buffer only (the other one's ready may be high on stale fields)
        m.d.comb += [wino_x.valid.eq(self.x.valid & ~direct), wino_x.payload.eq(self.x.payload),
                     gen.x.valid.eq(self.x.valid & direct), gen.x.payload.eq(self.x.payload),
                     self.x.ready.eq(Mux(direct, gen.x.ready, wino_x.ready))]
        # PE input: the mode's step source
        src = Signal(pe.i.payload.shape())
        m.d.comb += src.tag.eq(wino_steps.payload.tag)
        for c in range(cfg.unroll_in):
            for s in range(pe.S):
                m.d.comb += src.data[c][s].eq(wino_steps.payload.data[c][s])
        m.d.comb += [pe.i.valid.eq(Mux(direct, steps.o.valid, wino_steps.valid)),
                     pe.i.payload.eq(Mux(direct, steps.o.payload.as_value(), src.as_value())),
                     steps.o.ready.eq(pe.i.ready & direct), wino_steps.ready.eq(pe.i.ready & ~direct)]
        # PE output: the Winograd tail (serializer, output stage) or the direct one
        ser, ost = self._winograd_tail(m, pe)
        m.d.comb += ser.i.valid.eq(pe.o.valid & ~direct)
        self._direct_tail(m, pe, dout, lambda k: pe.o.payload.sum[k])
        m.d.comb += [dout.i.valid.eq(pe.o.valid & direct),
                     pe.o.ready.eq(Mux(direct, dout.i.ready, ser.i.ready))]
        # o: the mode's beats, zero-extended to the core's layout
        wo, do = ost.o, dout.o
        m.d.comb += [self.o.valid.eq(Mux(direct, do.valid, wo.valid)),
                     wo.ready.eq(self.o.ready & ~direct), do.ready.eq(self.o.ready & direct)]
        self._out_payload(m, direct, wo.payload.data, do.payload)
        issued = Mux(wino_o, cfg.unroll, 0) + (steps.o.valid & steps.o.ready & steps.o.payload.tag.last)
        self._busy(m, wino_busy | steps.busy, issued)
        return m

    def _out_payload(self, m, direct, wino, dir_):
        """``o``'s elements: the mode's beat (``wino``: m² outputs, ``dir_``: ``unroll``; a
        missing mode gives zeros), zero beyond its length."""
        zero = Const(0, signed(self.cfg.act_bits))
        for e in range(len(self.o.payload)):
            we = wino[e] if wino is not None and e < len(wino) else zero
            de = dir_[e] if e < len(dir_) else zero
            m.d.comb += self.o.payload[e].eq(Mux(direct, de, we))

    def _winograd_front(self, m, direct):
        """The Winograd engine's front: layer controller, tile buffer (its skid buffer as the
        options say), input transform, V requant. Returns the tile buffer's ``x`` port, the V
        requant's output, the controller's ``busy`` and whether a tile's last step command is
        issued this cycle."""
        cfg, opt, lay = self.cfg, self.options, self.layer
        S = cfg.n * cfg.n
        n_p = S if cfg.granularity == "tap" else 1
        tag = step_tag_layout(cfg)
        m.submodules.ctrl = ctrl = LayerController(cfg)
        m.submodules.tbuf = tbuf = TileBuffer(cfg, blackbox_ram=opt.blackbox_ram)
        m.submodules.itf = itf = InputTransform(cfg, tag)
        m.submodules.vrq = vrq = Requantizer(groups=cfg.unroll_in, lanes=S, in_bits=cfg.widths.in_full,
                                             out_bits=cfg.transform_bits, n_params=n_p,
                                             mult_bits=_mult_bits(cfg), tag_shape=tag)
        start = self.start & ~direct
        m.d.comb += [ctrl.geom.eq(lay.wino.geom), ctrl.start.eq(start),
                     tbuf.geom.eq(lay.wino.geom), tbuf.start.eq(start), vrq.params.eq(lay.wino.v)]
        wiring.connect(m, ctrl.cmd, tbuf.cmd)
        if opt.skid:
            m.submodules.skid = skid = SkidBuffer(tbuf.o.payload.shape())
            wiring.connect(m, tbuf.o, skid.i)
            wiring.connect(m, skid.o, itf.i)
        else:
            wiring.connect(m, tbuf.o, itf.i)
        wiring.connect(m, itf.o, vrq.i)
        last_issued = ctrl.cmd.valid & ctrl.cmd.ready & ctrl.cmd.payload.tag.last
        return tbuf.x, vrq.o, ctrl.busy, last_issued

    def _winograd_tail(self, m, pe):
        """Serializer and output stage behind the dual array (the accumulators' lanes narrowed
        to the output stage's Winograd width: in Winograd mode the sums fit it)."""
        cfg = self.cfg
        m.submodules.ser = ser = Serializer(cfg, pe.acc_bits)
        m.submodules.ost = ost = OutputStage(cfg)
        m.d.comb += [ser.i.payload.acc.eq(pe.o.payload.acc), ser.i.payload.bias.eq(pe.o.payload.bias),
                     ost.params.eq(self.layer.wino.out),
                     ost.i.valid.eq(ser.o.valid), ser.o.ready.eq(ost.i.ready),
                     ost.i.payload.bias.eq(ser.o.payload.bias)]
        for s in range(pe.S):
            m.d.comb += ost.i.payload.data[s].eq(ser.o.payload.data[s])
        return ser, ost

    def _direct_tail(self, m, pe, dout, sum_of):
        """The PE array's patch sums and biases into the direct tail."""
        for k in range(self.cfg.unroll):
            m.d.comb += dout.i.payload.sum[k].eq(sum_of(k))
        m.d.comb += dout.i.payload.bias.eq(pe.o.payload.bias)
        if self.direct_only:
            m.d.comb += [dout.i.valid.eq(pe.o.valid), pe.o.ready.eq(dout.i.ready)]

    def _busy(self, m, source_busy, issued):
        """``busy``: a step source still running, or output beats owed: ``issued`` beats are
        added when a tile's (pixel's) last step is issued, one taken off per ``o`` beat."""
        owed = Signal(range(core_outputs_in_flight(self.cfg, direct_only=self.direct_only) + 1))
        m.d.sync += owed.eq(owed + issued - (self.o.valid & self.o.ready))
        m.d.comb += self.busy.eq(source_busy | (owed != 0))
