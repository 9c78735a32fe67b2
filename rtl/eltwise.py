"""Element-wise and pooling units of the compute core: the residual ``add`` and ``maxpool`` /
``avgpool``, bit-exact with ``wino_gen.golden.add`` / ``maxpool`` / ``avgpool``.

Stream order (both units, in and out): one beat is ``lanes`` channels of one pixel, a channel
*group*; a tensor ``[C, H, W]`` is sent group by group, each group row-major (``y`` then
``x``), ``C`` zero-filled up to whole groups. That is CHW blocked by ``lanes`` channels, the
layout a scratchpad word of ``lanes`` activations holds (as the line buffer's words of
``unroll_in`` channels do): a pixel's group is one word, one beat, and a layer's output is the
next layer's input without reshuffling. Row-major *per group* (not row -> group -> column, the
Winograd ``x`` order) is what lets the pool's line buffer hold k rows of one group instead of
k rows of every channel. ``add`` is order-free: lane ``l`` of beat ``t`` of ``a`` meets lane
``l`` of beat ``t`` of ``b``.

The compute core (``rtl.core``) streams row segments instead (n columns of one row,
``lanes`` channels each: its ``x`` beat): :class:`SegmentSplitter` turns them into this
order's pixels for :class:`Pool` and :class:`SegmentPacker` back; :class:`EltwiseAdd` takes
them whole, one lane a segment element. The host side of those beats is
:func:`wino_gen.flow.host.segment_beats` / ``segment_image`` (``wino_gen.schedule.segment_order``).

Both are stall-as-a-whole pipelines (:func:`rtl.pipeline.stage_enable`): ``o`` not ready
freezes every stage, nothing is lost.

The geometry, cycle counts and latencies (``PoolGeometry``, ``pool_geometry``, ``pool_cycles``,
``add_cycles``, ``ADD_LATENCY``, ``pool_latency``) are ``wino_gen.schedule``'s; both units
assert at elaboration that their structure has the schedule's stage counts.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.limits import (
    ADD_MULT_RANGE,
    ADD_SHIFT_RANGE,
    AVGPOOL_MULT_RANGE,
    AVGPOOL_SHIFT_RANGE,
    SHIFT_BITS,
    int_range,
)
from wino_gen.schedule import (
    ADD_LATENCY,
    PoolGeometry,
    ceil_log2,
    pool_latency,
    rq_latency,
    tree_levels,
)

from .arith import rq_pipeline
from .pipeline import delay, payload_layout, stage_enable
from .ram import SDPRam

# -- streams and parameters -------------------------------------------------------------------

def lanes_layout(act_bits: int, lanes: int) -> data.StructLayout:
    """One beat: ``data[lane]``, ``lanes`` signed ``act_bits`` values (one channel group)."""
    return payload_layout({"data": data.ArrayLayout(signed(act_bits), lanes)})


ADD_MULT_BITS = ADD_MULT_RANGE[1].bit_length()
ADD_SHIFT_BITS = ADD_SHIFT_RANGE[1].bit_length()
AVG_MULT_BITS = AVGPOOL_MULT_RANGE[1].bit_length()
AVG_SHIFT_BITS = AVGPOOL_SHIFT_RANGE[1].bit_length()


def add_params_layout() -> data.StructLayout:
    """``add``'s layer parameters (``wino_gen.limits`` ranges): ``rq(a*a_mult + b*b_mult, 1,
    shift)`` then ReLU if ``relu``."""
    return data.StructLayout({"a_mult": unsigned(ADD_MULT_BITS), "b_mult": unsigned(ADD_MULT_BITS),
                              "shift": unsigned(ADD_SHIFT_BITS), "relu": unsigned(1)})


def _check(name: str, value: int, lo: int, hi: int):
    if not lo <= value <= hi:
        raise ValueError(f"{name} ({value}) must be in {lo}..{hi}")


def add_params(a_mult: int, b_mult: int, shift: int, relu: bool) -> dict:
    """The parameter port's value for a model dir's ``add`` (ValueError outside the limits)."""
    for name, v, (lo, hi) in (("a_mult", a_mult, ADD_MULT_RANGE), ("b_mult", b_mult, ADD_MULT_RANGE),
                              ("shift", shift, ADD_SHIFT_RANGE)):
        _check(name, int(v), lo, hi)
    return {"a_mult": int(a_mult), "b_mult": int(b_mult), "shift": int(shift), "relu": int(bool(relu))}


# -- add --------------------------------------------------------------------------------------

class EltwiseAdd(wiring.Component):
    """``o = rq(a * a_mult + b * b_mult, 1, shift, act_bits)``, then ReLU if ``relu``, per lane
    (``golden.add``). A beat moves when ``a`` and ``b`` both hold one; ``params`` are layer
    configuration (constant while beats are in flight). Latency ``wino_gen.schedule.ADD_LATENCY``; two
    ``act_bits x 16`` multipliers per lane."""

    def __init__(self, *, lanes: int, act_bits: int = 8):
        if lanes < 1:
            raise ValueError(f"lanes ({lanes}) must be >= 1")
        if act_bits < 2:
            raise ValueError(f"act_bits ({act_bits}) must be >= 2")
        self.lanes, self.act_bits = lanes, act_bits
        beat = stream.Signature(lanes_layout(act_bits, lanes))
        super().__init__({"params": In(add_params_layout()), "a": In(beat), "b": In(beat), "o": Out(beat)})

    def elaborate(self, platform):
        m = Module()
        p, bits = self.params, self.act_bits
        en = stage_enable(m, self.o)
        m.d.comb += [self.a.ready.eq(en & self.b.valid), self.b.ready.eq(en & self.a.valid)]
        prod_bits = bits + ADD_MULT_BITS
        sum_bits = prod_bits + 1
        assert 2 + rq_latency(False) == ADD_LATENCY     # products, sum, then rq_pipeline (pow2)
        for lane in range(self.lanes):
            pa = Signal(signed(prod_bits), name=f"pa{lane}")
            pb = Signal(signed(prod_bits), name=f"pb{lane}")
            s = Signal(signed(sum_bits), name=f"sum{lane}")
            with m.If(en):
                m.d.sync += [pa.eq(self.a.payload.data[lane] * p.a_mult),
                             pb.eq(self.b.payload.data[lane] * p.b_mult), s.eq(pa + pb)]
            o = rq_pipeline(m, en, s, sum_bits, None, p.shift, bits, relu=p.relu, name=f"rq{lane}")
            m.d.comb += self.o.payload.data[lane].eq(o)
        m.d.comb += self.o.valid.eq(delay(m, en, self.a.valid & self.b.valid, ADD_LATENCY, "valid"))
        return m


# -- pooling ----------------------------------------------------------------------------------

def _bits(n: int) -> int:
    """Bits of an unsigned field holding 0..n."""
    return max(1, ceil_log2(n + 1))


def pool_cmd_layout(max_width: int, max_kernel: int, max_groups: int) -> data.StructLayout:
    """One pooling command (:meth:`Pool.command` fills it): ``avg`` (0: maxpool), the window,
    the image and output sizes, the positions walked (``wino_gen.schedule.PoolGeometry``), the channel
    groups, avgpool's ``mult``/``shift``."""
    k, c = unsigned(_bits(max_kernel)), unsigned(_coord_bits(max_width, max_kernel))
    return data.StructLayout({
        "avg": unsigned(1), "kernel": k, "stride": k, "pad": k,
        "h": c, "w": c, "rows": c, "cols": c, "oh": c, "ow": c,
        "groups": unsigned(_bits(max_groups)),
        "mult": unsigned(AVG_MULT_BITS), "shift": unsigned(AVG_SHIFT_BITS),
    })


