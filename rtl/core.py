"""One compute core: Winograd F(m x m, 3 x 3) and direct k x k / stride s convolution on the
same ``unroll`` x ``unroll_in`` x n² multipliers, ``linear`` as a direct 1x1 convolution of a
1x1 image, and the element-wise modes ``add``, ``maxpool`` and ``avgpool``: every
``wino_gen.isa.MODES`` mode, one per command.

::

                 ┌─ Winograd: TileBuffer ◄ LayerController ─► InputTransform ─► V requant ─┐
    x beats ─────┤                                                                         ├─► PEArray ─┐
                 ├─ direct:   WindowGenerator ─► DirectSteps (tags) ───────────────────────┘   (dual)   │
                 │  (linear)                                                                            │
    w beats ─────┼─┬─ Winograd mode of a spatial core: KernelSplitter ─► SpatialWeights (U) ──► ┤    │
                 │ └─ U words, direct modes ──────────────────────────────────────────────────► ┘    │
                 │  ┌─ Winograd: Serializer ─► OutputStage (M requant, Aᵀ M A, bias, y requant) ─┐◄───┘
    o beats ◄────┼──┤                                                                            │
                 │  └─ direct:   DirectOutput (bias, y requant, ReLU) ───────────────────────────┘
                 └─ element-wise (EltwiseModes): x, x2 ─► EltwiseAdd ──────────────────────► o
                                                 x ─► SegmentSplitter ─► Pool ─► SegmentPacker ─► o

The PE array is :class:`rtl.pe.PEArray` with ``modes=("winograd", "direct")``: one accumulator
per tap in both modes and, for direct mode, a tree over the taps behind them
(:func:`wino_gen.schedule.dual_pe`). ``direct_only=True`` compiles Winograd mode out: the
direct engine's own array (one tree over the chunk, one accumulator per channel) behind the
same window generator, with the same multipliers: the baseline at equal multipliers (also
for a spatial config: without Winograd mode it has no weight transform). A spatial config
(``cfg.weights == "spatial"``) gives the dual build the Winograd engine's weight-transform
unit in front of the array in Winograd mode, so that a kernel costs the 9 bytes of its 3x3
weights instead of U's n². Both builds carry the element-wise unit
(:func:`wino_gen.schedule.eltwise_multipliers` more multipliers: the add's and the avgpool
requant's).

Interface (all streams valid/ready, any stall allowed):

- ``layer`` (:func:`core_layer_layout`): ``mode`` (numbered as ``wino_gen.isa.MODES``), the
  Winograd engine's config word (``wino``, :func:`rtl.top.winograd_layer_layout`; absent in a
  direct-only build), the windowed direct engine's (``direct``, also ``linear``'s:
  :func:`rtl.window.windowed_direct_layout`) and the element-wise unit's (``elt``,
  :func:`eltwise_layer_layout`, :func:`eltwise_word`). Hold it during a command; pulse
  ``start`` while ``busy`` is low. ``busy`` stays high until the command's last output beat is
  taken (and a pooling's unit has walked its last positions), so every command finds the
  pipeline empty and a mode switch needs nothing else. (The name ``layer`` is the tops' config
  port's: ``sim.backend`` runs a core command like a top.)
- ``x``: :func:`rtl.tilebuf.input_beat_layout` beats (n columns of one row, ``unroll_in``
  channels each), in the mode's order: the tile buffer's (``wino_gen.schedule.winograd_x_order``,
  padded columns), the window generator's (``wino_gen.schedule.window_x_order``, the image
  once per output-channel block; ``linear``: its C inputs as the channels of a 1x1 image), or,
  for the element-wise modes, **row segments** in ``wino_gen.schedule.segment_order``:
  channel group ``cg`` -> row ``y`` -> segment ``xb``, the beat holding columns
  ``xb*n .. xb*n+n-1`` of channels ``cg*unroll_in ..`` (element ``[column][channel]``), zeros
  past the row and past C (:func:`wino_gen.flow.host.segment_beats`). That is the beat an
  activation reader already makes from a ``[C][H][W]`` region (``unroll_in`` windows of n
  bytes), walked group-major so that the pool's line buffer holds k rows of one group.
- ``x2``: ``add``'s second operand (``b`` of ``golden.add``; ``x`` is ``a``), the same
  segments in the same order, beside ``x``; unused (never ready) in every other mode. A
  stream of its own rather than beats interleaved on ``x``: the add takes a segment of each a
  cycle (as fast as the readers deliver, no pairing register), the reader for it is a second
  instance of the first at ``in2_addr``, and nothing else in the core changes its order.
- ``w``: :func:`rtl.pe.weight_stream_layout` words, one layout in every mode, in
  ``winograd_w_order`` / ``direct_w_order`` (none in the element-wise modes). In Winograd
  mode a word holds U (``cfg.weights == "winograd"``) or, on a spatial core, int8 3x3
  kernels: kernel ``(k, c)`` (output channel k of the block, input channel c of the group)
  has ``W[a][b]`` in ``data[k][c][a*3 + b]`` (taps 9 .. n²-1 ignored) and ``bias[k]`` as a
  U word's; the core splits it into ``beats_per_word`` beats of ``weight_lanes`` kernels
  (:class:`rtl.wtransform.KernelSplitter`, no register) for the weight-transform unit
  (:class:`rtl.wtransform.SpatialWeights`, its U requant the layer word's ``wino.wt``),
  which writes the U word into the PE array. Direct and linear words are the same in both
  builds.
- ``o``: one stream of :func:`core_out_layout`: ``max(m², unroll, n * unroll_in)``
  activations, a Winograd beat (m x m outputs of one tile and channel) in the first m², a
  direct beat (``unroll`` channels of one pixel) in the first ``unroll``, an element-wise
  beat (a row segment of the output, ``segment_order`` of the ``[C, Ho, Wo]`` result, zeros
  past the row) in the first ``n * unroll_in``, the rest zero. Element ``i`` sits where the
  engines' own layouts put it, so their host decoders read a core beat unchanged, and one
  activation writer takes all three kinds (a segment: ``unroll_in`` writes of up to n bytes).

Pace: the system's activation writer has one window (the scratchpad's one block-RAM write
port) and takes :func:`wino_gen.schedule.writer_beat_cycles` cycles a beat, so the core hands
over no faster: the serializer waits ``tile - 1`` cycles after each Winograd beat, a direct
pixel takes at least ``unroll`` chunks (zero chunks after its patch: the command's
``n_step``), an element-wise segment waits ``unroll_in - 1`` cycles after each. A consumer that
takes a beat a cycle sees the same cycles; the writer is never the one that holds a beat.

Cycles: ``wino_gen.perf.core_cycles`` (convolutions, linear; a spatial core's Winograd
commands are the engine's with spatial weights, weight stalls included) and
``wino_gen.perf.core_eltwise_cycles`` (``schedule.core_add_cycles``, ``core_pool_cycles``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.config import AcceleratorConfig
from wino_gen.isa import LAYOUTS, MODES
from wino_gen.options import BuildOptions
from wino_gen.schedule import DEFAULT_MAX_POOL as _DEFAULT_MAX_POOL
from wino_gen.schedule import (
    PoolGeometry,
    core_outputs_in_flight,
    core_window,
    direct_view,
    latencies,
    pe_geometry,
    writer_beat_cycles,
)

from .arith import rq_pipeline
from .eltwise import (
    EltwiseAdd,
    Pool,
    SegmentPacker,
    SegmentSplitter,
    add_params_layout,
    pool_cmd_layout,
    pool_fields,
    segment_layout,
)
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
from .wtransform import KernelSplitter, SpatialWeights

#: The PE array's modes (:class:`rtl.pe.PEArray` ``modes``).
PE_MODES = ("winograd", "direct")
#: Modes on the direct datapath: ``linear`` is a 1x1 convolution of a 1x1 image.
DIRECT_MODES = ("direct", "linear")
#: Modes on the element-wise unit (:class:`EltwiseModes`).
ELTWISE_MODES = ("add", "maxpool", "avgpool")
#: The ``wino_gen.isa`` COMPUTE modes a core runs: all of them.
CORE_MODES = ("winograd", *DIRECT_MODES, *ELTWISE_MODES)
assert set(CORE_MODES) == set(MODES)
#: Width of the command's ``mode`` field: the instruction format's.
MODE_BITS = next(f.bits for f in LAYOUTS["COMPUTE"] if f.name == "mode")
DEFAULT_MAX_POOL = _DEFAULT_MAX_POOL


def mode_number(mode: str) -> int:
    """The ``mode`` field's value for ``mode`` (its index in ``wino_gen.isa.MODES``)."""
    if mode not in CORE_MODES:
        raise ValueError(f"mode {mode!r}: the core runs {CORE_MODES}")
    return MODES.index(mode)


