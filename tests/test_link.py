"""The host link protocol (wino_gen.link), pure Python: the CRC is CRC-16/CCITT-FALSE, every
frame round-trips, every error of up to three bits or a 16-bit burst is detected, and the
Client, against a fake board whose transport drops and corrupts requests and replies,
retries until the operation is done (a START runs once), then gives up with one line."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wino_gen import link
from wino_gen.errors import UsageError

SHA = bytes(range(32))


def test_crc_is_ccitt_false_and_the_frame_residue_is_zero():
    assert link.crc16(b"123456789") == 0x29B1          # the catalogue's check value
    assert link.crc16(b"") == link.CRC_INIT
    frame = link.encode_request("STATUS", 1)
    assert frame == bytes.fromhex("a5 04 01 00 00 79 01")   # docs/link.md's worked example
    assert link.crc16(frame[1:]) == 0


_fields = {
    "WRITE_MEM": st.fixed_dictionaries({"addr": st.integers(0, 2**32 - 1),
                                        "data": st.binary(min_size=1, max_size=link.MAX_DATA)}),
    "READ_MEM": st.fixed_dictionaries({"addr": st.integers(0, 2**32 - 1), "count": st.integers(1, link.MAX_DATA)}),
    "START": st.fixed_dictionaries({"entry": st.integers(0, 2**32 - 1)}),
    "STATUS": st.just({}),
    "VERSION": st.just({}),
}
requests = st.sampled_from(sorted(_fields)).flatmap(lambda op: st.tuples(st.just(op), st.integers(0, 255), _fields[op]))


@given(requests)
def test_requests_round_trip(req):
    op, seq, kw = req
    r = link.decode_request(link.encode_request(op, seq, **kw))
    data = kw.pop("data", b"")
    assert (r.op, r.seq, r.fields, r.data) == (op, seq, kw, data)


@given(st.sampled_from(sorted(link.REPLIES)), st.integers(0, 255), st.binary(max_size=link.MAX_DATA))
def test_replies_round_trip(code, seq, payload):
    f = link.decode_reply(link.encode_reply(code, seq, payload))
    assert (f.name, f.seq, f.payload) == (code, seq, payload)


@given(st.booleans(), st.booleans(), st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_status_and_version_round_trip(running, done, error, instr, cycles):
    s = link.Status(running, done, error, instr, cycles)
    assert len(s.to_bytes()) == link.STATUS_BYTES and link.Status.from_bytes(s.to_bytes()) == s
    v = link.BoardVersion(link.VERSION, 1 + error, 1 + error % 32, SHA)
    assert len(v.to_bytes()) == link.VERSION_BYTES and link.BoardVersion.from_bytes(v.to_bytes()) == v


@settings(max_examples=300)
@given(requests, st.data())
def test_up_to_three_flipped_bits_are_detected(req, data):
    op, seq, kw = req
    frame = bytearray(link.encode_request(op, seq, **kw))
    bits = data.draw(st.sets(st.integers(0, 8 * len(frame) - 1), min_size=1, max_size=3))
    for b in bits:
        frame[b // 8] ^= 1 << b % 8
    with pytest.raises(link.FrameError):
        link.decode_request(bytes(frame))


@settings(max_examples=300)
@given(requests, st.data())
def test_bursts_of_up_to_16_bits_are_detected(req, data):
    op, seq, kw = req
    frame = bytearray(link.encode_request(op, seq, **kw))
    n = 8 * len(frame)
    start = data.draw(st.integers(0, n - 1))
    length = data.draw(st.integers(1, min(16, n - start)))
    # a burst: its first and last bits flipped, any pattern between
    pattern = 1 | (1 << (length - 1)) | data.draw(st.integers(0, (1 << length) - 1))
    value = int.from_bytes(frame, "big") ^ (pattern << (n - start - length))
    with pytest.raises(link.FrameError):
        link.decode_request(value.to_bytes(len(frame), "big"))


def test_malformed_requests_are_refused_with_their_nak():
    for frame, nak in [
        (link.encode_frame(link.OPCODES["STATUS"], 1, b"x"), "NAK_FRAME"),
        (link.encode_frame(0x42, 1), "NAK_FRAME"),
        (link.encode_request("READ_MEM", 1, addr=0, count=0), "NAK_FRAME"),
        (link.encode_request("READ_MEM", 1, addr=0, count=17), "NAK_FRAME"),       # board max_data 16
        (link.encode_request("WRITE_MEM", 1, addr=0, data=bytes(17)), "NAK_FRAME"),
        (link.encode_request("STATUS", 1)[:-1], "NAK_FRAME"),
        (link.encode_request("STATUS", 1)[:-1] + b"\0", "NAK_CRC"),
    ]:
        with pytest.raises(link.FrameError) as e:
            link.decode_request(frame, max_data=16)
        assert e.value.reply == nak


@pytest.mark.parametrize("op, kw, match", [
    ("NOP", {}, "unknown op"), ("START", {}, "fields"), ("READ_MEM", {"addr": -1, "count": 1}, "READ_MEM"),
    ("START", {"entry": 2**32}, "START"), ("STATUS", {"data": b"x"}, "data only"),
    ("WRITE_MEM", {"addr": 0, "data": bytes(link.MAX_PAYLOAD)}, "exceeds"),
])
def test_encode_refuses_bad_requests(op, kw, match):
    with pytest.raises(ValueError, match=match):
        link.encode_request(op, 0, **kw)


# -- the client against a fake board ------------------------------------------------------------

class FakeBoard:
    """The board's protocol in Python (as rtl.io.hostlink acts), with faults on its wire: for the
    n-th frame written, ``faults[n]`` may drop or corrupt the request or the reply. ``read``
    never sleeps: it counts the seconds a real port would have waited in ``waited``."""

    def __init__(self, *, max_data=16, mem_bits=10, faults=None, sha=SHA, version=link.VERSION, nak=False):
        self.mem, self.max_data, self.mem_bits = bytearray(1 << mem_bits), max_data, mem_bits
        self.faults, self.sha, self.version, self.nak = faults or {}, sha, version, nak
        self.out, self.writes, self.starts, self.waited = bytearray(), 0, [], 0.0
        self.running, self.last_start = False, None

    def write(self, data):
        fault = self.faults.get(self.writes)
        self.writes += 1
        if fault == "drop request":
            return
        if fault == "corrupt request":
            data = data[:6] + bytes((data[6] ^ 0x40,)) + data[7:]
        reply = self._answer(bytes(data))
        if fault == "drop reply":
            return
        if fault == "corrupt reply":
            reply = reply[:-1] + bytes((reply[-1] ^ 1,))
        if fault == "stale reply first":
            self.out += link.encode_reply("OK", (reply[2] - 1) & 0xFF, b"stale")
        self.out += reply

    def _answer(self, data):
        try:
            r = link.decode_request(data, self.max_data)
        except link.FrameError as e:
            self.last_start = None
            return link.encode_reply(e.reply, data[2] if len(data) > 2 else 0)
        if self.nak:
            return link.encode_reply("NAK_CRC", r.seq)
        started, self.last_start = self.last_start, None
        if r.op in ("WRITE_MEM", "READ_MEM"):
            addr, n = r.fields["addr"], len(r.data) or r.fields["count"]
            if addr + n > len(self.mem):
                return link.encode_reply("ERROR", r.seq, bytes((link.ERRORS["ADDRESS"],)))
            if r.op == "READ_MEM":
                return link.encode_reply("OK", r.seq, bytes(self.mem[addr:addr + n]))
            self.mem[addr:addr + n] = r.data
        elif r.op == "START" and started != r.seq:
            if self.running:
                return link.encode_reply("ERROR", r.seq, bytes((link.ERRORS["BUSY"],)))
            self.starts.append(r.fields["entry"])
            self.last_start = r.seq
        elif r.op == "START":
            self.last_start = r.seq
        elif r.op == "STATUS":
            return link.encode_reply("OK", r.seq, link.Status(self.running, not self.running, 0, 0, 1234).to_bytes())
        elif r.op == "VERSION":
            v = link.BoardVersion(self.version, self.max_data, self.mem_bits, self.sha)
            return link.encode_reply("OK", r.seq, v.to_bytes())
        return link.encode_reply("OK", r.seq)

    def read(self, n, timeout):
        got, self.out = bytes(self.out[:n]), self.out[n:]
        if len(got) < n:
            self.waited += timeout
        return got


def _client(board, **kw):
    return link.Client(board, name="/dev/ttyUSB9", **kw)


def test_client_writes_and_reads_in_frames_of_the_boards_size():
    board = FakeBoard()
    c = _client(board)
    data = bytes(range(7, 107))
    c.write_mem(5, data)
    assert board.mem[5:105] == data and board.mem[:5] == bytes(5) and board.mem[105] == 0
    assert board.writes == 1 + 7                          # VERSION, then 100 bytes in frames of 16
    assert c.read_mem(5, 100) == data
    assert c.status() == link.Status(False, True, 0, 0, 1234)
    c.start(64)
    assert board.starts == [64] and c.retries == 0


@pytest.mark.parametrize("fault", ["drop request", "corrupt request", "drop reply", "corrupt reply",
                                   "stale reply first"])
def test_client_retries_a_lost_or_corrupted_frame(fault):
    board = FakeBoard(faults={1: fault, 3: fault, 4: fault})
    c = _client(board, timeout=0.5)
    c.write_mem(0, bytes(range(40)))
    assert board.mem[:40] == bytes(range(40))
    assert c.read_mem(0, 40) == bytes(range(40))
    assert c.retries == (0 if fault == "stale reply first" else 3)


def test_a_start_whose_reply_is_lost_runs_once():
    board = FakeBoard(faults={1: "drop reply", 2: "drop reply"})
    c = _client(board)
    c.start(0x100)
    assert board.starts == [0x100] and board.writes == 4 and c.retries == 2
    c.start(0x100)                                       # a new START (new number) runs again
    assert board.starts == [0x100, 0x100]


def test_client_gives_up_on_a_silent_board_with_one_line():
    board = FakeBoard(faults=dict.fromkeys(range(10), "drop request"))
    with pytest.raises(UsageError) as e:
        _client(board, timeout=1.0).version()
    assert str(e.value) == "board on /dev/ttyUSB9 does not answer (3 tries, 1 s each)"
    assert board.writes == 3 and board.waited == pytest.approx(3.0)


def test_client_gives_up_on_a_board_that_keeps_refusing():
    with pytest.raises(UsageError, match=r"^board on /dev/ttyUSB9: VERSION failed after 2 tries \(last: "
                                         r"rejected \(bad CRC\)\)$"):
        _client(FakeBoard(nak=True), tries=2).version()


def test_board_errors_are_reported_at_once():
    board = FakeBoard()
    c = _client(board)
    board.mem_bits = 20                                   # a board that claims more than it has
    with pytest.raises(UsageError, match="WRITE_MEM at 0x800 failed: address range outside"):
        c.write_mem(0x800, b"x")
    board.running = True
    with pytest.raises(UsageError, match="START failed: the accelerator is running"):
        c.start()
    assert board.writes == 3 and c.retries == 0


def test_client_checks_ranges_versions_and_the_config():
    c = _client(FakeBoard())
    with pytest.raises(UsageError, match="outside its 1024-byte memory"):
        c.read_mem(1000, 25)
    c.require_config(SHA)
    with pytest.raises(UsageError, match=f"built for config sha256 {SHA.hex()[:16]}"):
        c.require_config(bytes(32))
    with pytest.raises(UsageError, match="speaks link version 9"):
        _client(FakeBoard(version=9)).version()
    with pytest.raises(ValueError, match="tries"):
        link.Client(FakeBoard(), tries=0)


def test_status_layout_is_the_documented_one():
    assert struct.calcsize("<BBIQ") == link.STATUS_BYTES == 14
    assert link.VERSION_BYTES == 37 and link.MAX_FRAME_BYTES == 5 + 4 + link.MAX_DATA + 2
