"""The board's end of the serial host link (protocol in :mod:`wino_gen.link`, spec in
docs/link.md): frames in on a byte stream ``i``, replies out on ``o`` (connect them to
:class:`rtl.io.uart.UARTRx` / :class:`~rtl.io.uart.UARTTx`), memory reached as a master on the
memory port ``mem`` (:mod:`rtl.mem.port`).

One request at a time: the parser takes a frame (dropping bytes before a sync byte), checks
its length against its opcode as soon as the header is in, its CRC once the frame is in, and
only then acts; a frame that fails either is answered NAK and changes nothing. A bad header
makes it swallow bytes until the line has been quiet for ``gap_cycles`` (where the bad frame
ends is unknown), then answer NAK_FRAME; a frame that stops arriving for ``gap_cycles`` is
answered NAK_FRAME too. ``i`` is not ready while a request runs and its reply goes out.

WRITE_MEM's data goes into a buffer of port words as it arrives, each byte in the lane its
byte address gives, and moves to memory once the CRC holds: bursts of at most the port's
``max_burst`` words, the first and last word masked by ``strb`` so that the bytes beside an
unaligned range are left alone. READ_MEM reads the words that hold the range into the same
buffer and sends its bytes from the first one. START pulses ``start`` for one cycle with
``entry`` set (refused while ``status.running``; a resend of the START just run, with the
same sequence number and nothing in between, is answered OK without a second pulse).
STATUS answers a snapshot of ``status``; VERSION the link version, ``max_data``, the memory's
size and the ``config_sha256`` the bitstream was built for.
"""

from __future__ import annotations

import struct

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from wino_gen import link

from ..mem.port import PortSignature
from .uart import BYTE, UARTRx, UARTTx


def status_layout() -> data.StructLayout:
    """The ``status`` input: :data:`wino_gen.link.STATUS_FLAGS` one bit each, then the other
    :data:`~wino_gen.link.STATUS_FIELDS` at their widths."""
    fields = {name: 1 for name in link.STATUS_FLAGS}
    fields.update({name: 8 * struct.calcsize("<" + code) for name, code in link.STATUS_FIELDS[1:]})
    return data.StructLayout(fields)


def crc16_next(m: Module, crc, byte, name: str) -> Signal:
    """``link.crc16`` of one more ``byte`` after ``crc``: eight XOR stages, each a signal, so
    that the netlist stays linear (an expression naming the previous stage twice per stage
    would grow to 2**8 copies of it)."""
    c = Signal(link.CRC_BITS, name=f"{name}_in")
    m.d.comb += c.eq(crc ^ (byte << 8))
    for i in range(8):
        nxt = Signal(link.CRC_BITS, name=f"{name}_{i}")
        m.d.comb += nxt.eq((c << 1)[:link.CRC_BITS] ^ Mux(c[link.CRC_BITS - 1], link.CRC_POLY, 0))
        c = nxt
    return c


def request_field(args, op: str, name: str):
    """Field ``name`` of request ``op`` in ``args``, its payload's first bytes (little-endian,
    at the offsets :data:`wino_gen.link.REQUEST_FIELDS` gives)."""
    offset = 0
    for field, code in link.REQUEST_FIELDS[op]:
        width = 8 * struct.calcsize("<" + code)
        if field == name:
            return args[offset:offset + width]
        offset += width
    raise KeyError(f"{op} has no field {name!r}")


