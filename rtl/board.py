"""The board's system top: the host link, the whole system and one memory behind them.

::

    rx ─► UARTRx ─► HostLink ─► start, entry ─► Launcher ─► System.start
    tx ◄─ UARTTx ◄─┘   │  ▲ status ◄─────────────┴─────────── System busy/done/status/index/cycles
                       ▼                 ▼                     ▼
                    Arbiter (link, launcher, system) ──► mem (a memory port) or the SDRAM's pins

The link's START names only the byte address of the first instruction to run (docs/link.md);
the sequencer also wants an instruction count, and the system the windows its LOADs and STOREs
may touch. The :class:`Launcher` reads them where the format keeps them, the header of the
image at address 0 (docs/image.md): on START it reads the header's offsets, then hands the
sequencer ``entry`` and the instructions from there to the program's end, and sets the windows
to the host's rules (LOAD: ``[params_offset, memory_size)``, STORE: the activation regions). The
sequencer counts instruction indices from the one it starts at; the launcher adds that start's
index back, so that STATUS names the program's own index (as the golden board does). An entry
that is not an instruction of the program is handed over with no instruction to run: the
sequencer answers "bad instruction" at once.

``host="uart"`` puts the link behind a UART (``rx``/``tx`` pins, ``divisor`` clock cycles per
bit); ``host="bytes"`` leaves its byte streams ``i``/``o`` as ports (a simulation feeding bytes
directly, or a board with another byte transport). ``memory="port"`` leaves the memory port
``mem`` as a port; ``memory="sdram"`` puts :class:`rtl.mem.sdram.SDRAMController` in front of
it and leaves the chip's ``pins``.
"""

from __future__ import annotations

import struct

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from wino_gen import isa, link
from wino_gen import memory as wm
from wino_gen.compile import image as im

from .io.hostlink import HostLink
from .io.uart import BYTE, MIN_DIVISOR, UARTRx, UARTTx
from .mem.arbiter import Arbiter
from .mem.port import PortSignature
from .mem.sdram import SDRAMController
from .system import System

HOSTS = ("uart", "bytes")
MEMORIES = ("port", "sdram")
#: the header fields the launcher reads (docs/image.md)
HEADER_FIELDS = ("program_offset", "program_count", "params_offset", "act_offset", "act_size", "memory_size")
#: the arbiter's masters, in order
MASTERS = ("link", "launcher", "system")


def header_span(fields=HEADER_FIELDS) -> dict[str, tuple[int, int]]:
    """Byte ``(offset, size)`` of each of ``fields`` in the image header, from the image
    module's own layout."""
    out, at = {}, 0
    for name, code in im.HEADER_FIELDS:
        size = struct.calcsize("<" + code)
        if name in fields:
            out[name] = (at, size)
        at += size
    if set(out) != set(fields):
        raise AssertionError(f"image header lacks {sorted(set(fields) - set(out))}")
    return out


