"""PE array with its double-buffered weight buffer, and the serializer that hands the
accumulated tile to the output stage one output channel per beat."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from wino_gen.config import AcceleratorConfig
from wino_gen.schedule import core_latencies, dual_pe, latencies, pe_geometry

from .arith import adder_tree
from .mac16 import mac16_pair
from .pipeline import beat_layout, delay, stage_enable
from .ram import SDPRam


def in_value_bits(cfg: AcceleratorConfig) -> int:
    return cfg.transform_bits if cfg.algo == "winograd" else cfg.act_bits


def weight_word_layout(cfg):
    S = pe_geometry(cfg).taps
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(signed(cfg.weight_bits), S),
                                             cfg.unroll_in), cfg.unroll)


def weight_stream_layout(cfg):
    return data.StructLayout({"data": weight_word_layout(cfg),
                              "bias": data.ArrayLayout(signed(cfg.bias_bits), cfg.unroll)})


def step_tag_layout(cfg):
    return data.StructLayout({
        "addr": unsigned(pe_geometry(cfg).addr_bits),  # weight word of this step (channel group)
        "bank": unsigned(1),    # weight bank of this output-channel block
        "first": unsigned(1),   # first step of an accumulation
        "last": unsigned(1),    # last step: the accumulators are complete
        "eob": unsigned(1),     # last step that uses this weight bank
    })


def bank_addr(bank, addr, depth: int):
    """Word ``depth * bank + addr`` of a two-bank memory without a multiplier: a concatenation
    when ``depth`` is a power of two, else a constant add selected by ``bank``."""
    if depth & (depth - 1) == 0:
        return Cat(addr, bank) if depth > 1 else bank
    return Mux(bank, addr + depth, addr)


class WeightBuffer(wiring.Component):
    """Two banks of ``steps`` weight words (``unroll`` x ``unroll_in`` x S weights each) plus
    ``unroll`` biases. The ``w`` stream fills the free bank (``steps`` beats, bias taken from
    the first); the PE array reads the full one and releases it after its last step.
    ``blackbox_ram``: the RAM as an instance of ``rtl.ram.MODULE`` (:class:`rtl.ram.SDPRam`).
    """

    def __init__(self, cfg: AcceleratorConfig, *, blackbox_ram: bool = False):
        self.cfg = cfg
        self.blackbox_ram = blackbox_ram
        g = pe_geometry(cfg)
        self.depth, self.banks = g.depth, g.banks
        abits = g.addr_bits
        super().__init__({
            "steps": In(abits + 1),             # beats per bank (layer config)
            "w": In(stream.Signature(weight_stream_layout(cfg))),
            "rd_en": In(1),
            "rd_addr": In(abits),
            "rd_bank": In(1),
            "rd_data": Out(weight_word_layout(cfg)),
            "rd_bias": Out(data.ArrayLayout(signed(cfg.bias_bits), cfg.unroll)),
            "full": Out(2),
            "release": In(1),
            "release_bank": In(1),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        wl = weight_word_layout(cfg)
        m.submodules.mem = mem = SDPRam(wl.size, self.banks * self.depth, blackbox=self.blackbox_ram)
        abits = len(self.rd_addr)
        bias = [Signal(data.ArrayLayout(signed(cfg.bias_bits), cfg.unroll), name=f"bias{b}")
                for b in range(2)]
        wbank = Signal()
        waddr = Signal(abits + 1)
        full = Signal(2)
        m.d.comb += self.full.eq(full)
        m.d.comb += [
            self.w.ready.eq(~full.bit_select(wbank, 1)),
            mem.waddr.eq(bank_addr(wbank, waddr[:abits], self.depth)),
            mem.wdata.eq(self.w.payload.data.as_value()),
            mem.we.eq(self.w.valid & self.w.ready),
        ]
        set_full = Signal(2)
        clr_full = Signal(2)
        with m.If(mem.we):
            with m.If(waddr == 0):
                for b in range(2):
                    with m.If(wbank == b):
                        m.d.sync += bias[b].eq(self.w.payload.bias)
            with m.If(waddr + 1 == self.steps):
                m.d.sync += [waddr.eq(0), wbank.eq(~wbank)]
                m.d.comb += set_full.eq(1 << wbank)
            with m.Else():
                m.d.sync += waddr.eq(waddr + 1)
        with m.If(self.release):
            m.d.comb += clr_full.eq(1 << self.release_bank)
        m.d.sync += full.eq((full & ~clr_full) | set_full)
        with m.If(self.clear):
            m.d.sync += [full.eq(0), wbank.eq(0), waddr.eq(0)]
        m.d.comb += [
            mem.re.eq(self.rd_en),
            mem.raddr.eq(bank_addr(self.rd_bank, self.rd_addr, self.depth)),
            self.rd_data.as_value().eq(mem.rdata),
        ]
        with m.If(self.rd_en):
            m.d.sync += self.rd_bias.eq(bias[0])
            with m.If(self.rd_bank):
                m.d.sync += self.rd_bias.eq(bias[1])
        return m


#: The reductions a PE array can be built with (``PEArray``'s ``modes``).
PE_MODES = ("winograd", "direct")


def step_layout(cfg, in_bits: int | None = None) -> data.StructLayout:
    """The PE array's input beat: ``unroll_in`` x S values (``in_bits`` wide, by default the
    config's) and the step's tag (:func:`rtl.pipeline.beat_layout`, the layout of every
    Winograd-domain stream before it)."""
    return beat_layout(in_bits or in_value_bits(cfg), cfg.unroll_in, pe_geometry(cfg).taps, step_tag_layout(cfg))


def pe_out_layout(cfg, acc_bits: int | None = None, sum_bits: int | None = None):
    """``acc[unroll][lanes]`` (``acc_bits`` wide, by default the config's accumulator) and the
    block's biases; with ``sum_bits`` (the dual array) also the direct patch sums ``sum[unroll]``."""
    lanes = pe_geometry(cfg).acc_lanes
    fields = {
        "acc": data.ArrayLayout(data.ArrayLayout(signed(acc_bits or cfg.widths.accumulator), lanes), cfg.unroll),
        "bias": data.ArrayLayout(signed(cfg.bias_bits), cfg.unroll),
    }
    if sum_bits is not None:
        fields["sum"] = data.ArrayLayout(signed(sum_bits), cfg.unroll)
    return data.StructLayout(fields)


class PEArray(wiring.Component):
    """``unroll`` x ``unroll_in`` x S multipliers (S = n²), a pipelined adder tree and the
    channel accumulators, with the double-buffered :class:`WeightBuffer` inside.

    Winograd: ``P[k][s] += sum_c U[k][c][s] * V[c][s]`` (one accumulator per tap);
    direct: ``acc[k] += sum_{c,s} W[k][c][s] * x[c][s]`` (the same multipliers reduce a chunk
    of the 3x3 patch). One step per cycle; a step waits until its weight bank is full. After
    a ``last`` step the complete accumulators (and the block's biases) leave on ``o``.
    Weights arrive on ``w``, ``steps`` words per output-channel block.

    ``mac16``: the products in iCE40 SB_MAC16 pairs (:mod:`rtl.mac16`) instead of LUT or
    DSP multipliers yosys infers; ``blackbox_ram``: the weight buffer's RAM as an instance
    (:class:`rtl.ram.SDPRam`). Latency ``schedule.latencies(cfg).pe`` (asserted).

    ``modes``: the reductions built, by default ``(cfg.algo,)`` (the structures above). Both,
    ``("winograd", "direct")`` from a Winograd config, is the compute core's dual array
    (``schedule.dual_pe``): the Winograd structure, whose per-tap accumulators in direct mode
    hold each tap's share of the patch sum, and behind them a pipelined tree over the S taps
    that leaves on ``o.payload.sum``. The ``mode`` input (1: direct) chooses which output
    ``o`` carries, so it must be held for a whole command and may change only while the array
    is empty; the accumulate loop is the same in both modes. Direct latency
    ``schedule.core_latencies(cfg).direct_pe`` (asserted).
    """

    def __init__(self, cfg: AcceleratorConfig, *, modes: tuple[str, ...] | None = None, mac16: bool = False,
                 blackbox_ram: bool = False):
        modes = (cfg.algo,) if modes is None else tuple(modes)
        if not modes or len(set(modes)) != len(modes) or not set(modes) <= set(PE_MODES):
            raise ValueError(f"modes: {modes!r} must be distinct values of {PE_MODES}")
        self.dual = len(modes) == 2
        if self.dual and cfg.algo != "winograd":
            raise ValueError("modes: the dual array is built from a Winograd config (cfg.algo='winograd')")
        if not self.dual and modes[0] != cfg.algo:
            raise ValueError(f"modes: a single-mode array computes cfg.algo ({cfg.algo!r}), not {modes[0]!r}")
        self.cfg, self.modes = cfg, modes
        self.mac16, self.blackbox_ram = mac16, blackbox_ram
        g = pe_geometry(cfg)
        self.S, self.lanes = g.taps, g.acc_lanes
        w = cfg.widths
        dual = dual_pe(cfg) if self.dual else None
        self.in_bits = dual.in_bits if dual else in_value_bits(cfg)
        self.prod_bits = dual.product if dual else w.product
        self.acc_bits = dual.accumulator if dual else w.accumulator
        self.sum_bits = dual.direct_sum if dual else None
        sig = {
            "steps": In(g.addr_bits + 1),
            "clear": In(1),
            "w": In(stream.Signature(weight_stream_layout(cfg))),
            "i": In(stream.Signature(step_layout(cfg, self.in_bits))),
            "o": Out(stream.Signature(pe_out_layout(cfg, self.acc_bits, self.sum_bits))),
        }
        if self.dual:
            sig["mode"] = In(1)
        super().__init__(sig)

    def _operands(self, m, x, wword, name):
        """Unpack a step's values and a weight word once (indexing a wide value per
        multiplier makes Amaranth walk all of its bits each time): ``xs[c][s]``,
        ``ws[k][c][s]``."""
        cfg, S = self.cfg, self.S
        xs = [[Signal(signed(self.in_bits), name=f"{name}x{c}_{s}") for s in range(S)]
              for c in range(cfg.unroll_in)]
        m.d.comb += Cat(*(v for row in xs for v in row)).eq(x)
        ws = [[[Signal(signed(cfg.weight_bits), name=f"{name}w{k}_{c}_{s}") for s in range(S)]
               for c in range(cfg.unroll_in)] for k in range(cfg.unroll)]
        m.d.comb += Cat(*(v for a in ws for b in a for v in b)).eq(wword)
        return xs, ws

    def _products(self, m, en, x1, w1):
        """Stage 2: operand registers (the weight RAM's read data and the step's values, one
        copy per output channel so that each can sit by its multipliers), so that no block
        RAM -> multiplier path is left combinational; stage 3: products; stage 4: the
        products again (the multipliers are spread over the die, their consumers are not)."""
        cfg, S = self.cfg, self.S
        w2 = Signal(len(w1), name="w2")
        x2 = [Signal(len(x1), name=f"x2_{k}") for k in range(cfg.unroll)]
        with m.If(en):
            m.d.sync += [w2.eq(w1)] + [x.eq(x1) for x in x2]
        xs = [self._operands(m, x2[k], w2, f"k{k}_")[0] for k in range(cfg.unroll)]
        _, ws = self._operands(m, x2[0], w2, "")
        prods = [[[None] * S for _ in range(cfg.unroll_in)] for _ in range(cfg.unroll)]
        with m.If(en):
            for k in range(cfg.unroll):
                for c in range(cfg.unroll_in):
                    for s in range(S):
                        p = Signal(signed(self.prod_bits), name=f"prod{k}_{c}_{s}")
                        q = Signal(signed(self.prod_bits), name=f"prodq{k}_{c}_{s}")
                        m.d.sync += [p.eq(ws[k][c][s] * xs[k][c][s]), q.eq(p)]
                        prods[k][c][s] = q
        return prods

    def _mac16_products(self, m, en, x1, w1):
        """Stages 2 to 4 inside iCE40 SB_MAC16 blocks, two products per block
        (:mod:`rtl.mac16`)."""
        cfg, S = self.cfg, self.S
        xs, ws = self._operands(m, x1, w1, "op_")
        idx = [(k, c, s) for k in range(cfg.unroll) for c in range(cfg.unroll_in) for s in range(S)]
        if len(idx) % 2:
            raise ValueError("SB_MAC16 pairs need an even number of multipliers")
        prods = [[[None] * S for _ in range(cfg.unroll_in)] for _ in range(cfg.unroll)]
        for i in range(0, len(idx), 2):
            (k0, c0, s0), (k1, c1, s1) = idx[i], idx[i + 1]
            p0, p1 = mac16_pair(m, en, ws[k0][c0][s0], xs[c0][s0], ws[k1][c1][s1], xs[c1][s1],
                                f"mac{i // 2}")
            prods[k0][c0][s0], prods[k1][c1][s1] = p0, p1
        return prods

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.wbuf = wb = WeightBuffer(cfg, blackbox_ram=self.blackbox_ram)
        wiring.connect(m, wiring.flipped(self.w), wb.w)
        m.d.comb += [wb.steps.eq(self.steps), wb.clear.eq(self.clear)]

        en = stage_enable(m, self.o)
        tag = self.i.payload.tag
        bank_ok = wb.full.bit_select(tag.bank, 1)
        accept = Signal()
        m.d.comb += [
            self.i.ready.eq(en & bank_ok),
            accept.eq(self.i.valid & self.i.ready),
            wb.rd_en.eq(en),
            wb.rd_addr.eq(tag.addr),
            wb.rd_bank.eq(tag.bank),
            wb.release.eq(accept & tag.eob),
            wb.release_bank.eq(tag.bank),
        ]
        # stage 1: step registered, weights + biases read
        v1 = Signal(name="v1")
        x1 = Signal.like(self.i.payload.data, name="x1")
        f1, l1 = Signal(name="first1"), Signal(name="last1")
        with m.If(en):
            m.d.sync += [v1.eq(accept), x1.eq(self.i.payload.data), f1.eq(tag.first),
                         l1.eq(tag.last)]
        products = self._mac16_products if self.mac16 else self._products
        prods = products(m, en, x1.as_value(), wb.rd_data.as_value())
        # the step's fields (name in the product stages, in the tree) travel beside the operand
        # and two product registers, then beside the adder trees
        ctl = [(v1, "v", "vt"), (f1, "first", "ft"), (l1, "last", "lt"), (wb.rd_bias, "bias", "bt")]
        for st in (2, 3, 4):
            ctl = [(delay(m, en, sig, 1, name, first=st), name, tree) for sig, name, tree in ctl]
        sums, levels = self._trees(m, en, prods)
        for d in range(levels):
            ctl = [(delay(m, en, sig, 1, tree, first=d), name, tree) for sig, name, tree in ctl]
        valid, first, last, bias = (sig for sig, _, _ in ctl)
        # step register, operand registers, two product stages, adder tree levels; the accumulators'
        # sums leave on the last step straight from the adders (the consumer registers them:
        # a copy here cost a flip-flop per accumulator bit and a cycle)
        assert 1 + 3 + levels == latencies(cfg).pe
        nxts = []   # one signal per lane, joined once (slice assignments into one wide
        #            signal cost Amaranth a pass over all its bits per statement)
        for k in range(cfg.unroll):
            row = []
            for s in range(self.lanes):
                acc = Signal(signed(self.acc_bits), name=f"acc{k}_{s}")
                nxt = Signal(signed(self.acc_bits), name=f"accn{k}_{s}")
                m.d.comb += nxt.eq(sums[k][s] + Mux(first, 0, acc))
                with m.If(en & valid):
                    m.d.sync += acc.eq(nxt)
                row.append(nxt)
            nxts.append(row)
        m.d.comb += self.o.payload.acc.as_value().eq(Cat(*(v for row in nxts for v in row)))
        done = Signal()
        m.d.comb += done.eq(valid & last)
        if self.dual:
            self._tap_trees(m, en, nxts, done, bias)
        else:
            m.d.comb += [self.o.payload.bias.eq(bias), self.o.valid.eq(done)]
        return m

    def _tap_trees(self, m, en, nxts, done, bias):
        """The dual array's direct reduction: per output channel a tree over the S per-tap
        sums of the last step (the patch sum), its valid and biases delayed alongside; ``mode``
        chooses which of the two outputs ``o`` carries."""
        cfg = self.cfg
        lat = 0
        for k in range(cfg.unroll):
            t, lat = adder_tree(m, en, nxts[k], self.sum_bits, f"taps{k}")
            m.d.comb += self.o.payload.sum[k].eq(t)
        assert lat == dual_pe(cfg).tap_levels
        assert latencies(cfg).pe + lat == core_latencies(cfg).direct_pe
        dvalid = delay(m, en, done, lat, "tv")
        dbias = delay(m, en, bias, lat, "tb")
        m.d.comb += [self.o.valid.eq(Mux(self.mode, dvalid, done)),
                     self.o.payload.bias.eq(Mux(self.mode, dbias.as_value(), bias.as_value()))]

    def _trees(self, m, en, prods):
        """The adder trees: per output channel one per tap over the input channels (Winograd)
        or one over the whole chunk (direct). Returns ``sums[k][lane]`` and the tree depth."""
        cfg, S = self.cfg, self.S
        sums, lat = [], 0
        for k in range(cfg.unroll):
            if cfg.algo == "winograd":
                row = []
                for s in range(S):
                    t, lat = adder_tree(m, en, [prods[k][c][s] for c in range(cfg.unroll_in)],
                                        self.acc_bits, f"tree{k}_{s}")
                    row.append(t)
            else:
                t, lat = adder_tree(m, en, [p for c in range(cfg.unroll_in) for p in prods[k][c]],
                                    self.acc_bits, f"tree{k}")
                row = [t]
            sums.append(row)
        assert lat == latencies(cfg).pe_tree
        return sums, lat


class Serializer(wiring.Component):
    """Hands the ``unroll`` accumulated channels of a PE output to the output stage one channel
    per beat: ``{data: acc[k], bias: bias[k], k}``. Its input ``ready`` is a register (the
    buffer is empty), which cuts the combinational ready chain between the output stage and
    the PE array; a tile therefore takes ``max(steps, unroll * (gap + 1) + 1)`` cycles.
    ``gap``: idle cycles after each beat, the last one's too (the compute core's pace for its
    output writer, which takes ``gap + 1`` cycles a beat: :func:`wino_gen.schedule.paced`).
    ``acc_bits``: the accumulators' width (the dual array's,
    :func:`wino_gen.schedule.dual_pe`), by default the config's."""

    def __init__(self, cfg: AcceleratorConfig, acc_bits: int | None = None, *, gap: int = 0):
        if gap < 0:
            raise ValueError(f"gap {gap}: must not be negative")
        self.cfg, self.gap = cfg, gap
        acc_bits = acc_bits or cfg.widths.accumulator
        super().__init__({
            "i": In(stream.Signature(pe_out_layout(cfg, acc_bits))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(acc_bits), pe_geometry(cfg).acc_lanes),
                "bias": signed(cfg.bias_bits),
                "k": unsigned(max(1, ceil_log2(cfg.unroll)))}))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, gap = self.cfg, self.gap
        full = Signal()
        k = Signal(len(self.o.payload.k))
        done = Signal()
        # the gap's count, and the tile's last beat is out (both constant without a gap)
        wait, drain = (Signal(range(gap + 1), name="wait"), Signal(name="drain")) if gap else (Const(0), Const(0))
        m.d.comb += [
            done.eq(self.o.ready & (k == cfg.unroll - 1)),
            self.i.ready.eq(~full),     # registered: no ready path from the output stage
            self.o.valid.eq(full & ~drain & (wait == 0)),
            self.o.payload.k.eq(k),
        ]
        # a shift register of channels: channel k is always in lane 0 (no unroll-way mux)
        lanes = [Signal.like(self.o.payload.data, name=f"lane{j}") for j in range(cfg.unroll)]
        biases = [Signal(signed(cfg.bias_bits), name=f"bias{j}") for j in range(cfg.unroll)]
        m.d.comb += [self.o.payload.data.eq(lanes[0]), self.o.payload.bias.eq(biases[0])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += full.eq(1)
            for j in range(cfg.unroll):
                m.d.sync += [lanes[j].eq(self.i.payload.acc[j]), biases[j].eq(self.i.payload.bias[j])]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += k.eq(k + 1)
            for j in range(cfg.unroll - 1):
                m.d.sync += [lanes[j].eq(lanes[j + 1]), biases[j].eq(biases[j + 1])]
            if gap:
                m.d.sync += wait.eq(gap)
            with m.If(done):
                m.d.sync += [k.eq(0), drain.eq(1) if gap else full.eq(0)]
        if gap:
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)
                with m.If((wait == 1) & drain):
                    m.d.sync += [full.eq(0), drain.eq(0)]
        return m
