"""The simulated board: :class:`rtl.board.BoardSystem` (host link, launcher, the whole system)
on a memory model, spoken to by the unchanged host code as a :class:`wino_gen.link.Transport`.

:class:`PysimBoard` runs it in Amaranth's simulator, cycle by cycle, on a
:class:`sim.memory.MemoryModel` filled with noise (SDRAM at power-up), with random stalls on
the memory port and on the link's byte streams. Its clock is simulated time: the board runs
only while the host waits (``read`` until the bytes are there or the timeout passes), and its
:meth:`~PysimBoard.now`/:meth:`~PysimBoard.sleep` are what :class:`wino_gen.run.runtime.Runtime`
polls with, so that a run costs the host no real waiting. ``host="bytes"`` feeds the link's
byte streams directly (fast); ``host="uart"`` puts a host-side UART pair on the board's
``rx``/``tx`` pins, so that every byte crosses the wire bit by bit.

:class:`VerilatorBoard` (``wino_gen run --port sim``) is the same board (``host="bytes"``)
exported to Verilog and built once per design with ``sim/cpp_board/board_harness.cpp``, which
serves the memory port with ``sim/cpp/memory.h``'s model of :mod:`sim.memory`'s timings (the
ULX3S SDRAM's for ``--port sim``) and moves the link's bytes over the harness's stdin/stdout in
lockstep: the board runs only while the host waits, in simulated seconds at the build's clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import tempfile
from collections import deque
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
from rtl.ram import VERILOG as RAM_VERILOG
from wino_gen import link
from wino_gen.compile import image as im
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError

from . import system
from . import verilator_system as vs
from .memory import MemoryModel, timing
from .streams import Lane, Stalls, drainer, feeder, lane_id
from .verilator import build_cached, require_verilator

#: the simulated clock, 100 kHz: the runtime's first STATUS poll pause (1 ms) is 100 cycles, about
#: what a small run takes, and the Client's reply timeout (1 s) 100000, a whole 1 KB frame through
#: the UART at 4 cycles a bit
CYCLE_S = 1e-5
#: the link's partial-frame timeout in the simulation, in cycles (the hardware's is 50 ms)
GAP_CYCLES = 2000
#: cycles the board runs per step while the host waits for bytes
STEP = 64
#: the Verilator board's harness (sim/cpp_board), built with sim/cpp's memory model
CPP_BOARD = Path(__file__).resolve().parent / "cpp_board"
HARNESS = "board_harness.cpp"
#: the most cycles one host sleep runs the Verilator board (see VerilatorBoard.sleep)
SLEEP_CYCLES = 20_000


def memory_bytes(img: im.Image, word_bytes: int) -> int:
    """The board's memory for ``img``: a power of two (VERSION's ``addr_bits``) holding it."""
    return max(2 * word_bytes, 1 << (img.memory_size - 1).bit_length())


def build(img: im.Image, cfg: AcceleratorConfig, *, word_bytes: int = 1, host: str = "bytes", divisor: int = 4,
          max_data: int = 256, max_pool: int = DEFAULT_MAX_POOL, mem_bytes: int | None = None) -> BoardSystem:
    """The board for ``img``: the system sized for it (:func:`sim.system.build`) behind the
    link, on a memory of ``mem_bytes`` (default :func:`memory_bytes`)."""
    mem_bytes = mem_bytes or memory_bytes(img, word_bytes)
    sysm = system.build(img, cfg, mem_bytes, word_bytes, max_pool)
    return BoardSystem(sysm, config_sha256=im.config_sha256(cfg), gap_cycles=GAP_CYCLES, host=host, divisor=divisor,
                       max_data=max_data)


class PysimBoard:
    """``board`` (a :class:`BoardSystem` with ``memory="port"``) in pysim on ``mem_bytes`` of
    memory of ``memory`` timing (:func:`sim.memory.timing`), ``stall`` on every stream."""

    name = "pysim"

    def __init__(self, board: BoardSystem, *, memory: str = "ideal", stall: float = 0.0, seed: int = 0):
        if board.memory != "port":
            raise ValueError(f"board memory {board.memory!r}: the pysim board serves a memory port")
        W = board.port_sig.word_bytes
        self.board, self.cycle = board, 0
        self.mem = np.frombuffer(np.random.default_rng(seed).bytes(W << board.port_sig.addr_width), np.uint8).copy()
        stalls = Stalls(stall, seed)
        self.inq, self.outq = deque(), deque()
        top, i, o = self._top(board)
        self.sim = Simulator(top)
        self.sim.add_clock(CYCLE_S)
        self.sim.add_testbench(MemoryModel(self.mem, timing(memory), word_bytes=W, stalls=stalls).serve(board.mem),
                               background=True)
        self.sim.add_testbench(feeder(i, self.inq, Lane(stalls, "board.i")), background=True)
        self.sim.add_testbench(drainer(o, self.outq, Lane(stalls, "board.o")), background=True)

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
        self.sim.run_until(self.cycle * CYCLE_S)

    # -- the transport, and the runtime's clock ------------------------------------------------
    def write(self, data: bytes) -> None:
        self.inq.extend(data)

    def read(self, n: int, timeout: float) -> bytes:
        deadline = self.cycle + round(timeout / CYCLE_S)
        while len(self.outq) < n and self.cycle < deadline:
            self._run(min(STEP, deadline - self.cycle))
        return bytes(self.outq.popleft() for _ in range(min(n, len(self.outq))))

    def close(self) -> None:
        """Nothing to release (the interface of :class:`wino_gen.run.board.SerialTransport`)."""

    def now(self) -> float:
        """Simulated seconds since the board was made."""
        return self.cycle * CYCLE_S

    def sleep(self, seconds: float) -> None:
        """The host waits ``seconds``: the board runs that long."""
        self._run(max(1, round(seconds / CYCLE_S)))


# -- the board on Verilator (``wino_gen run --port sim``) ----------------------------------------

class BoardPorts(wiring.Component):
    """``board`` (``host="bytes"``, ``memory="port"``) with plain-signal ports for the harness
    (``sim/cpp_board/board_harness.cpp``): the link's byte streams and the memory port."""

    def __init__(self, board: BoardSystem):
        if not isinstance(board, BoardSystem) or board.host != "bytes" or board.memory != "port":
            raise ValueError(f"board {board!r}: must be a BoardSystem with host 'bytes' and memory 'port'")
        self.board = board
        port = board.port_sig
        cmd_bits, w_bits = cmd_layout(port.addr_width, port.max_burst).size, w_layout(port.data_width).size
        if max(cmd_bits, w_bits) > 64:
            raise ValueError(f"board: cmd/w payloads of {cmd_bits}/{w_bits} bits; the harness takes at most 64")
        super().__init__({
            "i_valid": In(1), "i_ready": Out(1), "i_payload": In(8),
            "o_valid": Out(1), "o_ready": In(1), "o_payload": Out(8),
            "cmd_valid": Out(1), "cmd_ready": In(1), "cmd_payload": Out(cmd_bits),
            "w_valid": Out(1), "w_ready": In(1), "w_payload": Out(w_bits),
            "r_valid": In(1), "r_ready": Out(1), "r_payload": In(port.data_width),
        })

    def elaborate(self, platform):
        m = Module()
        b = m.submodules.board = self.board
        mem = b.mem
        m.d.comb += [
            b.i.valid.eq(self.i_valid), self.i_ready.eq(b.i.ready), b.i.payload.eq(self.i_payload),
            self.o_valid.eq(b.o.valid), b.o.ready.eq(self.o_ready), self.o_payload.eq(b.o.payload),
            self.cmd_valid.eq(mem.cmd.valid), mem.cmd.ready.eq(self.cmd_ready), self.cmd_payload.eq(mem.cmd.payload),
            self.w_valid.eq(mem.w.valid), mem.w.ready.eq(self.w_ready), self.w_payload.eq(mem.w.payload),
            mem.r.valid.eq(self.r_valid), self.r_ready.eq(mem.r.ready), mem.r.payload.eq(self.r_payload),
        ]
        return m


