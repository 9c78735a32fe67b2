"""The simulated board: :class:`rtl.board.BoardSystem` (host link, launcher, the whole system)
on a memory, spoken to by the unchanged host code as a :class:`wino_gen.link.Transport`. Its
memory is either of the board's: ``memory="sdram"``, the SDRAM controller
(:class:`rtl.mem.sdram.SDRAMController`) on a behavioural SDRAM chip that stores the data and
flags every protocol or timing violation (:class:`sim.sdram_chip.SDRAMChip` in pysim, its port
``sim/cpp/sdram_chip.h`` on Verilator), its words noise at power-up; or ``memory="port"``, the
memory port served by a timing model of :mod:`sim.memory` over a memory filled with noise.
A chip that sees a violation makes the board fail loudly: the next ``read`` or ``sleep`` raises
one line naming the first (:meth:`ChipReport.fail`).

:class:`PysimBoard` runs it in Amaranth's simulator, cycle by cycle, with random stalls on the
memory port and on the link's byte streams. Its clock is simulated time: the board runs only
while the host waits (``read`` until the bytes are there or the timeout passes, in steps of
:data:`STEP` cycles), and its :meth:`~PysimBoard.now`/:meth:`~PysimBoard.sleep` are what
:class:`wino_gen.run.runtime.Runtime` polls with, so that a run costs the host no real waiting.
``host="bytes"`` feeds the link's byte streams directly (fast); ``host="uart"`` puts a
host-side UART pair on the board's ``rx``/``tx`` pins, so that every byte crosses the wire bit
by bit.

:class:`VerilatorBoard` (``wino_gen run --port sim``) is the same board (``host="bytes"``)
exported to Verilog and built once per design with ``sim/cpp_board/board_harness.cpp``, which
drives the chip on the SDRAM pins (or serves the memory port with ``sim/cpp/memory.h``'s model
of :mod:`sim.memory`'s timings) and moves the link's bytes over the harness's stdin/stdout in
lockstep, cycle for cycle as :class:`PysimBoard` does: the same design, host and stall pattern
give the same cycles on both (tests/test_sim_board.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl.board import BoardSystem
from rtl.core import DEFAULT_MAX_POOL
from rtl.io.uart import UARTRx, UARTTx
from rtl.mem.port import cmd_layout, w_layout
from rtl.mem.sdram import A10, MODE, Command, Timing
from rtl.ram import VERILOG as RAM_VERILOG
from wino_gen import link
from wino_gen.compile import image as im
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError

from . import system
from . import verilator_system as vs
from .memory import MemoryModel, timing
from .sdram_chip import FLOAT, SDRAMChip
from .streams import Lane, Stalls, drainer, feeder, lane_id
from .verilator import build_cached, require_verilator

#: the pysim port board's clock, 100 kHz: the runtime's first STATUS poll pause (1 ms) is 100
#: cycles, about what a small run takes, and the Client's reply timeout (1 s) 100000, a whole 1 KB
#: frame through the UART at 4 cycles a bit (an SDRAM board runs at its controller's clock)
CYCLE_S = 1e-5
#: the link's partial-frame timeout in the simulation, in cycles (the hardware's is 50 ms)
GAP_CYCLES = 2000
#: cycles the board runs per step while the host waits for bytes
STEP = 64
#: the Verilator board's harness (sim/cpp_board), built with sim/cpp's memory models
CPP_BOARD = Path(__file__).resolve().parent / "cpp_board"
HARNESS = "board_harness.cpp"
#: the harness's other sources in sim/cpp
CPP_SOURCES = (*(n for n in vs.SOURCES if n.endswith(".h")), "sdram_chip.h")
#: the most cycles one host sleep runs the Verilator board (see VerilatorBoard.sleep)
SLEEP_CYCLES = 20_000
#: the board's memories: the SDRAM controller on the behavioural chip, or the memory port
SDRAM, PORT = "sdram", "port"
#: the stall lanes of the link's byte streams (both boards)
IN_LANE, OUT_LANE = "board.i", "board.o"
#: the chip's violation messages the Verilator board keeps (it counts them all)
KEEP = 8


def memory_bytes(img: im.Image, word_bytes: int) -> int:
    """The board's memory for ``img``: a power of two (VERSION's ``addr_bits``) holding it."""
    return max(2 * word_bytes, 1 << (img.memory_size - 1).bit_length())


def build(img: im.Image, cfg: AcceleratorConfig, *, word_bytes: int = 1, host: str = "bytes", divisor: int = 4,
          max_data: int = 256, max_pool: int = DEFAULT_MAX_POOL, mem_bytes: int | None = None, memory: str = PORT,
          clock_mhz: float | None = None) -> BoardSystem:
    """The board for ``img``: the system sized for it (:func:`sim.system.build`) behind the
    link, on a memory of ``mem_bytes`` (default :func:`memory_bytes`); ``memory``, ``clock_mhz``:
    :class:`BoardSystem`'s (``"sdram"``: the controller clocked at ``clock_mhz``)."""
    mem_bytes = mem_bytes or memory_bytes(img, word_bytes)
    sysm = system.build(img, cfg, mem_bytes, word_bytes, max_pool)
    return BoardSystem(sysm, config_sha256=im.config_sha256(cfg), gap_cycles=GAP_CYCLES, host=host, divisor=divisor,
                       max_data=max_data, memory=memory, clock_mhz=clock_mhz)