def pool_fields(g: PoolGeometry, *, max_width: int, max_kernel: int, max_groups: int, groups: int, avg: bool,
                mult: int = 1, shift: int = 0) -> dict:
    """The ``cmd`` beat (:func:`pool_cmd_layout`) for pooling ``groups`` channel groups with
    geometry ``g`` on a unit of these limits; ValueError naming what the unit (or the format)
    cannot take. ``avgpool`` has no padding in the format (``golden.avgpool``)."""
    _check("kernel", g.kernel, 1, max_kernel)
    _check("stride", g.stride, 1, max_kernel)
    _check("H", g.H, 1, max_width)
    _check("W", g.W, 1, max_width)
    _check("groups", groups, 1, max_groups)
    if avg:
        _check("padding", g.padding, 0, 0)
        _check("mult", mult, *AVGPOOL_MULT_RANGE)
        _check("shift", shift, *AVGPOOL_SHIFT_RANGE)
    return {"avg": int(avg), "kernel": g.kernel, "stride": g.stride, "pad": g.padding,
            "h": g.H, "w": g.W, "rows": g.rows, "cols": g.cols, "oh": g.oh, "ow": g.ow,
            "groups": groups, "mult": mult if avg else 1, "shift": shift if avg else 0}


def _coord_bits(max_width: int, max_kernel: int) -> int:
    """Image coordinates up to ``max_width``, plus the padding columns and one stride past
    the last window end that the column counters reach."""
    return _bits(max_width + 2 * max_kernel)


