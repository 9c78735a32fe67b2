"""The byte pipes ``wino_gen run`` talks to a board through (:class:`wino_gen.link.Transport`):

- :class:`SerialTransport`: a real port through pyserial (``/dev/ttyUSB0``, ``COM3``, or a
  pyserial URL such as ``socket://host:port``), imported only when a port is opened.
- :class:`GoldenBoard` (``--port golden``): **the golden model, not the RTL**. It speaks the
  link protocol byte for byte as docs/link.md defines it and as :mod:`rtl.io.hostlink`'s state
  machine acts (the same length checks from the header alone, NAKs, the START resend guard, the
  sequence number a NAK carries), decoding with :mod:`wino_gen.link`'s own functions; it keeps
  the external memory as a byte array and on START runs the image found there with
  :mod:`wino_gen.compile.interp`. Its STATUS reports the interpreter's error status and the
  plan's cycle count (it has no clock of its own); VERSION the config sha it was made for.
  Fault injection for tests: dropped and flipped bytes on either wire, lost replies, a board
  that never answers, a run that never ends, a forced error status.

``--port sim`` is the RTL: :class:`sim.board.VerilatorBoard`, the whole board top
(:class:`rtl.board.BoardSystem`: host link, sequencer, DMA, compute core, SDRAM controller) on
Verilator, the controller's pins on a behavioural SDRAM chip that flags every timing violation
(or, asked for, the memory port on the ULX3S SDRAM's timing model, faster). The core imports
no simulator, so it is reached through a registry entry, :data:`SIM_BOARD` (a module and
function name, loaded with :mod:`importlib` only when ``--port sim`` is opened); no
``verilator`` on PATH is one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import random
import shutil
import struct
from dataclasses import dataclass

import numpy as np

from .. import isa, link
from ..compile import image as im
from ..compile import interp
from ..config import AcceleratorConfig
from ..errors import UsageError

#: ``--port`` values that are no serial port
GOLDEN, SIM = "golden", "sim"
#: the simulated board's opener, ``(module, function)``: ``function(model, img, cfg, clock_mhz=, show=,
#: [memory=])`` returns a transport with ``now``/``sleep`` in simulated seconds
#: (:func:`sim.board.open_board`; ``memory``: its choice of memory, the opener's default if not given)
SIM_BOARD = ("sim.board", "open_board")
#: the wire faults :class:`GoldenBoard` injects, ``(what, wire)``, in the order it cycles through
#: them: a byte dropped, a bit flipped, or the whole reply lost
WIRE_FAULTS = (("drop", "request"), ("flip", "request"), ("drop", "reply"), ("flip", "reply"), ("lose", "reply"))


# -- a serial port ------------------------------------------------------------------------------

class SerialTransport:
    """A serial port at ``baud`` 8N1 through pyserial (``serial_for_url``: a device path or a
    pyserial URL). ``read`` waits ``timeout`` seconds for the next bytes each time some arrive,
    as :class:`wino_gen.link.Transport` asks (pyserial's own timeout counts from the call)."""

    def __init__(self, port: str, baud: int):
        try:
            import serial
        except ImportError:
            raise UsageError(f"--port {port}: a serial port needs pyserial (pip install 'wino[board]')") from None
        self.name, self._error = port, serial.SerialException
        try:
            self._s = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=0,
                                            write_timeout=10)
            self._s.reset_input_buffer()
        except (serial.SerialException, ValueError, OSError) as e:
            raise UsageError(f"--port {port}: cannot open it ({_reason(e)})") from None

    def write(self, data: bytes) -> None:
        try:
            self._s.write(data)
            self._s.flush()
        except (self._error, OSError) as e:
            raise UsageError(f"--port {self.name}: write failed ({_reason(e)})") from None

    def read(self, n: int, timeout: float) -> bytes:
        out = bytearray()
        try:
            while len(out) < n:
                if self._s.timeout != timeout:      # setting it reconfigures the port
                    self._s.timeout = timeout
                got = self._s.read(n - len(out))
                if not got:
                    break
                out += got
        except (self._error, OSError) as e:
            raise UsageError(f"--port {self.name}: read failed ({_reason(e)})") from None
        return bytes(out)

    def close(self) -> None:
        self._s.close()


