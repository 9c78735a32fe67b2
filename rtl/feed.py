"""Feeders: the compute engines' streams made from scratchpad contents, and their outputs
written back, in the layouts of ``docs/image.md``, so that a layer's output is the next
layer's input without a host reshuffle.

- :class:`ActivationReader`: a band ``[C][rows][W]`` of int8 activations (channels
  ``in_cstride`` bytes apart, rows ``W`` apart, from ``in_addr``) as ``x`` beats
  (:func:`rtl.tilebuf.input_beat_layout`), in :func:`wino_gen.schedule.winograd_x_order` with
  the padded-column rule of :mod:`rtl.top` (mode 0: column ``xs`` holds image column
  ``xs - pad``) or, for the window generator, in :func:`wino_gen.schedule.window_x_order`
  (mode 1: column ``xs`` holds ``xs``, the band once per output-channel block) or, for the
  element-wise modes (3, 4, 5: ``add``, ``maxpool``, ``avgpool``), row segments of a
  ``[C][H][W]`` tensor in :func:`wino_gen.schedule.segment_order` (channel group -> row ->
  segment; ``add``'s second operand from a second reader on the core's ``x2``); beat for beat
  the host encoder's (``wino_gen.flow.host.WinogradLayer.x_beats``,
  :func:`rtl.window.window_x_beats`, :func:`wino_gen.flow.host.segment_beats`): zeros outside
  the image and past the channels.
- :class:`WeightReader`: a weight block ``[k][c][t]`` (dense, row ``k`` of ``E = (c1-c0)*T``
  bytes) as ``w`` words (:func:`rtl.pe.weight_stream_layout`): word ``j`` of a block takes
  bytes ``j*L .. j*L + L-1`` of each of its ``unroll`` rows (``L = unroll_in * n²``: a
  Winograd channel group's ``unroll_in x n²`` taps, or a direct im2col chunk, whose
  ``(c, ky, kx)`` order is the row's), zero past ``E`` and past ``k1``; blocks in
  :func:`wino_gen.schedule.winograd_w_order` (``reps`` = tile rows) or
  :func:`wino_gen.schedule.direct_w_order` (``reps`` = 1). In a spatial-weight build
  (:func:`reads_spatial`) a Winograd command may name a block of int8 3x3 kernels (``T = 9``,
  the command's ``spatial``, docs/image.md's layout of a ``weight_format`` 1 image): word ``j``
  takes bytes ``j*9*unroll_in ..`` of each row, kernel ``(k, c)``'s ``W[a][b]`` in
  ``data[k][c][a*3 + b]`` and zeros in taps ``9 .. n²-1`` (the words ``rtl.core.Core``'s weight
  transform takes), in the reads and cycles of a U word. The biases come from the parameter
  memory (a scratchpad of int32 words, as the parameter block lies in it) through read
  windows of their own (``bias``, one per weight window, the int32 of ``k0`` at byte
  ``bias_addr``), read beside the block's first word and carried on every word, as the host
  encoder does.
- :class:`OutputWriter`: the Winograd engine's m x m beats
  (:func:`wino_gen.schedule.winograd_output_order`), the direct engine's ``unroll``-channel
  beats (:func:`wino_gen.schedule.direct_output_order`) or the element-wise modes' row
  segments (``segment_order`` of the result) as int8 ``[K][rows][Wo]`` at ``out_addr``,
  channels ``out_cstride`` apart, partial tiles, the block's channels past ``k1`` and a
  segment's columns past ``Wo`` cropped (``wino_gen.flow.host.WinogradLayer.collect``,
  :func:`wino_gen.flow.host.segment_image`).

Each takes its command (the COMPUTE fields it needs and the layer's geometry:
:func:`activation_fields`, :func:`weight_fields`, :func:`output_fields`), held during a run;
``start`` (one cycle) begins it, ``busy`` is high until its last beat or write is done.
Scratchpad access is through :mod:`rtl.mem.scratchpad`'s byte windows of ``width`` bits (any
byte address), one access a window and cycle, one cycle of read latency. Rates with no stalls
(:func:`wino_gen.schedule.feed_rates`, and the cycles of a run,
:func:`~wino_gen.schedule.activation_read_cycles` etc.), and what keeps up with the engine:

- reader: one ``x`` beat a cycle from ``unroll_in`` windows of at least n bytes, as a host;
- weights: a word every ``ceil(unroll / ports) * ceil(L / B)`` cycles (``B = width / 8``; a
  spatial word's ``9 * unroll_in`` bytes a row in the same reads);
  ``ports = unroll`` windows of ``B >= L`` bytes give a word a cycle, as a host. The Winograd
  engine takes a word per tile column (``tw`` steps), the direct engine a block's words once
  per ``n_pix`` pixels, so fewer windows often keep up;
- writer: a Winograd beat every ``ceil(m / ports)`` cycles (a tile row of m bytes a window),
  a direct beat every ``ceil(unroll / ports)`` (a byte a channel), a segment every
  ``ceil(unroll_in / ports)`` (n bytes a channel); ``ports = m`` (``unroll``, ``unroll_in``)
  takes a beat a cycle, the engine's most. The system's writer has one window (a block RAM's
  one write port, which it takes before the DMA) and the compute core paces its beats to it
  (:func:`wino_gen.schedule.writer_beat_cycles`).

With those, a layer from the scratchpads takes the host-fed engine's cycles plus at most the
feeders' lag at the start (``tests/test_rtl_feed.py`` checks it against ``wino_gen.perf``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from wino_gen.config import AcceleratorConfig
from wino_gen.isa import MODES
from wino_gen.limits import MAX_PAD, PAD_FIELD_BITS
from wino_gen.schedule import (
    DirectGeometry,
    SegmentGeometry,
    WindowGeometry,
    WinogradGeometry,
    feed_rates,
    pe_geometry,
)

from .core import ELTWISE_MODES, MODE_BITS, core_out_layout
from .mem.scratchpad import ByteReadSignature, ByteWriteSignature
from .pe import weight_stream_layout
from .tilebuf import input_beat_layout
from .top import direct_out_layout, winograd_out_layout
from .wtransform import TAPS_IN

#: ActivationReader modes: the COMPUTE instruction's numbers of the modes they feed
#: (``wino_gen.isa.MODES``), so that a sequencer copies its ``mode`` field.
WINOGRAD, WINDOW = MODES.index("winograd"), MODES.index("direct")
#: The element-wise modes' numbers: row segments (``wino_gen.schedule.segment_order``) in and out.
SEGMENT_MODES = tuple(MODES.index(md) for md in ELTWISE_MODES)

#: Bits of an int8 scratchpad element, and of a bias in the parameter block.
BYTE, BIAS_WORD = 8, 32


def _check(cfg: AcceleratorConfig, depth: int, width: int, least: int, what: str) -> int:
    """Validate the shared constructor arguments; the scratchpad's address bits."""
    if not isinstance(cfg, AcceleratorConfig):
        raise ValueError(f"cfg {cfg!r}: must be an AcceleratorConfig")
    if max(cfg.act_bits, cfg.weight_bits) > BYTE:
        raise ValueError(f"cfg: act_bits {cfg.act_bits} / weight_bits {cfg.weight_bits}: the scratchpads hold int8")
    if depth < 2 or depth & (depth - 1):
        raise ValueError(f"depth {depth}: must be a power of two (the scratchpad's bytes)")
    B = width // 8
    if width % 8 or B & (B - 1) or B < least:
        raise ValueError(f"width {width}: must be 8 times a power of two of at least {least} bytes ({what})")
    return ceil_log2(depth)