def chip_for(board: BoardSystem, chip_timing: Timing | None = None) -> SDRAMChip:
    """The behavioural chip on ``board``'s SDRAM pins: its controller's part, clock and power-up
    wait; ``chip_timing`` (default: the part's at that clock, the controller's) is the timing
    the chip checks, another one to see the checks fire."""
    ctl = board.sdram
    chip = SDRAMChip(board.pins, ctl.part, clock_mhz=ctl.clock_mhz, read_delay=ctl.read_delay)
    if chip.power_up != ctl.power_up:
        raise AssertionError(f"the chip waits {chip.power_up} cycles at power-up, the controller {ctl.power_up}")
    if chip_timing is not None:
        chip.t = chip_timing
    return chip


def chip_params(chip: SDRAMChip) -> list[str]:
    """The params lines of ``chip`` for ``sim/cpp/sdram_chip.h`` (its ``ChipParams``): the
    part, the timing, the command codes and the mode register's layout, from the objects the
    Python chip checks with."""
    part, g = chip.part, chip.g
    pairs = dict(banks=part.banks, row_bits=g.row_bits, col_bits=g.col_bits, width_bits=part.width_bits,
                 cas=part.cas, power_up=chip.power_up, read_delay=chip.read_delay,
                 refresh_slack=chip.refresh_slack, float=FLOAT, a10=A10)

    def line(key, d):
        return " ".join([key, *(f"{k}={v}" for k, v in d.items())])
    return [line("chip_part", pairs), line("chip_timing", dataclasses.asdict(chip.t)),
            line("chip_commands", {c.name: c.value for c in Command}),
            " ".join(["chip_mode", str(MODE.size), *(f"{n}={f.offset}:{f.width}" for n, f in MODE)])]


@dataclass(frozen=True)
class ChipReport:
    """What a board's behavioural SDRAM saw: ``count`` violations, the first of them (all of
    them on pysim, :data:`KEEP` on Verilator) and the commands by name."""
    count: int
    first: tuple[str, ...]
    commands: dict[str, int]

    def fail(self, name: str) -> None:
        """UsageError, one line naming the first violation, if there is any."""
        if self.count:
            raise UsageError(f"--port {name}: the simulated SDRAM saw {self.count} protocol or timing "
                             f"violation{'s' * (self.count != 1)}; the first: {self.first[0]}")


