"""The whole system on a board's pins: what ``python -m wino_gen build --system`` puts in a
bitstream.

::

    clk25 ─► PLL (rtl.pll) ─► sync, in reset until the PLL locks
    FTDI rx/tx ◄─► BoardSystem(host="uart", memory="sdram") ◄─► SDRAM pins (+ its clock)
                         └─► LEDs: heartbeat, locked, busy, done, error, status bits

The build sizes the :class:`rtl.system.System` with :func:`rtl.system.system_for`, as the
simulated boards size it for an image (``sim.system.build``), on :func:`sdram_port`: a memory
port of the SDRAM's width over all of its words. :class:`SystemTop` puts it behind the host
link on the board's resources.

The SDRAM's pins (amaranth-boards' ``sdram`` resource on the ULX3S: 16-bit, one chip) go
through plain (unregistered) I/O buffers and the chip's clock is ``sync`` itself, forwarded
through a DDR output buffer in phase: the controller (:mod:`rtl.mem.sdram`, ``read_delay=0``,
as :class:`rtl.board.BoardSystem` builds it) registers every command pin, the chip samples
them on the next rising edge, and read data is captured CL cycles after that edge (the data
is valid from tAC after the chip's edge before it until tOH after this one). That holds while
the clock-to-pad delays stay below the period minus the chip's setup, i.e. at the modest
clocks this system meets (nextpnr does not time the pads: not verified on a board).

The UART runs at ``baud`` from the clock the design runs at (``clock``: the PLL's output, or
the oscillator), one divisor for both directions (:func:`rtl.io.uart.divisor` refuses a rate
more than 2% off). ``rx`` is synchronised inside the receiver.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from wino_gen import link
from wino_gen import memory as wm
from wino_gen.boards import Board
from wino_gen.clocks import ClockPlan
from wino_gen.schedule import MAX_BURST

from .board import BoardSystem
from .io.uart import divisor as uart_divisor
from .mem.port import PortSignature
from .pll import PllClock
from .system import System

#: the longest program the sequencer takes (instruction indices are this wide)
MAX_INSTRS = 4095
#: LED meanings on a board with 8 LEDs, in order (``led:0`` first)
LEDS = ("heartbeat", "locked", "busy", "done", "error", "status0", "status1", "status2")


def sdram_port(part: wm.SDRAM) -> PortSignature:
    """The memory port over every word of ``part``."""
    words = part.capacity // (part.width_bits // 8)
    return PortSignature(data_width=part.width_bits, addr_width=(words - 1).bit_length(), max_burst=MAX_BURST)


class SystemTop(Elaboratable):
    """``system`` behind the host link (VERSION answers ``config_sha256``) on ``board``'s FTDI
    UART at ``baud`` and its SDRAM (``part``), clocked as ``clock`` says (a
    :class:`wino_gen.clocks.ClockPlan` of this board: through :class:`rtl.pll.PllClock`, in
    reset until the PLL locks, or the oscillator the platform makes ``sync`` from). The LEDs
    show :data:`LEDS` (an iCEBreaker-sized board: busy and error)."""

    def __init__(self, system: System, board: Board, clock: ClockPlan, *, config_sha256: bytes,
                 baud: int, part: wm.SDRAM = wm.IS42S16160G_7):
        if not isinstance(system, System):
            raise ValueError(f"system {system!r}: must be an rtl.system.System")
        if clock.oscillator_mhz != board.clock_mhz or (clock.pll and clock.pll.family != board.family):
            raise ValueError(f"clock {clock.to_dict()} is not a clock of the {board.name} "
                             f"({board.family}, {board.clock_mhz:g} MHz oscillator)")
        if not board.uart:
            raise ValueError(f"board {board.name}: has no UART for the host link")
        hz = round(clock.hz)
        self.board, self.clock, self.baud = board, clock, baud
        self.divisor = uart_divisor(hz, baud)
        self.soc = BoardSystem(system, config_sha256=config_sha256, gap_cycles=link.gap_cycles(hz), host="uart",
                               divisor=self.divisor, memory="sdram", part=part, clock_mhz=float(clock.mhz))

    def elaborate(self, platform):
        m = Module()
        m.submodules.soc = self.soc
        if self.clock.pll:
            m.submodules.clkgen = gen = PllClock(self.clock.pll, self.board.clock)
            m.domains.sync = cd = ClockDomain("sync")
            m.d.comb += [cd.clk.eq(gen.clk), cd.rst.eq(gen.rst)]
            locked = gen.locked
        else:
            locked = 1
        self._uart(m, platform)
        self._sdram(m, platform)
        self._leds(m, platform, locked)
        return m

    def _uart(self, m, platform):
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [self.soc.rx.eq(rx.i), tx.o.eq(self.soc.tx)]

    def _sdram(self, m, platform):
        """The controller's pins on the chip's (the resource's ``cs``/``we``/``ras``/``cas`` are
        active-low pins: their buffers take the asserted level), the clock forwarded in phase."""
        pins, res = self.soc.pins, platform.request("sdram", 0, dir="-")
        m.submodules.sdram_clk = clk = io.DDRBuffer("o", res.clk)
        m.d.comb += [clk.o[0].eq(1), clk.o[1].eq(0)]
        outs = {"clk_en": pins.cke, "cs": ~pins.cs_n, "we": ~pins.we_n, "ras": ~pins.ras_n, "cas": ~pins.cas_n,
                "ba": pins.ba, "a": pins.a, "dqm": pins.dqm}
        for name, value in outs.items():
            m.submodules[f"sdram_{name}"] = buf = io.Buffer("o", getattr(res, name))
            m.d.comb += buf.o.eq(value)
        m.submodules.sdram_dq = dq = io.Buffer("io", res.dq)
        m.d.comb += [dq.o.eq(pins.dq_o), dq.oe.eq(pins.dq_oe), pins.dq_i.eq(dq.i)]

    def _leds(self, m, platform, locked):
        sysm = self.soc.system
        beat = Signal(max(round(self.clock.hz).bit_length() - 2, 2))
        m.d.sync += beat.eq(beat + 1)
        values = {"heartbeat": beat[-1], "locked": locked, "busy": sysm.busy, "done": sysm.done,
                  "error": sysm.status != 0, "status0": sysm.status[0], "status1": sysm.status[1],
                  "status2": sysm.status[2]}
        names = LEDS if len(self.board.leds) >= len(LEDS) else ("busy", "error")
        for led, what in zip(self.board.leds, names, strict=False):
            name, num = led.split(":")
            m.submodules[f"{name}_{num}"] = buf = io.Buffer("o", platform.request(name, int(num), dir="-"))
            m.d.comb += buf.o.eq(values[what])
