"""The on-board self-test: one small layer in block RAM, run through the engine on reset, every
output byte compared with the golden model, pass/fail on LEDs and a status line on the UART.

Pieces (the same code runs in Amaranth simulation and on the board):

- :class:`SelfTestData` is what the ROMs hold: the layer's config word, its ``x`` and ``w``
  beats and the output words the engine must produce. The host side computes it
  (``wino_gen.flow.host.selftest_data``, from a golden layer); rtl only stores and compares it.
- :class:`SelfTest` builds the accelerator top (:func:`rtl.top.build_top`) with one ROM per
  input stream and one for the expected output, feeds the streams (valid/ready), counts
  mismatches and cycles, and reports ``done``/``passed``/``failed``.
- :class:`StatusLine` prints (through :class:`rtl.io.uart.UARTTx`) ``wino selftest PASS ...`` once a second.
- :class:`BoardTop` puts it on a board: LEDs and UART from the platform, the clock from the
  oscillator or a PLL (:mod:`rtl.pll`).
"""

from dataclasses import dataclass

from amaranth.hdl import Array, ClockDomain, Const, Elaboratable, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import io, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from wino_gen.clocks import ClockPlan, plan_clock
from wino_gen.config import AcceleratorConfig

from .io.uart import UARTTx
from .io.uart import divisor as uart_divisor
from .pll import PllClock
from .skid import SkidBuffer
from .top import DEFAULT_OPTIONS, build_top


@dataclass(frozen=True)
class SelfTestData:
    """One encoded layer: ``layer`` is the config word held on the top's ``layer`` port, ``x``
    and ``w`` the beats of those streams, ``expected`` the words ``o`` must carry, in order."""

    layer: int
    x: tuple[int, ...]
    w: tuple[int, ...]
    expected: tuple[int, ...]


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


