"""Board memories for the planner (pure Python): external memory timing models, the on-chip
block RAM a board has left after the engine, and a generic ``BYTES_PER_CYCLE,LATENCY`` memory.

Every model answers one question, :meth:`transfer_cycles`: how many engine clock cycles it
takes to move ``nbytes`` as bursts of ``burst`` contiguous bytes. Memories run on the engine's
clock (one clock domain; nanosecond timings are rounded up to whole cycles at that clock), so
the planner adds memory cycles and compute cycles directly.

Datasheet values are the ones stated on each constant; they were taken from memory of the
datasheets, not from a file here, so check them against the part before trusting a single
cycle (the planner's conclusions move by well under 1% per cycle of tRCD/tRP/CL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError


def ns_cycles(ns: float, clock_mhz: float) -> int:
    """A minimum time in ns as whole cycles at ``clock_mhz`` (at least one)."""
    return max(1, math.ceil(ns * clock_mhz / 1000 - 1e-9))


def _bursts(nbytes: int, burst: int) -> tuple[int, int]:
    """``(full bursts, bytes of the last partial one)`` of a transfer."""
    if nbytes < 0 or burst < 1:
        raise ValueError(f"transfer of {nbytes} bytes in bursts of {burst}")
    return nbytes // burst, nbytes % burst


@dataclass(frozen=True)
class SDRAM:
    """A single-data-rate SDRAM behind a simple controller (one bank at a time, no bank
    interleaving): every burst starts page-aligned and opens its row (precharge, activate, and
    again at each page crossing), then moves one word per cycle.

    Per page segment of ``w`` words: ``tRP + max(ACT..PRE, tRAS, tRC - tRP)``, where ACT..PRE
    is ``tRCD + w`` on reads (a read burst may be precharged CL - 1 cycles before its last word,
    so the next row opens while the data drains: the CAS latency is paid once per transfer,
    not per burst) and ``tRCD + w - 1 + tWR`` on writes (data in with the WRITE, tWR from the
    last word to PRECHARGE). Refresh, every tREFI: close the row (tRP), tRFC, reopen it (tRCD,
    and CL again on reads), as a share of all cycles."""

    part: str
    capacity: int          # bytes
    width_bits: int        # data bus
    max_mhz: float         # fastest clock of the speed grade at this CAS latency
    cas: int               # CAS latency, cycles
    t_rcd_ns: float        # activate to read/write
    t_rp_ns: float         # precharge to activate
    t_ras_ns: float        # activate to precharge, minimum
    t_rc_ns: float         # activate to activate, same bank
    t_wr_clocks: int       # write recovery (tDPL): last data in to precharge, in clocks
    t_rfc_ns: float        # auto refresh period
    t_refi_ns: float       # average refresh interval (64 ms / 8192 rows)
    page_columns: int      # words in one row
    banks: int
    t_mrd_clocks: int = 2  # mode register set to the next command, in clocks
    t_rrd_ns: float = 14   # activate to activate, different banks
    writable: bool = True

    @property
    def word_bytes(self) -> int:
        return self.width_bits // 8

    @property
    def page_bytes(self) -> int:
        return self.page_columns * self.word_bytes

    @property
    def peak_bytes_per_cycle(self) -> float:
        return float(self.word_bytes)

    def check_clock(self, clock_mhz: float) -> None:
        if not 0 < clock_mhz <= self.max_mhz:
            raise UsageError(f"memory {self.part}: clock {clock_mhz} MHz is outside 0..{self.max_mhz} MHz "
                             f"at CL{self.cas}")

    def refresh_fraction(self, clock_mhz: float, write: bool = False) -> float:
        """Share of cycles lost to refresh: close the open row, refresh, reopen it. A read
        burst's precharge goes out while its data drains (its CAS latency is hidden), a
        write's waits out the write recovery after the last word."""
        lost = (ns_cycles(self.t_rp_ns, clock_mhz) + ns_cycles(self.t_rfc_ns, clock_mhz)
                + ns_cycles(self.t_rcd_ns, clock_mhz) + (self.t_wr_clocks - 1 if write else 0))
        return lost / math.floor(self.t_refi_ns * clock_mhz / 1000)

    def _segment_cycles(self, words: int, clock_mhz: float, write: bool) -> int:
        rp, rcd = ns_cycles(self.t_rp_ns, clock_mhz), ns_cycles(self.t_rcd_ns, clock_mhz)
        ras, rc = ns_cycles(self.t_ras_ns, clock_mhz), ns_cycles(self.t_rc_ns, clock_mhz)
        act_to_pre = rcd + words - 1 + self.t_wr_clocks if write else rcd + words
        return rp + max(act_to_pre, ras, rc - rp)

    def _burst_cycles(self, nbytes: int, clock_mhz: float, write: bool) -> int:
        """One burst opened on a fresh row, split at page boundaries (bursts start page-aligned)."""
        words = -(-nbytes // self.word_bytes)
        pages, last = divmod(words, self.page_columns)
        return (pages * self._segment_cycles(self.page_columns, clock_mhz, write)
                + (self._segment_cycles(last, clock_mhz, write) if last else 0))

    def transfer_cycles(self, nbytes: int, burst: int, clock_mhz: float, write: bool = False) -> int:
        self.check_clock(clock_mhz)
        full, rest = _bursts(nbytes, burst)
        raw = full * self._burst_cycles(burst, clock_mhz, write) + self._burst_cycles(rest, clock_mhz, write)
        if raw and not write:
            raw += self.cas     # the first word's latency; the later bursts' pipeline behind it
        return math.ceil(raw / (1 - self.refresh_fraction(clock_mhz, write)))

    def sustained(self, burst: int, clock_mhz: float, write: bool = False) -> float:
        """Fraction of peak bandwidth that back-to-back bursts of ``burst`` bytes reach."""
        n = burst * 64
        return n / self.peak_bytes_per_cycle / self.transfer_cycles(n, burst, clock_mhz, write)


@dataclass(frozen=True)
class QSPIFlash:
    """A read-only quad-SPI NOR flash read with Fast Read Quad I/O (0xEB): per burst the
    instruction (8 clocks on one line), 24-bit address (6), mode (2) and dummy (4) clocks and one
    deselect cycle, then 4 bits per clock. SCK runs at the engine clock."""

    part: str
    capacity: int          # bytes usable for weights (the bitstream's region excluded)
    max_mhz: float
    overhead_clocks: int = 8 + 6 + 2 + 4 + 1
    writable: bool = False

    @property
    def peak_bytes_per_cycle(self) -> float:
        return 0.5

    def transfer_cycles(self, nbytes: int, burst: int, clock_mhz: float, write: bool = False) -> int:
        if write:
            raise ValueError(f"{self.part} is read-only")
        if not 0 < clock_mhz <= self.max_mhz:
            raise UsageError(f"memory {self.part}: clock {clock_mhz} MHz is outside 0..{self.max_mhz} MHz")
        full, rest = _bursts(nbytes, burst)
        return full * (self.overhead_clocks + 2 * burst) + (self.overhead_clocks + 2 * rest if rest else 0)

    def sustained(self, burst: int, clock_mhz: float, write: bool = False) -> float:
        return 2 * burst / self.transfer_cycles(burst, burst, clock_mhz)


@dataclass(frozen=True)
class GenericMemory:
    """A study memory: ``latency`` cycles per burst, then ``bytes_per_cycle``."""

    bytes_per_cycle: float
    latency: int
    capacity: int = 1 << 40
    writable: bool = True

    @property
    def part(self) -> str:
        return f"{self.bytes_per_cycle:g},{self.latency}"

    @property
    def peak_bytes_per_cycle(self) -> float:
        return self.bytes_per_cycle

    def transfer_cycles(self, nbytes: int, burst: int, clock_mhz: float, write: bool = False) -> int:
        full, rest = _bursts(nbytes, burst)
        n = full + (1 if rest else 0)
        return n * self.latency + math.ceil(nbytes / self.bytes_per_cycle - 1e-9)

    def sustained(self, burst: int, clock_mhz: float, write: bool = False) -> float:
        return burst / self.bytes_per_cycle / self.transfer_cycles(burst, burst, clock_mhz)


def parse_memory(text: str) -> GenericMemory:
    """``BYTES_PER_CYCLE,LATENCY`` (e.g. ``2,10``): a positive finite rate, a latency >= 0."""
    parts = text.split(",")
    try:
        bpc, lat = float(parts[0]), int(parts[1])
        ok = len(parts) == 2 and math.isfinite(bpc) and bpc > 0 and lat >= 0
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise UsageError(f"--memory: expected BYTES_PER_CYCLE,LATENCY (a rate > 0, a latency >= 0), got {text!r}")
    return GenericMemory(bpc, lat)


#: ULX3S v3 (85F): ISSI IS42S16160G-7, 4 banks x 8192 rows x 512 columns x 16 bit = 32 MB;
#: -7 grade: 143 MHz at CL3, tRCD = tRP = 15 ns, tRAS >= 37 ns, tRC = 60 ns (also REF to
#: ACT: tRFC), tDPL (tWR) = 2 clocks, 8192 refreshes per 64 ms (commercial grade; the A2
#: automotive grade refreshes 4x as often). The same tRCD/tRP/tRAS/tRC are in amaranth/SpinalHDL
#: SDRAM controllers' tables for this part family; still check them against the data sheet.
IS42S16160G_7 = SDRAM(part="IS42S16160G-7", capacity=32 << 20, width_bits=16, max_mhz=143.0, cas=3,
                      t_rcd_ns=15, t_rp_ns=15, t_ras_ns=37, t_rc_ns=60, t_wr_clocks=2, t_rfc_ns=60,
                      t_refi_ns=64e6 / 8192, page_columns=512, banks=4)

#: iCEBreaker: Winbond W25Q128JV, 16 MB, quad I/O up to 104 MHz here (133 MHz part, 104 MHz for
#: the 0xEB command in the data sheet's AC table); the first 1 MB is left to the bitstream.
W25Q128JV = QSPIFlash(part="W25Q128JV", capacity=15 << 20, max_mhz=104.0)


@dataclass(frozen=True)
class OnChip:
    """A board's on-chip RAM: ``blocks`` block RAMs of ``block_bytes`` int8 bytes each plus
    single-port RAM the engine never uses."""

    blocks: int
    block_bytes: int
    spram_bytes: int = 0

    @classmethod
    def of(cls, board) -> OnChip:
        """From a :class:`wino_gen.boards.Board`'s resources: an ECP5 DP16KD's 18 kbit are 2048
        bytes plus 2048 parity bits (the x9/x18/x36 modes) that int8 data cannot use; an iCE40
        EBR's 4 kbit are 512 bytes."""
        return cls(board.bram, board.bram_bits // (9 if board.family == "ecp5" else 8), board.spram_bytes)

    def free_bytes(self, engine_blocks: int) -> int:
        """Bytes left for scratchpads after the engine's own buffers."""
        if engine_blocks > self.blocks:
            raise UsageError(f"the engine needs {engine_blocks} block RAMs, the board has {self.blocks}")
        return (self.blocks - engine_blocks) * self.block_bytes + self.spram_bytes


@dataclass(frozen=True)
class BoardMemory:
    """Where tensors can live on a board: on chip; ``external`` (writable, activations and
    weights) or None; ``weight_store`` (read-only allowed) holds the weights."""

    board: str
    on_chip: OnChip
    external: SDRAM | GenericMemory | None
    weight_store: SDRAM | QSPIFlash | GenericMemory


#: The memory parts boards name (``Board.external_ram``, ``Board.weight_store``).
PARTS = {m.part: m for m in (IS42S16160G_7, W25Q128JV)}


def of_board(board) -> BoardMemory:
    """A :class:`wino_gen.boards.Board`'s memory: external RAM and weight store by the parts it
    names, on-chip RAM from its block RAMs and SPRAM; a board that declares no weight store has
    no memory model (one-line UsageError)."""
    if not board.weight_store:
        raise UsageError(f"--board: {board.name} has no memory model (no external RAM or weight store declared)")
    ext = PARTS[board.external_ram] if board.external_ram else None
    return BoardMemory(board.name, OnChip.of(board), ext, PARTS[board.weight_store])


def board_memory(board: str, memory: str | None = None) -> BoardMemory:
    """The memory of the board named ``board``; ``memory`` (``BYTES_PER_CYCLE,LATENCY``)
    replaces its external memory and weight store with a generic one for studies."""
    from .boards import get_board
    bm = of_board(get_board(board))
    if memory is None:
        return bm
    gen = parse_memory(memory)
    return BoardMemory(bm.board, bm.on_chip, gen, gen)


def engine_blocks(cfg, board: str) -> int:
    """Block RAMs the engine itself uses (``perf.estimate_resources``: weight buffer, line buffer)."""
    from . import perf
    return perf.estimate_resources(cfg, board)["bram"]