def _coord(cfg):
    return unsigned(bits_for(cfg.max_width + 2 * MAX_PAD + 2 * cfg.n))


def _chan(cfg):
    return unsigned(bits_for(cfg.max_channels))


def _segments(mode) -> Value:
    """``mode`` (a command's field) is an element-wise mode: row segments."""
    return Cat(*(mode == v for v in SEGMENT_MODES)).any()


def _mode_number(mode: str | None, allowed: tuple[str, ...]) -> int:
    """A segment command's ``mode`` field: the ISA number of the element-wise ``mode`` (the
    reader and writer walk all three alike; the field is the COMPUTE's, copied)."""
    if mode not in allowed:
        raise ValueError(f"mode {mode!r}: a segment command is for one of {allowed}")
    return MODES.index(mode)


def _count(m, counters, step):
    """Nested counters, outermost first, each ``(signal, limit, on_count, on_wrap)``. On
    ``step`` the innermost one moves, and each one whose inner counters are all at their last
    value: it wraps to 0 at ``limit`` (running the statements ``on_wrap``), else counts
    (``on_count``). Returns a signal high while every counter is at its last value."""
    last = [sig + 1 == lim for sig, lim, _, _ in counters]
    all_last = Signal()
    m.d.comb += all_last.eq(1)
    for lv in last:
        with m.If(~lv):
            m.d.comb += all_last.eq(0)
    with m.If(step):
        # innermost first: where an inner counter's statements and an outer one's assign the
        # same signal, the outer one's (the later statement) wins
        for i, (sig, _, on_count, on_wrap) in reversed(list(enumerate(counters))):
            inner = Signal(name=f"{sig.name}_moves")
            m.d.comb += inner.eq(1)
            for lv in last[i + 1:]:
                with m.If(~lv):
                    m.d.comb += inner.eq(0)
            with m.If(inner):
                with m.If(last[i]):
                    m.d.sync += [sig.eq(0), *on_wrap]
                with m.Else():
                    m.d.sync += [sig.eq(sig + 1), *on_count]
    return all_last


# -- activations ------------------------------------------------------------------------------

def activation_layout(cfg: AcceleratorConfig, depth: int) -> data.StructLayout:
    a, c, ch = ceil_log2(depth), _coord(cfg), _chan(cfg)
    return data.StructLayout({"mode": MODE_BITS, "in_addr": a, "in_cstride": a, "rows": c, "w": c,
                              "pad": PAD_FIELD_BITS, "channels": ch, "n_cg": ch, "nxb": c, "n_kb": ch})


