# amaranth: UnusedElaboratable=no
"""The host link's gateware (rtl.io.hostlink) at the byte-stream level, driven by the frames
wino_gen.link encodes and answered with frames it decodes, a sim.memory.MemoryModel behind
its memory port and random stalls on every stream: random data written at random unaligned
addresses reads back and touches nothing beside it at port widths of 1, 2 and 4 bytes; a
corrupted, truncated or malformed frame is NAKed and changes nothing; STATUS, VERSION and
START answer and act as the protocol says; and the host Client, unchanged, talks to it."""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from rtl.io.hostlink import HostLink, SerialHostLink
from rtl.io.uart import UARTRx, UARTTx
from rtl.mem.port import PortSignature
from sim.memory import MemoryModel, timing
from sim.streams import Lane, Stalls, drainer, feeder, get, put
from wino_gen import link
from wino_gen.errors import UsageError

SHA = bytes(range(100, 132))
MEM_BYTES = 512
GAP = 150                    # cycles of silence that end a partial frame
CYCLE_S = 1e-6               # the sim clock: the Client's seconds are simulated seconds


class Board:
    """A HostLink on a memory model, run in steps: bytes written go into ``i`` under stalls,
    bytes from ``o`` (taken under stalls) queue up to be read; it is the Client's transport."""

    def __init__(self, *, word_bytes=2, max_data=48, max_burst=4, stall=0.3, seed=0, mem="ideal"):
        self.W = word_bytes
        port = PortSignature(data_width=8 * word_bytes, addr_width=(MEM_BYTES // word_bytes).bit_length() - 1,
                             max_burst=max_burst)
        self.dut = HostLink(port, config_sha256=SHA, gap_cycles=GAP, max_data=max_data)
        rng = np.random.default_rng(seed)
        self.mem = rng.integers(0, 256, MEM_BYTES).astype(np.uint8)
        stalls = Stalls(stall, seed)
        self.model = MemoryModel(self.mem, timing(mem), word_bytes=word_bytes, stalls=stalls)
        self.inq, self.outq = deque(), deque()
        self.status = dict(running=0, done=0, error=0, error_instr=0, cycles=0)
        self.starts = []
        self.now = 0
        self.sim = Simulator(self.dut)
        self.sim.add_clock(CYCLE_S)
        self.sim.add_testbench(self.model.serve(self.dut.mem), background=True)
        self.sim.add_testbench(feeder(self.dut.i, self.inq, Lane(stalls, "link.i")), background=True)
        self.sim.add_testbench(drainer(self.dut.o, self.outq, Lane(stalls, "link.o")), background=True)
        self.sim.add_testbench(self._pins, background=True)

    async def _pins(self, ctx):
        s, applied = self.dut.status, None
        while True:
            if applied != self.status:
                applied = dict(self.status)
                for name, v in applied.items():
                    ctx.set(s[name], v)
            _, _, start, entry = await ctx.tick().sample(self.dut.start, self.dut.entry)
            if start:
                self.starts.append(int(entry))

    def run(self, cycles):
        self.now += cycles
        self.sim.run_until(self.now * CYCLE_S)

    # -- the transport -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.inq.extend(data)

    def read(self, n: int, timeout: float) -> bytes:
        deadline = self.now + round(timeout / CYCLE_S)
        while len(self.outq) < n and self.now < deadline:
            self.run(min(50, deadline - self.now))
        return bytes(self.outq.popleft() for _ in range(min(n, len(self.outq))))

    # -- one frame at a time -----------------------------------------------------------------

    def transact(self, frame: bytes, limit=20000):
        """Send ``frame``; the reply decoded (None if none comes within ``limit`` cycles)."""
        self.write(frame)
        head = self.read(link.HEADER_BYTES, limit * CYCLE_S)
        if len(head) < link.HEADER_BYTES:
            return None
        rest = self.read(int.from_bytes(head[3:5], "little") + link.CRC_BYTES, limit * CYCLE_S)
        return link.decode_reply(head + rest)


def _ok(reply, seq, payload=b""):
    assert reply is not None and reply.name == "OK" and reply.seq == seq and reply.payload == payload, reply


@pytest.mark.parametrize("word_bytes, mem", [(1, "ideal"), (2, "2,3"), (4, "sdram-ulx3s")])
def test_write_then_read_back_random_unaligned(word_bytes, mem):
    b = Board(word_bytes=word_bytes, mem=mem, seed=word_bytes)
    rng = np.random.default_rng(10 + word_bytes)
    expect = b.mem.copy()
    ranges = []
    for seq in range(1, 13):
        n = int(rng.integers(1, 49)) if seq > 2 else (1, 48)[seq - 1]
        addr = int(rng.integers(0, MEM_BYTES - n + 1))
        data = rng.integers(0, 256, n).astype(np.uint8)
        expect[addr:addr + n] = data
        ranges.append((addr, n))
        _ok(b.transact(link.encode_request("WRITE_MEM", seq, addr=addr, data=data.tobytes())), seq)
        assert np.array_equal(b.mem, expect), f"after write {seq} of {n} bytes at {addr}"
    _ok(b.transact(link.encode_request("WRITE_MEM", 13, addr=MEM_BYTES - 1, data=b"\x5a")), 13)
    expect[-1] = 0x5A
    for seq, (addr, n) in enumerate([*ranges, (MEM_BYTES - 1, 1), (0, 48)], start=20):
        _ok(b.transact(link.encode_request("READ_MEM", seq, addr=addr, count=n)), seq, expect[addr:addr + n].tobytes())


def _write(b, seq, addr=33, data=b"hello, board"):
    return link.encode_request("WRITE_MEM", seq, addr=addr, data=data)


def test_a_corrupted_frame_is_nakked_and_changes_nothing():
    b = Board()
    before = b.mem.copy()
    rng = np.random.default_rng(7)
    frame = _write(b, 5)
    for _ in range(12):
        bad = bytearray(frame)
        bit = int(rng.integers(8, 8 * len(frame)))           # anywhere after the sync byte
        bad[bit // 8] ^= 1 << bit % 8
        r = b.transact(bytes(bad))
        assert r is not None and r.name in ("NAK_CRC", "NAK_FRAME"), (bit, r)
        assert np.array_equal(b.mem, before)
    _ok(b.transact(frame), 5)                                 # and the link still works
    assert bytes(b.mem[33:45]) == b"hello, board"


def test_malformed_and_truncated_frames_are_nakked():
    b = Board()
    before = b.mem.copy()
    bad_len = link.encode_frame(link.OPCODES["STATUS"], 1, b"\0")         # STATUS takes no payload
    unknown = link.encode_frame(0x42, 2)
    too_long = link.encode_frame(link.OPCODES["WRITE_MEM"], 3, bytes(4 + 49))  # board takes 48
    count0 = link.encode_request("READ_MEM", 4, addr=0, count=0)
    count_big = link.encode_request("READ_MEM", 5, addr=0, count=2048 + 5)
    for frame in (bad_len, unknown, too_long, count0, count_big, _write(b, 6)[:-3]):
        r = b.transact(frame)
        assert r is not None and r.name == "NAK_FRAME", (frame.hex(), r)
    assert np.array_equal(b.mem, before)
    # bytes before a sync byte are skipped; a frame with a bad sync byte is no frame at all
    assert b.transact(b"\x00\x11" + link.encode_request("STATUS", 7)).name == "OK"
    assert b.transact(b"\x5a" + _write(b, 8)[1:], limit=3 * GAP) is None
    assert np.array_equal(b.mem, before)


def test_out_of_range_is_an_error_and_changes_nothing():
    b = Board()
    before = b.mem.copy()
    for frame in (_write(b, 1, addr=MEM_BYTES - 3, data=b"abcd"),
                  link.encode_request("READ_MEM", 2, addr=MEM_BYTES - 1, count=2),
                  link.encode_request("READ_MEM", 3, addr=0xFFFFFFFF, count=48)):
        r = b.transact(frame)
        assert r.name == "ERROR" and r.payload == bytes((link.ERRORS["ADDRESS"],)), r
    assert np.array_equal(b.mem, before)


def test_status_version_and_start():
    b = Board(stall=0.5)
    st = link.Status(running=True, done=False, error=7, error_instr=0x12345678, cycles=0x0123456789ABCDEF)
    b.status = dict(running=1, done=0, error=7, error_instr=0x12345678, cycles=0x0123456789ABCDEF)
    _ok(b.transact(link.encode_request("STATUS", 1)), 1, st.to_bytes())
    b.status["done"], b.status["running"] = 1, 0
    assert link.Status.from_bytes(b.transact(link.encode_request("STATUS", 2)).payload).done
    _ok(b.transact(link.encode_request("VERSION", 3)), 3,
        link.BoardVersion(link.VERSION, 48, MEM_BYTES.bit_length() - 1, SHA).to_bytes())
    _ok(b.transact(link.encode_request("START", 4, entry=0x40)), 4)
    _ok(b.transact(link.encode_request("START", 4, entry=0x40)), 4)     # a resend: no second start
    assert b.starts == [0x40]
    b.status["running"] = 1
    r = b.transact(link.encode_request("START", 5, entry=0x80))
    assert r.name == "ERROR" and r.payload == bytes((link.ERRORS["BUSY"],))
    b.status["running"] = 0
    _ok(b.transact(link.encode_request("START", 5, entry=0x80)), 5)
    _ok(b.transact(link.encode_request("STATUS", 6)), 6, link.Status(False, True, 7, 0x12345678,
                                                                     0x0123456789ABCDEF).to_bytes())
    _ok(b.transact(link.encode_request("START", 6, entry=0x80)), 6)     # same seq, but STATUS between
    assert b.starts == [0x40, 0x80, 0x80]


class _CorruptEvery:
    """The board's transport with every ``k``-th request corrupted on the way (one bit)."""

    def __init__(self, board, k):
        self.board, self.k, self.n = board, k, 0

    def write(self, data):
        self.n += 1
        if self.n % self.k == 0:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        self.board.write(bytes(data))

    def read(self, n, timeout):
        return self.board.read(n, timeout)


def test_the_client_talks_to_the_gateware_and_retries():
    b = Board(word_bytes=4, max_data=32, stall=0.2, seed=3)
    c = link.Client(_CorruptEvery(b, 3), name="sim", timeout=0.01)
    assert c.version().config_sha256 == SHA
    c.require_config(SHA)
    data = np.random.default_rng(1).integers(0, 256, 150).astype(np.uint8).tobytes()
    c.write_mem(101, data)                           # five frames of <= 32 bytes
    assert bytes(b.mem[101:251]) == data
    assert c.read_mem(101, 150) == data
    c.start(0x20)
    assert b.starts == [0x20]
    assert not c.status().running
    assert c.retries >= 4
    with pytest.raises(UsageError, match="built for config"):
        c.require_config(bytes(32))


def test_over_the_uart_pins():
    """The link behind its UART, bit by bit (4 cycles per bit), from a host-side UART pair."""
    port = PortSignature(data_width=16, addr_width=8, max_burst=4)
    dut = SerialHostLink(port, clock_hz=1_000_000, baud=250_000, config_sha256=SHA, max_data=16, gap_cycles=400)
    m = Module()
    m.submodules.dut = dut
    m.submodules.host_tx = host_tx = UARTTx(clock_hz=1_000_000, baud=250_000)
    m.submodules.host_rx = host_rx = UARTRx(clock_hz=1_000_000, baud=250_000)
    m.d.comb += [dut.rx.eq(host_tx.tx), host_rx.rx.eq(dut.tx)]
    mem = np.zeros(512, np.uint8)
    frames = [link.encode_request("WRITE_MEM", 1, addr=7, data=b"abc"),
              link.encode_request("READ_MEM", 2, addr=6, count=5)]
    replies = [link.encode_reply("OK", 1), link.encode_reply("OK", 2, b"\0abc\0")]
    got = []

    async def host(ctx):
        for frame, reply in zip(frames, replies, strict=True):
            await put(ctx, host_tx.i, list(frame), packed=True)
            got.append(bytes(await get(ctx, host_rx.o, len(reply), raw=True)))

    sim = Simulator(m)
    sim.add_clock(CYCLE_S)
    sim.add_testbench(MemoryModel(mem, timing("ideal"), word_bytes=2).serve(dut.mem), background=True)
    sim.add_testbench(host)
    sim.run()
    assert got == replies and bytes(mem[6:11]) == b"\0abc\0"


@pytest.mark.parametrize("kw, match", [
    (dict(config_sha256=b"short"), "32 bytes"), (dict(gap_cycles=0), "gap_cycles"),
    (dict(max_data=0), "max_data"), (dict(max_data=link.MAX_DATA + 1), "max_data"),
    (dict(port=PortSignature(data_width=32, addr_width=31, max_burst=4)), "33-bit"),
])
def test_bad_parameters_are_refused(kw, match):
    args = dict(port=PortSignature(data_width=16, addr_width=8, max_burst=4), config_sha256=SHA, gap_cycles=10)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        HostLink(args.pop("port"), **args)