def _mode_in(field, modes) -> Value:
    """``field`` names one of ``modes``."""
    return Cat(*(field == mode_number(md) for md in modes)).any()


def _max_groups(cfg: AcceleratorConfig) -> int:
    """Channel groups of ``unroll_in`` channels in the widest tensor."""
    return -(-cfg.max_channels // cfg.unroll_in)


def eltwise_layer_layout(cfg: AcceleratorConfig, max_pool: int) -> data.StructLayout:
    """The element-wise modes' config word: ``beats`` (the command's ``o`` beats), the add's
    parameters (:func:`rtl.eltwise.add_params`) and the pooling command
    (:meth:`rtl.eltwise.Pool.command`, whose ``w``/``ow`` are also the segment widths)."""
    beats = _max_groups(cfg) * cfg.max_width * (-(-cfg.max_width // cfg.n))
    return data.StructLayout({"beats": unsigned(beats.bit_length()), "add": add_params_layout(),
                              "pool": pool_cmd_layout(cfg.max_width, max_pool, _max_groups(cfg))})


def core_layer_layout(cfg: AcceleratorConfig, max_kernel: int, *, direct_only: bool = False,
                      max_pool: int = DEFAULT_MAX_POOL, window_sets: int | None = None) -> data.StructLayout:
    """The command port: the mode and each built mode's config word (the window generator's
    for its ``window_sets``)."""
    fields = {"mode": unsigned(MODE_BITS)}
    if not direct_only:
        fields["wino"] = winograd_layer_layout(cfg)
    fields["direct"] = windowed_direct_layout(core_window(cfg, max_kernel, window_sets), direct_view(cfg))
    fields["elt"] = eltwise_layer_layout(cfg, max_pool)
    return data.StructLayout(fields)


def core_out_layout(cfg: AcceleratorConfig) -> data.ArrayLayout:
    """``o``: room for a Winograd beat (m²), a direct beat (``unroll``) and a row segment
    (``n * unroll_in``)."""
    return data.ArrayLayout(signed(cfg.act_bits), max(cfg.tile ** 2, cfg.unroll, cfg.n * cfg.unroll_in))


def command_word(layout: data.StructLayout, mode: str, word: int) -> int:
    """A command of ``layout`` (:func:`core_layer_layout`): ``mode`` and its config word
    ``word`` (packed for the mode's field: ``WinogradLayer.word``, the windowed direct
    engine's word, or :func:`eltwise_word`); the other modes' fields are zero."""
    field = "wino" if mode == "winograd" else "direct" if mode in DIRECT_MODES else "elt"
    return mode_number(mode) << layout["mode"].offset | word << layout[field].offset


def eltwise_word(layout: data.StructLayout, *, beats: int, add: dict | None = None, pool: dict | None = None) -> int:
    """The ``elt`` field of a command: an add (``add``: :func:`rtl.eltwise.add_params`) or a
    pooling (``pool``: :meth:`rtl.eltwise.Pool.command`) of ``beats`` output beats."""
    value = layout["elt"].shape.const({"beats": beats, "add": add or {}, "pool": pool or {}})
    return value.as_value().value


class EltwiseModes(wiring.Component):
    """The core's ``add``, ``maxpool`` and ``avgpool`` on row segments (module doc): ``x`` and
    ``x2`` straight into :class:`rtl.eltwise.EltwiseAdd` (``n * unroll_in`` lanes, a segment a
    cycle), or ``x`` through :class:`rtl.eltwise.SegmentSplitter` into
    :class:`rtl.eltwise.Pool` (``unroll_in`` lanes, a position a cycle) and
    :class:`rtl.eltwise.SegmentPacker` back into segments. ``add`` says which; ``start``
    begins a command (a pooling's ``cmd`` beat is offered from the next cycle); ``busy``
    until its ``layer.beats``-th output beat is taken and the pool is free for the next.
    Cycles: :func:`wino_gen.schedule.core_add_cycles`, :func:`~wino_gen.schedule.core_pool_cycles`."""

    def __init__(self, cfg: AcceleratorConfig, max_pool: int):
        if not isinstance(max_pool, int) or not 2 <= max_pool <= cfg.max_width:
            raise ValueError(f"max_pool: {max_pool!r} must be an integer in 2..{cfg.max_width} (cfg.max_width)")
        self.cfg, self.max_pool = cfg, max_pool
        seg = stream.Signature(segment_layout(cfg.act_bits, cfg.n, cfg.unroll_in))
        super().__init__({
            "layer": In(eltwise_layer_layout(cfg, max_pool)), "add": In(1), "start": In(1), "busy": Out(1),
            "x": In(seg), "x2": In(seg), "o": Out(seg),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay, n, ui = self.cfg, self.layer, self.cfg.n, self.cfg.unroll_in
        seg = dict(n=n, lanes=ui, act_bits=cfg.act_bits, max_width=cfg.max_width)
        m.submodules.adder = adder = EltwiseAdd(lanes=n * ui, act_bits=cfg.act_bits)
        m.submodules.split = split = SegmentSplitter(**seg)
        m.submodules.pool = pool = Pool(lanes=ui, max_width=cfg.max_width, max_kernel=self.max_pool,
                                        max_groups=_max_groups(cfg), act_bits=cfg.act_bits)
        m.submodules.packer = packer = SegmentPacker(**seg)
        add = self.add
        paced = self._pace(m, writer_beat_cycles(cfg, "eltwise") - 1)
        m.d.comb += [adder.params.eq(lay.add), split.w.eq(lay.pool.w), packer.w.eq(lay.pool.ow),
                     pool.cmd.payload.eq(lay.pool)]
        for c in range(n):
            for ch in range(ui):
                m.d.comb += [adder.a.payload.data[c * ui + ch].eq(self.x.payload[c][ch]),
                             adder.b.payload.data[c * ui + ch].eq(self.x2.payload[c][ch]),
                             self.o.payload[c][ch].eq(Mux(add, adder.o.payload.data[c * ui + ch],
                                                          packer.o.payload[c][ch]))]
        m.d.comb += [adder.a.valid.eq(self.x.valid & add), adder.b.valid.eq(self.x2.valid & add),
                     split.i.valid.eq(self.x.valid & ~add), split.i.payload.eq(self.x.payload),
                     self.x.ready.eq(Mux(add, adder.a.ready, split.i.ready)), self.x2.ready.eq(adder.b.ready & add),
                     adder.o.ready.eq(self.o.ready & add & paced), packer.o.ready.eq(self.o.ready & ~add & paced),
                     self.o.valid.eq(Mux(add, adder.o.valid, packer.o.valid) & paced)]
        wiring.connect(m, split.o, pool.i)
        wiring.connect(m, pool.o, packer.i)
        pend = Signal()                              # the pooling command not yet taken
        with m.If(pool.cmd.ready):
            m.d.sync += pend.eq(0)
        with m.If(self.start & ~add):
            m.d.sync += pend.eq(1)
        m.d.comb += pool.cmd.valid.eq(pend)
        left = Signal.like(lay.beats)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += left.eq(left - 1)
        with m.If(self.start):
            m.d.sync += left.eq(lay.beats)
        # busy until the last output is taken and the pool has walked its trailing positions
        # (rows and columns no window reaches: their input beats still come in) and drained
        m.d.comb += self.busy.eq((left != 0) | pend | ~pool.cmd.ready)
        return m

    def _pace(self, m, gap: int):
        """High while ``o`` may hand over a segment: ``gap`` cycles after each (the system's
        writer takes ``gap + 1`` a segment, :func:`wino_gen.schedule.writer_beat_cycles`)."""
        if not gap:
            return Const(1)
        wait = Signal(range(gap + 1), name="pace")
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += wait.eq(gap)
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.If(self.start):
            m.d.sync += wait.eq(0)
        return wait == 0


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
    at most ``cfg.max_width``). ``max_pool``: the largest pooling window side (2 ..
    ``cfg.max_width``; a global average pool's is the image's). ``direct_only``: Winograd mode
    compiled out. ``cfg.weights``: what a Winograd-mode ``w`` word holds (U, or spatial
    kernels transformed on chip, ``cfg.weight_lanes`` per cycle). ``options``: as for the
    tops (:class:`~wino_gen.options.BuildOptions`). ``window_sets``: the window generator's
    channel sets (block RAM for speed: :func:`wino_gen.schedule.window_buffer`'s ``sets``;
    None: its default)."""

    def __init__(self, cfg: AcceleratorConfig, *, max_kernel: int, max_pool: int = DEFAULT_MAX_POOL,
                 direct_only: bool = False, options: BuildOptions = DEFAULT_OPTIONS, window_sets: int | None = None):
        for name, v in (("max_kernel", max_kernel), ("max_pool", max_pool)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name}: expected an integer, got {v!r}")
        if not 2 <= max_pool <= cfg.max_width:
            raise ValueError(f"max_pool: {max_pool} must be in 2..{cfg.max_width} (cfg.max_width)")
        if not direct_only and cfg.algo != "winograd":
            raise ValueError("cfg.algo: a core with Winograd mode needs algo='winograd' (or direct_only=True)")
        self.buf = core_window(cfg, max_kernel, window_sets)     # ValueError naming max_kernel / sets
        self.window_sets = window_sets
        self.cfg, self.dcfg = cfg, direct_view(cfg)
        self.max_kernel, self.max_pool, self.direct_only = max_kernel, max_pool, direct_only
        self.options = options
        super().__init__({
            "layer": In(core_layer_layout(cfg, max_kernel, direct_only=direct_only, max_pool=max_pool,
                                          window_sets=window_sets)),
            "start": In(1),
            "busy": Out(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "x2": In(stream.Signature(input_beat_layout(cfg))),
            "w": In(stream.Signature(weight_stream_layout(cfg))),
            "o": Out(stream.Signature(core_out_layout(cfg))),
        })

    def pool_fields(self, g: PoolGeometry, *, groups: int, avg: bool, mult: int = 1, shift: int = 0) -> dict:
        """The ``elt.pool`` field of a pooling command (:func:`rtl.eltwise.pool_fields` with
        this core's limits: ValueError naming what it cannot take)."""
        return pool_fields(g, max_width=self.cfg.max_width, max_kernel=self.max_pool,
                           max_groups=_max_groups(self.cfg), groups=groups, avg=avg, mult=mult, shift=shift)

    def _pe(self) -> PEArray:
        opt = self.options
        if self.direct_only:
            return PEArray(self.dcfg, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)
        return PEArray(self.cfg, modes=PE_MODES, mac16=opt.ice40_mac16, blackbox_ram=opt.blackbox_ram)

    def elaborate(self, platform):
        m = Module()
        cx = stream.Signature(input_beat_layout(self.cfg)).create()     # the convolutions' x and o
        co = stream.Signature(core_out_layout(self.cfg)).create()
        conv_busy = self._conv(m, cx, co)
        self._eltwise(m, cx, co, conv_busy)
        return m

    def _eltwise(self, m, cx, co, conv_busy):
        """The element-wise unit beside the convolutions: ``x`` to the mode's side, ``x2`` to
        the unit, ``o`` from the mode's side (a segment in the first ``n * unroll_in``)."""
        cfg, lay = self.cfg, self.layer
        m.submodules.elt = elt = EltwiseModes(cfg, self.max_pool)
        is_elt = Signal()
        m.d.comb += [is_elt.eq(_mode_in(lay.mode, ELTWISE_MODES)), elt.layer.eq(lay.elt),
                     elt.add.eq(lay.mode == mode_number("add")), elt.start.eq(self.start & is_elt)]
        wiring.connect(m, wiring.flipped(self.x2), elt.x2)
        m.d.comb += [cx.valid.eq(self.x.valid & ~is_elt), cx.payload.eq(self.x.payload),
                     elt.x.valid.eq(self.x.valid & is_elt), elt.x.payload.eq(self.x.payload),
                     self.x.ready.eq(Mux(is_elt, elt.x.ready, cx.ready)),
                     self.o.valid.eq(Mux(is_elt, elt.o.valid, co.valid)),
                     co.ready.eq(self.o.ready & ~is_elt), elt.o.ready.eq(self.o.ready & is_elt),
                     self.busy.eq(conv_busy | elt.busy)]
        zero = Const(0, signed(cfg.act_bits))
        for e in range(len(self.o.payload)):
            c, ch = divmod(e, cfg.unroll_in)
            se = elt.o.payload[c][ch] if c < cfg.n else zero
            m.d.comb += self.o.payload[e].eq(Mux(is_elt, se, co.payload[e]))

    def _conv(self, m, x, o):
        """The convolution modes (winograd, direct, linear) between ``x`` and ``o``."""
        cfg, dcfg, lay, opt = self.cfg, self.dcfg, self.layer, self.options
        m.submodules.pe = pe = self._pe()
        m.submodules.gen = gen = WindowGenerator(dcfg, max_width=self.buf.max_width,
                                                 max_channels=self.buf.max_channels,
                                                 max_kernel=self.buf.max_kernel, sets=self.window_sets,
                                                 blackbox_ram=opt.blackbox_ram)
        m.submodules.steps = steps = DirectSteps(dcfg, pe.i.payload.shape())
        sum_bits = pe.acc_bits if self.direct_only else pe.sum_bits
        m.submodules.dout = dout = DirectOutput(dcfg, sum_bits)
        direct = Signal()
        m.d.comb += direct.eq(_mode_in(lay.mode, DIRECT_MODES))
        eng = lay.direct.eng
        m.d.comb += [gen.layer.eq(lay.direct.win), steps.layer.eq(eng), dout.layer.eq(eng),
                     gen.start.eq(self.start & direct), steps.start.eq(self.start & direct),
                     pe.clear.eq(self.start)]
        wiring.connect(m, gen.o, steps.i)
        if self.direct_only:
            wiring.connect(m, wiring.flipped(self.w), pe.w)
            wiring.connect(m, steps.o, pe.i)
            wiring.connect(m, x, gen.x)
            m.d.comb += pe.steps.eq(eng.n_step)
            self._direct_tail(m, pe, dout, lambda k: pe.o.payload.acc[k][0])
            m.d.comb += [o.valid.eq(dout.o.valid), dout.o.ready.eq(o.ready)]
            self._out_payload(m, o, direct, None, dout.o.payload)
            issued = steps.o.valid & steps.o.ready & steps.o.payload.tag.last
            return self._busy(m, o, steps.busy, issued)
        self._weights(m, pe)
        wino_x, wino_steps, wino_busy, wino_o = self._winograd_front(m)
        m.d.comb += [pe.mode.eq(direct), pe.steps.eq(Mux(direct, eng.n_step, lay.wino.geom.n_cg))]
        # x: to the mode's buffer only (the other one's ready may be high on stale fields)
        m.d.comb += [wino_x.valid.eq(x.valid & ~direct), wino_x.payload.eq(x.payload),
                     gen.x.valid.eq(x.valid & direct), gen.x.payload.eq(x.payload),
                     x.ready.eq(Mux(direct, gen.x.ready, wino_x.ready))]
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
        m.d.comb += [o.valid.eq(Mux(direct, do.valid, wo.valid)),
                     wo.ready.eq(o.ready & ~direct), do.ready.eq(o.ready & direct)]
        self._out_payload(m, o, direct, wo.payload.data, do.payload)
        issued = Mux(wino_o, cfg.unroll, 0) + (steps.o.valid & steps.o.ready & steps.o.payload.tag.last)
        return self._busy(m, o, wino_busy | steps.busy, issued)

    def _weights(self, m, pe):
        """``w`` into the dual array: straight through, or, in Winograd mode of a spatial core,
        through :class:`rtl.wtransform.KernelSplitter` and :class:`rtl.wtransform.SpatialWeights`
        (the layer word's ``wino.wt``: the U requant). The mode picks the side; the other one
        sees no valid beat (the transform is empty between commands: a command's weights are
        all used before its last output)."""
        cfg, w = self.cfg, self.w
        if cfg.weights != "spatial":
            wiring.connect(m, wiring.flipped(w), pe.w)
            return
        m.submodules.wsplit = split = KernelSplitter(cfg, cfg.weight_lanes)
        m.submodules.wxf = wxf = SpatialWeights(cfg, cfg.weight_lanes)
        wiring.connect(m, split.o, wxf.i)
        wino = Signal()
        m.d.comb += [wino.eq(self.layer.mode == mode_number("winograd")), wxf.params.eq(self.layer.wino.wt),
                     split.i.payload.eq(w.payload), split.i.valid.eq(w.valid & wino),
                     w.ready.eq(Mux(wino, split.i.ready, pe.w.ready)),
                     pe.w.valid.eq(Mux(wino, wxf.o.valid, w.valid)),
                     pe.w.payload.eq(Mux(wino, wxf.o.payload.as_value(), w.payload.as_value())),
                     wxf.o.ready.eq(pe.w.ready & wino)]

    def _out_payload(self, m, o, direct, wino, dir_):
        """``o``'s elements: the mode's beat (``wino``: m² outputs, ``dir_``: ``unroll``; a
        missing mode gives zeros), zero beyond its length."""
        zero = Const(0, signed(self.cfg.act_bits))
        for e in range(len(o.payload)):
            we = wino[e] if wino is not None and e < len(wino) else zero
            de = dir_[e] if e < len(dir_) else zero
            m.d.comb += o.payload[e].eq(Mux(direct, de, we))

    def _winograd_front(self, m):
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
        start = self.start & (lay.mode == mode_number("winograd"))
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
        m.submodules.ser = ser = Serializer(cfg, pe.acc_bits, gap=writer_beat_cycles(cfg, "winograd") - 1)
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

    def _busy(self, m, o, source_busy, issued):
        """The convolutions' ``busy``: a step source still running, or output beats owed: ``issued`` beats are
        added when a tile's (pixel's) last step is issued, one taken off per ``o`` beat."""
        owed = Signal(range(core_outputs_in_flight(self.cfg, direct_only=self.direct_only) + 1))
        m.d.sync += owed.eq(owed + issued - (o.valid & o.ready))
        busy = Signal()
        m.d.comb += busy.eq(source_busy | (owed != 0))
        return busy