def activation_fields(g: WinogradGeometry | WindowGeometry | SegmentGeometry, *, in_addr: int, in_cstride: int,
                      mode: str | None = None) -> dict:
    """The reader's command for a band of ``g``'s geometry (its ``C``, ``H`` the band's
    channels ``c1 - c0`` and rows) at ``in_addr``: Winograd engine, window generator, or
    (``SegmentGeometry``) the element-wise ``mode``'s row segments of a ``[C][H][W]`` tensor."""
    if isinstance(g, SegmentGeometry):
        return {"mode": _mode_number(mode, ELTWISE_MODES), "in_addr": in_addr, "in_cstride": in_cstride,
                "rows": g.H, "w": g.W, "pad": 0, "channels": g.C, "n_cg": g.groups, "nxb": g.nxb, "n_kb": 1}
    if isinstance(g, WinogradGeometry):
        return {"mode": WINOGRAD, "in_addr": in_addr, "in_cstride": in_cstride, "rows": g.H, "w": g.W,
                "pad": g.pad, "channels": g.C, "n_cg": g.n_cg, "nxb": g.nxb, "n_kb": 1}
    d = g.d
    return {"mode": WINDOW, "in_addr": in_addr, "in_cstride": in_cstride, "rows": d.H, "w": d.W, "pad": 0,
            "channels": d.C, "n_cg": g.n_cg, "nxb": g.nxb, "n_kb": d.n_kb}