def _digest() -> str:
    """The other system harness's code digest, with this module and this harness in it."""
    h = hashlib.sha256(vs._code_digest().encode())
    for p in (Path(__file__), CPP_BOARD / HARNESS):
        h.update(p.read_bytes())
    return h.hexdigest()


def executable(img: im.Image, cfg: AcceleratorConfig, *, word_bytes: int, max_data: int, max_pool: int,
               show: bool = False, jobs: int = 2) -> tuple[Path, BoardSystem]:
    """The harness for ``img``'s board, built once per (config, scratchpad sizes, port, program
    length, pool window, frame size, code): a cached build needs no export."""
    board = build(img, cfg, word_bytes=word_bytes, max_data=max_data, max_pool=max_pool)
    what = (repr(cfg), img.act_scratch, img.wgt_scratch, img.param_scratch, memory_bytes(img, word_bytes), word_bytes,
            max_pool, len(img.program), max_data, GAP_CYCLES, _digest())
    key = hashlib.sha256(repr(what).encode()).hexdigest()

    def sources():
        core = board.system.core
        core.options = dataclasses.replace(core.options, blackbox_ram=True)     # as vs.export does
        top = verilog.convert(BoardPorts(board), name="wino_top", emit_src=False) + RAM_VERILOG
        return {"top.v": top, HARNESS: (CPP_BOARD / HARNESS).read_text(),
                **{n: (vs.CPP / n).read_text() for n in vs.SOURCES if n.endswith(".h")}}
    return build_cached(sources, what="the board", key=key, show=show, jobs=jobs), board


