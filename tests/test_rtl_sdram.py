# amaranth: UnusedElaboratable=no
"""The SDRAM controller (rtl.mem.sdram) against the behavioural chip model (sim.sdram_chip).

Random mixed bursts (lengths, addresses, byte strobes, page and bank crossings) through the
controller under random stalls on cmd, w and r, at 25, 50 and 100 MHz: every read word equals
a plain Python memory's, every written word is in the chip, the chip saw no violation, and
refreshes kept coming. Long bursts move about one word per cycle, strided ones take the
planner's cycles. The chip model's checks are each shown a pin sequence that breaks them."""

import dataclasses

import numpy as np
import pytest

from rtl.mem.sdram import A10, MODE, Command, Geometry, PinSignature, SDRAMController, Timing
from sim.sdram_chip import FLOAT, SDRAMChip, run_bursts
from sim.streams import Stalls
from wino_gen import memory as wm

SDRAM = wm.IS42S16160G_7
POWER_UP_US = 1.0           # the tests' one shortening: 200 us would be 20000 cycles at 100 MHz
GEO = Geometry.of(SDRAM)


def _word(bank, row, col):
    return (bank << (GEO.row_bits + GEO.col_bits)) | (row << GEO.col_bits) | col


def _bursts(rng, n, max_burst):
    """Random bursts on a few rows of every bank (hits and misses), some of 1..4 words (a row
    closed soon after it opened: tRAS), some ending a page or a bank so that they cross it, with
    random byte strobes."""
    out = []
    rows = [0, 1, 7, (1 << GEO.row_bits) - 1]
    for _ in range(n):
        length = int(rng.integers(1, 5 if rng.random() < 0.3 else max_burst + 1))
        bank, row = int(rng.integers(0, SDRAM.banks)), rows[int(rng.integers(0, len(rows)))]
        col = (SDRAM.page_columns - int(rng.integers(1, length + 1)) if rng.random() < 0.3
               else int(rng.integers(0, SDRAM.page_columns)))
        write = bool(rng.random() < 0.5)
        words = ([dict(data=int(rng.integers(0, 1 << 16)), strb=int(rng.integers(0, 4))) for _ in range(length)]
                 if write else [])
        out.append(dict(addr=_word(bank, row, col), length=length, write=write, words=words))
    return out


def _reference(bursts):
    """Read words and final memory of ``bursts`` on a plain dict memory (initially zero)."""
    mem, reads = {}, []
    for b in bursts:
        for i in range(b["length"]):
            a = (b["addr"] + i) % (1 << GEO.addr_bits)
            if b["write"]:
                w = b["words"][i]
                keep = sum(0xFF << (8 * j) for j in range(2) if not w["strb"] >> j & 1)
                mem[a] = (mem.get(a, 0) & keep) | (w["data"] & ~keep & 0xFFFF)
            else:
                reads.append(mem.get(a, 0))
    return reads, mem


def _run(bursts, *, clock_mhz, stall, seed, read_delay=0):
    return run_bursts(bursts, clock_mhz=clock_mhz, stalls=Stalls(stall, seed), read_delay=read_delay,
                      power_up_us=POWER_UP_US)


def test_narrow_port_wraps_at_its_reach():
    """A 12-bit port reaches words 0..4095 of bank 0: a burst from word 4094 wraps to word 0."""
    bursts = [dict(addr=4094, length=4, write=True, words=[dict(data=0x700 + i, strb=3) for i in range(4)]),
              dict(addr=0, length=2, write=False, words=[])]
    run = run_bursts(bursts, clock_mhz=50.0, power_up_us=POWER_UP_US, addr_width=12)
    assert run.chip.violations == []
    assert run.reads == [0x702, 0x703]
    assert [_chip_word(run.chip, a) for a in (4094, 4095, 4096)] == [0x700, 0x701, 0]


def _two_bursts():
    return [dict(addr=_word(2, 9, 100), length=8, write=True, words=[dict(data=0x5A00 + i, strb=3) for i in range(8)]),
            dict(addr=_word(2, 9, 100), length=8, write=False, words=[])]