class ActivationReader(wiring.Component):
    """``x`` beats from a band in the scratchpad (module doc): ``unroll_in`` read windows
    ``rd`` of ``width`` bits (at least n bytes: one beat a cycle), one per channel of a beat,
    on a scratchpad of ``depth`` bytes. The convolutions walk ``kb -> y -> cg -> xb``; the
    element-wise modes ``cg -> y -> xb`` (``segment_order``: the pool's line buffer holds
    rows of one group), columns unshifted as the window generator's."""

    def __init__(self, cfg: AcceleratorConfig, *, depth: int, width: int):
        aw = _check(cfg, depth, width, cfg.n, "a beat's n columns in one read")
        self.cfg, self.depth, self.width = cfg, depth, width
        super().__init__({
            "cmd": In(activation_layout(cfg, depth)),
            "start": In(1),
            "busy": Out(1),
            "rd": Out(ByteReadSignature(addr_width=aw, width=width)).array(cfg.unroll_in),
            "x": Out(stream.Signature(input_beat_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, cmd, x = self.cfg, self.cmd, self.x
        n, ui = cfg.n, cfg.unroll_in
        aw = len(self.rd[0].addr)
        kb, y, cg, xb = (Signal.like(cmd.n_kb, name="kb"), Signal.like(cmd.rows, name="y"),
                         Signal.like(cmd.n_cg, name="cg"), Signal.like(cmd.nxb, name="xb"))
        row, grp = Signal(aw, name="row"), Signal(aw, name="grp")   # in_addr + y*W; + cg*ui*in_cstride
        xs, c_base = Signal(len(cmd.nxb) + ceil_log2(n) + 1), Signal.like(cmd.channels, name="c_base")
        walking = Signal()
        off = Mux(cmd.mode == WINOGRAD, cmd.pad, 0)
        passes = Mux(cmd.mode == WINDOW, cmd.n_kb, 1)
        seg = _segments(cmd.mode)
        en = Signal()
        m.d.comb += [en.eq(~x.valid | x.ready), self.busy.eq(walking | x.valid)]
        issue = en & walking
        for i in range(ui):
            m.d.comb += [self.rd[i].addr.eq(grp + i * cmd.in_cstride + xs - off), self.rd[i].en.eq(en)]
        colv, chv = Signal(n), Signal(ui)
        with m.If(en):
            m.d.sync += x.valid.eq(walking)
            for j in range(n):
                m.d.sync += colv[j].eq((xs + j >= off) & (xs + j < cmd.w + off))
            for i in range(ui):
                m.d.sync += chv[i].eq(c_base + i < cmd.channels)
        for j in range(n):
            for i in range(ui):
                byte = self.rd[i].data.word_select(j, BYTE)
                m.d.comb += x.payload[j][i].eq(Mux(colv[j] & chv[i], byte[:cfg.act_bits], 0))
        cols = (xb, cmd.nxb, [xs.eq(xs + n)], [xs.eq(0)])
        conv_done = _count(m, [
            (kb, passes, [], []),
            (y, cmd.rows, [row.eq(row + cmd.w), grp.eq(row + cmd.w)], [row.eq(cmd.in_addr), grp.eq(cmd.in_addr)]),
            (cg, cmd.n_cg, [grp.eq(grp + ui * cmd.in_cstride), c_base.eq(c_base + ui)], [c_base.eq(0)]),
            cols,
        ], issue & ~seg)
        # segments: ``row`` is the group's base (in_addr + cg*ui*in_cstride), ``grp`` the row's
        group_step = row + ui * cmd.in_cstride
        seg_done = _count(m, [
            (cg, cmd.n_cg, [row.eq(group_step), grp.eq(group_step), c_base.eq(c_base + ui)], []),
            (y, cmd.rows, [grp.eq(grp + cmd.w)], [grp.eq(row)]),
            cols,
        ], issue & seg)
        done = Mux(seg, seg_done, conv_done)
        with m.If(issue & done):
            m.d.sync += walking.eq(0)
        with m.If(self.start):
            m.d.sync += [walking.eq(1), x.valid.eq(0), kb.eq(0), y.eq(0), cg.eq(0), xb.eq(0), xs.eq(0),
                         c_base.eq(0), row.eq(cmd.in_addr), grp.eq(cmd.in_addr)]
        return m


# -- weights ----------------------------------------------------------------------------------

def reads_spatial(cfg: AcceleratorConfig) -> bool:
    """A build whose Winograd mode takes spatial kernels (``weights='spatial'``): its weight
    reader has the command field ``spatial`` (a block of 3x3 kernels, ``T = 9``)."""
    return cfg.algo == "winograd" and cfg.weights == "spatial"


def weight_layout(cfg: AcceleratorConfig, depth: int, param_bytes: int) -> data.StructLayout:
    a, ch = ceil_log2(depth), _chan(cfg)
    f = {"w_addr": a, "row_bytes": a, "n_step": a, "kc": ch, "n_kb": ch, "reps": _coord(cfg),
         "bias_addr": ceil_log2(param_bytes)}
    if reads_spatial(cfg):
        f["spatial"] = 1
    return data.StructLayout(f)


def weight_fields(g: WinogradGeometry | DirectGeometry, *, w_addr: int, bias_addr: int,
                  spatial: bool = False) -> dict:
    """The weight reader's command for a block of ``g``'s geometry (its ``K``, ``C`` the block's
    ``k1 - k0``, ``c1 - c0``) at ``w_addr``, the int32 biases of ``k0..`` from byte ``bias_addr`` of
    the parameter memory; ``spatial``: a Winograd block of spatial 3x3 kernels (``T = 9``, for a
    reader of a :func:`reads_spatial` build)."""
    if spatial and not isinstance(g, WinogradGeometry):
        raise ValueError("spatial: only a Winograd block holds spatial kernels")
    if isinstance(g, WinogradGeometry):
        taps, n_step, reps = TAPS_IN if spatial else g.n * g.n, g.n_cg, g.th
    else:
        taps, n_step, reps = g.kh * g.kw, g.n_step, 1
    return {"w_addr": w_addr, "row_bytes": g.C * taps, "n_step": n_step, "kc": g.K, "n_kb": g.n_kb,
            "reps": reps, "bias_addr": bias_addr, "spatial": int(spatial)}


class WeightReader(wiring.Component):
    """``w`` words from a weight block in the scratchpad (module doc) through ``ports`` read
    windows ``rd`` of ``width`` bits on a scratchpad of ``depth`` bytes (window ``l`` reads rows
    ``l, l + ports, ..`` of a word, so a word takes ``ceil(unroll / ports) * ceil(L / B)``
    cycles), and as many 32-bit read windows ``bias`` on the parameter memory (a scratchpad of
    ``param_bytes``), each read beside its window's row."""

    def __init__(self, cfg: AcceleratorConfig, *, depth: int, width: int, param_bytes: int, ports: int = 1):
        aw = _check(cfg, depth, width, 1, "a byte")
        if param_bytes < 8 or param_bytes & (param_bytes - 1):
            raise ValueError(f"param_bytes {param_bytes}: must be a power of two of at least two int32 words")
        if not 1 <= ports <= cfg.unroll:
            raise ValueError(f"ports {ports}: must be in 1..unroll ({cfg.unroll})")
        self.cfg, self.depth, self.width, self.ports = cfg, depth, width, ports
        self.rate = feed_rates(cfg, weight_bytes=width // 8, weight_ports=ports).w
        super().__init__({
            "cmd": In(weight_layout(cfg, depth, param_bytes)),
            "start": In(1),
            "busy": Out(1),
            "rd": Out(ByteReadSignature(addr_width=aw, width=width)).array(ports),
            "bias": Out(ByteReadSignature(addr_width=ceil_log2(param_bytes), width=BIAS_WORD)).array(ports),
            "w": Out(stream.Signature(weight_stream_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, cmd, w, P = self.cfg, self.cmd, self.w, self.ports
        pe = pe_geometry(cfg)
        L, B, un = pe.lanes, self.width // 8, cfg.unroll
        R = -(-L // B)                      # reads per row of a word
        G = -(-un // P)                     # row groups: the rows the windows read together
        assert G * R == self.rate
        aw = len(self.rd[0].addr)
        E = cmd.row_bytes
        # a spatial block's word holds ``unroll_in`` 3x3 kernels a row: a shorter chunk, read
        # in the same R reads (the ones past it land nowhere)
        spatial = cmd.spatial if reads_spatial(cfg) else None
        chunk = L if spatial is None else Mux(spatial, cfg.unroll_in * TAPS_IN, L)
        rep, kb = Signal.like(cmd.reps, name="rep"), Signal.like(cmd.n_kb, name="kb")
        step, ug, r = Signal.like(cmd.n_step, name="step"), Signal(range(G), name="ug"), Signal(range(R), name="r")
        blk, row = Signal(aw, name="blk"), Signal(aw, name="row")   # w_addr + kb*un*E; + ug*P*E
        seg, rb = Signal(aw, name="seg"), Signal(range(R * B + 1), name="rb")   # step*L; r*B
        kbase, ubase = Signal.like(cmd.kc, name="kbase"), Signal(range(G * P + 1), name="ubase")   # kb*un; ug*P
        walking = Signal()
        # the read stage: the windows' data registers and these tags, held while it stalls
        v1, ug1, r1 = Signal(name="v1"), Signal.like(ug, name="ug1"), Signal.like(r, name="r1")
        masks = [Signal(B, name=f"mask{lane}") for lane in range(P)]
        rowv1, first1, last1 = Signal(P, name="rowv1"), Signal(name="first1"), Signal(name="last1")
        asm, full = Signal(weight_stream_layout(cfg), name="asm"), Signal(name="asm_full")
        move, take, en = Signal(), Signal(), Signal()
        m.d.comb += [move.eq(full & (~w.valid | w.ready)), take.eq(v1 & (~full | move)), en.eq(~v1 | take),
                     self.busy.eq(walking | v1 | full | w.valid)]
        issue = en & walking
        with m.If(en):
            m.d.sync += [v1.eq(walking), ug1.eq(ug), r1.eq(r), first1.eq((step == 0) & (r == 0)),
                         last1.eq((ug == G - 1) & (r == R - 1))]
        for lane in range(P):
            rowv = (kbase + ubase + lane < cmd.kc) & (ubase + lane < un)
            m.d.comb += [self.rd[lane].addr.eq(row + lane * E + seg + rb), self.rd[lane].en.eq(en),
                         self.bias[lane].addr.eq(cmd.bias_addr + (kbase + ubase + lane) * (BIAS_WORD // 8)),
                         self.bias[lane].en.eq(en)]
            with m.If(en):
                m.d.sync += rowv1[lane].eq(rowv)
                for j in range(B):
                    m.d.sync += masks[lane][j].eq(rowv & (seg + rb + j < E))
        with m.If(take):
            self._assemble(m, asm, ug1 * R + r1, masks, rowv1, first1, R, spatial)
        with m.If(take & last1):
            m.d.sync += full.eq(1)
        with m.Elif(move):
            m.d.sync += full.eq(0)
        with m.If(move):
            m.d.sync += [w.payload.eq(asm), w.valid.eq(1)]
        with m.Elif(w.ready):
            m.d.sync += w.valid.eq(0)
        done = _count(m, [
            (rep, cmd.reps, [], []),
            (kb, cmd.n_kb, [blk.eq(blk + un * E), row.eq(blk + un * E), kbase.eq(kbase + un)],
             [blk.eq(cmd.w_addr), row.eq(cmd.w_addr), kbase.eq(0)]),
            (step, cmd.n_step, [seg.eq(seg + chunk)], [seg.eq(0)]),
            (ug, G, [row.eq(row + P * E), ubase.eq(ubase + P)], [row.eq(blk), ubase.eq(0)]),
            (r, R, [rb.eq(rb + B)], [rb.eq(0)]),
        ], issue)
        with m.If(issue & done):
            m.d.sync += walking.eq(0)
        with m.If(self.start):
            m.d.sync += [walking.eq(1), v1.eq(0), full.eq(0), w.valid.eq(0), rep.eq(0), kb.eq(0), step.eq(0),
                         ug.eq(0), r.eq(0), blk.eq(cmd.w_addr), row.eq(cmd.w_addr), seg.eq(0), rb.eq(0),
                         kbase.eq(0), ubase.eq(0)]
        return m

    def _assemble(self, m, asm, q_sig, masks, rowv1, first1, R, spatial):
        """Read ``q = ug * R + r`` has landed: window ``l``'s bytes are bytes ``r*B ..`` of row
        ``ug*P + l`` of the word (masked), and, on a block's first word, its bias. Byte ``o`` of
        a row's chunk is tap ``o % S`` of the group's channel ``o // S``; of a spatial block's
        chunk (``spatial`` high) tap ``o % 9`` of channel ``o // 9``, the word's taps ``9 ..
        S-1`` zero (written with its first read)."""
        cfg, P = self.cfg, self.ports
        pe = pe_geometry(cfg)
        L, S = pe.lanes, pe.taps
        with m.Switch(q_sig):
            for q in range(-(-cfg.unroll // P) * R):
                g, rq = divmod(q, R)
                with m.Case(q):
                    for lane in range(P):
                        u = g * P + lane
                        if u >= cfg.unroll:
                            continue
                        self._place(m, asm.data[u], lane, rq, masks[lane], L, S, spatial)
                        if rq == 0:
                            with m.If(first1):
                                bias = self.bias[lane].data[:cfg.bias_bits]
                                m.d.sync += asm.bias[u].eq(Mux(rowv1[lane], bias, 0))

    def _place(self, m, row, lane, rq, mask, L, S, spatial):
        """Window ``lane``'s bytes of read ``rq`` into ``row`` (a word's ``[c][t]`` of one output
        channel): a U / direct chunk of ``L`` bytes, or (``spatial`` high) kernels of 9."""
        cfg, B = self.cfg, self.width // 8

        def put(chunk, taps):
            stmts = []
            for j in range(min(B, chunk - rq * B)):
                i, t = divmod(rq * B + j, taps)
                byte = self.rd[lane].data.word_select(j, BYTE)
                stmts.append(row[i][t].eq(Mux(mask[j], byte[:cfg.weight_bits], 0)))
            return stmts

        if spatial is None:
            m.d.sync += put(L, S)
            return
        with m.If(spatial):
            m.d.sync += put(cfg.unroll_in * TAPS_IN, TAPS_IN)
            if rq == 0:
                m.d.sync += [row[i][t].eq(0) for i in range(cfg.unroll_in) for t in range(TAPS_IN, S)]
        with m.Else():
            m.d.sync += put(L, S)


# -- outputs ----------------------------------------------------------------------------------

#: The engines whose output beats an OutputWriter takes (its ``mode`` field: their
#: ``wino_gen.isa.MODES`` numbers).
OUT_MODES = ("winograd", "direct")
#: Everything a writer can take: the engines' beats and the element-wise unit's row segments
#: (``eltwise``: the ``mode`` field's add, maxpool and avgpool numbers), in this order.
WRITER_MODES = (*OUT_MODES, "eltwise")


def output_layout(cfg: AcceleratorConfig, depth: int, modes: tuple[str, ...] | None = None) -> data.StructLayout:
    """The writer's command for ``modes`` (by default ``cfg.algo``'s); ``mode`` where there are
    several (the ISA's mode number)."""
    modes = (cfg.algo,) if modes is None else modes
    a, c, ch = ceil_log2(depth), _coord(cfg), _chan(cfg)
    f = {"mode": MODE_BITS} if len(modes) > 1 else {}
    f.update(out_addr=a, out_cstride=a, kc=ch, n_kb=ch)
    if "winograd" in modes:
        f.update(ho=c, wo=c, th=c, tw=c, skip=PAD_FIELD_BITS)
    if "direct" in modes:
        f.update(n_pix=bits_for(cfg.max_width ** 2))
    if "eltwise" in modes:
        f.update(ho=c, wo=c, n_cg=ch, nxb=c)
    return data.StructLayout(f)


def output_fields(g: WinogradGeometry | DirectGeometry | SegmentGeometry, *, out_addr: int, out_cstride: int,
                  rows: tuple[int, int] | None = None, mode: str | None = None) -> dict:
    """The writer's command for a tile of ``g``'s geometry (its ``K`` the tile's ``k1 - k0``)
    written at ``out_addr``; ``mode`` is for a multi-mode writer. Winograd ``rows``: the engine's
    output rows ``[a, b)`` to keep, by default all ``Ho`` (a band that starts inside the image
    drops the rows that saw the engine's padding: :func:`wino_gen.schedule.winograd_band`).
    ``SegmentGeometry``: the element-wise ``mode``'s output ``[C][H][W]`` (its ``C``, ``H``,
    ``W`` the result's)."""
    if isinstance(g, SegmentGeometry):
        return {"mode": _mode_number(mode, ELTWISE_MODES), "out_addr": out_addr, "out_cstride": out_cstride,
                "kc": g.C, "n_kb": 0, "ho": g.H, "wo": g.W, "n_cg": g.groups, "nxb": g.nxb}
    f = {"out_addr": out_addr, "out_cstride": out_cstride, "kc": g.K, "n_kb": g.n_kb}
    if isinstance(g, WinogradGeometry):
        a, b = rows or (0, g.Ho)
        return {**f, "mode": MODES.index("winograd"), "ho": b - a, "skip": a, "wo": g.Wo, "th": g.th, "tw": g.tw}
    return {**f, "mode": MODES.index("direct"), "n_pix": g.n_pix}


def output_beat_layout(cfg: AcceleratorConfig, modes: tuple[str, ...]) -> data.ArrayLayout:
    """The beats a writer of ``modes`` takes: an engine's own, or otherwise the compute core's
    one stream (:func:`rtl.core.core_out_layout`: a Winograd beat in the first m², a direct
    one in the first ``unroll``, a row segment in the first ``n * unroll_in``)."""
    if modes == ("winograd",):
        return winograd_out_layout(cfg)
    if modes == ("direct",):
        return direct_out_layout(cfg)
    return core_out_layout(cfg)


class OutputWriter(wiring.Component):
    """Writes ``o`` beats of the engines in ``modes`` (by default ``cfg.algo``'s; several, from
    a Winograd config: the compute core's, chosen by the command's ``mode``; ``eltwise``: the
    element-wise modes' row segments) into the scratchpad (module doc) through ``ports`` write
    windows ``wr`` of ``width`` bits (Winograd: at least m bytes, a tile row a window;
    segments: at least n bytes, a channel's n columns a window) on a scratchpad of ``depth``
    bytes: window ``l`` writes rows (channels, direct and segments) ``l, l + ports, ..`` of a
    beat, so a beat takes ``ceil(m / ports)`` (``ceil(unroll / ports)``, ``ceil(unroll_in /
    ports)``) cycles."""

    def __init__(self, cfg: AcceleratorConfig, *, depth: int, width: int, ports: int = 1,
                 modes: tuple[str, ...] | None = None):
        modes = (cfg.algo,) if modes is None else tuple(modes)
        if not modes or len(set(modes)) != len(modes) or not set(modes) <= set(WRITER_MODES):
            raise ValueError(f"modes: {modes!r} must be distinct values of {WRITER_MODES}")
        modes = tuple(md for md in WRITER_MODES if md in modes)
        if len(modes) > 1 and "winograd" in modes and cfg.algo != "winograd":
            raise ValueError("modes: a writer of Winograd and other beats is the compute core's (cfg.algo='winograd')")
        if modes in (("winograd",), ("direct",)) and modes[0] != cfg.algo:
            raise ValueError(f"modes: a one-mode writer takes cfg.algo's beats ({cfg.algo!r}), not {modes[0]!r}")
        wino, elt = "winograd" in modes, "eltwise" in modes
        least = max(cfg.tile if wino else 1, cfg.n if elt else 1)
        aw = _check(cfg, depth, width, least, "a tile row / a segment in one write" if least > 1 else "a byte")
        parts = max(cfg.tile if wino else 1, cfg.unroll if "direct" in modes else 1, cfg.unroll_in if elt else 1)
        if not 1 <= ports <= parts:
            raise ValueError(f"ports {ports}: must be in 1..{parts} (the beat's rows or channels)")
        self.cfg, self.depth, self.width, self.ports, self.modes = cfg, depth, width, ports, modes
        super().__init__({
            "cmd": In(output_layout(cfg, depth, modes)),
            "start": In(1),
            "busy": Out(1),
            "i": In(stream.Signature(output_beat_layout(cfg, modes))),
            "wr": Out(ByteWriteSignature(addr_width=aw, width=width)).array(ports),
        })

    def elaborate(self, platform):
        m = Module()
        i, cmd = self.i, self.cmd
        cur, full, busy = Signal(i.payload.shape(), name="cur"), Signal(name="full"), Signal(name="busy_r")
        beat_end, done = Signal(), Signal()
        walks = {"winograd": self._winograd, "direct": self._direct, "eltwise": self._segments}
        for mode in self.modes:
            if len(self.modes) == 1:
                here = full
            else:
                here = full & (_segments(cmd.mode) if mode == "eltwise" else cmd.mode == MODES.index(mode))
            walk = walks[mode]
            w_end, w_done, lanes = walk(m, cur, here)
            with m.If(here):
                m.d.comb += [beat_end.eq(w_end), done.eq(w_done)]
                for wr, (addr, dat, en) in zip(self.wr, lanes, strict=True):
                    m.d.comb += [wr.addr.eq(addr), wr.data.eq(dat), wr.en.eq(en)]
        m.d.comb += [i.ready.eq(busy & (~full | beat_end)), self.busy.eq(busy)]
        with m.If(i.valid & i.ready):
            m.d.sync += [cur.eq(i.payload), full.eq(1)]
        with m.Elif(full & beat_end):
            m.d.sync += full.eq(0)
        with m.If(full & done):
            m.d.sync += busy.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), full.eq(0)]
        return m

    def _lanes(self, name):
        aw, B = len(self.wr[0].addr), self.width // 8
        return [(Signal(aw, name=f"{name}_addr{lane}"), Signal(self.width, name=f"{name}_data{lane}"),
                 Signal(B, name=f"{name}_en{lane}")) for lane in range(self.ports)]

    def _winograd(self, m, cur, full):
        """Rows ``sub*P + l`` of the held tile, one a window: ``m`` bytes at ``out_addr +
        ch*out_cstride + (ty*m + row - skip)*Wo + tx*m``, the engine's first ``skip`` output
        rows dropped, cropped at ``ho`` rows after them, ``wo`` and ``kc``. Returns the beat's
        last cycle, the layer's last cycle and each window's write."""
        cfg, cmd, P = self.cfg, self.cmd, self.ports
        mt, un = cfg.tile, cfg.unroll
        G = -(-mt // P)
        aw = len(self.wr[0].addr)
        ty, tx = Signal.like(cmd.th, name="ty"), Signal.like(cmd.tw, name="tx")
        kb, k, sub = Signal.like(cmd.n_kb, name="kb"), Signal(range(un), name="k"), Signal(range(G), name="sub")
        blk, cha, tyo, io = (Signal(aw, name=n) for n in ("blk", "cha", "tyo", "io"))
        col, tym, kbase = Signal.like(cmd.wo, name="col"), Signal.like(cmd.ho, name="tym"), Signal.like(cmd.kc)
        rbase = Signal(range(G * P + 1), name="rbase")        # sub * P
        lanes = self._lanes("wino")
        for lane, (addr, dat, en) in enumerate(lanes):
            row = tym + rbase + lane
            ok = full & (row >= cmd.skip) & (row < cmd.ho + cmd.skip) & (rbase + lane < mt) & (kbase + k < cmd.kc)
            m.d.comb += addr.eq(cha + tyo + io + lane * cmd.wo + col - cmd.skip * cmd.wo)
            for j in range(mt):
                m.d.comb += en[j].eq(ok & (col + j < cmd.wo))
            with m.Switch(sub):
                for g in range(G):
                    r = g * P + lane
                    with m.Case(g):
                        if r < mt:
                            m.d.comb += [dat.word_select(j, BYTE).eq(cur[r * mt + j]) for j in range(mt)]
        cs = cmd.out_cstride
        done = _count(m, [
            (ty, cmd.th, [tyo.eq(tyo + mt * cmd.wo), tym.eq(tym + mt)], [tyo.eq(0), tym.eq(0)]),
            (kb, cmd.n_kb, [blk.eq(blk + un * cs), cha.eq(blk + un * cs), kbase.eq(kbase + un)],
             [blk.eq(cmd.out_addr), cha.eq(cmd.out_addr), kbase.eq(0)]),
            (tx, cmd.tw, [col.eq(col + mt)], [col.eq(0)]),
            (k, un, [cha.eq(cha + cs)], [cha.eq(blk)]),
            (sub, G, [io.eq(io + P * cmd.wo), rbase.eq(rbase + P)], [io.eq(0), rbase.eq(0)]),
        ], full)
        with m.If(self.start):
            m.d.sync += [ty.eq(0), kb.eq(0), tx.eq(0), k.eq(0), sub.eq(0), blk.eq(cmd.out_addr), cha.eq(cmd.out_addr),
                         tyo.eq(0), io.eq(0), col.eq(0), tym.eq(0), kbase.eq(0), rbase.eq(0)]
        return sub == G - 1, done, lanes

    def _direct(self, m, cur, full):
        """Channels ``sub*P + l`` of the held pixel, one a window: a byte at ``out_addr +
        ch*out_cstride + pix`` (rows ``Wo`` apart: the pixel index is the offset), channels
        past ``kc`` dropped."""
        cmd, un, P = self.cmd, self.cfg.unroll, self.ports
        G = -(-un // P)
        aw = len(self.wr[0].addr)
        kb, pix = Signal.like(cmd.n_kb, name="kb"), Signal.like(cmd.n_pix, name="pix")
        sub = Signal(range(G), name="sub")
        blk, uo, kbase = Signal(aw, name="blk"), Signal(aw, name="uo"), Signal.like(cmd.kc, name="kbase")
        ubase = Signal(range(G * P + 1), name="ubase")        # sub * P
        cs = cmd.out_cstride
        lanes = self._lanes("direct")
        for lane, (addr, dat, en) in enumerate(lanes):
            m.d.comb += [addr.eq(blk + pix + uo + lane * cs),
                         en[0].eq(full & (kbase + ubase + lane < cmd.kc) & (ubase + lane < un))]
            with m.Switch(sub):
                for g in range(G):
                    with m.Case(g):
                        if g * P + lane < un:
                            m.d.comb += dat.word_select(0, BYTE).eq(cur[g * P + lane])
        done = _count(m, [
            (kb, cmd.n_kb, [blk.eq(blk + un * cs), kbase.eq(kbase + un)], [blk.eq(cmd.out_addr), kbase.eq(0)]),
            (pix, cmd.n_pix, [], []),
            (sub, G, [uo.eq(uo + P * cs), ubase.eq(ubase + P)], [uo.eq(0), ubase.eq(0)]),
        ], full)
        with m.If(self.start):
            m.d.sync += [kb.eq(0), pix.eq(0), sub.eq(0), blk.eq(cmd.out_addr), uo.eq(0), kbase.eq(0), ubase.eq(0)]
        return sub == G - 1, done, lanes

    def _segments(self, m, cur, full):
        """Channels ``sub*P + l`` of the held segment, one a window: element ``c*unroll_in + ch``
        of the beat is channel ``cg*unroll_in + ch``, row ``y``, column ``xb*n + c``, so a
        window writes n bytes at ``out_addr + ch*out_cstride + y*wo + xb*n``, cropped past
        ``wo`` and ``kc`` (segment_order: ``cg -> y -> xb``)."""
        cmd, cfg, P = self.cmd, self.cfg, self.ports
        n, ui = cfg.n, cfg.unroll_in
        G = -(-ui // P)
        aw = len(self.wr[0].addr)
        cg, y, xb = Signal.like(cmd.n_cg, name="cg"), Signal.like(cmd.ho, name="y"), Signal.like(cmd.nxb, name="xb")
        sub = Signal(range(G), name="sub")
        # the group's base (out_addr + cg*ui*cs), the row's (+ y*wo), the window's channel offset
        grp, row, uo = Signal(aw, name="grp"), Signal(aw, name="row"), Signal(aw, name="uo")
        col, cbase = Signal(len(cmd.nxb) + ceil_log2(n) + 1, name="col"), Signal.like(cmd.kc, name="cbase")
        ubase = Signal(range(G * P + 1), name="ubase")        # sub * P
        cs = cmd.out_cstride
        lanes = self._lanes("seg")
        for lane, (addr, dat, en) in enumerate(lanes):
            ok = full & (cbase + ubase + lane < cmd.kc) & (ubase + lane < ui)
            m.d.comb += addr.eq(row + col + uo + lane * cs)
            for j in range(n):
                m.d.comb += en[j].eq(ok & (col + j < cmd.wo))
            with m.Switch(sub):
                for g in range(G):
                    ch = g * P + lane
                    with m.Case(g):
                        if ch < ui:
                            m.d.comb += [dat.word_select(j, BYTE).eq(cur[j * ui + ch]) for j in range(n)]
        group_step = grp + ui * cs
        done = _count(m, [
            (cg, cmd.n_cg, [grp.eq(group_step), row.eq(group_step), cbase.eq(cbase + ui)], []),
            (y, cmd.ho, [row.eq(row + cmd.wo)], [row.eq(grp)]),
            (xb, cmd.nxb, [col.eq(col + n)], [col.eq(0)]),
            (sub, G, [uo.eq(uo + P * cs), ubase.eq(ubase + P)], [uo.eq(0), ubase.eq(0)]),
        ], full)
        with m.If(self.start):
            m.d.sync += [cg.eq(0), y.eq(0), xb.eq(0), sub.eq(0), grp.eq(cmd.out_addr), row.eq(cmd.out_addr),
                         uo.eq(0), col.eq(0), cbase.eq(0), ubase.eq(0)]
        return sub == G - 1, done, lanes
