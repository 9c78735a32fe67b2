"""The serial host link (pure Python, spec in docs/link.md): the framed protocol between a
host PC and the board's :class:`rtl.io.hostlink.HostLink`, defined once, as data, so that the
host client here and the gateware agree byte for byte (as :mod:`wino_gen.isa` does for the
instructions).

Every frame, request or reply, is ``SYNC, code, seq, length (u16), payload, CRC`` with all
integers little-endian except the CRC, sent high byte first so that the CRC over ``code ..
CRC`` is zero. The CRC is CRC-16/CCITT-FALSE (:data:`CRC_POLY`, :data:`CRC_INIT`, no
reflection, no final XOR): two bytes, a 16-bit register and an 8-stage XOR network in each
direction, and for frames up to 4093 bytes (ours are at most :data:`MAX_FRAME_BYTES`) it
detects every error of up to three bits, every odd number of bit errors and every burst of up
to 16 bits. A UART's failures are lost or flipped bytes, well inside that; CRC-32 would cost
twice the register and XOR network for a guarantee these frames do not need.

A request the board takes (CRC and layout good) is answered ``OK`` or ``ERROR``; one it does
not is answered ``NAK_CRC`` or ``NAK_FRAME`` and has no effect. The :class:`Client` resends a
request whose reply is a NAK, corrupted or missing, with the same sequence number, a bounded
number of times. Every request but START is idempotent; the board runs a START whose sequence
number equals that of the START it ran last, with no request between, only once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from .errors import UsageError

VERSION = 1
SYNC = 0xA5
HEADER_BYTES = 5                 # SYNC, code, seq, length (u16)
CRC_BYTES = 2
CRC_BITS = 16
CRC_POLY = 0x1021                # x^16 + x^12 + x^5 + 1
CRC_INIT = 0xFFFF
ADDR_BITS = 32                   # byte addresses in WRITE_MEM / READ_MEM / START
#: the most memory bytes one WRITE_MEM carries or one READ_MEM returns; a board may take fewer
#: (its VERSION reply says how many)
MAX_DATA = 1024
MAX_PAYLOAD = ADDR_BITS // 8 + MAX_DATA
MAX_FRAME_BYTES = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES

#: request codes
OPCODES = {"WRITE_MEM": 0x01, "READ_MEM": 0x02, "START": 0x03, "STATUS": 0x04, "VERSION": 0x05}
#: reply codes
REPLIES = {"OK": 0x80, "NAK_CRC": 0x81, "NAK_FRAME": 0x82, "ERROR": 0x83}
#: the cause an ERROR reply carries (its one payload byte)
ERRORS = {"ADDRESS": 1, "BUSY": 2}
ERROR_TEXT = {"ADDRESS": "address range outside the board's memory", "BUSY": "the accelerator is running"}

#: fixed payload fields of each request, ``(name, struct code)`` in order; WRITE_MEM's data
#: bytes follow its address
REQUEST_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "WRITE_MEM": (("addr", "I"),),
    "READ_MEM": (("addr", "I"), ("count", "H")),
    "START": (("entry", "I"),),
    "STATUS": (),
    "VERSION": (),
}
#: the STATUS reply's payload; ``flags`` holds :data:`STATUS_FLAGS` from bit 0 on, ``error``
#: the sequencer's error code (0: none), ``error_instr`` the index of the instruction that
#: raised it, ``cycles`` the cycles counted since the last START
STATUS_FIELDS = (("flags", "B"), ("error", "B"), ("error_instr", "I"), ("cycles", "Q"))
STATUS_FLAGS = ("running", "done")
#: the VERSION reply's payload: the link version, the board's largest data size per frame, its
#: memory size (``2**addr_bits`` bytes) and the sha256 of the config its bitstream was built for
VERSION_FIELDS = (("version", "H"), ("max_data", "H"), ("addr_bits", "B"), ("config_sha256", "32s"))

#: the board drops a partial frame after this much silence (and answers NAK_FRAME)
GAP_S = 0.05
#: the client's defaults: seconds it waits for each part of a reply, and tries per request
TIMEOUT_S = 1.0
TRIES = 3


def _fmt(fields) -> str:
    return "<" + "".join(code for _, code in fields)


STATUS_BYTES = struct.calcsize(_fmt(STATUS_FIELDS))
VERSION_BYTES = struct.calcsize(_fmt(VERSION_FIELDS))
_CODE_NAMES = {v: k for d in (OPCODES, REPLIES) for k, v in d.items()}


def field_bytes(op: str) -> int:
    """Bytes of a request's fixed payload fields."""
    return struct.calcsize(_fmt(REQUEST_FIELDS[op]))