def _tree(m, en, values, width: int, avg, name: str):
    """Pipelined pairwise reduction, one register level per halving (``tree_levels``): a sum
    when ``avg``, else a maximum. Returns the result and its register levels."""
    level, lat = list(values), 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            s = Signal(signed(width), name=f"{name}_l{lat}_{i // 2}")
            if i + 1 < len(level):
                a, b = level[i], level[i + 1]
                v = Mux(avg, a + b, Mux(a > b, a, b))
            else:
                v = level[i]
            with m.If(en):
                m.d.sync += s.eq(v)
            nxt.append(s)
        level, lat = nxt, lat + 1
    assert lat == tree_levels(len(values))
    return level[0], lat


def _delay_view(m, en, view, stages: int, name: str):
    return data.View(view.shape(), delay(m, en, view.as_value(), stages, name))


class Pool(wiring.Component):
    """``maxpool`` (padding counts as the smallest value) and ``avgpool`` (window sum, then
    ``rq(sum, mult, shift)``) over ``k x k`` windows with stride ``s`` on the stream order of
    the module doc, bit-exact with ``golden.maxpool`` / ``golden.avgpool``.

    A ``cmd`` beat (:meth:`command`) starts a pooling of ``groups`` channel groups; the unit
    takes the next one once this one has drained (``wino_gen.schedule.pool_cycles``). It walks the
    command's positions (``wino_gen.schedule.PoolGeometry``) at one per cycle, taking an input beat at each
    image position and none at the padding past the right/bottom edge, so every input value
    is read once. Separable, with the same datapath for both ops:

    - row stage: the last ``max_kernel`` values of the row in a shift register (cleared to the
      identity at each row start: left padding); where a window ends (column
      ``ox*s - p + k - 1``) the first ``k`` are reduced into a row result;
    - column stage: row results go to a line buffer of ``max_kernel - 1`` rows
      (:class:`rtl.ram.SDPRam`, ``max_width + 1`` words of ``lanes`` sums each, row ``y`` in
      bank ``y mod (max_kernel - 1)``); where a window's last row arrives, its row result and
      the ``k - 1`` rows above (a per-bank row count masks older and other groups' rows: top
      padding) are reduced, then requantized (maxpool: ``rq(v, 1, 0) = v``).

    Limits (``command`` checks them): ``kernel`` and ``stride`` up to ``max_kernel``, ``H``
    and ``W`` up to ``max_width``, ``groups`` up to ``max_groups``. Latency
    ``wino_gen.schedule.pool_latency``.
    """

    def __init__(self, *, lanes: int, max_width: int, max_kernel: int, max_groups: int, act_bits: int = 8):
        if lanes < 1:
            raise ValueError(f"lanes ({lanes}) must be >= 1")
        if max_width < 1:
            raise ValueError(f"max_width ({max_width}) must be >= 1")
        if max_kernel < 2:
            raise ValueError(f"max_kernel ({max_kernel}) must be >= 2")
        if max_groups < 1:
            raise ValueError(f"max_groups ({max_groups}) must be >= 1")
        if act_bits < 2:
            raise ValueError(f"act_bits ({act_bits}) must be >= 2")
        self.lanes, self.max_width, self.max_kernel = lanes, max_width, max_kernel
        self.max_groups, self.act_bits = max_groups, act_bits
        self.row_bits = act_bits + ceil_log2(max_kernel)       # a sum of k values
        self.sum_bits = act_bits + 2 * ceil_log2(max_kernel)   # a sum of k² values
        beat = stream.Signature(lanes_layout(act_bits, lanes))
        super().__init__({
            "cmd": In(stream.Signature(pool_cmd_layout(max_width, max_kernel, max_groups))),
            "i": In(beat), "o": Out(beat),
        })

    def command(self, g: PoolGeometry, *, groups: int, avg: bool, mult: int = 1, shift: int = 0) -> dict:
        """The ``cmd`` beat for pooling ``groups`` channel groups with geometry ``g``
        (:func:`pool_fields` with this unit's limits)."""
        return pool_fields(g, max_width=self.max_width, max_kernel=self.max_kernel, max_groups=self.max_groups,
                           groups=groups, avg=avg, mult=mult, shift=shift)

    def elaborate(self, platform):
        m = Module()
        c = Signal(self.cmd.payload.shape())
        ident = Signal(signed(self.act_bits))      # the reduction's identity: 0, or the minimum
        m.d.comb += ident.eq(Mux(c.avg, 0, int_range(self.act_bits)[0]))
        en = stage_enable(m, self.o)
        tag1, win = self._walk(m, en, c, ident)
        trees = [_tree(m, en, [Mux(c.kernel > j, win[j][lane], ident) for j in range(self.max_kernel)],
                       self.row_bits, c.avg, f"row{lane}") for lane in range(self.lanes)]
        rows, row_levels = [v for v, _ in trees], trees[0][1]
        tag_r = _delay_view(m, en, tag1, row_levels, "tag_r")
        column, tag_c = self._columns(m, en, c, ident, rows, tag_r)
        trees = [_tree(m, en, vals, self.sum_bits, c.avg, f"col{lane}") for lane, vals in enumerate(column)]
        sums, col_levels = [v for v, _ in trees], trees[0][1]
        tag_s = _delay_view(m, en, tag_c, col_levels, "tag_s")
        # window register, row tree, line buffer read, column tree, rq_pipeline (fixed): what
        # ``_walk`` drains
        assert 1 + row_levels + 1 + col_levels + rq_latency(True) == pool_latency(self.max_kernel)
        mult = Signal(unsigned(AVG_MULT_BITS))
        shift = Signal(signed(SHIFT_BITS))
        m.d.comb += [mult.eq(c.mult), shift.eq(c.shift)]
        for lane, v in enumerate(sums):
            o = rq_pipeline(m, en, v, self.sum_bits, mult, shift, self.act_bits, name=f"rq{lane}")
            m.d.comb += self.o.payload.data[lane].eq(o)
        out = tag_s.valid & tag_s.col_out & tag_s.row_out
        m.d.comb += self.o.valid.eq(delay(m, en, out, rq_latency(True), "valid"))
        return m

    def _tag_layout(self) -> data.StructLayout:
        """What a position carries down the pipeline beside its values."""
        return data.StructLayout({
            "valid": 1, "col_out": 1, "row_out": 1, "row_end": 1, "group_end": 1,
            "ox": unsigned(_coord_bits(self.max_width, self.max_kernel)),
        })

    def _walk(self, m, en, c, ident):
        """Takes commands, walks their positions (channel group, row ``y``, column ``x``; one
        per enabled cycle, an input beat at image positions), shifts each position's value
        into the row's window register. Returns the position's registered tag and the window."""
        cb = _coord_bits(self.max_width, self.max_kernel)
        active = Signal()
        drain = Signal(range(pool_latency(self.max_kernel) + 1))
        y, x, ox, oy = (Signal(cb, name=n) for n in ("y", "x", "ox", "oy"))
        x_end, y_end = Signal(cb), Signal(cb)      # column / row where the next window ends
        group = Signal(range(self.max_groups + 1))
        first_end = Signal(cb)
        m.d.comb += [first_end.eq(c.kernel - 1 - c.pad), self.cmd.ready.eq(~active & (drain == 0))]
        with m.If(self.cmd.valid & self.cmd.ready):
            start = self.cmd.payload.kernel - 1 - self.cmd.payload.pad
            m.d.sync += [c.eq(self.cmd.payload), active.eq(1), x_end.eq(start), y_end.eq(start)]
        image = (y < c.h) & (x < c.w)
        m.d.comb += self.i.ready.eq(en & active & image)
        take = Signal()
        m.d.comb += take.eq(en & active & (~image | self.i.valid))
        row_end, group_end = x == c.cols - 1, (x == c.cols - 1) & (y == c.rows - 1)
        col_out, row_out = (x == x_end) & (ox != c.ow), (y == y_end) & (oy != c.oh)
        with m.If(take):
            m.d.sync += x.eq(Mux(row_end, 0, x + 1))
            with m.If(row_end):
                m.d.sync += [x_end.eq(first_end), ox.eq(0)]
            with m.Elif(col_out):
                m.d.sync += [x_end.eq(x_end + c.stride), ox.eq(ox + 1)]
            with m.If(group_end):
                m.d.sync += [y.eq(0), y_end.eq(first_end), oy.eq(0), group.eq(group + 1)]
                with m.If(group == c.groups - 1):
                    m.d.sync += [group.eq(0), active.eq(0), drain.eq(pool_latency(self.max_kernel))]
            with m.Elif(row_end):
                m.d.sync += y.eq(y + 1)
                with m.If(row_out):
                    m.d.sync += [y_end.eq(y_end + c.stride), oy.eq(oy + 1)]
        with m.Elif(en & (drain != 0)):
            m.d.sync += drain.eq(drain - 1)
        win = [[Signal(signed(self.act_bits), name=f"win{j}_{lane}") for lane in range(self.lanes)]
               for j in range(self.max_kernel)]
        with m.If(take):
            for lane in range(self.lanes):
                m.d.sync += win[0][lane].eq(Mux(image, self.i.payload.data[lane], ident))
                for j in range(1, self.max_kernel):
                    m.d.sync += win[j][lane].eq(Mux(x == 0, ident, win[j - 1][lane]))
        tag = Signal(self._tag_layout())
        with m.If(en):
            m.d.sync += [tag.valid.eq(take), tag.col_out.eq(col_out), tag.row_out.eq(row_out),
                         tag.row_end.eq(row_end), tag.group_end.eq(group_end), tag.ox.eq(ox)]
        return tag, win

    def _columns(self, m, en, c, ident, rows, tag):
        """The line buffer: writes each row result at word ``ox`` of the current row's bank and
        reads every bank there (read-before-write: the bank being written still yields the
        oldest row). Returns, per lane, the column to reduce (this row's result, then the
        banks' rows, the identity where a bank's row is not in the window) and the tag, both
        one register later."""
        nb = self.max_kernel - 1
        cur = Signal(range(nb))
        live = [Signal(range(self.max_kernel), name=f"live{b}") for b in range(nb)]   # rows left in the window
        word = data.ArrayLayout(signed(self.row_bits), self.lanes)
        banks = []
        for b in range(nb):
            ram = SDPRam(word.size, self.max_width + 1)
            m.submodules[f"bank{b}"] = ram
            m.d.comb += [ram.we.eq(en & tag.valid & tag.col_out & (cur == b)), ram.waddr.eq(tag.ox),
                         ram.wdata.eq(Cat(rows)), ram.re.eq(en), ram.raddr.eq(tag.ox)]
            banks.append(data.View(word, ram.rdata))
        with m.If(en & tag.valid & tag.row_end):
            with m.If(tag.group_end):
                m.d.sync += [cur.eq(0), *(lv.eq(0) for lv in live)]
            with m.Else():
                m.d.sync += cur.eq(Mux(cur == nb - 1, 0, cur + 1))
                for b, lv in enumerate(live):
                    m.d.sync += lv.eq(Mux(cur == b, c.kernel - 1, Mux(lv != 0, lv - 1, 0)))
        live1 = Signal(nb)
        rows1 = [Signal(signed(self.row_bits), name=f"rowres{lane}") for lane in range(self.lanes)]
        with m.If(en):
            m.d.sync += [live1.eq(Cat(lv != 0 for lv in live)), *(r1.eq(r) for r1, r in zip(rows1, rows, strict=True))]
        column = [[rows1[lane], *(Mux(live1[b], banks[b][lane], ident) for b in range(nb))]
                  for lane in range(self.lanes)]
        return column, _delay_view(m, en, tag, 1, "tag_c")