class VerilatorBoard:
    """The board for ``img`` on Verilator, a :class:`wino_gen.link.Transport` with the runtime's
    clock (:meth:`now`/:meth:`sleep`) in simulated seconds at ``clock_mhz``; its memory of
    ``memory`` timing (:func:`sim.memory.timing`) with ``stall`` on the port."""

    name = "sim"

    def __init__(self, img: im.Image, cfg: AcceleratorConfig, *, clock_mhz: float, word_bytes: int = 2,
                 memory: str = "ideal", stall: float = 0.0, seed: int = 0, max_data: int = link.MAX_DATA,
                 max_pool: int = DEFAULT_MAX_POOL, show: bool = False):
        require_verilator()
        if not clock_mhz > 0:
            raise ValueError(f"clock_mhz {clock_mhz}: must be positive")
        exe, board = executable(img, cfg, word_bytes=word_bytes, max_data=max_data, max_pool=max_pool, show=show)
        port = board.port_sig
        cl = cmd_layout(port.addr_width, port.max_burst)
        st = Stalls(stall, seed)
        self._dir = tempfile.TemporaryDirectory(prefix="wino-board-")
        params = Path(self._dir.name) / "params.txt"
        params.write_text("\n".join([
            f"port {word_bytes} {system.MEMORY_DEPTH}",
            f"cmd {cl['addr'].offset} {cl['addr'].width} {cl['length'].offset} {cl['length'].width} "
            f"{cl['write'].offset}",
            f"w_data_bits {port.data_width}", *vs.timing_params(timing(memory), word_bytes),
            f"lanes {lane_id(vs.CMD_LANE)} {lane_id(vs.DATA_LANE)}", f"stall {st.threshold} {st.seed}",
            f"memory {word_bytes << port.addr_width} {seed}"]) + "\n")
        self.hz, self.cycle = clock_mhz * 1e6, 0
        self._err = open(Path(self._dir.name) / "stderr.txt", "w+")
        self._p = subprocess.Popen([str(exe), str(params)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._err, text=True, bufsize=1)

    def _send(self, line: str) -> None:
        try:
            self._p.stdin.write(line + "\n")
            self._p.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()

    def _ask(self, line: str) -> list[str]:
        self._send(line)
        reply = self._p.stdout.readline()
        if not reply:
            self._died()
        v = reply.split()
        self.cycle = int(v[0])
        return v[1:]

    def _died(self):
        self._err.seek(0)
        why = " ".join(self._err.read().split())[-300:] or f"status {self._p.wait()}"
        raise UsageError(f"--port sim: the simulated board stopped ({why})")

    def _cycles(self, seconds: float) -> int:
        return max(1, round(seconds * self.hz))

    def write(self, data: bytes) -> None:
        self._send(f"w {bytes(data).hex()}")

    def read(self, n: int, timeout: float) -> bytes:
        got = self._ask(f"r {n} {self._cycles(timeout)}")
        return bytes.fromhex(got[0]) if got else b""

    def now(self) -> float:
        return self.cycle / self.hz

    def sleep(self, seconds: float) -> None:
        """The host waits: the board runs that long, but at most :data:`SLEEP_CYCLES` (a
        simulated cycle costs real time, so the runtime's backoff between STATUS polls, made
        for a serial line, is capped here; :meth:`now` stays the cycles actually run)."""
        self._ask(f"s {min(SLEEP_CYCLES, self._cycles(seconds))}")

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


def open_board(model, img: im.Image, cfg: AcceleratorConfig, *, clock_mhz: float, show: bool = False
               ) -> VerilatorBoard:
    """``wino_gen run --port sim``'s board for ``model``'s ``img`` (:data:`wino_gen.run.board.SIM_BOARD`
    names this function): the ULX3S's 16-bit port on the SDRAM's timing at ``clock_mhz``, the
    core built for the model's largest pool window."""
    return VerilatorBoard(img, cfg, clock_mhz=clock_mhz, word_bytes=2, memory="sdram-ulx3s",
                          max_pool=system.max_pool_for(model), show=show)