class HostLink(wiring.Component):
    """The host link on memory port ``port`` (see the module doc): WRITE_MEM and READ_MEM of up
    to ``max_data`` bytes, a partial frame dropped after ``gap_cycles`` quiet cycles
    (:func:`wino_gen.link.gap_cycles`), VERSION answering ``config_sha256``."""

    def __init__(self, port: PortSignature, *, config_sha256: bytes, gap_cycles: int, max_data: int = link.MAX_DATA):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if not isinstance(config_sha256, bytes) or len(config_sha256) != 32:
            raise ValueError(f"config_sha256: must be 32 bytes, got {config_sha256!r}")
        if gap_cycles < 1:
            raise ValueError(f"gap_cycles {gap_cycles}: must be positive")
        if not 1 <= max_data <= link.MAX_DATA:
            raise ValueError(f"max_data {max_data}: must be in 1..{link.MAX_DATA}")
        self.lw = exact_log2(port.word_bytes)
        self.addr_bits = port.addr_width + self.lw
        if self.addr_bits > link.ADDR_BITS:
            raise ValueError(f"port of {self.addr_bits}-bit byte addresses: the link reaches {link.ADDR_BITS} bits")
        self.port_sig, self.gap_cycles, self.max_data = port, gap_cycles, max_data
        self.version_bytes = link.BoardVersion(link.VERSION, max_data, self.addr_bits, config_sha256).to_bytes()
        # an unaligned range of max_data bytes spans one word more than an aligned one
        self.buf_words = (max_data + 2 * (port.word_bytes - 1)) // port.word_bytes
        byte_stream = stream.Signature(BYTE)
        super().__init__({
            "i": In(byte_stream), "o": Out(byte_stream), "mem": Out(port),
            "start": Out(1), "entry": Out(link.ADDR_BITS), "status": In(status_layout()),
        })

    def _low(self, v):
        """The byte lane part of a byte address (a 1-bit zero on a byte-wide port)."""
        return v[:self.lw] if self.lw else Const(0, 1)

    def elaborate(self, platform):
        m = Module()
        W, lw, full = self.port_sig.word_bytes, self.lw, (1 << self.port_sig.word_bytes) - 1
        ops = {name: Signal(name=f"is_{name.lower()}") for name in link.OPCODES}
        op, seq, rseq, length = Signal(8), Signal(8), Signal(8), Signal(16)
        args = Signal(8 * max(link.field_bytes(o) for o in link.OPCODES))
        idx, bpos = Signal(range(link.MAX_PAYLOAD + 1)), Signal(range(self.buf_words * W))
        crc, gap = Signal(link.CRC_BITS), Signal(range(self.gap_cycles + 1))
        m.d.comb += [s.eq(op == link.OPCODES[name]) for name, s in ops.items()]

        m.submodules.buf = buf = Memory(shape=8 * W, depth=self.buf_words, init=[])
        wp, rp = buf.write_port(granularity=8), buf.read_port(transparent_for=())
        m.d.comb += rp.en.eq(0)          # the states that read say when (its default is 1)

        b, take = self.i.payload.data, Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        crc_next = crc16_next(m, crc, b, "rx_crc")
        with m.If(take):
            m.d.sync += [crc.eq(crc_next), gap.eq(0)]
        with m.Else():
            m.d.sync += gap.eq(gap + 1)

        # the length field checked against the opcode, from the header alone
        new_len = Cat(length[:8], b)
        len_ok = Const(0)
        for name, s in ops.items():
            n = link.field_bytes(name)
            ok = (new_len > n) & (new_len <= n + self.max_data) if name == "WRITE_MEM" else new_len == n
            len_ok = len_ok | (s & ok)

        # the request's range and the words that hold it
        addr, off = request_field(args, "READ_MEM", "addr"), self._low(args)
        # every address sits where READ_MEM's does (START's entry too)
        assert all((request_field(args, o, f).start, request_field(args, o, f).stop) == (addr.start, addr.stop)
                   for o, f in (("WRITE_MEM", "addr"), ("START", "entry")))
        count = Signal(len(length) + 1)
        m.d.comb += count.eq(Mux(ops["WRITE_MEM"], length - link.field_bytes("WRITE_MEM"),
                                 request_field(args, "READ_MEM", "count")))
        words_of = Signal(range(self.buf_words + 1))
        m.d.comb += words_of.eq((off + count + W - 1) >> lw)
        end = Signal(link.ADDR_BITS + 2)
        m.d.comb += end.eq(addr + count)
        nwords, mask_first, mask_last = Signal.like(words_of), Signal(W), Signal(W)
        end_lane = self._low(off + count)
        caddr, cleft = Signal(self.port_sig.addr_width), Signal.like(words_of)
        k = Signal.like(words_of)          # words moved (read) or loaded into w (write)

        # the reply: code, length, where its payload comes from, the error cause, the snapshot
        rcode, rlen, src, cause = Signal(8), Signal(16), Signal(range(4)), Signal(8)
        SRC_BUF, SRC_STATUS, SRC_VERSION, SRC_ERROR = range(4)
        snap = Signal(8 * link.STATUS_BYTES)
        pos = Signal(range(link.MAX_FRAME_BYTES + 1))
        started, started_seq = Signal(), Signal(8)

        def reply(code, n=0, source=SRC_ERROR):
            m.d.sync += [rcode.eq(link.REPLIES[code]), rlen.eq(n), src.eq(source), pos.eq(0),
                         rseq.eq(seq)]
            m.next = "REPLY"

        def error(name):
            m.d.sync += cause.eq(link.ERRORS[name])
            reply("ERROR", 1)

        m.d.sync += self.start.eq(0)
        pc, w, r = self.mem.cmd, self.mem.w, self.mem.r
        burst = Mux(cleft < self.port_sig.max_burst, cleft, self.port_sig.max_burst)
        m.d.comb += [pc.payload.addr.eq(caddr), pc.payload.length.eq(burst), pc.payload.write.eq(ops["WRITE_MEM"])]
        with m.If(pc.valid & pc.ready):
            m.d.sync += [caddr.eq(caddr + burst), cleft.eq(cleft - burst)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take & (b == link.SYNC)):
                    m.d.sync += crc.eq(link.CRC_INIT)
                    m.next = "OP"
            for state, reg, nxt in (("OP", op, "SEQ"), ("SEQ", seq, "LEN0"), ("LEN0", length[:8], "LEN1")):
                with m.State(state):
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(take):
                        m.d.sync += reg.eq(b)
                        m.next = nxt
                    with m.Elif(gap == self.gap_cycles):
                        reply("NAK_FRAME")
            with m.State("LEN1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    m.d.sync += [length.eq(new_len), idx.eq(0)]
                    with m.If(~len_ok):
                        m.next = "DISCARD"
                    with m.Elif(new_len == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(gap == self.gap_cycles):
                    reply("NAK_FRAME")
            with m.State("PAYLOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx < len(args) // 8):
                        m.d.sync += args.word_select(idx[:3], 8).eq(b)
                    with m.If(idx == 0):
                        m.d.sync += bpos.eq(self._low(b))
                    data_byte = ops["WRITE_MEM"] & (idx >= link.field_bytes("WRITE_MEM"))
                    with m.If(data_byte):
                        m.d.sync += bpos.eq(bpos + 1)
                    m.d.comb += [wp.addr.eq(bpos >> lw), wp.data.eq(b.replicate(W)),
                                 wp.en.eq(Mux(data_byte, Const(1, W) << self._low(bpos), 0))]
                    with m.If(idx == length - 1):
                        m.next = "CRC0"
                with m.Elif(gap == self.gap_cycles):
                    reply("NAK_FRAME")
            with m.State("CRC0"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    m.next = "CRC1"
                with m.Elif(gap == self.gap_cycles):
                    reply("NAK_FRAME")
            with m.State("CRC1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    with m.If(crc_next != 0):
                        reply("NAK_CRC")
                    with m.Else():
                        m.next = "EXEC"
                with m.Elif(gap == self.gap_cycles):
                    reply("NAK_FRAME")
            with m.State("DISCARD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(~take & (gap == self.gap_cycles)):
                    reply("NAK_FRAME")
            with m.State("EXEC"):
                m.d.sync += [started.eq(0), nwords.eq(words_of), caddr.eq(addr >> lw), cleft.eq(words_of),
                             k.eq(0), mask_first.eq((Const(full, W) << off)[:W]),
                             mask_last.eq(Mux(end_lane == 0, full, (Const(1, W + 1) << end_lane) - 1))]
                memop = ops["WRITE_MEM"] | ops["READ_MEM"]
                with m.If(ops["READ_MEM"] & ((count == 0) | (count > self.max_data))):
                    reply("NAK_FRAME")
                with m.Elif(memop & (end > (1 << self.addr_bits))):
                    error("ADDRESS")
                with m.Elif(ops["WRITE_MEM"]):
                    m.next = "MEMW"
                with m.Elif(ops["READ_MEM"]):
                    m.next = "MEMR"
                with m.Elif(ops["START"] & started & (started_seq == seq)):
                    m.d.sync += started.eq(1)
                    reply("OK")
                with m.Elif(ops["START"] & self.status.running):
                    error("BUSY")
                with m.Elif(ops["START"]):
                    m.d.sync += [self.start.eq(1), self.entry.eq(addr), started.eq(1), started_seq.eq(seq)]
                    reply("OK")
                with m.Elif(ops["STATUS"]):
                    s = self.status
                    flags = Cat(*(s[n] for n in link.STATUS_FLAGS))
                    m.d.sync += snap.eq(Cat(flags, Const(0, 8 - len(flags)),
                                            *(s[n] for n, _ in link.STATUS_FIELDS[1:])))
                    reply("OK", link.STATUS_BYTES, SRC_STATUS)
                with m.Else():
                    reply("OK", link.VERSION_BYTES, SRC_VERSION)
            with m.State("MEMW"):
                # as DMAStore: the read port's register is the one stage in front of ``w``
                en = ~w.valid | w.ready
                m.d.comb += [pc.valid.eq(cleft != 0), rp.addr.eq(k), rp.en.eq(en)]
                with m.If(en):
                    strb = Mux(k == 0, mask_first, full) & Mux(k == nwords - 1, mask_last, full)
                    m.d.sync += [w.valid.eq(k != nwords), w.payload.strb.eq(strb)]
                    with m.If(k != nwords):
                        m.d.sync += k.eq(k + 1)
                    with m.Elif(cleft == 0):
                        reply("OK")
            with m.State("MEMR"):
                m.d.comb += [pc.valid.eq(cleft != 0), r.ready.eq(1),
                             wp.addr.eq(k), wp.data.eq(r.payload.data), wp.en.eq(Mux(r.valid, full, 0))]
                with m.If(r.valid):
                    m.d.sync += k.eq(k + 1)
                with m.If(k == nwords):
                    reply("OK", count, SRC_BUF)
            with m.State("REPLY"):
                self._send(m, rp, dict(rcode=rcode, rseq=rseq, rlen=rlen, src=src, cause=cause, snap=snap,
                                       pos=pos, off=off), (SRC_BUF, SRC_STATUS, SRC_VERSION))
        m.d.comb += w.payload.data.eq(rp.data)
        return m

    def _send(self, m, rp, s, sources):
        """The REPLY state: one byte of the reply frame loaded per cycle ``o`` moves; the CRC
        follows the bytes as they are taken (the payload bytes from the buffer come through
        the read port's register, so their lane is chosen after it)."""
        SRC_BUF, SRC_STATUS, SRC_VERSION = sources
        o, lw = self.o, self.lw
        en, accept = ~o.valid | o.ready, o.valid & o.ready
        byte, from_buf, lane, in_crc = Signal(8), Signal(), Signal(max(1, lw)), Signal()
        crc_tx = Signal(link.CRC_BITS, init=link.CRC_INIT)
        crc_eff = Mux(accept & in_crc, crc16_next(m, crc_tx, o.payload.data, "tx_crc"), crc_tx)
        m.d.comb += o.payload.data.eq(Mux(from_buf, rp.data.word_select(lane, 8), byte))
        with m.If(accept & in_crc):
            m.d.sync += crc_tx.eq(crc_eff)
        pos, rlen = s["pos"], s["rlen"]
        j = Signal(range(link.MAX_PAYLOAD + 1))
        bp = Signal(range(link.MAX_PAYLOAD + 8))
        m.d.comb += [j.eq(pos - link.HEADER_BYTES), bp.eq(s["off"] + j)]
        header = Array([Const(link.SYNC, 8), s["rcode"], s["rseq"], rlen[:8], rlen[8:]])[pos[:3]]
        version = Array(Const(v, 8) for v in self.version_bytes)[j]
        small = Mux(s["src"] == SRC_STATUS, s["snap"].word_select(j[:4], 8),
                    Mux(s["src"] == SRC_VERSION, version, s["cause"]))
        in_payload = (pos >= link.HEADER_BYTES) & (j < rlen)
        total = link.HEADER_BYTES + rlen + link.CRC_BYTES
        with m.If(en):
            with m.If(pos == total):
                m.d.sync += [o.valid.eq(0), from_buf.eq(0), in_crc.eq(0), crc_tx.eq(link.CRC_INIT)]
                m.next = "IDLE"
            with m.Else():
                m.d.comb += [rp.addr.eq(bp >> lw), rp.en.eq(1)]
                m.d.sync += [o.valid.eq(1), pos.eq(pos + 1), lane.eq(self._low(bp)),
                             from_buf.eq(in_payload & (s["src"] == SRC_BUF)),
                             in_crc.eq((pos != 0) & ((pos < link.HEADER_BYTES) | in_payload)),
                             byte.eq(Mux(pos < link.HEADER_BYTES, header,
                                         Mux(in_payload, small, Mux(j == rlen, crc_eff[8:], crc_eff[:8]))))]


class SerialHostLink(wiring.Component):
    """:class:`HostLink` behind an 8N1 UART at ``baud`` (:mod:`.uart`): the pins ``rx``/``tx``
    of a board's USB serial port, the partial-frame gap :data:`wino_gen.link.GAP_S` at
    ``clock_hz`` unless ``gap_cycles`` says otherwise; ``frame_error`` pulses on a byte with a
    low stop bit (the frame it was in fails its CRC and is NAKed)."""

    def __init__(self, port: PortSignature, *, clock_hz: int, baud: int, config_sha256: bytes,
                 max_data: int = link.MAX_DATA, gap_cycles: int | None = None):
        self.uart_rx, self.uart_tx = UARTRx(clock_hz=clock_hz, baud=baud), UARTTx(clock_hz=clock_hz, baud=baud)
        self.link = HostLink(port, config_sha256=config_sha256, max_data=max_data,
                             gap_cycles=link.gap_cycles(clock_hz) if gap_cycles is None else gap_cycles)
        sig = self.link.signature.members
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "frame_error": Out(1),
                          "mem": sig["mem"], "start": sig["start"], "entry": sig["entry"], "status": sig["status"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx, m.submodules.uart_tx, m.submodules.link = self.uart_rx, self.uart_tx, self.link
        wiring.connect(m, self.uart_rx.o, self.link.i)
        wiring.connect(m, self.link.o, self.uart_tx.i)
        wiring.connect(m, wiring.flipped(self.mem), self.link.mem)
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx),
                     self.frame_error.eq(self.uart_rx.frame_error), self.start.eq(self.link.start),
                     self.entry.eq(self.link.entry), self.link.status.eq(self.status)]
        return m