# -- row segments (the compute core's element-wise beats) -------------------------------------

def segment_layout(act_bits: int, n: int, lanes: int) -> data.ArrayLayout:
    """A row segment: ``n`` consecutive columns of one image row, ``lanes`` channels each
    (``[column][lane]``), the compute core's ``x`` beat (:func:`rtl.tilebuf.input_beat_layout`)."""
    return data.ArrayLayout(data.ArrayLayout(signed(act_bits), lanes), n)


def _check_segments(n: int, lanes: int, act_bits: int, max_width: int):
    for name, v, lo in (("n", n, 1), ("lanes", lanes, 1), ("act_bits", act_bits, 2), ("max_width", max_width, 1)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} ({v!r}) must be an integer >= {lo}")


class SegmentSplitter(wiring.Component):
    """Row segments -> pixels: each ``i`` segment gives its columns ``0 .. n-1`` as ``o``
    beats of ``lanes`` channels, up to the image's last column (``w``, the image width: a row's
    last segment holds ``w mod n`` real columns, the rest are skipped). One pixel a cycle: the
    next segment is taken in the cycle the last pixel of the held one leaves, so a source of
    one segment a cycle never starves a consumer of one pixel a cycle. ``w`` is configuration
    (constant while beats are in flight); the column count restarts at each row's end."""

    def __init__(self, *, n: int, lanes: int, act_bits: int, max_width: int):
        _check_segments(n, lanes, act_bits, max_width)
        self.n, self.lanes, self.max_width = n, lanes, max_width
        super().__init__({
            "w": In(range(max_width + 1)),
            "i": In(stream.Signature(segment_layout(act_bits, n, lanes))),
            "o": Out(stream.Signature(lanes_layout(act_bits, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        seg = Signal(self.i.payload.shape())
        full = Signal()
        j = Signal(range(self.n))                   # column within the segment
        x = Signal(range(self.max_width))           # column within the row
        row_end = x == self.w - 1
        last = (j == self.n - 1) | row_end
        m.d.comb += [self.o.valid.eq(full), self.i.ready.eq(~full | (self.o.ready & last))]
        with m.Switch(j):
            for c in range(self.n):
                with m.Case(c):
                    m.d.comb += self.o.payload.data.eq(seg[c])
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [j.eq(Mux(last, 0, j + 1)), x.eq(Mux(row_end, 0, x + 1))]
            with m.If(last):
                m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [seg.eq(self.i.payload), full.eq(1)]
        return m


class SegmentPacker(wiring.Component):
    """Pixels -> row segments, :class:`SegmentSplitter`'s inverse: ``n`` consecutive pixels of
    a row (``w`` pixels a row) fill a segment's columns in order; a segment leaves when full
    or at the row's end, its columns past the row zero. One register: a segment is offered the
    cycle after its last pixel is taken; a pixel is refused only while a finished segment
    waits."""

    def __init__(self, *, n: int, lanes: int, act_bits: int, max_width: int):
        _check_segments(n, lanes, act_bits, max_width)
        self.n, self.lanes, self.max_width = n, lanes, max_width
        super().__init__({
            "w": In(range(max_width + 1)),
            "i": In(stream.Signature(lanes_layout(act_bits, lanes))),
            "o": Out(stream.Signature(segment_layout(act_bits, n, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        part = Signal(self.o.payload.shape())       # the segment being filled (zero past j)
        j = Signal(range(self.n))
        x = Signal(range(self.max_width))
        row_end = x == self.w - 1
        done = (j == self.n - 1) | row_end
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [j.eq(Mux(done, 0, j + 1)), x.eq(Mux(row_end, 0, x + 1))]
            with m.If(done):
                m.d.sync += [self.o.valid.eq(1), part.eq(0)]
            for c in range(self.n):
                with m.If(j == c):
                    with m.If(done):
                        m.d.sync += self.o.payload[c].eq(self.i.payload.data)
                    with m.Else():
                        m.d.sync += part[c].eq(self.i.payload.data)
                with m.Elif(done):
                    m.d.sync += self.o.payload[c].eq(part[c])
        return m