def test_datasheet_power_up_wait():
    """The default 200 us at 25 MHz: 5000 cycles of NOPs before PRECHARGE ALL (the chip checks it)."""
    run = run_bursts(_two_bursts(), clock_mhz=25.0)
    assert run.chip.violations == []
    assert run.chip.last_mrs > 200 * 25
    assert run.reads == [0x5A00 + i for i in range(8)]


@pytest.mark.parametrize("stalled", ["w", "r"])
def test_refresh_goes_on_while_the_port_stalls(stalled):
    """A write burst whose words come 3 tREFI late, or a read burst longer than the read FIFO
    that nobody takes for as long: the refreshes keep their schedule, the data is right."""
    t = Timing.of(SDRAM, 25.0)
    bursts = _two_bursts() if stalled == "w" else [dict(addr=_word(1, 3, 0), length=40, write=False, words=[])]
    run = run_bursts(bursts, clock_mhz=25.0, power_up_us=POWER_UP_US, hold=3 * t.refi)
    assert run.chip.violations == []
    assert run.chip.commands["REF"] - 2 >= 3
    assert run.reads == ([0x5A00 + i for i in range(8)] if stalled == "w" else [0] * 40)


def _chip_word(chip, addr):
    bank, row, col = GEO.split(addr)
    return int(chip.data[bank, row, col])


@pytest.mark.parametrize("clock_mhz,read_delay", [(25.0, 0), (50.0, 1), (100.0, 0), (SDRAM.max_mhz, 0)])
def test_random_bursts_exact_no_violations(clock_mhz, read_delay):
    rng = np.random.default_rng([int(clock_mhz), read_delay])
    bursts = _bursts(rng, 60, 48)
    assert any(GEO.split(b["addr"])[2] + b["length"] > SDRAM.page_columns for b in bursts)   # page crossings
    run = _run(bursts, clock_mhz=clock_mhz, stall=0.3, seed=int(rng.integers(1 << 32)), read_delay=read_delay)
    want, mem = _reference(bursts)
    chip = run.chip
    assert chip.violations == []
    assert run.reads == want
    assert {a: _chip_word(chip, a) for a in mem} == mem
    t = Timing.of(SDRAM, clock_mhz)
    since_mode = chip.edge - chip.last_mrs
    refreshes = chip.commands["REF"] - 2
    assert refreshes >= 1 and refreshes >= since_mode // t.refi - 1, (refreshes, since_mode, t.refi)
    assert chip.commands["PRE"] > 1 and chip.commands["ACT"] > 4        # row misses happened


def test_bank_and_part_end_crossing():
    """A burst from the last words of bank 0 into bank 1, and one from the part's last word
    wrapping to word 0, without stalls."""
    end0 = _word(1, 0, 0) - 3
    last = (1 << GEO.addr_bits) - 2
    bursts = [dict(addr=end0, length=6, write=True, words=[dict(data=0x100 + i, strb=3) for i in range(6)]),
              dict(addr=last, length=4, write=True, words=[dict(data=0x200 + i, strb=3) for i in range(4)]),
              dict(addr=end0 - 1, length=8, write=False, words=[]),
              dict(addr=last, length=4, write=False, words=[])]
    run = _run(bursts, clock_mhz=100.0, stall=0.0, seed=0)
    assert run.chip.violations == []
    assert run.reads == [0] + [0x100 + i for i in range(6)] + [0] + [0x200 + i for i in range(4)]