class _Clock:
    """The runtime's clock on a simulated board: ``cycle`` cycles run at ``hz``; one sleep runs
    at most ``sleep_cycles`` (None: no cap). Both boards count with these, so that the same host
    calls run them the same cycles."""
    cycle: int
    hz: float
    sleep_cycles: int | None

    def _cycles(self, seconds: float) -> int:
        return max(1, round(seconds * self.hz))

    def _sleep_for(self, seconds: float) -> int:
        n = self._cycles(seconds)
        return n if self.sleep_cycles is None else min(self.sleep_cycles, n)

    def now(self) -> float:
        """Simulated seconds since the board was made."""
        return self.cycle / self.hz


class PysimBoard(_Clock):
    """``board`` (a :class:`BoardSystem`) in pysim, ``stall`` on every stream: on
    ``memory="port"`` a memory of ``memory`` timing (:func:`sim.memory.timing`) at
    :data:`CYCLE_S`; on ``memory="sdram"`` the chip (:func:`chip_for`, its words noise from
    ``seed``) at the controller's clock. ``sleep_cycles``: see :class:`_Clock`."""

    name = "pysim"

    def __init__(self, board: BoardSystem, *, memory: str = "ideal", stall: float = 0.0, seed: int = 0,
                 sleep_cycles: int | None = None, chip_timing: Timing | None = None):
        if sleep_cycles is not None and sleep_cycles < 1:
            raise ValueError(f"sleep_cycles {sleep_cycles}: must be positive")
        self.board, self.cycle, self.sleep_cycles = board, 0, sleep_cycles
        stalls = Stalls(stall, seed)
        self.inq, self.outq = deque(), deque()
        top, i, o = self._top(board)
        self.sim = Simulator(top)
        self.mem = self.chip = None
        if board.memory == PORT:
            self.hz = 1 / CYCLE_S
            W = board.port_sig.word_bytes
            self.mem = np.frombuffer(np.random.default_rng(seed).bytes(W << board.port_sig.addr_width),
                                     np.uint8).copy()
            self.sim.add_testbench(MemoryModel(self.mem, timing(memory), word_bytes=W, stalls=stalls).serve(board.mem),
                                   background=True)
        else:
            self.hz = board.sdram.clock_mhz * 1e6
            self.chip = chip_for(board, chip_timing)
            d = self.chip.data
            d[...] = np.frombuffer(np.random.default_rng(seed).bytes(d.nbytes), d.dtype).reshape(d.shape)
            self.sim.add_testbench(self.chip.run, background=True)
        self.sim.add_clock(1 / self.hz)
        self.sim.add_testbench(feeder(i, self.inq, Lane(stalls, IN_LANE)), background=True)
        self.sim.add_testbench(drainer(o, self.outq, Lane(stalls, OUT_LANE)), background=True)

    @staticmethod
    def _top(board):
        """The module to simulate and the byte streams the host drives: the link's own, or
        those of a host-side UART pair wired to the board's pins."""
        if board.host == "bytes":
            return board, board.i, board.o
        m = Module()
        d = board.uart[0].divisor
        m.submodules.board = board
        m.submodules.host_tx = tx = UARTTx(clock_hz=d, baud=1)
        m.submodules.host_rx = rx = UARTRx(clock_hz=d, baud=1)
        m.d.comb += [board.rx.eq(tx.tx), rx.rx.eq(board.tx)]
        return m, tx.i, rx.o

    def _run(self, cycles: int) -> None:
        self.cycle += cycles
        self.sim.run_until(self.cycle / self.hz)

    def chip_report(self) -> ChipReport:
        """The chip's violations and commands so far (none on a port board)."""
        c = self.chip
        return ChipReport(0, (), {}) if c is None else ChipReport(len(c.violations), tuple(c.violations),
                                                                   dict(c.commands))

    # -- the transport, and the runtime's clock ------------------------------------------------
    def write(self, data: bytes) -> None:
        self.inq.extend(data)

    def read(self, n: int, timeout: float) -> bytes:
        deadline = self.cycle + self._cycles(timeout)
        while len(self.outq) < n and self.cycle < deadline:
            self._run(min(STEP, deadline - self.cycle))
        self.chip_report().fail(self.name)
        return bytes(self.outq.popleft() for _ in range(min(n, len(self.outq))))

    def close(self) -> None:
        """Nothing to release (the interface of :class:`wino_gen.run.board.SerialTransport`)."""

    def sleep(self, seconds: float) -> None:
        """The host waits ``seconds``: the board runs that long (see :class:`_Clock`)."""
        self._run(self._sleep_for(seconds))
        self.chip_report().fail(self.name)