def _reason(e: Exception) -> str:
    return " ".join(str(getattr(e, "strerror", None) or e).split()) or type(e).__name__


# -- the golden board ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Faults:
    """What :class:`GoldenBoard` does wrong. ``every``: each ``every``-th write from the host
    gets the next of :data:`WIRE_FAULTS` (0: none), at a byte picked from ``seed``;
    ``silent``: it never answers; ``hang``: a START never finishes; ``error``: ``(code,
    instruction)``, the error status every run ends with."""

    every: int = 0
    seed: int = 0
    silent: bool = False
    hang: bool = False
    error: tuple[int, int] | None = None

    def __post_init__(self):
        if self.every < 0 or self.every == 1:
            raise ValueError(f"every {self.every}: must be 0 (no faults) or >= 2 (a resend must get through)")
        if self.error is not None and not (1 <= self.error[0] <= 0xFF and 0 <= self.error[1] < 1 << 32):
            raise ValueError(f"error {self.error}: a nonzero status byte and an instruction index")


_HEAD, _BODY, _DISCARD = "head", "body", "discard"


class GoldenBoard:
    """A board built for ``cfg`` (VERSION answers its sha256) with ``memory_bytes`` of external
    memory (a power of two, filled with bytes from ``faults.seed`` as SDRAM is at power-up),
    taking ``max_data`` bytes per frame; a run reports ``cycles`` (the plan's count for one run
    of the image). Never sleeps: ``waited`` counts the seconds a real port would have waited."""

    def __init__(self, cfg: AcceleratorConfig, cycles: int, *, memory_bytes: int, max_data: int = link.MAX_DATA,
                 faults: Faults = Faults()):
        if memory_bytes < 1 or memory_bytes & (memory_bytes - 1) or memory_bytes > 1 << link.ADDR_BITS:
            raise ValueError(f"memory_bytes {memory_bytes}: must be a power of two up to 2**{link.ADDR_BITS}")
        if not 1 <= max_data <= link.MAX_DATA:
            raise ValueError(f"max_data {max_data}: must be in 1..{link.MAX_DATA}")
        if cycles < 0:
            raise ValueError(f"cycles {cycles}: must be >= 0")
        self.cfg, self.cycles, self.max_data, self.faults = cfg, cycles, max_data, faults
        self.version = link.BoardVersion(link.VERSION, max_data, int(math.log2(memory_bytes)), im.config_sha256(cfg))
        self.mem = np.frombuffer(np.random.default_rng(faults.seed).bytes(memory_bytes), np.uint8).copy()
        self._rng = random.Random(faults.seed)
        self._state, self._frame, self._seq, self._quiet = None, bytearray(), 0, 0.0
        self._started: int | None = None          # seq of the START run last, until another good frame
        self._status = link.Status(False, False, 0, 0, 0)
        self._machine: interp.Machine | None = None
        self._loaded = b""                          # the image bytes the machine was made from
        self.out = bytearray()
        self.writes, self.starts, self.waited = 0, [], 0.0

    # -- the transport ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.faults.silent:
            return
        self.writes += 1
        fault = self._fault()
        data = self._spoil(bytes(data), fault, "request")
        self._quiet = 0.0
        sent = len(self.out)
        for b in data:
            self._byte(b)
        if len(self.out) > sent:
            self.out[sent:] = self._spoil(bytes(self.out[sent:]), fault, "reply")

    def read(self, n: int, timeout: float) -> bytes:
        if len(self.out) < n:                # the host waits: the line is quiet that long
            self._quiet += timeout
            if self._state is not None and self._quiet >= link.GAP_S:
                self._reply("NAK_FRAME", self._seq)         # a partial frame, dropped after GAP_S
                self._state = None
        got = bytes(self.out[:n])
        del self.out[:n]
        if len(got) < n:
            self.waited += timeout
        return got

    def close(self) -> None:
        """Nothing to release (the interface of :class:`SerialTransport`)."""

    # -- faults on the wire -------------------------------------------------------------------
    def _fault(self) -> tuple[str, str] | None:
        every = self.faults.every
        if not every or self.writes % every:
            return None
        return WIRE_FAULTS[(self.writes // every - 1) % len(WIRE_FAULTS)]

    def _spoil(self, data: bytes, fault: tuple[str, str] | None, wire: str) -> bytes:
        if fault is None or fault[1] != wire or not data:
            return data
        what, i = fault[0], self._rng.randrange(len(data))
        if what == "lose":
            return b""
        if what == "drop":
            return data[:i] + data[i + 1:]
        return data[:i] + bytes((data[i] ^ 1 << self._rng.randrange(8),)) + data[i + 1:]

    # -- the receiver (rtl.io.hostlink's states) ----------------------------------------------
    def _byte(self, b: int) -> None:
        if self._state is None:                      # idle: drop everything up to a SYNC
            if b == link.SYNC:
                self._state, self._frame = _HEAD, bytearray((b,))
            return
        if self._state == _DISCARD:                  # a bad header: swallow until the line is quiet
            return
        self._frame.append(b)
        if len(self._frame) == 3:
            self._seq = b                            # the seq register a NAK answers with
        if self._state == _HEAD and len(self._frame) == link.HEADER_BYTES:
            code, (length,) = self._frame[1], struct.unpack_from("<H", self._frame, 3)
            op = next((k for k, v in link.OPCODES.items() if v == code), None)
            self._state = _BODY if op and link.request_length_ok(op, length, self.max_data) else _DISCARD
        if self._state == _BODY and len(self._frame) == link.HEADER_BYTES + self._length() + link.CRC_BYTES:
            self._state = None
            self._execute(bytes(self._frame))

    def _length(self) -> int:
        return struct.unpack_from("<H", self._frame, 3)[0]

    def _reply(self, code: str, seq: int, payload: bytes = b"") -> None:
        self.out += link.encode_reply(code, seq, payload)

    def _execute(self, frame: bytes) -> None:
        """A whole frame: NAK_CRC for a bad CRC; past the CRC (EXEC) every frame ends the START
        guard, then READ_MEM's count, the address range, and the request itself."""
        if link.crc16(frame[1:]):
            return self._reply("NAK_CRC", self._seq)
        started, self._started = self._started, None
        try:
            r = link.decode_request(frame, self.max_data)
        except link.FrameError as e:
            return self._reply(e.reply, self._seq)
        if r.op in ("WRITE_MEM", "READ_MEM"):
            addr, n = r.fields["addr"], len(r.data) or r.fields["count"]
            if addr + n > len(self.mem):
                return self._reply("ERROR", r.seq, bytes((link.ERRORS["ADDRESS"],)))
            if r.op == "READ_MEM":
                return self._reply("OK", r.seq, self.mem[addr:addr + n].tobytes())
            self.mem[addr:addr + n] = np.frombuffer(r.data, np.uint8)
        elif r.op == "START":
            if started != r.seq and self._status.running:
                return self._reply("ERROR", r.seq, bytes((link.ERRORS["BUSY"],)))
            if started != r.seq:
                self._start(r.fields["entry"])
            self._started = r.seq
        elif r.op == "STATUS":
            s = self._status
            if s.running:                            # a hung run keeps counting
                self._status = link.Status(True, False, 0, 0, s.cycles + self.cycles + 1)
            return self._reply("OK", r.seq, s.to_bytes())
        elif r.op == "VERSION":
            return self._reply("OK", r.seq, self.version.to_bytes())
        self._reply("OK", r.seq)

    # -- the accelerator ----------------------------------------------------------------------
    def _start(self, entry: int) -> None:
        self.starts.append(entry)
        if self.faults.hang:
            self._status = link.Status(True, False, 0, 0, 0)
            return
        try:
            self._run(entry)
            self._status = link.Status(False, True, 0, 0, self.cycles)
        except interp.Fault as f:
            self._status = link.Status(False, True, f.status, f.index, 0)
        if self.faults.error:
            self._status = link.Status(False, True, *self.faults.error, self.cycles)

    def _run(self, entry: int) -> None:
        """Run the image in memory from the instruction at byte address ``entry``: the first
        instruction (a cold run, prologue included) or ``main_entry`` (a warm one); the golden
        machine can start nowhere else, and says so with "bad instruction"."""
        m = self._load()
        img = m.img
        index, rest = divmod(entry - img.program_offset, isa.WORD_BYTES)
        if rest or index not in (0, img.main_entry):
            raise interp.Fault(1, max(index, 0), f"START at byte {entry} is neither the program's first instruction "
                                                 f"nor main_entry")
        m.started = index != 0
        m.run()

    def _load(self) -> interp.Machine:
        """The machine for the image in memory, kept while those bytes stay (its scratchpads
        persist between runs, as the hardware's do)."""
        try:
            data = self.mem[:_file_size(self.mem[:im.HEADER_BYTES].tobytes(), len(self.mem))].tobytes()
            if self._machine is None or data != self._loaded:
                img = im.Image.from_bytes(data, "the image in memory")
                if img.memory_size > len(self.mem):
                    raise UsageError(f"the image needs {img.memory_size} bytes, the board has {len(self.mem)}")
                self._machine = interp.Machine(img, self.cfg)
                self._machine.ext = self.mem          # it runs on the board's memory
                self._loaded = data
        except UsageError as e:
            self._machine = None
            raise interp.Fault(1, 0, str(e)) from None
        return self._machine


def _file_size(header: bytes, limit: int) -> int:
    """Where the image file in memory ends (its header's ``act_offset``), read before the whole
    file can be parsed; UsageError when the memory holds no image header."""
    fields = dict(zip((k for k, _ in im.HEADER_FIELDS), struct.unpack_from(im.HEADER_FMT, header), strict=True))
    if fields["magic"] != im.MAGIC or not im.HEADER_BYTES <= fields["act_offset"] <= limit:
        raise UsageError("no memory image at address 0")
    return fields["act_offset"]


# -- choosing the transport ---------------------------------------------------------------------

def require_sim() -> None:
    """One line (UsageError) when ``--port sim`` cannot run here: no Verilator, or no ``sim``
    package beside this one (an installed wheel ships only ``wino_gen``)."""
    if shutil.which("verilator") is None:
        raise UsageError("--port sim: verilator is not on PATH; install Verilator 5 (apt-get install verilator) "
                         "or use --port golden (the golden model, not the RTL)")
    if importlib.util.find_spec(SIM_BOARD[0].split(".")[0]) is None:
        raise UsageError("--port sim: the simulator package 'sim' is not importable; run from a clone of wino")


def open_sim(model, img: im.Image, cfg: AcceleratorConfig, *, clock_mhz: float, show: bool,
             memory: str | None = None):
    """The simulated board of ``--port sim`` (:data:`SIM_BOARD`), built for ``img``, on
    ``memory`` (:func:`sim.board.open_board`'s: ``sdram``, the default, or a port timing)."""
    require_sim()
    module, name = SIM_BOARD
    extra = {} if memory is None else {"memory": memory}
    return getattr(importlib.import_module(module), name)(model, img, cfg, clock_mhz=clock_mhz, show=show, **extra)


def open_transport(port: str, baud: int, golden, sim=None):
    """The transport ``--port`` names: ``golden`` calls ``golden()`` for a :class:`GoldenBoard`,
    ``sim`` calls ``sim()`` for the simulated board (:func:`open_sim`), anything else is a
    serial port."""
    if port == GOLDEN:
        return golden()
    if port == SIM:
        return sim()
    return SerialTransport(port, baud)