class SelfTest(wiring.Component):
    """Runs the accelerator for ``cfg`` (built with ``options``, :func:`rtl.top.build_top`) on
    the ROM-held streams of ``data`` from reset and compares every output word.

    ``done`` rises when all expected words arrived (or on timeout); then ``passed`` or
    ``failed``. ``mismatches``, ``outputs`` and ``cycles`` count what happened.
    ``corrupt=i`` flips the low bit of expected word ``i`` (the self-test must then fail).
    """

    def __init__(self, cfg: AcceleratorConfig, data: SelfTestData, *, options=DEFAULT_OPTIONS,
                 timeout: int | None = None, corrupt: int | None = None):
        if not data.expected:
            raise ValueError("the self-test needs at least one expected output word")
        if corrupt is not None and not 0 <= corrupt < len(data.expected):
            raise ValueError(f"corrupt={corrupt}: the layer has {len(data.expected)} expected words")
        if timeout is not None and timeout < 1:
            raise ValueError(f"timeout={timeout}: must be at least one cycle")
        self.engine = build_top(cfg, options)
        self.data = data
        self.expected = list(data.expected)
        if corrupt is not None:
            self.expected[corrupt] ^= 1
        self.timeout = timeout or 64 * (len(data.x) + len(data.w) + len(self.expected)) + 10000
        super().__init__({
            "done": Out(1), "passed": Out(1), "failed": Out(1), "timed_out": Out(1),
            "mismatches": Out(16), "outputs": Out(16), "cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        go = Signal()
        started = Signal()
        m.d.sync += [go.eq(1), started.eq(go)]     # go: one cycle after reset
        layer = Value.cast(eng.layer)
        m.d.comb += [layer.eq(Const(self.data.layer, len(layer))), eng.start.eq(go & ~started)]
        self._feed(m, go, "x", eng.x, self.data.x)
        self._feed(m, go, "w", eng.w, self.data.w)
        self._check(m, go, eng.o)
        return m

    @staticmethod
    def _feed(m, go, name, s, words):
        """Stream ``words`` from a ROM into ``s`` from ``go`` on, at the engine's pace."""
        width = Shape.cast(s.payload.shape()).width
        m.submodules[f"rom_{name}"] = rom = _rom(words, width)
        rd = rom.read_port()
        ptr = Signal(range(len(words) + 1), name=f"ptr_{name}")
        nxt = Signal.like(ptr, name=f"nxt_{name}")
        if rom.attrs:
            # a block-RAM ROM feeds the engine through a skid buffer (its address then
            # depends on registers only, not on the engine's ready) and a register slice
            # (the RAM's clock-to-out, ~6 ns on the ECP5, stays out of the engine's
            # paths); both were the ECP5 critical path in turn. A LUT ROM's read port is
            # already a register.
            m.submodules[f"skid_{name}"] = skid = SkidBuffer(unsigned(width))
            rv = Signal(name=f"romv_{name}")
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

    def _check(self, m, go, o):
        """Take every ``o`` beat, compare it with the expected ROM, count and time the run."""
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


# -- UART status line -------------------------------------------------------------------------


def status_text(passed: bool, mismatches: int, outputs: int, cycles: int) -> str:
    """The line :class:`StatusLine` prints (for tests and docs)."""
    return (f"wino selftest {'PASS' if passed else 'FAIL'} mism={mismatches:04X} "
            f"outs={outputs:04X} cyc={cycles:08X}\r\n")


class StatusLine(Elaboratable):
    """Prints :func:`status_text` for ``selftest`` over ``uart`` every ``period`` cycles once done."""

    def __init__(self, selftest: SelfTest, *, clock_hz, baud: int, period: int):
        self.st = selftest
        self.uart = UARTTx(clock_hz=clock_hz, baud=baud)
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
        m.d.comb += [uart.i.payload.data.eq(char), uart.i.valid.eq(sending), self.tx.eq(uart.tx)]
        with m.If(sending):
            with m.If(uart.i.ready):
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
    """The self-test (:class:`SelfTest` of ``cfg``, ``data``, ``options``) on a board: LEDs and
    UART from the platform.

    ULX3S (8 LEDs): 0 heartbeat (~1.5 Hz), 1 done, 2 PASS, 3 FAIL, 4 timed out, 5..7 low bits of
    the mismatch count. iCEBreaker: green = PASS, red = FAIL (red blinks while running).
    Both print the status line over the FTDI UART at 115200 8N1 once a second.

    ``clock`` (a :class:`wino_gen.clocks.ClockPlan` for this board) says what the design runs
    at: the oscillator (the platform makes ``sync`` from it), or a PLL (``sync`` from
    :class:`rtl.pll.PllClock`, in reset until lock). The UART divisor, the one-second period
    and the heartbeat count cycles of that clock.
    """

    # the iCE40's block RAMs read zeros for ~3 us after configuration: Amaranth's iCE40 platform
    # holds its sync domain in reset for 15 us after it; a PLL domain does the same after lock
    ICE40_BRAM_HOLD_S = 15e-6

    def __init__(self, cfg: AcceleratorConfig, data: SelfTestData, board, *, options=DEFAULT_OPTIONS,
                 baud: int = 115200, corrupt: int | None = None, clock: ClockPlan | None = None):
        clock = clock or plan_clock(board.family, board.clock_mhz, None)
        if clock.oscillator_mhz != board.clock_mhz or (clock.pll and clock.pll.family != board.family):
            raise ValueError(f"clock {clock.to_dict()} is not a clock of the {board.name} "
                             f"({board.family}, {board.clock_mhz:g} MHz oscillator)")
        divisor = uart_divisor(clock.hz, baud)
        self.selftest = SelfTest(cfg, data, options=options, corrupt=corrupt)
        self.board = board
        self.baud = baud
        self.clock = clock
        self.divisor = divisor
        self.period = round(clock.hz)       # one second of status lines

    def elaborate(self, platform):
        m = Module()
        st = self.selftest
        m.submodules.selftest = st
        clk_hz = self.period                       # what the design runs at, whatever P&R aimed at
        if self.clock.pll:
            hold = round(self.ICE40_BRAM_HOLD_S * clk_hz) if self.board.family == "ice40" else 0
            m.submodules.clkgen = gen = PllClock(self.clock.pll, self.board.clock, hold_cycles=hold)
            m.domains.sync = cd = ClockDomain("sync")
            m.d.comb += [cd.clk.eq(gen.clk), cd.rst.eq(gen.rst)]
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
            m.submodules.status = status = StatusLine(st, clock_hz=self.clock.hz, baud=self.baud, period=clk_hz)
            m.d.comb += txb.o.eq(status.tx)
        return m