# -- the board on Verilator (``wino_gen run --port sim``) ----------------------------------------

class BoardPorts(wiring.Component):
    """``board`` (``host="bytes"``) with plain-signal ports for the harness
    (``sim/cpp_board/board_harness.cpp``): the link's byte streams, and the memory port
    (``memory="port"``) or the SDRAM's pins as ``sd_*`` (``memory="sdram"``)."""

    def __init__(self, board: BoardSystem):
        if not isinstance(board, BoardSystem) or board.host != "bytes":
            raise ValueError(f"board {board!r}: must be a BoardSystem with host 'bytes'")
        self.board = board
        members = {"i_valid": In(1), "i_ready": Out(1), "i_payload": In(8),
                   "o_valid": Out(1), "o_ready": In(1), "o_payload": Out(8)}
        if board.memory == PORT:
            port = board.port_sig
            cmd_bits, w_bits = cmd_layout(port.addr_width, port.max_burst).size, w_layout(port.data_width).size
            if max(cmd_bits, w_bits) > 64:
                raise ValueError(f"board: cmd/w payloads of {cmd_bits}/{w_bits} bits; the harness takes at most 64")
            members.update({
                "cmd_valid": Out(1), "cmd_ready": In(1), "cmd_payload": Out(cmd_bits),
                "w_valid": Out(1), "w_ready": In(1), "w_payload": Out(w_bits),
                "r_valid": In(1), "r_ready": Out(1), "r_payload": In(port.data_width),
            })
        else:
            members.update({f"sd_{k}": (Out if v.flow == Out else In)(v.shape)
                            for k, v in board.pins.signature.members.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        b = m.submodules.board = self.board
        m.d.comb += [
            b.i.valid.eq(self.i_valid), self.i_ready.eq(b.i.ready), b.i.payload.eq(self.i_payload),
            self.o_valid.eq(b.o.valid), b.o.ready.eq(self.o_ready), self.o_payload.eq(b.o.payload),
        ]
        if b.memory == PORT:
            mem = b.mem
            m.d.comb += [
                self.cmd_valid.eq(mem.cmd.valid), mem.cmd.ready.eq(self.cmd_ready),
                self.cmd_payload.eq(mem.cmd.payload),
                self.w_valid.eq(mem.w.valid), mem.w.ready.eq(self.w_ready), self.w_payload.eq(mem.w.payload),
                mem.r.valid.eq(self.r_valid), self.r_ready.eq(mem.r.ready), mem.r.payload.eq(self.r_payload),
            ]
        else:
            for k, v in b.pins.signature.members.items():
                ours, theirs = getattr(self, f"sd_{k}"), getattr(b.pins, k)
                m.d.comb += ours.eq(theirs) if v.flow == Out else theirs.eq(ours)
        return m


def _digest() -> str:
    """The system harness's code digest, with the board's design files (:func:`sim.verilator_system.repo_modules`
    of :mod:`rtl.board`: the host link, UART and SDRAM controller besides the system), this module
    and the harness's sources in it."""
    h = hashlib.sha256(vs._code_digest().encode())
    for p in (*vs.repo_modules("rtl.board"), Path(__file__), CPP_BOARD / HARNESS, *(vs.CPP / n for n in CPP_SOURCES)):
        h.update(str(p.relative_to(vs.ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def executable(img: im.Image, cfg: AcceleratorConfig, *, word_bytes: int, max_data: int, max_pool: int,
               memory: str = PORT, clock_mhz: float | None = None, show: bool = False,
               jobs: int = 2) -> tuple[Path, BoardSystem]:
    """The harness for ``img``'s board (``memory``, ``clock_mhz``: :func:`build`'s), built
    once per (config, scratchpad sizes, port, program length, pool window, frame size, memory,
    controller clock, code): a cached build needs no export."""
    board = build(img, cfg, word_bytes=word_bytes, max_data=max_data, max_pool=max_pool, memory=memory,
                  clock_mhz=clock_mhz)
    what = (repr(cfg), img.act_scratch, img.wgt_scratch, img.param_scratch, memory_bytes(img, word_bytes), word_bytes,
            max_pool, len(img.program), max_data, GAP_CYCLES, memory, clock_mhz, _digest())
    key = hashlib.sha256(repr(what).encode()).hexdigest()

    def sources():
        core = board.system.core
        core.options = dataclasses.replace(core.options, blackbox_ram=True)     # as vs.export does
        top = verilog.convert(BoardPorts(board), name="wino_top", emit_src=False) + RAM_VERILOG
        return {"top.v": top, HARNESS: (CPP_BOARD / HARNESS).read_text(),
                "board_config.h": f"#define BOARD_SDRAM {int(memory == SDRAM)}\n",
                **{n: (vs.CPP / n).read_text() for n in CPP_SOURCES}}
    exe = build_cached(sources, what="the board", key=key, show=show, jobs=jobs)
    vs._described(board)
    return exe, board


class VerilatorBoard(_Clock):
    """The board for ``img`` on Verilator, a :class:`wino_gen.link.Transport` with the runtime's
    clock (:meth:`now`/:meth:`sleep`) in simulated seconds at ``clock_mhz``. ``memory``:
    ``"sdram"``, the SDRAM controller clocked at ``clock_mhz`` on the behavioural chip
    (``chip_timing``: see :func:`chip_for`; its words noise from ``seed``), or a
    :func:`sim.memory.timing` spec (``"sdram-ulx3s"``, ``"ideal"``, ``"B,L"``) for the memory
    port's model at ``clock_mhz``, ``stall`` on the port. ``stall`` also stalls the link's byte
    streams, as :class:`PysimBoard`'s. ``sleep_cycles``: see :meth:`sleep`."""

    name = "sim"

    def __init__(self, img: im.Image, cfg: AcceleratorConfig, *, clock_mhz: float, word_bytes: int = 2,
                 memory: str = SDRAM, stall: float = 0.0, seed: int = 0, max_data: int = link.MAX_DATA,
                 max_pool: int = DEFAULT_MAX_POOL, sleep_cycles: int = SLEEP_CYCLES,
                 chip_timing: Timing | None = None, show: bool = False):
        require_verilator()
        if not clock_mhz > 0:
            raise ValueError(f"clock_mhz {clock_mhz}: must be positive")
        if sleep_cycles < 1:
            raise ValueError(f"sleep_cycles {sleep_cycles}: must be positive")
        sdram = memory == SDRAM
        exe, board = executable(img, cfg, word_bytes=word_bytes, max_data=max_data, max_pool=max_pool,
                                memory=SDRAM if sdram else PORT, clock_mhz=clock_mhz if sdram else None, show=show)
        st = Stalls(stall, seed)
        lines = [f"lanes {lane_id(vs.CMD_LANE)} {lane_id(vs.DATA_LANE)} {lane_id(IN_LANE)} {lane_id(OUT_LANE)}",
                 f"stall {st.threshold} {st.seed}", f"step {STEP}", f"keep {KEEP}"]
        if sdram:
            chip = chip_for(board, chip_timing)
            lines += [*chip_params(chip), f"memory {chip.data.nbytes} {seed}"]
        else:
            port = board.port_sig
            cl = cmd_layout(port.addr_width, port.max_burst)
            lines += [f"port {word_bytes} {system.MEMORY_DEPTH}",
                      f"cmd {cl['addr'].offset} {cl['addr'].width} {cl['length'].offset} {cl['length'].width} "
                      f"{cl['write'].offset}",
                      f"w_data_bits {port.data_width}", *vs.timing_params(timing(memory, clock_mhz), word_bytes),
                      f"memory {word_bytes << port.addr_width} {seed}"]
        self._dir = tempfile.TemporaryDirectory(prefix="wino-board-")
        params = Path(self._dir.name) / "params.txt"
        params.write_text("\n".join(lines) + "\n")
        self.hz, self.cycle, self.sleep_cycles, self._violations = clock_mhz * 1e6, 0, sleep_cycles, 0
        self._err = open(Path(self._dir.name) / "stderr.txt", "w+")
        self._p = subprocess.Popen([str(exe), str(params)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._err, text=True, bufsize=1)

    def _send(self, line: str) -> None:
        try:
            self._p.stdin.write(line + "\n")
            self._p.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()

    def _line(self) -> str:
        reply = self._p.stdout.readline()
        if not reply:
            self._died()
        return reply.rstrip("\n")

    def _ask(self, line: str) -> list[str]:
        """Send ``line``; the reply's fields after the cycle and the violation count (a board
        whose chip saw a violation fails here)."""
        self._send(line)
        v = self._line().split()
        self.cycle, self._violations = int(v[0]), int(v[1])
        if self._violations:
            self.chip_report().fail(self.name)
        return v[2:]

    def _died(self):
        self._err.seek(0)
        why = " ".join(self._err.read().split())[-300:] or f"status {self._p.wait()}"
        raise UsageError(f"--port sim: the simulated board stopped ({why})")

    def chip_report(self) -> ChipReport:
        """The chip's violations (the first :data:`KEEP`) and commands so far (none on a port board)."""
        self._send("v")
        self._line()
        count, kept = map(int, self._line().split())
        first = tuple(self._line() for _ in range(kept))
        commands = {k: int(n) for k, n in (kv.split("=") for kv in self._line().split())}
        return ChipReport(count, first, commands)

    def write(self, data: bytes) -> None:
        self._send(f"w {bytes(data).hex()}")

    def read(self, n: int, timeout: float) -> bytes:
        got = self._ask(f"r {n} {self._cycles(timeout)}")
        return bytes.fromhex(got[0]) if got else b""

    def sleep(self, seconds: float) -> None:
        """The host waits: the board runs that long, but at most ``sleep_cycles`` (a simulated
        cycle costs real time, so the runtime's backoff between STATUS polls, made for a serial
        line, is capped here; :meth:`now` stays the cycles actually run)."""
        self._ask(f"s {self._sleep_for(seconds)}")

    def close(self) -> None:
        if self._p.poll() is None:
            self._send("q")
            try:
                self._p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._p.kill()
                self._p.wait()
        self._err.close()
        self._dir.cleanup()


def open_board(model, img: im.Image, cfg: AcceleratorConfig, *, clock_mhz: float, show: bool = False,
               memory: str = SDRAM) -> VerilatorBoard:
    """``wino_gen run --port sim``'s board for ``model``'s ``img`` (:data:`wino_gen.run.board.SIM_BOARD`
    names this function): the ULX3S's 16-bit port, the core built for the model's largest pool
    window, on ``memory`` (:class:`VerilatorBoard`'s: by default the SDRAM controller on the
    behavioural chip, both at ``clock_mhz``; ``"sdram-ulx3s"``: the port on the SDRAM's timing
    model, faster)."""
    return VerilatorBoard(img, cfg, clock_mhz=clock_mhz, word_bytes=2, memory=memory,
                          max_pool=system.max_pool_for(model), show=show)
