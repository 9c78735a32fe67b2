"""The compute unit: runs the sequencer's COMPUTE instructions on the compute core
(:class:`rtl.core.Core`) from the scratchpads (docs/image.md's COMPUTE semantics).

For each instruction (:func:`rtl.ctrl.sequencer.entry_layout` ``"compute"``) it

1. reads the layer's parameter block from the parameter memory (int32 words through one
   32-bit read window, a word a cycle: the header and the tap words the build uses,
   :func:`wino_gen.commands.tap_reads`; a spatial-weight build's U requant among them, into the
   core's ``wino.wt``), unless
   the block it read last was read for the same layer and mode (``flush``, pulsed at a
   program's start, forgets it);
2. checks the instruction against the block: the wrong layer or mode, or a tile outside the
   layer, is "bad instruction"; a tile address beyond its scratchpad "memory outside its
   regions"; what the unit does not run (:func:`wino_gen.commands.why_unsupported`, and a
   layer beyond the build's limits) :data:`wino_gen.commands.UNSUPPORTED`: it answers
   without touching a scratchpad;
3. derives the command of the activation reader, the weight reader and the output writer
   (:mod:`rtl.feed`: a Winograd block of 3x3 kernels on a spatial-weight build) and the core's
   command word in :data:`wino_gen.commands.DERIVE_STAGES`
   registered stages: the band's rows, tile and channel-group counts, chunk counts, each a
   division by a config constant (a shift, or a multiply by a reciprocal:
   :func:`wino_gen.commands.reciprocal`), and which output beats to keep (:meth:`_derived`);
4. starts them together, the weight reader :data:`wino_gen.commands.WEIGHT_HEAD_START` cycles
   early (its command registered the cycle before, from the derivation's first two stages), so
   that the core gets its first weight word with its first activation beat: both streams as a
   host-fed core gets them, :data:`wino_gen.commands.FEED_LAG` later, whichever limits it (a
   spatial core's weight transform may); and answers DONE (status 0) once all are idle: the tile's outputs
   are then in the activation scratchpad. An ``add`` reads its two operands with two
   activation readers in their segment walk and writes the core's row segments with the
   writer's (``rtl.feed``'s element-wise modes).

Its own cycles per COMPUTE: :func:`wino_gen.commands.setup_cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from wino_gen import commands as cm
from wino_gen.compile.image import DESC_WORDS
from wino_gen.config import AcceleratorConfig
from wino_gen.isa import MODES
from wino_gen.limits import MAX_PAD, WINDOW_STRIDES
from wino_gen.schedule import core_window, pe_geometry, window_par, writer_beat_cycles

from .core import DEFAULT_MAX_POOL, core_layer_layout, core_out_layout
from .ctrl.sequencer import CODE, DONE, entry_layout
from .feed import WRITER_MODES, ActivationReader, OutputWriter, WeightReader, reads_spatial
from .mem.scratchpad import ByteReadSignature, ByteWriteSignature
from .pe import weight_stream_layout
from .tilebuf import input_beat_layout
from .wtransform import TAPS_IN

#: bits of the unit's coordinate and count arithmetic (values past them are refused first)
_BITS = 24
_WINO, _DIRECT, _LINEAR, _ADD, _MAX, _AVG = (MODES.index(m) for m in cm.RUNS)
#: the first of the FSM's states D1 .. CMD (by index) in which the weight command's derived
#: values (the derivation's first two stages) are registered
_WEIGHT_FIELDS_IN = 2


def _ceil_div(v, d: int):
    """``ceil(v / d)`` for an unsigned ``v`` below ``2**_BITS`` and a constant ``d``."""
    if d & (d - 1) == 0:
        return (v + d - 1) >> exact_log2(d)
    mult, shift = cm.reciprocal(d, _BITS + 1)
    return ((v + d - 1) * mult) >> shift



class ComputeUnit(wiring.Component):
    """COMPUTE instructions on the core (module doc). ``cfg``, ``max_kernel``, ``direct_only``,
    ``max_pool``: the core's build (its command layout); ``act_bytes``/``act_width``,
    ``wgt_bytes``/``wgt_width``: the activation and weight scratchpads (bytes, window bits);
    ``param_bytes``: the parameter memory; ``weight_ports``: windows of the weight reader
    (:mod:`rtl.feed`); the writer has one (``out_wr[0]``: the activation scratchpad's one
    block-RAM write port, shared with the DMA; the core paces its beats to it,
    :func:`wino_gen.schedule.writer_beat_cycles`); ``max_instrs``: the sequencer's."""

    def __init__(self, cfg: AcceleratorConfig, *, max_kernel: int, act_bytes: int, act_width: int, wgt_bytes: int,
                 wgt_width: int, param_bytes: int, weight_ports: int = 1,
                 direct_only: bool = False, max_pool: int = DEFAULT_MAX_POOL, max_instrs: int = 65535):
        if not isinstance(cfg, AcceleratorConfig):
            raise ValueError(f"cfg {cfg!r}: must be an AcceleratorConfig")
        if max(act_bytes, wgt_bytes, cfg.max_width, cfg.max_channels) >= 1 << (_BITS - 4):
            raise ValueError(f"act_bytes {act_bytes} / wgt_bytes {wgt_bytes}: beyond the unit's {_BITS}-bit arithmetic")
        self.cfg, self.max_kernel, self.max_pool, self.direct_only = cfg, max_kernel, max_pool, direct_only
        self.layout = core_layer_layout(cfg, max_kernel, direct_only=direct_only, max_pool=max_pool)
        self.buf = core_window(cfg, max_kernel)
        self.act = ActivationReader(cfg, depth=act_bytes, width=act_width)
        self.act2 = ActivationReader(cfg, depth=act_bytes, width=act_width)
        self.wgt = WeightReader(cfg, depth=wgt_bytes, width=wgt_width, param_bytes=param_bytes, ports=weight_ports)
        self.out = OutputWriter(cfg, depth=act_bytes, width=act_width,
                                modes=tuple(md for md in WRITER_MODES if not (direct_only and md == "winograd")))
        self.act_bytes, self.wgt_bytes = act_bytes, wgt_bytes
        #: bytes a kernel of a Winograd block holds: U's n², or a spatial build's 3x3
        self.wino_taps = TAPS_IN if reads_spatial(cfg) else cfg.n ** 2
        super().__init__({
            "instr": In(stream.Signature(entry_layout("compute", max_instrs))),
            "done": Out(stream.Signature(DONE)),
            "flush": In(1),
            "prm": Out(ByteReadSignature(addr_width=ceil_log2(param_bytes), width=32)),
            "act_rd": Out(ByteReadSignature(addr_width=ceil_log2(act_bytes), width=act_width)).array(cfg.unroll_in),
            "act2_rd": Out(ByteReadSignature(addr_width=ceil_log2(act_bytes), width=act_width)).array(cfg.unroll_in),
            "wgt_rd": Out(ByteReadSignature(addr_width=ceil_log2(wgt_bytes), width=wgt_width)).array(weight_ports),
            "bias": Out(ByteReadSignature(addr_width=ceil_log2(param_bytes), width=32)).array(weight_ports),
            "out_wr": Out(ByteWriteSignature(addr_width=ceil_log2(act_bytes), width=act_width)).array(1),
            "core_layer": Out(self.layout), "core_start": Out(1), "core_busy": In(1),
            "x": Out(stream.Signature(input_beat_layout(cfg))),
            "x2": Out(stream.Signature(input_beat_layout(cfg))),
            "w": Out(stream.Signature(weight_stream_layout(cfg))),
            "o": In(stream.Signature(core_out_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.act, m.submodules.wgt, m.submodules.out = act, wgt, out = self.act, self.wgt, self.out
        m.submodules.act2 = act2 = self.act2
        cur = Signal(self.instr.payload.instr.shape(), name="cur")
        elt = (cur.mode == _ADD) | (cur.mode == _MAX) | (cur.mode == _AVG)
        self._wire_feeders(m)
        hdr = Array(Signal(32, name=f"p_{k}") for k in DESC_WORDS)
        w = {k: hdr[i] for i, k in enumerate(DESC_WORDS)}
        cmd = Signal(self.layout, name="core_cmd")
        m.d.comb += self.core_layer.eq(cmd)
        cached, cached_layer, cached_mode = Signal(), Signal.like(cur.layer), Signal.like(cur.mode)
        status = Signal(DONE["status"].shape)
        n_words = Mux(cur.mode == _WINO, cm.param_words(self.cfg, "winograd"), cm.param_words(self.cfg, "direct"))
        busy = Cat(act.busy, act2.busy, wgt.busy, out.busy, self.core_busy).any()
        d = self._derived(m, cur, w)
        starting = Signal()
        self._filter(m, d, starting, elt)
        # the weight reader starts WEIGHT_HEAD_START cycles before the others, its command registered
        # the cycle before (module doc, step 4); positions: D1 .. D<DERIVE_STAGES>, CMD, START
        states = [f"D{i}" for i in range(1, cm.DERIVE_STAGES + 1)] + ["CMD", "START"]
        w_start = states[-1 - cm.WEIGHT_HEAD_START]
        w_cmd = states[states.index(w_start) - 1]
        assert states.index(w_cmd) >= _WEIGHT_FIELDS_IN, "the weight command needs stages 0 and 1 registered"
        early = {w_cmd: ([], self._weight_command(cur, d)), w_start: ([wgt.start.eq(~elt)], [])}
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.instr.ready.eq(1)
                with m.If(self.instr.valid):
                    m.d.sync += cur.eq(self.instr.payload.instr)
                    nxt = self.instr.payload.instr
                    with m.If(cached & (cached_layer == nxt.layer) & (cached_mode == nxt.mode)):
                        m.next = "CHECK"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(self._fetch(m, hdr, cmd, n_words)):
                    m.d.sync += [cached.eq(1), cached_layer.eq(cur.layer), cached_mode.eq(cur.mode)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += status.eq(self._status(m, cur, w))
                m.next = "D1"
            with m.State("D1"):
                with m.If(status != 0):
                    m.d.sync += [self.done.valid.eq(1), self.done.payload.status.eq(status)]
                    m.next = "ANSWER"
                with m.Else():
                    m.d.sync += d["stages"][0]
                    m.next = "D2"
            for i, stage in enumerate(d["stages"][1:], 2):
                with m.State(f"D{i}"):
                    m.d.sync += stage
                    m.next = f"D{i + 1}" if i < len(d["stages"]) else "CMD"
                    self._early(m, early, f"D{i}")
            with m.State("CMD"):
                m.d.sync += self._commands(cmd, cur, w, d)
                m.next = "START"
                self._early(m, early, "CMD")
            with m.State("START"):
                m.d.comb += [act.start.eq(1), act2.start.eq(cur.mode == _ADD), out.start.eq(1),
                             self.core_start.eq(1), starting.eq(1)]
                m.next = "RUN"
                self._early(m, early, "START")
            with m.State("RUN"):
                with m.If(~busy):
                    m.d.sync += [self.done.valid.eq(1), self.done.payload.status.eq(0)]
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                with m.If(self.done.ready):
                    m.d.sync += self.done.valid.eq(0)
                    m.next = "IDLE"
        with m.If(self.flush):
            m.d.sync += cached.eq(0)
        return m

    @staticmethod
    def _early(m, early, state):
        """The weight reader's statements of ``state`` (its command, its start)."""
        comb, sync = early.get(state, ([], []))
        m.d.comb += comb
        m.d.sync += sync

    def _wire_feeders(self, m):
        """The feeders' windows and streams out to the scratchpads and the core."""
        act, act2, wgt, out = self.act, self.act2, self.wgt, self.out
        for mine, theirs in ((self.act_rd, act.rd), (self.act2_rd, act2.rd), (self.wgt_rd, wgt.rd),
                             (self.bias, wgt.bias), (self.out_wr, out.wr)):
            for a, b in zip(mine, theirs, strict=True):
                wiring.connect(m, wiring.flipped(a), b)
        wiring.connect(m, act.x, wiring.flipped(self.x))
        wiring.connect(m, act2.x, wiring.flipped(self.x2))
        wiring.connect(m, wgt.w, wiring.flipped(self.w))

    def _fetch(self, m, hdr, cmd, n_words):
        """Read the block's words the unit uses, one a cycle (``n_words`` of them: the header,
        then :func:`wino_gen.commands.tap_reads`): the header into ``hdr``, the tap words straight
        into the core command's requant fields. High in the cycle the last word lands."""
        S = self.cfg.n ** 2
        reads = [(None, i) for i in range(len(DESC_WORDS))]
        if "wino" in self.layout.members:
            reads += cm.tap_reads(self.cfg)
        j, jd, dv = Signal(range(len(reads) + 1)), Signal(range(len(reads) + 1)), Signal()
        issue = j < n_words
        addr = Signal.like(self.prm.addr)
        with m.Switch(j):
            for i, (arr, t) in enumerate(reads):
                with m.Case(i):
                    m.d.comb += addr.eq(cm.WORD * (t if arr is None else cm.tap_word(arr, t, S)))
        m.d.comb += [self.prm.addr.eq(addr), self.prm.en.eq(issue)]
        m.d.sync += [dv.eq(issue), jd.eq(j), j.eq(Mux(issue, j + 1, j))]
        data = self.prm.data
        with m.If(dv):
            with m.Switch(jd):
                for i, (arr, t) in enumerate(reads):
                    with m.Case(i):
                        m.d.sync += (hdr[t] if arr is None else self._tap_target(cmd, arr, t)).eq(data)
        last = dv & (jd == n_words - 1)
        with m.If(last):
            m.d.sync += [j.eq(0), dv.eq(0)]
        return last

    @staticmethod
    def _tap_target(cmd, arr, t):
        """The core command field that tap word ``(arr, t)`` fills."""
        wino = cmd.wino
        fields = {"v_shift": wino.v.shift, "v_mult": getattr(wino.v, "mult", None), "m_shift": wino.out.m.shift,
                  "m_mult": getattr(wino.out.m, "mult", None), "m_align": getattr(wino.out, "align", None)}
        if "wt" in wino.shape().members:
            fields.update(u_shift=wino.wt.shift, u_mult=getattr(wino.wt, "mult", None))
        return fields[arr][t]

    def _status(self, m, cur, w):
        """The instruction's DONE status before anything runs (module doc, step 2)."""
        cfg = self.cfg
        mode = cur.mode
        wino, add, pool = mode == _WINO, mode == _ADD, (mode == _MAX) | (mode == _AVG)
        conv = (mode == _DIRECT) | (mode == _LINEAR) | add | pool
        if "wino" in self.layout.members:
            conv |= wino
        bad = ((w["layer"] != cur.layer) | (w["mode"] != mode)
               | ~((cur.r0 < cur.r1) & (cur.r1 <= w["Ho"]) & (cur.k0 < cur.k1) & (cur.k1 <= w["K"])
                   & (cur.c0 < cur.c1) & (cur.c1 <= w["C"]))
               | (wino & (w["taps"] != cfg.n ** 2)))
        outside = (cur.in_addr >= self.act_bytes) | (cur.out_addr >= self.act_bytes) | (cur.w_addr >= self.wgt_bytes)
        k, s, p = w["kernel"], w["stride"], w["padding"]
        too_big = ((w["H"] > cfg.max_width) | (w["W"] > cfg.max_width) | (w["Ho"] > cfg.max_width)
                   | (w["Wo"] > cfg.max_width) | (w["C"] > cfg.max_channels) | (w["K"] > cfg.max_channels))
        shape = Mux(pool, (k >= 1) & (k <= self.max_pool) & (s >= 1) & (s <= self.max_pool) & (p < k),
                    add | Mux(wino, (k == 3) & (s == 1) & (p <= MAX_PAD),
                              (k >= 1) & (k <= self.max_kernel) & Cat(*(s == v for v in WINDOW_STRIDES)).any()
                              & (p < k)))
        first = Mux(s == 2, cur.r0 << 1, cur.r0)                    # r0 * stride
        unsupported = (~conv | cur.accumulate | ~cur.finish | (cur.c0 != 0) | (cur.c1 != w["C"])
                       | ((cur.r0 != 0) & (first < p)) | (pool & ((cur.r0 != 0) | (cur.r1 != w["Ho"])))
                       | too_big | ~shape)
        return Mux(bad, CODE["bad instruction"],
                   Mux(outside, CODE["memory outside its regions"], Mux(unsupported, cm.UNSUPPORTED, 0)))

    def _derived(self, m, cur, w):
        """The derivation stages: their registers and assignments (``stages``). A band that
        starts below row 0 is given to the engine from an earlier row ``a_e`` on (the rows
        before the loaded band ``[a, b)`` are read but only feed outputs that are dropped):
        Winograd from ``r0 - m``, so that its tiles fall where the interpreter's do (from
        ``r0``) and its first tile row is dropped; direct from ``(r0 - q) * stride``,
        ``q = ceil(padding / stride)``, dropping ``q`` output rows, so that no kept row sees
        the engine's top padding. Output beats ``[lo, hi)`` of every ``wrap`` pass the filter.
        A pooling walks ``prow x pcol`` positions (``wino_gen.schedule.pool_geometry``'s rows and
        columns: the image, or to the last window's end where that lies in the padding)."""
        cfg, buf = self.cfg, self.buf
        L, mt = pe_geometry(cfg).lanes, cfg.tile
        names = ("ct", "kt", "n_cg", "n_kb", "ckk", "par", "group", "q", "a", "b", "a_e", "hb", "in_off",
                 "tw", "n_step", "c_last", "nxb_d", "th", "ho_e", "nxb_w", "in_addr", "npix", "wpix",
                 "lo", "hi", "wrap", "gr", "beats", "nxb_o", "prow", "pcol")
        r = {k: Signal(_BITS, name=f"d_{k}") for k in names}
        wino, band = cur.mode == _WINO, cur.r0 != 0
        p, k, two = w["padding"][:4], w["kernel"][:8], w["stride"] == 2
        ct, kt = (cur.c1 - cur.c0)[:_BITS], (cur.k1 - cur.k0)[:_BITS]
        k2, par, group = Signal(_BITS), Signal(_BITS), Signal(_BITS)
        with m.Switch(k):
            for kk in range(1, self.max_kernel + 1):
                pk = window_par(cfg.unroll_in, L, buf.sets, buf.max_kernel, kk)
                with m.Case(kk):
                    m.d.comb += [k2.eq(kk * kk), par.eq(pk), group.eq(pk * cfg.unroll_in * kk * kk)]
        q = Mux(band & ~wino, Mux(two, (p + 1) >> 1, p), 0)
        top = Mux(two, cur.r0 << 1, cur.r0) - p                      # r0 * s - p
        bot = Mux(two, (cur.r1 - 1) << 1, cur.r1 - 1) - p + k        # (r1 - 1) * s - p + k
        a_e = Mux(wino, Mux(band, cur.r0 - mt, 0), Mux(two, (cur.r0 - q) << 1, cur.r0 - q))
        hi_all = (1 << _BITS) - 1
        steps, paced = _ceil_div(r["ckk"], L), writer_beat_cycles(cfg, "direct")   # schedule.core_window_geometry
        stages = [
            [r["ct"].eq(ct), r["kt"].eq(kt), r["n_cg"].eq(_ceil_div(ct, cfg.unroll_in)),
             r["n_kb"].eq(_ceil_div(kt, cfg.unroll)), r["ckk"].eq(ct * k2), r["par"].eq(par), r["group"].eq(group),
             r["q"].eq(q), r["a"].eq(Mux(top.as_signed() < 0, 0, top)), r["b"].eq(Mux(bot < w["H"], bot, w["H"])),
             r["a_e"].eq(a_e)],
            [r["hb"].eq(r["b"] - r["a_e"]), r["in_off"].eq((r["a"] - r["a_e"])[:_BITS // 2] * w["W"][:_BITS // 2]),
             r["tw"].eq(_ceil_div(w["Wo"][:_BITS], mt)), r["n_step"].eq(Mux(steps < paced, paced, steps)),
             r["c_last"].eq(r["ct"] - (r["n_cg"] - 1) * cfg.unroll_in),
             r["th"].eq(_ceil_div((r["b"] - r["a_e"] + 2 * p - 2)[:_BITS], mt)),    # hb's tile rows
             r["nxb_d"].eq(_ceil_div(w["W"][:_BITS], cfg.n)), r["nxb_o"].eq(_ceil_div(w["Wo"][:_BITS], cfg.n)),
             r["prow"].eq((w["Ho"][:_BITS // 2] - 1) * w["stride"][:8] - p + k),         # the last window's end
             r["pcol"].eq((w["Wo"][:_BITS // 2] - 1) * w["stride"][:8] - p + k)],
            [r["ho_e"].eq(Mux(two, (r["hb"] + 2 * p - k) >> 1, r["hb"] + 2 * p - k) + 1),
             r["nxb_w"].eq(_ceil_div((r["tw"] * mt + 2)[:_BITS], cfg.n)), r["in_addr"].eq(cur.in_addr - r["in_off"]),
             r["gr"].eq(r["n_cg"][:_BITS // 2] * (cur.r1 - cur.r0))],
            [r["npix"].eq(r["ho_e"][:_BITS // 2] * w["Wo"][:_BITS // 2]),
             r["wpix"].eq((cur.r1 - cur.r0) * w["Wo"][:_BITS // 2]),
             r["lo"].eq(Mux(wino, Mux(band, r["n_kb"][:_BITS // 2] * r["tw"][:_BITS // 2] * cfg.unroll, 0),
                            r["q"][:4] * w["Wo"][:_BITS // 2])),
             r["hi"].eq(Mux(wino, hi_all, (r["q"][:4] + cur.r1 - cur.r0) * w["Wo"][:_BITS // 2])),
             r["wrap"].eq(Mux(wino, hi_all, r["ho_e"][:_BITS // 2] * w["Wo"][:_BITS // 2])),
             r["beats"].eq(r["gr"][:_BITS // 2] * Mux(cur.mode == _ADD, r["nxb_d"], r["nxb_o"])[:_BITS // 2]),
             r["prow"].eq(Mux(r["prow"] < w["H"], w["H"], r["prow"])),
             r["pcol"].eq(Mux(r["pcol"] < w["W"], w["W"], r["pcol"]))],
        ]
        assert len(stages) == cm.DERIVE_STAGES
        return {**r, "stages": stages}

    def _filter(self, m, d, run, elt):
        """Core beats to the writer: all of an element-wise mode's; of a convolution's, beat ``c`` of every
        ``wrap`` (counted from the start) when ``lo <= c < hi``, the others are taken and
        dropped."""
        out, o = self.out, self.o
        c = Signal(_BITS, name="beat")
        keep = elt | ((c >= d["lo"]) & (c < d["hi"]))
        m.d.comb += [out.i.valid.eq(o.valid & keep), o.ready.eq(Mux(keep, out.i.ready, 1)), out.i.payload.eq(o.payload)]
        with m.If(o.valid & o.ready):
            m.d.sync += c.eq(Mux(c + 1 == d["wrap"], 0, c + 1))
        with m.If(run):
            m.d.sync += c.eq(0)

    def _weight_command(self, cur, d):
        """The weight reader's command, from the derivation's first two stages (registered
        :data:`wino_gen.commands.WEIGHT_HEAD_START` cycles before the other commands: module doc)."""
        cfg, wgt = self.cfg, self.wgt.cmd
        wino = cur.mode == _WINO
        stmts = [wgt.w_addr.eq(cur.w_addr), wgt.row_bytes.eq(Mux(wino, d["ct"] * self.wino_taps, d["ckk"])),
                 wgt.n_step.eq(Mux(wino, d["n_cg"], d["n_step"])), wgt.kc.eq(d["kt"]), wgt.n_kb.eq(d["n_kb"]),
                 wgt.reps.eq(Mux(wino, d["th"], 1)),
                 wgt.bias_addr.eq(Mux(wino, cm.bias_byte(cfg, "winograd", 0), cm.bias_byte(cfg, "direct", 0))
                                  + cm.WORD * cur.k0)]
        if reads_spatial(cfg):
            stmts.append(wgt.spatial.eq(wino))
        return stmts

    def _commands(self, cmd, cur, w, d):
        """The feeders' commands and the core's word from the derived values."""
        cfg, act, out = self.cfg, self.act.cmd, self.out.cmd
        wino = cur.mode == _WINO
        fixed = cfg.requant == "fixed"
        W, p = w["W"], w["padding"]
        add, rows = cur.mode == _ADD, cur.r1 - cur.r0
        pool = (cur.mode == _MAX) | (cur.mode == _AVG)
        add |= pool          # below: what the element-wise modes share
        # the feeders' mode: the Winograd walk, the window generator's (direct, linear), or the
        # element-wise segments (the COMPUTE's own mode number)
        feed_mode = Mux(add, cur.mode, Mux(wino, MODES.index("winograd"), MODES.index("direct")))
        stmts = [
            act.mode.eq(feed_mode), act.in_addr.eq(Mux(add, cur.in_addr, d["in_addr"])),
            act.in_cstride.eq(w["in_cstride"]), act.rows.eq(Mux(pool, w["H"], Mux(add, rows, d["hb"]))), act.w.eq(W),
            act.pad.eq(Mux(wino, p, 0)), act.channels.eq(d["ct"]), act.n_cg.eq(d["n_cg"]),
            act.nxb.eq(Mux(wino, d["nxb_w"], d["nxb_d"])), act.n_kb.eq(Mux(wino | add, 1, d["n_kb"])),
            out.mode.eq(feed_mode), out.out_addr.eq(cur.out_addr), out.out_cstride.eq(w["out_cstride"]),
            out.kc.eq(Mux(add, w["C"], d["kt"])), out.n_kb.eq(Mux(add, 0, d["n_kb"])), out.ho.eq(rows),
            out.wo.eq(w["Wo"]), out.n_pix.eq(d["wpix"]), out.n_cg.eq(d["n_cg"]),
            out.nxb.eq(Mux(pool, d["nxb_o"], d["nxb_d"])),
            cmd.mode.eq(cur.mode),
        ]
        if "skip" in out.shape().members:
            stmts += [out.skip.eq(0), out.th.eq(d["th"] - (cur.r0 != 0)), out.tw.eq(d["tw"])]
        if "wino" in self.layout.members:
            g, o = cmd.wino.geom, cmd.wino.out
            stmts += [g.h.eq(d["hb"]), g.w.eq(W), g.pad.eq(p), g.n_cg.eq(d["n_cg"]), g.n_kb.eq(d["n_kb"]),
                      g.th.eq(d["th"]), g.tw.eq(d["tw"]), g.nxb.eq(d["nxb_w"]), o.y.shift[0].eq(w["shift"]),
                      o.relu.eq(w["relu"] != 0)]
            if fixed:
                stmts.append(o.y.mult[0].eq(w["mult"]))
        a2, elt = self.act2.cmd, cmd.elt
        stmts += [a2.mode.eq(cur.mode), a2.in_addr.eq(cur.in2_addr), a2.in_cstride.eq(w["in2_cstride"]),
                  a2.rows.eq(rows), a2.w.eq(W), a2.pad.eq(0), a2.channels.eq(d["ct"]), a2.n_cg.eq(d["n_cg"]),
                  a2.nxb.eq(d["nxb_d"]), a2.n_kb.eq(1),
                  elt.beats.eq(d["beats"]), elt.add.a_mult.eq(w["mult"]), elt.add.b_mult.eq(w["mult2"]),
                  elt.add.shift.eq(w["shift"]), elt.add.relu.eq(w["relu"] != 0)]
        pc, avg = elt.pool, cur.mode == _AVG
        stmts += [pc.avg.eq(avg), pc.kernel.eq(w["kernel"]), pc.stride.eq(w["stride"]), pc.pad.eq(p), pc.h.eq(w["H"]),
                  pc.w.eq(W), pc.rows.eq(d["prow"]), pc.cols.eq(d["pcol"]), pc.oh.eq(w["Ho"]), pc.ow.eq(w["Wo"]),
                  pc.groups.eq(d["n_cg"]), pc.mult.eq(Mux(avg, w["mult"], 1)), pc.shift.eq(Mux(avg, w["shift"], 0))]
        win, eng = cmd.direct.win, cmd.direct.eng
        stmts += [win.h.eq(d["hb"]), win.w.eq(W), win.pad.eq(p), win.k.eq(w["kernel"]), win.stride.eq(w["stride"]),
                  win.n_cg.eq(d["n_cg"]), win.c_last.eq(d["c_last"]), win.nxb.eq(d["nxb_d"]), win.ho.eq(d["ho_e"]),
                  win.wo.eq(w["Wo"]), win.n_step.eq(d["n_step"]), win.n_kb.eq(d["n_kb"]), win.par.eq(d["par"]),
                  win.group.eq(d["group"]), eng.n_step.eq(d["n_step"]), eng.n_pix.eq(d["npix"]),
                  eng.n_kb.eq(d["n_kb"]), eng.y.shift[0].eq(w["shift"]), eng.relu.eq(w["relu"] != 0)]
        if fixed:
            stmts.append(eng.y.mult[0].eq(w["mult"]))
        return stmts
