"""A behavioural model of an SDR SDRAM chip on the pins of :class:`rtl.mem.sdram.PinSignature`,
for pysim: it decodes the command the pins carry at every clock edge, keeps the data of every
bank, row and column (a numpy array), returns read data CL cycles after a READ on ``dq_i``, and
records every protocol or timing violation it sees in :attr:`SDRAMChip.violations` (tests
assert that list empty, and that a deliberately bad pin sequence fills it).

What it checks, at the timings of :class:`rtl.mem.sdram.Timing` (the part's, at the clock):

- power-up: no command before the wait, PRECHARGE ALL first, two AUTO REFRESHes, then MODE
  REGISTER SET (burst length 1, sequential, a CAS latency the part supports at this grade);
  no ACTIVATE, READ or WRITE before it; CKE high throughout (no power-down modelled);
- bank state: ACTIVATE only to an idle bank, READ/WRITE only to an active one (no
  auto-precharge), AUTO REFRESH and MODE REGISTER SET only with every bank idle;
- tRCD (ACT to READ/WRITE), tRAS (ACT to PRE), tRC (ACT to ACT and to REF, same bank), tRRD
  (ACT to ACT, any bank), tRP (PRE to ACT/REF/MRS), tWR (last write word to PRE), tRFC (REF to
  any command), tMRD (MRS to any command);
- refresh: the k-th AUTO REFRESH after MODE REGISTER SET by ``k * tREFI + slack`` cycles after
  it (the JEDEC budget of 8192 per 64 ms, with ``refresh_slack`` cycles of postponement);
- the data bus: a WRITE drives ``dq`` (``dq_oe``); the controller never drives it within one
  cycle of a cycle in which the chip drives read data (bus contention).

DQM masks bytes of a write in the WRITE's cycle and masks read data two cycles before it is
driven (the datasheet's read DQM latency; a masked byte reads as :data:`FLOAT`).
``read_delay`` models register stages between the chip and ``dq_i`` (the controller's).

:func:`run_bursts` runs a list of bursts through the controller into the chip, for the tests
and the bandwidth benchmark.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from rtl.mem.sdram import A10, MODE, Command, Geometry, PinSignature, SDRAMController, Timing, power_up_cycles
from wino_gen import memory as wm

from .streams import Lane, Stalls, get, put

#: What an undriven (or DQM-masked) byte of the data bus reads as in the model.
FLOAT = 0xA5
NEVER = -(1 << 40)


class _Bank:
    def __init__(self):
        self.row = None                 # the open row, None when idle
        self.act = self.pre = self.write = NEVER


class SDRAMChip:
    """The chip behind ``pins`` (the controller's :class:`PinSignature` interface), ``part``
    clocked at ``clock_mhz``, expecting ``power_up_us`` of power-up wait. Add :meth:`run` with
    ``sim.add_testbench(chip.run, background=True)``. ``commands`` counts the commands seen."""

    def __init__(self, pins, part: wm.SDRAM = wm.IS42S16160G_7, *, clock_mhz: float, power_up_us: float = 200.0,
                 read_delay: int = 0, refresh_slack: int | None = None):
        if not isinstance(pins.signature, PinSignature):
            raise ValueError(f"pins {pins!r}: must carry a PinSignature")
        if read_delay < 0:
            raise ValueError(f"read_delay {read_delay}: must be 0 or more")
        if refresh_slack is not None and refresh_slack < 0:
            raise ValueError(f"refresh_slack {refresh_slack}: must be 0 or more")
        self.pins, self.part, self.g = pins, part, Geometry.of(part)
        self.t = Timing.of(part, clock_mhz)
        self.power_up, self.read_delay = power_up_cycles(power_up_us, clock_mhz), read_delay
        self.refresh_slack = self.t.refi if refresh_slack is None else refresh_slack
        rows = 1 << self.g.row_bits
        self.data = np.zeros((part.banks, rows, part.page_columns), np.dtype(f"u{part.width_bits // 8}"))
        self.violations: list[str] = []
        self.commands: Counter[str] = Counter()
        self.banks = [_Bank() for _ in range(part.banks)]
        self.cas = None                 # CAS latency once the mode register is set
        self.init_refreshes = 0
        self.precharged = False         # the power-up PRECHARGE ALL came
        self.last_ref = self.last_mrs = self.last_act = NEVER
        self.refresh_deadline = None
        self.reads: dict[int, int] = {}     # edge at which the chip drives a word -> the word
        self.dqm: dict[int, int] = {}       # DQM of recent edges (read masking)
        self.edge = 0

    def _flag(self, what: str) -> None:
        self.violations.append(f"edge {self.edge}: {what}")

    def _since(self, name: str, then: int, need: int, what: str) -> None:
        if self.edge - then < need:
            self._flag(f"{name}: {what} {self.edge - then} cycles after, needs {need}")

    # -- commands --------------------------------------------------------------------------

    def _activate(self, ba: int, a: int) -> None:
        b, t = self.banks[ba], self.t
        if b.row is not None:
            self._flag(f"ACTIVATE to bank {ba} with row {b.row} open")
        self._since("tRP", b.pre, t.rp, f"ACTIVATE bank {ba} PRECHARGE")
        self._since("tRC", b.act, t.rc, f"ACTIVATE bank {ba} its ACTIVATE")
        self._since("tRRD", self.last_act, t.rrd, "ACTIVATE another ACTIVATE")
        b.row, b.act = a & ((1 << self.g.row_bits) - 1), self.edge
        self.last_act = self.edge

    def _column(self, ba: int, a: int, write: bool, dq: int, dqm: int, dq_oe: int) -> None:
        b, name = self.banks[ba], "WRITE" if write else "READ"
        if b.row is None:
            self._flag(f"{name} to idle bank {ba}")
            return
        self._since("tRCD", b.act, self.t.rcd, f"{name} bank {ba} ACTIVATE")
        if a >> A10 & 1:
            self._flag(f"{name} with auto-precharge (A10), not modelled")
        col = a & (self.part.page_columns - 1)
        if write:
            if not dq_oe:
                self._flag("WRITE without driving dq")
            keep = sum(0xFF << (8 * j) for j in range(self.part.width_bits // 8) if dqm >> j & 1)
            old = int(self.data[ba, b.row, col])
            self.data[ba, b.row, col] = (old & keep) | (dq & ~keep)
            b.write = self.edge
        else:
            self.reads[self.edge + self.cas] = int(self.data[ba, b.row, col])

    def _precharge(self, ba: int, a: int) -> None:
        t = self.t
        targets = range(len(self.banks)) if a >> A10 & 1 else [ba]
        for i in targets:
            b = self.banks[i]
            if b.row is None:
                continue                    # a precharge of an idle bank is a NOP for it
            self._since("tRAS", b.act, t.ras, f"PRECHARGE bank {i} ACTIVATE")
            self._since("tWR", b.write, t.wr, f"PRECHARGE bank {i} the last write")
            b.row, b.pre = None, self.edge
        if a >> A10 & 1:
            self.precharged = True

    def _idle_all(self, name: str) -> None:
        for i, b in enumerate(self.banks):
            if b.row is not None:
                self._flag(f"{name} with bank {i} active")
            self._since("tRP", b.pre, self.t.rp, f"{name} PRECHARGE of bank {i}")

    def _refresh(self) -> None:
        self._idle_all("AUTO REFRESH")
        for i, b in enumerate(self.banks):
            self._since("tRC", b.act, self.t.rc, f"AUTO REFRESH ACTIVATE of bank {i}")
        self.last_ref = self.edge
        if self.cas is None:
            self.init_refreshes += 1
        else:
            self.refresh_deadline += self.t.refi

    def _mode(self, ba: int, a: int) -> None:
        self._idle_all("MODE REGISTER SET")
        if self.init_refreshes < 2:
            self._flag(f"MODE REGISTER SET after {self.init_refreshes} of the 2 power-up refreshes")
        fields = {name: a >> f.offset & ((1 << f.width) - 1) for name, f in MODE}
        if ba or a >> MODE.size:
            self._flag(f"MODE REGISTER SET with reserved bits set (ba {ba}, a {a:#x})")
        if fields["burst_length"] or fields["burst_type"] or fields["op_mode"]:
            self._flag(f"mode {fields}: only burst length 1, sequential, standard operation are modelled")
        if fields["cas_latency"] not in (2, 3) or fields["cas_latency"] < self.part.cas:
            self._flag(f"CAS latency {fields['cas_latency']}: the part needs {self.part.cas} (2 or 3)")
        self.cas = fields["cas_latency"]
        self.last_mrs = self.edge
        self.refresh_deadline = self.edge + self.t.refi + self.refresh_slack

    # -- one edge ----------------------------------------------------------------------------

    def _command(self, cmd: Command, ba: int, a: int, dq: int, dqm: int, dq_oe: int) -> None:
        self.commands[cmd.name] += 1
        if self.edge < self.power_up:
            self._flag(f"{cmd.name} during the power-up wait ({self.power_up} cycles)")
        if not self.precharged and not (cmd is Command.PRE and a >> A10 & 1):
            self._flag(f"{cmd.name} before the power-up PRECHARGE ALL")
        self._since("tRFC", self.last_ref, self.t.rfc, f"{cmd.name} AUTO REFRESH")
        self._since("tMRD", self.last_mrs, self.t.mrd, f"{cmd.name} MODE REGISTER SET")
        if cmd in (Command.ACT, Command.READ, Command.WRITE) and self.cas is None:
            self._flag(f"{cmd.name} before MODE REGISTER SET")
            return
        if cmd is Command.ACT:
            self._activate(ba, a)
        elif cmd in (Command.READ, Command.WRITE):
            self._column(ba, a, cmd is Command.WRITE, dq, dqm, dq_oe)
        elif cmd is Command.PRE:
            self._precharge(ba, a)
        elif cmd is Command.REF:
            self._refresh()
        elif cmd is Command.MRS:
            self._mode(ba, a)

    def step(self, cke, cs_n, ras_n, cas_n, we_n, ba, a, dqm, dq, dq_oe) -> int:
        """Take the pins sampled at one clock edge; returns the word ``dq_i`` shows until the next."""
        if not cke:
            self._flag("CKE low (power-down and self-refresh are not modelled)")
        self.dqm[self.edge] = dqm
        self.dqm.pop(self.edge - 4 - self.read_delay, None)
        if dq_oe and any(d in self.reads for d in range(self.edge - 1, self.edge + 2)):
            self._flag("bus contention: dq driven within a cycle of read data")
        if not cs_n:
            cmd = Command((ras_n << 2) | (cas_n << 1) | we_n)
            if cmd is not Command.NOP:
                self._command(cmd, ba, a, dq, dqm, dq_oe)
        if self.refresh_deadline is not None and self.edge > self.refresh_deadline:
            self._flag(f"refresh overdue: {self.commands['REF'] - self.init_refreshes} refreshes since MODE "
                       f"REGISTER SET at edge {self.last_mrs}")
            self.refresh_deadline += self.t.refi
        self.edge += 1
        return self._bus(self.edge - self.read_delay)

    def _bus(self, d: int) -> int:
        """The word the chip drives at edge ``d`` (DQM of edge ``d - 2`` masks its bytes)."""
        self.reads.pop(d - 3, None)
        word = self.reads.get(d)
        mask = self.dqm.get(d - 2, 0)
        nbytes = self.part.width_bits // 8
        return sum((FLOAT if word is None or mask >> j & 1 else word >> (8 * j) & 0xFF) << (8 * j)
                   for j in range(nbytes))

    async def run(self, ctx):
        p = self.pins
        async for _, _, *pins in ctx.tick().sample(p.cke, p.cs_n, p.ras_n, p.cas_n, p.we_n, p.ba, p.a, p.dqm,
                                                    p.dq_o, p.dq_oe):
            ctx.set(p.dq_i, self.step(*(int(v) for v in pins)))


@dataclass
class BurstRun:
    """What :func:`run_bursts` saw: the read words in order, the chip (its data, commands and
    violations), the cycle after the first command was accepted and the cycle after the last
    word moved (so ``end - start`` is the transfer's cycles)."""
    reads: list[int]
    chip: SDRAMChip
    start: int
    end: int


def run_bursts(bursts, *, clock_mhz: float, part: wm.SDRAM = wm.IS42S16160G_7, stalls: Stalls | None = None,
               max_burst: int | None = None, read_delay: int = 0, power_up_us: float = 200.0,
               hold: int = 0, addr_width: int | None = None) -> BurstRun:
    """``bursts`` (dicts of ``addr``, ``length``, ``write`` and, for writes, ``words``: dicts of
    ``data`` and ``strb``) through an :class:`rtl.mem.sdram.SDRAMController` into an
    :class:`SDRAMChip` in pysim, under ``stalls`` on the port's cmd, w and r streams; the w and
    r sides wait ``hold`` cycles after the first command was accepted (one long stall)."""
    dut = SDRAMController(part, clock_mhz=clock_mhz, power_up_us=power_up_us, read_delay=read_delay,
                          addr_width=addr_width,
                          max_burst=max((b["length"] for b in bursts), default=1) if max_burst is None else max_burst)
    chip = SDRAMChip(dut.pins, part, clock_mhz=clock_mhz, power_up_us=power_up_us, read_delay=read_delay)
    stalls = stalls or Stalls()
    n_reads = sum(b["length"] for b in bursts if not b["write"])
    cmds = [{k: b[k] for k in ("addr", "length", "write")} for b in bursts]
    res = {}

    async def commands(ctx):
        lane = Lane(stalls, "cmd")
        await put(ctx, dut.mem.cmd, cmds[:1], lane=lane)
        res["start"] = lane.cycle
        await put(ctx, dut.mem.cmd, cmds[1:], lane=lane)

    async def after_hold(ctx, lane):
        while "start" not in res:
            await lane.tick(ctx)
        for _ in range(hold):
            await lane.tick(ctx)

    async def writes(ctx):
        lane = Lane(stalls, "w")
        await after_hold(ctx, lane)
        await put(ctx, dut.mem.w, [w for b in bursts if b["write"] for w in b["words"]], lane=lane)
        res["w_end"] = lane.cycle

    async def reads(ctx):
        lane = Lane(stalls, "r")
        await after_hold(ctx, lane)
        res["reads"] = [x["data"] for x in await get(ctx, dut.mem.r, n_reads, lane=lane)]
        res["r_end"] = lane.cycle
        while "w_end" not in res or "start" not in res:
            await ctx.tick()
        for _ in range(2):          # the last WRITE reaches the chip
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1 / (clock_mhz * 1e6))
    sim.add_testbench(chip.run, background=True)
    sim.add_testbench(commands, background=True)
    sim.add_testbench(writes, background=True)
    sim.add_testbench(reads)
    sim.run()
    return BurstRun(res["reads"], chip, res["start"], max(res["r_end"], res["w_end"]))