def _bursts_every(n, burst, stride, write):
    """``n`` bursts of ``burst`` words, one every ``stride`` words from word 0, no strobe off."""
    return [dict(addr=i * stride, length=burst, write=write,
                 words=[dict(data=(i * burst + k) & 0xFFFF, strb=3) for k in range(burst)] if write else [])
            for i in range(n)]


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("burst,stride,pages,floor", [(512, 512, 4, 0.95), (32, 2048, 1.5, 0.85)])
def test_bandwidth_is_the_planners(write, burst, stride, pages, floor):
    """Long (512-word) bursts: at least 95% of a word per cycle at 100 MHz (row changes and
    refreshes cost the rest). 64-byte bursts at a 4 KiB stride (a row miss in one bank per burst,
    tRAS/tRC bound): at least 85%. Both within 3% of the planner's model."""
    n = int(pages * SDRAM.page_columns) // burst
    run = _run(_bursts_every(n, burst, stride, write), clock_mhz=100.0, stall=0.0, seed=0)
    assert run.chip.violations == []
    cycles = run.end - run.start
    assert n * burst / cycles >= floor, (n * burst, cycles)
    plan = SDRAM.transfer_cycles(2 * n * burst, 2 * burst, 100.0, write)
    assert abs(cycles / plan - 1) < 0.03, (cycles, plan)


@pytest.mark.parametrize("kw,msg", [
    (dict(part="sdram"), "part"),
    (dict(clock_mhz=200.0), "clock_mhz"),
    (dict(addr_width=25), "addr_width"),
    (dict(max_burst=0), "max_burst"),
    (dict(power_up_us=0), "power_up_us"),
    (dict(read_fifo=0), "read_fifo"),
    (dict(read_delay=-1), "read_delay"),
])
def test_controller_rejects_bad_parameters(kw, msg):
    args = dict(clock_mhz=100.0) | kw
    with pytest.raises(ValueError, match=msg):
        SDRAMController(**args)


# -- the chip model's checks, on hand-made pin sequences ---------------------------------------

def _chip(part=SDRAM, clock_mhz=100.0, **kw):
    pins = PinSignature(Geometry.of(part), part.width_bits).create()
    return SDRAMChip(pins, part, clock_mhz=clock_mhz, power_up_us=POWER_UP_US, **kw)


def _edge(cmd=Command.NOP, ba=0, a=0, dq=0, dqm=0, dq_oe=None, cke=1):
    c = int(cmd)
    return dict(cke=cke, cs_n=0, ras_n=c >> 2 & 1, cas_n=c >> 1 & 1, we_n=c & 1, ba=ba, a=a, dqm=dqm, dq=dq,
                dq_oe=int(cmd is Command.WRITE) if dq_oe is None else dq_oe)


def _nop(n):
    return [_edge()] * n


def _mode(cas=SDRAM.cas, **fields):
    return MODE.const({"cas_latency": cas} | fields).as_value().value


def _init(chip, *, precharge=True, refreshes=2, mode=None):
    """The power-up sequence at the chip's timings (each piece can be left out or changed)."""
    t = chip.t
    seq = _nop(chip.power_up)
    if precharge:
        seq += [_edge(Command.PRE, a=1 << A10)] + _nop(t.rp - 1)
    for _ in range(refreshes):
        seq += [_edge(Command.REF)] + _nop(t.rfc - 1)
    return seq + [_edge(Command.MRS, a=_mode() if mode is None else mode)] + _nop(t.mrd - 1)


def _play(chip, seq):
    """Feed ``seq`` to ``chip``; returns what dq_i showed after each edge."""
    return [chip.step(**e) for e in seq]


def test_model_good_sequence_stores_masks_and_returns_after_cl():
    chip = _chip()
    t = chip.t
    seq = _init(chip) + [_edge(Command.ACT, ba=1, a=5)] + _nop(t.rcd - 1)
    seq += [_edge(Command.WRITE, ba=1, a=7, dq=0x1234), _edge(Command.WRITE, ba=1, a=8, dq=0xBEEF, dqm=0b01),
            _edge(Command.READ, ba=1, a=7), _edge(Command.READ, ba=1, a=8), _edge(Command.READ, ba=1, a=7, dqm=0)]
    first_read = len(seq) - 3
    seq += [_edge(dqm=0b10)] + _nop(t.cas + 2)      # masks the upper byte of the third read's word
    seq += [_edge(Command.PRE, ba=1)] + _nop(t.rp - 1) + [_edge(Command.REF)] + _nop(t.rfc)
    out = _play(chip, seq)
    assert chip.violations == []
    # the word of the READ at edge k is on dq_i after edge k + CL - 1 (sampled at edge k + CL)
    got = out[first_read + t.cas - 1:first_read + t.cas + 2]
    assert got == [0x1234, 0xBE00, FLOAT << 8 | 0x34]
    assert out[first_read + t.cas - 2] == FLOAT << 8 | FLOAT