def gap_cycles(clock_hz: float) -> int:
    """:data:`GAP_S` in cycles of a ``clock_hz`` clock (the board's partial-frame timeout)."""
    if not clock_hz > 0:
        raise ValueError(f"clock_hz {clock_hz}: must be positive")
    return max(1, round(GAP_S * clock_hz))


# -- CRC ---------------------------------------------------------------------------------------

def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` continuing from ``crc`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


# -- frames ------------------------------------------------------------------------------------

class FrameError(ValueError):
    """A frame the receiver rejects; ``reply`` is the NAK the board answers it with."""

    def __init__(self, message: str, reply: str):
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True)
class Frame:
    code: int
    seq: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        return _CODE_NAMES.get(self.code, f"0x{self.code:02X}")


def encode_frame(code: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame."""
    if not 0 <= code <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError(f"frame: code {code} and seq {seq} must be bytes")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes((code, seq)) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes((SYNC,)) + body + crc16(body).to_bytes(2, "big")


def decode_frame(data: bytes) -> Frame:
    """The frame that ``data`` holds, exactly; FrameError for a wrong sync byte, a length that
    disagrees with the bytes, or a bad CRC."""
    if len(data) < HEADER_BYTES + CRC_BYTES or data[0] != SYNC:
        raise FrameError("frame: no sync byte or shorter than a header", "NAK_FRAME")
    (length,) = struct.unpack_from("<H", data, 3)
    if length > MAX_PAYLOAD or len(data) != HEADER_BYTES + length + CRC_BYTES:
        raise FrameError(f"frame: length field {length} disagrees with {len(data)} bytes", "NAK_FRAME")
    if crc16(data[1:]):
        raise FrameError("frame: bad CRC", "NAK_CRC")
    return Frame(data[1], data[2], bytes(data[HEADER_BYTES:-CRC_BYTES]))


# -- requests ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    op: str
    seq: int
    fields: dict
    data: bytes = b""


def encode_request(op: str, seq: int, *, data: bytes = b"", **fields) -> bytes:
    """The frame of request ``op``: its :data:`REQUEST_FIELDS` as keywords, WRITE_MEM's ``data``."""
    if op not in OPCODES:
        raise ValueError(f"request: unknown op {op!r} (one of {', '.join(OPCODES)})")
    names = [n for n, _ in REQUEST_FIELDS[op]]
    if sorted(fields) != sorted(names):
        raise ValueError(f"request {op}: fields {sorted(fields)}, expected {names}")
    if bool(data) != (op == "WRITE_MEM"):
        raise ValueError(f"request {op}: data only (and always) with WRITE_MEM")
    try:
        head = struct.pack(_fmt(REQUEST_FIELDS[op]), *(fields[n] for n in names))
    except struct.error as e:
        raise ValueError(f"request {op}: {e}") from None
    return encode_frame(OPCODES[op], seq, head + bytes(data))


def request_length_ok(op: str, length: int, max_data: int = MAX_DATA) -> bool:
    """Whether a request's length field fits its op: what the board checks from the header
    alone, before the payload arrives."""
    n = field_bytes(op)
    return n < length <= n + max_data if op == "WRITE_MEM" else length == n


def decode_request(data: bytes, max_data: int = MAX_DATA) -> Request:
    """The request in ``data``, checked as the board checks it (FrameError naming its NAK):
    frame, op, length, READ_MEM's count in ``1..max_data``."""
    f = decode_frame(data)
    op = _CODE_NAMES.get(f.code)
    if op not in OPCODES or not request_length_ok(op, len(f.payload), max_data):
        raise FrameError(f"request: code 0x{f.code:02X} with {len(f.payload)} payload bytes", "NAK_FRAME")
    n = field_bytes(op)
    fields = dict(zip((name for name, _ in REQUEST_FIELDS[op]),
                      struct.unpack(_fmt(REQUEST_FIELDS[op]), f.payload[:n]), strict=True))
    if op == "READ_MEM" and not 1 <= fields["count"] <= max_data:
        raise FrameError(f"request: READ_MEM of {fields['count']} bytes (1..{max_data})", "NAK_FRAME")
    return Request(op, f.seq, fields, f.payload[n:])


# -- replies -----------------------------------------------------------------------------------

def encode_reply(code: str, seq: int, payload: bytes = b"") -> bytes:
    return encode_frame(REPLIES[code], seq, payload)


def decode_reply(data: bytes) -> Frame:
    """The reply in ``data`` (FrameError if corrupted or not a reply code)."""
    f = decode_frame(data)
    if f.code not in REPLIES.values():
        raise FrameError(f"reply: code 0x{f.code:02X} is no reply code", "NAK_FRAME")
    return f


@dataclass(frozen=True)
class Status:
    running: bool
    done: bool
    error: int
    error_instr: int
    cycles: int

    def to_bytes(self) -> bytes:
        flags = sum(1 << i for i, n in enumerate(STATUS_FLAGS) if getattr(self, n))
        return struct.pack(_fmt(STATUS_FIELDS), flags, self.error, self.error_instr, self.cycles)

    @classmethod
    def from_bytes(cls, data: bytes) -> Status:
        flags, error, instr, cycles = struct.unpack(_fmt(STATUS_FIELDS), data)
        bits = {n: bool(flags >> i & 1) for i, n in enumerate(STATUS_FLAGS)}
        return cls(error=error, error_instr=instr, cycles=cycles, **bits)


@dataclass(frozen=True)
class BoardVersion:
    version: int
    max_data: int
    addr_bits: int
    config_sha256: bytes

    def to_bytes(self) -> bytes:
        return struct.pack(_fmt(VERSION_FIELDS), self.version, self.max_data, self.addr_bits, self.config_sha256)

    @classmethod
    def from_bytes(cls, data: bytes) -> BoardVersion:
        return cls(*struct.unpack(_fmt(VERSION_FIELDS), data))


# -- the host client ---------------------------------------------------------------------------

class Transport(Protocol):
    """A byte pipe to the board: ``read`` returns ``n`` bytes, or fewer once ``timeout``
    seconds pass without them (a pyserial port, a pseudo-terminal, a simulation)."""

    def write(self, data: bytes) -> None: ...

    def read(self, n: int, timeout: float) -> bytes: ...


class _Retry(Exception):
    """A try that failed in a way a resend may cure; ``args[0]`` says how."""


#: stale replies (a sequence number other than the request's) skipped per try
_MAX_STALE = 4


class Client:
    """Talks to the board over ``transport``: ``name`` (the port) names it in messages; each
    request is tried up to ``tries`` times, waiting ``timeout`` seconds for each part of a
    reply. Every failure is a one-line :class:`UsageError`. The first request of a session is
    VERSION (it gives the board's frame size and memory size, and ends any START run)."""

    def __init__(self, transport: Transport, *, name: str = "board", timeout: float = TIMEOUT_S,
                 tries: int = TRIES):
        if not timeout > 0:
            raise ValueError(f"timeout {timeout}: must be positive seconds")
        if tries < 1:
            raise ValueError(f"tries {tries}: must be >= 1")
        self.t, self.name, self.timeout, self.tries = transport, name, timeout, tries
        self._seq = 0
        self._board: BoardVersion | None = None
        self.retries = 0          # resends so far, for reports

    # -- one request -----------------------------------------------------------------------

    def _read_frame(self, seq: int) -> Frame:
        """The reply to ``seq`` (or a NAK of any number), skipping bytes before a sync byte and
        stale replies; _Retry if none comes in time or it is corrupted."""
        for _ in range(_MAX_STALE + 1):
            skipped = 0
            while (b := self.t.read(1, self.timeout)) != bytes((SYNC,)):
                skipped += 1
                if not b or skipped > MAX_FRAME_BYTES:
                    raise _Retry("no reply")
            head = self.t.read(HEADER_BYTES - 1, self.timeout)
            if len(head) < HEADER_BYTES - 1:
                raise _Retry("no reply")
            length = int.from_bytes(head[2:4], "little")
            if length > MAX_PAYLOAD:
                raise _Retry("corrupted reply")
            rest = self.t.read(length + CRC_BYTES, self.timeout)
            if len(rest) < length + CRC_BYTES:
                raise _Retry("no reply")
            try:
                f = decode_reply(bytes((SYNC,)) + head + rest)
            except FrameError:
                raise _Retry("corrupted reply") from None
            if f.name.startswith("NAK"):
                raise _Retry("rejected (bad CRC)" if f.name == "NAK_CRC" else "rejected (bad frame)")
            if f.seq == seq:
                return f
        raise _Retry("stale replies")

    def _drain(self) -> None:
        """Drop what is left of a corrupted reply, so that the next try reads its own."""
        self.t.read(MAX_FRAME_BYTES, min(GAP_S, self.timeout))

    def _request(self, op: str, what: str, reply_bytes: int | None, data: bytes = b"", **fields) -> bytes:
        """Send one request until it is answered OK; the reply's payload (of ``reply_bytes``)."""
        self._seq = (self._seq + 1) & 0xFF
        frame = encode_request(op, self._seq, data=data, **fields)
        causes = []
        for attempt in range(self.tries):
            self.retries += attempt > 0
            self.t.write(frame)
            try:
                f = self._read_frame(self._seq)
            except _Retry as e:
                causes.append(e.args[0])
                if e.args[0] == "corrupted reply":
                    self._drain()
                continue
            if f.name == "ERROR":
                cause = {v: k for k, v in ERRORS.items()}.get(f.payload[0] if f.payload else None)
                raise UsageError(f"board on {self.name}: {what} failed: "
                                 f"{ERROR_TEXT.get(cause, 'unknown error ' + f.payload.hex())}")
            if reply_bytes is None or len(f.payload) == reply_bytes:
                return f.payload
            causes.append("corrupted reply")
        if set(causes) == {"no reply"}:
            raise UsageError(f"board on {self.name} does not answer ({self.tries} tries, {self.timeout:g} s each)")
        raise UsageError(f"board on {self.name}: {what} failed after {self.tries} tries (last: {causes[-1]})")

    # -- the operations --------------------------------------------------------------------

    def version(self) -> BoardVersion:
        """The board's link version, frame size, memory size and config sha256 (refused if its
        link version is not this host's)."""
        v = BoardVersion.from_bytes(self._request("VERSION", "VERSION", VERSION_BYTES))
        if v.version != VERSION:
            raise UsageError(f"board on {self.name} speaks link version {v.version}, this host {VERSION} "
                             "(rebuild the bitstream or update wino)")
        if not 1 <= v.max_data <= MAX_DATA or not 1 <= v.addr_bits <= ADDR_BITS:
            raise UsageError(f"board on {self.name}: VERSION reply out of range (max_data {v.max_data}, "
                             f"addr_bits {v.addr_bits})")
        self._board = v
        return v

    @property
    def board(self) -> BoardVersion:
        """The board's VERSION reply, asked once per session (before any other request)."""
        return self._board or self.version()

    def require_config(self, sha256: bytes) -> None:
        """Refuse (UsageError) when the bitstream was built for another config than ``sha256``."""
        have = self.board.config_sha256
        if have != sha256:
            raise UsageError(f"board on {self.name}: bitstream built for config sha256 {have.hex()[:16]}..., "
                             f"the image for {sha256.hex()[:16]}... (rebuild the bitstream or recompile)")

    def _check_range(self, addr: int, n: int, what: str) -> None:
        end = 1 << self.board.addr_bits
        if addr < 0 or n < 0 or addr + n > end:
            raise UsageError(f"board on {self.name}: {what} of {n} bytes at 0x{addr:X} is outside its "
                             f"{end}-byte memory")

    def write_mem(self, addr: int, data: bytes) -> None:
        """Write ``data`` at byte address ``addr``, in frames of the board's ``max_data`` bytes."""
        self._check_range(addr, len(data), "write")
        step = self.board.max_data
        for off in range(0, len(data), step):
            a = addr + off
            self._request("WRITE_MEM", f"WRITE_MEM at 0x{a:X}", 0, data=bytes(data[off:off + step]), addr=a)

    def read_mem(self, addr: int, n: int) -> bytes:
        """``n`` bytes from byte address ``addr``."""
        self._check_range(addr, n, "read")
        step, out = self.board.max_data, bytearray()
        for off in range(0, n, step):
            a, k = addr + off, min(step, n - off)
            out += self._request("READ_MEM", f"READ_MEM at 0x{a:X}", k, addr=a, count=k)
        return bytes(out)

    def start(self, entry: int = 0) -> None:
        """Start the accelerator at ``entry``: the byte address of the first instruction to run
        (docs/link.md, START)."""
        self._check_range(entry, 0, "start")
        self._request("START", "START", 0, entry=entry)

    def status(self) -> Status:
        """The accelerator's state: running, done, error code and instruction, cycles."""
        if self._board is None:
            self.version()
        return Status.from_bytes(self._request("STATUS", "STATUS", STATUS_BYTES))
