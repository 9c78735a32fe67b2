"""The on-board self-test: one small layer in block RAM, run through the engine on reset, every
output byte compared with the golden model, pass/fail on LEDs and a status line on the UART.

Pieces (all ``wiring.Component`` / ``Elaboratable``, the same code runs in Amaranth simulation
and on the board):

- :func:`make_layer` builds a small calibrated Winograd layer with :mod:`wino_gen.golden`
  (input, Winograd-domain weights, bias, requant, reference output and the golden trace).
- An *adapter* turns a layer into the words each input stream of the engine receives and the
  words its output stream must produce, and builds the engine. :class:`StandInAdapter` drives
  :class:`StandInEngine`, a small stand-in used until the real accelerator top is wired in: it
  computes the layer's PE-array step ``M = rq(sum_c U[k, c] * V[c])`` for ``unroll`` output
  channels on every tile (``unroll * n * n`` pipelined multipliers) — a real slice of the layer,
  checked against ``golden``'s trace, but not the accelerator.
- :class:`SelfTest` holds one ROM per input stream and one for the expected output, feeds the
  streams (valid/ready), counts mismatches and cycles, and reports ``done``/``passed``/``failed``.
- :class:`UartTx` and :class:`StatusLine` print ``wino selftest PASS ...`` once a second.
- :class:`BoardTop` puts it on a board: LEDs and UART from the platform.
"""



import numpy as np
from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import io, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wino_gen import golden
from wino_gen.config import AcceleratorConfig

from .skid import SkidBuffer

# -- the layer --------------------------------------------------------------------------------


def make_layer(cfg: AcceleratorConfig, *, channels: int = 4, outputs: int | None = None,
               size: int = 6, seed: int = 1) -> dict:
    """A small calibrated Winograd 3x3 layer for ``cfg`` (layer-granularity pow2/fixed requant as
    the config says): ``x[1, C, size, size]``, ``U[K, C, n, n]``, ``bias[K]``, the three
    requants and the golden output ``y``; ``trace`` holds golden's intermediates."""
    rng = np.random.default_rng(seed)
    K = outputs or cfg.unroll
    C, m, n = channels, cfg.tile, cfg.n
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    x = rng.integers(lo, hi + 1, (1, C, size, size))
    wlo, whi = -(1 << (cfg.weight_bits - 1)), (1 << (cfg.weight_bits - 1)) - 1
    U = rng.integers(wlo, whi + 1, (K, C, n, n))
    tmax = (1 << (cfg.transform_bits - 1)) - 1
    amax = (1 << (cfg.act_bits - 1)) - 1

    def req(ratio):
        r = golden.quantize_ratio(ratio, cfg.requant, cfg.mult_bits)
        return golden.Requant(int(r.mult), int(r.shift))

    _, vraw = golden.input_transform(golden.tile_input(x, m), m)
    v = req(tmax / max(int(np.abs(vraw).max()), 1))
    probe = golden.Requant(1, 40)
    tr: dict = {}
    golden.winograd_conv3x3(x, U, np.zeros(K, dtype=np.int64), tile=m, v=v, m=probe, y=probe,
                            cfg=cfg, trace=tr)
    mq = req(tmax / max(int(np.abs(tr["P"]).max()), 1) * 2)   # let a few taps saturate
    tr = {}
    golden.winograd_conv3x3(x, U, np.zeros(K, dtype=np.int64), tile=m, v=v, m=mq, y=probe,
                            cfg=cfg, trace=tr)
    bias = rng.integers(-64, 65, K)
    yb = tr["Y"] + bias[None, :, None, None, None, None]
    yq = req(amax / max(int(np.abs(yb).max()), 1) * 2)
    trace: dict = {}
    y = golden.winograd_conv3x3(x, U, bias, tile=m, v=v, m=mq, y=yq, cfg=cfg, trace=trace)
    return {"cfg": cfg, "x": x, "U": U, "bias": bias, "v": v, "m": mq, "y_req": yq, "y": y,
            "trace": trace, "relu": False}