def _bad(name, chip):
    """A pin sequence that breaks one rule (after a good power-up unless the rule is power-up's)."""
    t = chip.t
    act = [_edge(Command.ACT, ba=0, a=3)]
    ok = _init(chip)
    return {
        "power-up wait": _nop(chip.power_up - 1) + [_edge(Command.PRE, a=1 << A10)],
        "PRECHARGE ALL": _init(chip, precharge=False),
        "power-up refreshes": _init(chip, refreshes=1),
        "MODE REGISTER SET": ok[:-t.mrd] + act,
        "CAS latency": _init(chip, mode=_mode(cas=1)),
        "burst length": _init(chip, mode=_mode(burst_length=3)),
        "reserved": _init(chip, mode=_mode() | 1 << 12),
        "tMRD": ok[:-1] + act,
        "tRFC": _nop(chip.power_up) + [_edge(Command.PRE, a=1 << A10)] + _nop(t.rp - 1) + [_edge(Command.REF)]
        + _nop(t.rfc - 2) + [_edge(Command.REF)],
        "tRCD": ok + act + _nop(t.rcd - 2) + [_edge(Command.READ)],
        "tRAS": ok + act + _nop(t.ras - 2) + [_edge(Command.PRE)],
        "tRP": ok + act + _nop(t.ras + 1) + [_edge(Command.PRE)] + _nop(t.rp - 2) + act,
        "tRC": ok + act + _nop(t.ras - 1) + [_edge(Command.PRE)] + _nop(t.rp - 1) + act,
        "tRRD": ok + act + _nop(t.rrd - 2) + [_edge(Command.ACT, ba=2)],
        "tWR": ok + act + _nop(t.ras) + [_edge(Command.WRITE)] + _nop(t.wr - 2) + [_edge(Command.PRE)],
        "with row": ok + act + _nop(t.rc) + act,
        "idle bank": ok + [_edge(Command.WRITE, ba=3)],
        "auto-precharge": ok + act + _nop(t.rcd) + [_edge(Command.READ, a=1 << A10)],
        "with bank 0 active": ok + act + _nop(t.rc) + [_edge(Command.REF)],
        "refresh overdue": ok + _nop(2 * t.refi + chip.refresh_slack + 1),
        "bus contention": ok + act + _nop(t.rcd) + [_edge(Command.READ)] + _nop(t.cas - 1)
        + [_edge(Command.WRITE)],
        "without driving": ok + act + _nop(t.rcd) + [_edge(Command.WRITE, dq_oe=0)],
        "CKE": ok + [_edge(cke=0)],
    }[name]


BAD = ["power-up wait", "PRECHARGE ALL", "power-up refreshes", "MODE REGISTER SET", "CAS latency", "burst length",
       "reserved", "tMRD", "tRFC", "tRCD", "tRAS", "tRP", "tRC", "tRRD", "tWR", "with row", "idle bank",
       "auto-precharge", "with bank 0 active", "refresh overdue", "bus contention", "without driving", "CKE"]


@pytest.mark.parametrize("name", BAD)
def test_model_flags_each_violation(name):
    # tRC > tRAS + tRP in this made-up part, so that tRC can be broken alone
    part = dataclasses.replace(SDRAM, t_rc_ns=90) if name == "tRC" else SDRAM
    chip = _chip(part)
    _play(chip, _bad(name, chip))
    assert chip.violations and all(name in v for v in chip.violations), chip.violations
    good = _chip(part)
    _play(good, _init(good))
    assert good.violations == []


@pytest.mark.parametrize("kw,msg", [(dict(read_delay=-1), "read_delay"), (dict(refresh_slack=-1), "refresh_slack")])
def test_model_rejects_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _chip(**kw)
    with pytest.raises(ValueError, match="PinSignature"):
        SDRAMChip(SDRAMController(clock_mhz=100.0).mem, clock_mhz=100.0)