class Launcher(wiring.Component):
    """On ``go`` (with ``entry``), reads the image header through ``mem`` and offers the
    System's ``start`` beat (see the module doc). ``start_layout``: the sequencer's; ``ext``:
    the window signals' shape; ``max_instrs``: the sequencer's longest program. ``pending``:
    from ``go`` until the beat is taken; ``base``: the start's instruction index (0 when
    ``entry`` lies before the program)."""

    def __init__(self, port: PortSignature, start_layout, ext, *, max_instrs: int):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if max_instrs < 1:
            raise ValueError(f"max_instrs {max_instrs}: must be positive")
        self.port_sig, self.start_layout, self.max_instrs = port, start_layout, max_instrs
        span = header_span()
        W = port.word_bytes
        self.first = min(o for o, _ in span.values()) // W * W
        self.words = -(-(max(o + s for o, s in span.values()) - self.first) // W)
        self.span = span
        super().__init__({
            "go": In(1), "entry": In(link.ADDR_BITS), "mem": Out(port),
            "start": Out(stream.Signature(start_layout)), "pending": Out(1), "base": Out(link.ADDR_BITS),
            "load_lo": Out(ext), "load_hi": Out(ext), "store_lo": Out(ext), "store_hi": Out(ext),
        })

    def _field(self, header, name, bits=link.ADDR_BITS):
        """The low ``bits`` of header field ``name`` in the read words ``header``."""
        o, size = self.span[name]
        lo = 8 * (o - self.first)
        return header[lo:lo + min(8 * size, bits)]

    def elaborate(self, platform):
        m = Module()
        port, W = self.port_sig, self.port_sig.word_bytes
        cmd, r = self.mem.cmd, self.mem.r
        header = Signal(8 * W * self.words)
        entry = Signal(link.ADDR_BITS)
        issued, got = Signal(range(self.words + 1)), Signal(range(self.words + 1))
        left = self.words - issued
        burst = Mux(left < port.max_burst, left, port.max_burst)
        m.d.comb += [self.mem.w.valid.eq(0), cmd.payload.write.eq(0), r.ready.eq(1),
                     cmd.payload.addr.eq(self.first // W + issued), cmd.payload.length.eq(burst)]
        f = {n: self._field(header, n) for n in HEADER_FIELDS}
        rel = Signal(link.ADDR_BITS + 1)
        index = Signal(link.ADDR_BITS)
        span = Signal(link.ADDR_BITS + 1)
        m.d.comb += [rel.eq(entry - f["program_offset"]), index.eq(rel >> exact_log2(isa.WORD_BYTES)),
                     span.eq(f["program_count"] - index)]
        before = entry < f["program_offset"]
        valid = ~before & (rel[:exact_log2(isa.WORD_BYTES)] == 0) & (index < f["program_count"])
        count = Mux(valid, Mux(span > self.max_instrs, self.max_instrs, span), 0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [entry.eq(self.entry), issued.eq(0), got.eq(0), self.pending.eq(1)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += cmd.valid.eq(issued != self.words)
                with m.If(cmd.valid & cmd.ready):
                    m.d.sync += issued.eq(issued + burst)
                with m.If(r.valid):
                    m.d.sync += [header.eq(Cat(header[8 * W:], r.payload.data)), got.eq(got + 1)]
                with m.If(got == self.words):
                    m.d.sync += [self.start.payload.addr.eq(entry), self.start.payload.count.eq(count),
                                 self.base.eq(Mux(before, 0, index)), self.start.valid.eq(1),
                                 self.load_lo.eq(f["params_offset"]), self.load_hi.eq(f["memory_size"]),
                                 self.store_lo.eq(f["act_offset"]),
                                 self.store_hi.eq(f["act_offset"] + f["act_size"])]
                    m.next = "LAUNCH"
            with m.State("LAUNCH"):
                with m.If(self.start.ready):
                    m.d.sync += [self.start.valid.eq(0), self.pending.eq(0)]
                    m.next = "IDLE"
        return m


class BoardSystem(wiring.Component):
    """``system`` (a :class:`rtl.system.System`) behind the host link (see the module doc):
    VERSION answers ``config_sha256`` (the sha256 of the config ``system`` was built for,
    :func:`wino_gen.compile.image.config_sha256`); ``host``: :data:`HOSTS`, ``divisor`` clock
    cycles per UART bit; ``gap_cycles``: the link's partial-frame timeout; ``max_data``: bytes
    per frame; ``memory``: :data:`MEMORIES`, ``part`` and ``clock_mhz`` the SDRAM's."""

    def __init__(self, system: System, *, config_sha256: bytes, gap_cycles: int, host: str = "uart",
                 divisor: int = MIN_DIVISOR, max_data: int = link.MAX_DATA, memory: str = "port",
                 part: wm.SDRAM = wm.IS42S16160G_7, clock_mhz: float | None = None):
        if not isinstance(system, System):
            raise ValueError(f"system {system!r}: must be an rtl.system.System")
        if host not in HOSTS:
            raise ValueError(f"host {host!r}: must be one of {', '.join(HOSTS)}")
        if memory not in MEMORIES:
            raise ValueError(f"memory {memory!r}: must be one of {', '.join(MEMORIES)}")
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor {divisor}: the UART needs >= {MIN_DIVISOR} clock cycles per bit")
        port = system.signature.members["mem"].signature
        self.system, self.host, self.memory, self.port_sig = system, host, memory, port
        self.sdram = None
        if memory == "sdram":
            if clock_mhz is None:
                raise ValueError("memory 'sdram': clock_mhz (the SDRAM's clock) is required")
            if port.data_width != part.width_bits:
                raise ValueError(f"memory 'sdram': the system's port is {port.data_width} bits wide, the "
                                 f"{part.part} {part.width_bits}")
            self.sdram = SDRAMController(part, clock_mhz=clock_mhz, addr_width=port.addr_width,
                                         max_burst=port.max_burst)
        self.link = HostLink(port, config_sha256=config_sha256, gap_cycles=gap_cycles, max_data=max_data)
        seq = system.seq
        self.launcher = Launcher(port, seq.start_layout, system.signature.members["load_lo"].shape,
                                 max_instrs=seq.max_instrs)
        self.arb = Arbiter(port, len(MASTERS))
        # one bit time: exactly ``divisor`` cycles, whatever clock the UART is told
        self.uart = (UARTRx(clock_hz=divisor, baud=1), UARTTx(clock_hz=divisor, baud=1)) if host == "uart" else None
        members = {"rx": In(1, init=1), "tx": Out(1, init=1)} if host == "uart" else \
            {"i": In(stream.Signature(BYTE)), "o": Out(stream.Signature(BYTE))}
        members.update({"mem": Out(port)} if memory == "port" else {"pins": self.sdram.signature.members["pins"]})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        sysm, hl, la, arb = self.system, self.link, self.launcher, self.arb
        m.submodules.system, m.submodules.link, m.submodules.launcher, m.submodules.arb = sysm, hl, la, arb
        if self.uart:
            m.submodules.uart_rx, m.submodules.uart_tx = rx, tx = self.uart
            wiring.connect(m, rx.o, hl.i)
            wiring.connect(m, hl.o, tx.i)
            m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        else:
            wiring.connect(m, wiring.flipped(self.i), hl.i)
            wiring.connect(m, hl.o, wiring.flipped(self.o))
        for k, master in enumerate((hl.mem, la.mem, sysm.mem)):
            wiring.connect(m, master, arb.req[k])
        if self.sdram:
            m.submodules.sdram = self.sdram
            wiring.connect(m, arb.mem, self.sdram.mem)
            wiring.connect(m, self.sdram.pins, wiring.flipped(self.pins))
        else:
            wiring.connect(m, arb.mem, wiring.flipped(self.mem))
        wiring.connect(m, la.start, sysm.start)
        m.d.comb += [la.go.eq(hl.start), la.entry.eq(hl.entry)]
        m.d.comb += [getattr(sysm, k).eq(getattr(la, k)) for k in ("load_lo", "load_hi", "store_lo", "store_hi")]
        s = hl.status
        m.d.comb += [s.running.eq(la.pending | sysm.busy), s.done.eq(sysm.done & ~la.pending),
                     s.error.eq(sysm.status), s.error_instr.eq(sysm.index + la.base), s.cycles.eq(sysm.cycles)]
        return m