def _pack(values, bits: int) -> int:
    """Pack signed integers (first = lowest bits) into one unsigned word."""
    word = 0
    mask = (1 << bits) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


# -- the stand-in engine ----------------------------------------------------------------------


class StandInEngine(wiring.Component):
    """Stand-in for the accelerator in the self-test (NOT the accelerator): for each tile it
    takes ``channels`` words ``{V[c] (n*n x tb), U[0..L-1, c] (L x n*n x wb)}`` on ``i``,
    multiply-accumulates on ``L * n * n`` pipelined multipliers and emits the ``L * n * n``
    results ``rq(P, mult, shift)`` (transform_bits wide, k-major) one per beat on ``o``."""

    def __init__(self, cfg: AcceleratorConfig, channels: int, mult: int, shift: int):
        self.cfg, self.channels, self.mult, self.shift = cfg, channels, mult, shift
        self.lanes = cfg.unroll * cfg.n * cfg.n
        self.in_width = cfg.n * cfg.n * cfg.transform_bits + self.lanes * cfg.weight_bits
        super().__init__({
            "i": In(stream.Signature(unsigned(self.in_width))),
            "o": Out(stream.Signature(signed(cfg.transform_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, L = self.cfg, self.lanes
        n2, tb, wb = cfg.n * cfg.n, cfg.transform_bits, cfg.weight_bits
        acc_w = cfg.widths.accumulator

        # stage 1: register operands
        v_r = [Signal(signed(tb), name=f"v{j}") for j in range(L)]
        u_r = [Signal(signed(wb), name=f"u{j}") for j in range(L)]
        s1 = Signal()
        # stage 2: products
        p_r = [Signal(signed(tb + wb), name=f"p{j}") for j in range(L)]
        s2 = Signal()
        acc = [Signal(signed(acc_w), name=f"acc{j}") for j in range(L)]

        taken = Signal(range(self.channels + 1))
        summed = Signal(range(self.channels + 1))
        emit = Signal()
        idx = Signal(range(L + 1))

        m.d.comb += self.i.ready.eq(~emit & (taken < self.channels))
        fire = self.i.valid & self.i.ready
        m.d.sync += [s1.eq(fire), s2.eq(s1)]
        word = self.i.payload
        with m.If(fire):
            m.d.sync += taken.eq(taken + 1)
            for j in range(L):
                s = j % n2
                m.d.sync += v_r[j].eq(word[s * tb:(s + 1) * tb].as_signed())
                off = n2 * tb + j * wb
                m.d.sync += u_r[j].eq(word[off:off + wb].as_signed())
        for j in range(L):
            m.d.sync += p_r[j].eq(v_r[j] * u_r[j])
        with m.If(s2):
            m.d.sync += summed.eq(summed + 1)
            for j in range(L):
                m.d.sync += acc[j].eq(acc[j] + p_r[j])
        with m.If(~emit & (summed == self.channels)):
            m.d.sync += [emit.eq(1), idx.eq(0)]

        # output: requant of acc[0]; the accumulators shift down after each beat
        lo, hi = -(1 << (tb - 1)), (1 << (tb - 1)) - 1
        prod = Signal(signed(acc_w + max(self.mult.bit_length(), 1) + 1))
        m.d.comb += prod.eq(acc[0] * self.mult)
        if self.shift > 0:
            r = (prod + (1 << (self.shift - 1))) >> self.shift
        else:
            r = prod << -self.shift
        sat = Signal(signed(tb))
        with m.If(r > hi):
            m.d.comb += sat.eq(hi)
        with m.Elif(r < lo):
            m.d.comb += sat.eq(lo)
        with m.Else():
            m.d.comb += sat.eq(r)
        m.d.comb += [self.o.valid.eq(emit), self.o.payload.eq(sat)]
        with m.If(self.o.valid & self.o.ready):
            for j in range(L - 1):
                m.d.sync += acc[j].eq(acc[j + 1])
            m.d.sync += [acc[L - 1].eq(0), idx.eq(idx + 1)]
            with m.If(idx == L - 1):
                m.d.sync += [emit.eq(0), taken.eq(0), summed.eq(0)]
        return m


class StandInAdapter:
    """Feeds :class:`StandInEngine` with ``layer``: V and U of the first ``unroll`` output
    channels, tile by tile; expects golden's ``M`` for those channels."""

    name = "stand-in (PE-array step only; not the accelerator)"

    def __init__(self, layer: dict):
        self.layer = layer
        cfg = layer["cfg"]
        tr = layer["trace"]
        V = tr["V"][0]                                  # [C, th, tw, n, n]
        M = tr["M"][0]                                  # [K, th, tw, n, n]
        U = layer["U"]
        C, th, tw, n, _ = V.shape
        L = cfg.unroll
        self.channels = C
        words, expected = [], []
        for a in range(th):
            for b in range(tw):
                for c in range(C):
                    vals = list(V[c, a, b].ravel())
                    w = _pack(vals, cfg.transform_bits)
                    u = _pack(U[:L, c].reshape(L, n * n).ravel(), cfg.weight_bits)
                    words.append(w | (u << (n * n * cfg.transform_bits)))
                expected += [int(v) for v in M[:L, a, b].ravel()]
        self.feeds = {"i": words}
        self.expected = expected
        self.out_port = "o"

    def engine(self):
        cfg = self.layer["cfg"]
        return StandInEngine(cfg, self.channels, int(self.layer["m"].mult), int(self.layer["m"].shift))


class AcceleratorAdapter:
    """Feeds the accelerator top (:mod:`rtl.top`, through :mod:`rtl.host`'s layer spec, which
    defines the stream orders) with ``layer``: the layer-config word on ``layer``, a ``start``
    pulse, the ``x`` and ``w`` beats; expects golden's output tiles (``y_tiles``: every byte
    of every m x m tile the hardware emits, in its (tile row, block, tile column, channel)
    order)."""

    name = "accelerator (rtl.top)"

    def __init__(self, layer: dict):
        from .host import WinogradLayer, pack
        from .top import winograd_out_layout
        cfg = layer["cfg"]
        if cfg.algo != "winograd":
            raise ValueError("the self-test layer is a Winograd layer (algo=winograd)")
        self.layer = layer
        x = layer["x"][0]
        C, H, W = x.shape
        spec = WinogradLayer(cfg, layer["U"], layer["bias"], v=layer["v"], m=layer["m"],
                             y=layer["y_req"], relu=layer["relu"])
        self.spec = spec
        self.setup = {"layer": spec.word(H, W)}
        self.start = "start"
        self.feeds = {"x": spec.x_beats(x), "w": spec.w_beats(H, W)}
        _, _, th, tw, _ = spec.geometry(H, W)
        yt = layer["trace"]["y_tiles"][0]            # [K, th, tw, m, m]
        K, un = yt.shape[0], cfg.unroll
        olay = winograd_out_layout(cfg)
        expected = []
        for ty in range(th):
            for kb in range(spec.n_kb):
                for tx in range(tw):
                    for k in range(un):
                        kk = kb * un + k
                        tile = yt[kk, ty, tx].ravel() if kk < K else np.zeros(cfg.tile ** 2, int)
                        expected.append(pack(olay, tile.tolist()))
        assert len(expected) == spec.n_out(H, W)
        self.expected = expected
        self.out_port = "o"

    def engine(self):
        return self.spec.top()


# -- the self-test ----------------------------------------------------------------------------


def _rom(words, width):
    """A ROM with a synchronous read port. Deep ROMs bigger than a few LUTs' worth go to
    block RAM (yosys otherwise builds them from LUTs, which filled an iCE40); up to 16 words
    each bit is one LUT4, and a wide shallow ROM would take a block RAM per 16 bits on the
    iCE40 (the weight ROM alone: 10 of the UP5K's 30)."""
    depth = max(len(words), 1)
    attrs = {"ram_style": "block", "rom_style": "block"} if depth * width > 1024 and depth > 16 else None
    return Memory(shape=unsigned(width), depth=depth,
                  init=[w & ((1 << width) - 1) for w in words] or [0], attrs=attrs)


class SelfTest(Elaboratable):
    """Runs ``adapter``'s engine on its ROM-held streams from reset; compares every output word.

    ``done`` rises when all expected words arrived (or on timeout); then ``passed`` or
    ``failed``. ``mismatches``, ``outputs`` and ``cycles`` count what happened.
    ``corrupt=i`` flips the low bit of expected word ``i`` (the self-test must then fail).
    """

    def __init__(self, adapter, *, timeout: int | None = None, corrupt: int | None = None):
        self.adapter = adapter
        self.engine = adapter.engine()
        self.expected = list(adapter.expected)
        if corrupt is not None:
            self.expected[corrupt] ^= 1
        total_in = sum(len(w) for w in adapter.feeds.values())
        self.timeout = timeout or 64 * (total_in + len(self.expected)) + 10000
        self.done = Signal()
        self.passed = Signal()
        self.failed = Signal()
        self.timed_out = Signal()
        self.mismatches = Signal(16)
        self.outputs = Signal(16)
        self.cycles = Signal(32)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        go = Signal()
        started = Signal()
        m.d.sync += [go.eq(1), started.eq(go)]     # go: one cycle after reset
        for port, word in getattr(self.adapter, "setup", {}).items():
            sig = Value.cast(getattr(eng, port))
            m.d.comb += sig.eq(Const(word, len(sig)))
        if getattr(self.adapter, "start", None):
            m.d.comb += getattr(eng, self.adapter.start).eq(go & ~started)

        for port, words in self.adapter.feeds.items():
            s = getattr(eng, port)
            width = Shape.cast(s.payload.shape()).width
            m.submodules[f"rom_{port}"] = rom = _rom(words, width)
            rd = rom.read_port()
            ptr = Signal(range(len(words) + 1), name=f"ptr_{port}")
            nxt = Signal.like(ptr, name=f"nxt_{port}")
            if rom.attrs:
                # a block-RAM ROM feeds the engine through a skid buffer (its address then
                # depends on registers only, not on the engine's ready) and a register slice
                # (the RAM's clock-to-out, ~6 ns on the ECP5, stays out of the engine's
                # paths); both were the ECP5 critical path in turn. A LUT ROM's read port is
                # already a register.
                m.submodules[f"skid_{port}"] = skid = SkidBuffer(unsigned(width))
                rv = Signal(name=f"romv_{port}")
                m.d.comb += [nxt.eq(ptr + (rv & skid.i.ready)), rd.addr.eq(nxt),
                             skid.i.valid.eq(rv), skid.i.payload.eq(rd.data),
                             skid.o.ready.eq(~s.valid | s.ready)]
                m.d.sync += [ptr.eq(nxt), rv.eq(go & (nxt < len(words)))]
                with m.If(~s.valid | s.ready):
                    m.d.sync += [s.valid.eq(skid.o.valid), s.payload.eq(skid.o.payload)]
            else:
                m.d.comb += [nxt.eq(ptr + (s.valid & s.ready)), rd.addr.eq(nxt)]
                m.d.sync += [ptr.eq(nxt), s.valid.eq(go & (nxt < len(words)))]
                m.d.comb += s.payload.eq(rd.data)

        o = getattr(eng, self.adapter.out_port)
        width = Shape.cast(o.payload.shape()).width
        n_exp = len(self.expected)
        m.submodules.rom_expected = erom = _rom(self.expected, width)
        erd = erom.read_port()
        cnt = Signal(range(n_exp + 2))
        take = o.valid & o.ready
        m.d.comb += [o.ready.eq(1), erd.addr.eq(cnt + take)]
        # register the output and its expected word, compare one cycle later (keeps the
        # engine's output path out of the checker's timing)
        take_r = Signal()
        got_r = Signal(width)
        exp_r = Signal(width)
        extra_r = Signal()
        m.d.sync += [take_r.eq(take), got_r.eq(Value.cast(o.payload)[:width]), exp_r.eq(erd.data),
                     extra_r.eq(cnt >= n_exp)]
        with m.If(take):
            m.d.sync += self.outputs.eq(self.outputs + 1)
            with m.If(cnt < n_exp):
                m.d.sync += cnt.eq(cnt + 1)
        with m.If(take_r & (extra_r | (got_r != exp_r)) & (self.mismatches != 0xFFFF)):
            m.d.sync += self.mismatches.eq(self.mismatches + 1)
        finished = Signal()
        m.d.sync += finished.eq(cnt == n_exp)

        with m.If(go & ~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(finished & ~take_r):
                m.d.sync += self.done.eq(1)
            with m.If(self.cycles >= self.timeout):
                m.d.sync += [self.done.eq(1), self.timed_out.eq(1)]
        m.d.comb += [
            self.passed.eq(self.done & ~self.timed_out & (self.mismatches == 0)),
            self.failed.eq(self.done & (self.timed_out | (self.mismatches != 0))),
        ]
        return m


# -- UART status line -------------------------------------------------------------------------


class UartTx(wiring.Component):
    """8N1 transmitter: ``data`` is sent when ``valid`` and ``ready``."""

    valid: In(1)
    data: In(8)
    ready: Out(1)
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = Signal(range(self.divisor))
        shreg = Signal(10)
        left = Signal(range(11))
        m.d.comb += self.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.valid):
                # start bit now; then data LSB first, then stop (ones shift in behind)
                m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.data, Const(0b11, 2))),
                             left.eq(10), div.eq(0)]
        with m.Elif(div == self.divisor - 1):
            m.d.sync += [div.eq(0), left.eq(left - 1), self.tx.eq(shreg[0]),
                         shreg.eq(Cat(shreg[1:], Const(1, 1)))]
        with m.Else():
            m.d.sync += div.eq(div + 1)
        return m


def status_text(passed: bool, mismatches: int, outputs: int, cycles: int) -> str:
    """The line :class:`StatusLine` prints (for tests and docs)."""
    return (f"wino selftest {'PASS' if passed else 'FAIL'} mism={mismatches:04X} "
            f"outs={outputs:04X} cyc={cycles:08X}\r\n")


class StatusLine(Elaboratable):
    """Prints :func:`status_text` for ``selftest`` over ``uart`` every ``period`` cycles once done."""

    def __init__(self, selftest: SelfTest, divisor: int, period: int):
        self.st = selftest
        self.uart = UartTx(divisor)
        self.period = period
        self.tx = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = self.uart
        st = self.st
        items = []
        for ch in "wino selftest ":
            items.append(ord(ch))
        items.append(("word", 0))
        for ch in " mism=":
            items.append(ord(ch))
        items += [("hex", st.mismatches, i) for i in reversed(range(4))]
        items += [ord(c) for c in " outs="]
        items += [("hex", st.outputs, i) for i in reversed(range(4))]
        items += [ord(c) for c in " cyc="]
        items += [("hex", st.cycles, i) for i in reversed(range(8))]
        items += [ord("\r"), ord("\n")]
        # "PASS"/"FAIL" is four characters chosen by st.passed
        expanded = []
        for it in items:
            if it == ("word", 0):
                expanded += [("pf", i) for i in range(4)]
            else:
                expanded.append(it)

        # per character one lookup in constant tables (the PASS and the FAIL line, and which
        # nibble a hex digit shows); one nibble mux and one hex-to-ASCII converter serve all
        # digits (a converter per digit cost ~0.2k LCs on the iCE40)
        nibs, entries = [], []      # (PASS char, FAIL char, 1 + nibble index or 0)
        for it in expanded:
            if isinstance(it, int):
                entries.append((it, it, 0))
            elif it[0] == "pf":
                entries.append((ord("PASS"[it[1]]), ord("FAIL"[it[1]]), 0))
            else:
                nibs.append(it[1][it[2] * 4:(it[2] + 1) * 4])
                entries.append((0, 0, len(nibs)))
        c_pass, c_fail, which = zip(*entries, strict=True)

        def table(vals, bits):
            return Array(Const(v, bits) for v in vals)

        idx = Signal(range(len(expanded) + 1))
        wait = Signal(range(self.period + 1))
        sending = Signal()
        char = Signal(8)
        sel = Signal(range(len(nibs) + 1))
        nib = Signal(4)
        m.d.comb += [
            sel.eq(table(which, len(sel))[idx]),
            nib.eq(Array([Const(0, 4)] + nibs)[sel]),
        ]
        # registered: idx moves only when the UART takes a character, ten bit times apart
        m.d.sync += char.eq(Mux(sel != 0, Mux(nib < 10, nib + ord("0"), nib + (ord("A") - 10)),
                                Mux(st.passed, table(c_pass, 8)[idx], table(c_fail, 8)[idx])))
        m.d.comb += [uart.data.eq(char), uart.valid.eq(sending), self.tx.eq(uart.tx)]
        with m.If(sending):
            with m.If(uart.ready):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == len(expanded) - 1):
                    m.d.sync += [sending.eq(0), idx.eq(0), wait.eq(0)]
        with m.Elif(st.done):
            m.d.sync += wait.eq(wait + 1)
            with m.If(wait == 0):
                m.d.sync += sending.eq(1)
            with m.If(wait == self.period):
                m.d.sync += wait.eq(0)
        return m


# -- on a board -------------------------------------------------------------------------------


class BoardTop(Elaboratable):
    """The self-test on a board: LEDs and UART from the platform.

    ULX3S (8 LEDs): 0 heartbeat (~1.5 Hz), 1 done, 2 PASS, 3 FAIL, 4 timed out, 5..7 low bits of
    the mismatch count. iCEBreaker: green = PASS, red = FAIL (red blinks while running).
    Both print the status line over the FTDI UART at 115200 8N1 once a second.
    """

    def __init__(self, adapter, board, *, baud: int = 115200, corrupt: int | None = None):
        self.selftest = SelfTest(adapter, corrupt=corrupt)
        self.board = board
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        st = self.selftest
        m.submodules.selftest = st
        clk_hz = int(self.board.clock_mhz * 1e6)   # the board's oscillator, whatever P&R aimed at
        beat = Signal(max(clk_hz.bit_length() - 2, 2))
        m.d.sync += beat.eq(beat + 1)
        hb = beat[-1]
        names = [tuple(s.split(":")) for s in self.board.leds]
        leds = []
        for name, num in names:
            pin = platform.request(name, int(num), dir="-")
            m.submodules[f"{name}_{num}"] = buf = io.Buffer("o", pin)
            leds.append(buf.o)
        if len(leds) >= 8:
            vals = [hb, st.done, st.passed, st.failed, st.timed_out,
                    st.mismatches[0], st.mismatches[1], st.mismatches[2]]
            m.d.comb += [led.eq(v) for led, v in zip(leds[:8], vals, strict=True)]
        else:
            m.d.comb += [leds[0].eq(st.passed), leds[1].eq(st.failed | (~st.done & hb))]
        if self.board.uart:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.uart_tx_buf = txb = io.Buffer("o", uart.tx)
            m.submodules.status = status = StatusLine(st, round(clk_hz / self.baud), clk_hz)
            m.d.comb += txb.o.eq(status.tx)
        return m
