# amaranth: UnusedElaboratable=no
"""Memory port, DMA engines, arbiter and the pysim memory models (rtl.mem, sim.memory).

DMA loads and stores of random 2-D blocks through the arbiter, under random stalls on every
stream and every memory model, move exactly the block's bytes and touch nothing beside them;
the arbiter loses and reorders nothing and is fair; the SDRAM model's counters and cycles on
hand-made sequences are the datasheet's, and its sustained bandwidth is the planner's."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl.mem.arbiter import Arbiter
from rtl.mem.dma import DMALoad, DMAStore
from rtl.mem.port import PortSignature
from sim.memory import BandwidthTiming, IdealTiming, MemoryModel, SDRAMTiming, replay, timing
from sim.streams import Lane, Stalls, get, put
from wino_gen import memory as wm
from wino_gen.errors import UsageError

SDRAM = wm.IS42S16160G_7
MODELS = ["ideal", "2,3", "0.5,1", "sdram-ulx3s"]


class System(wiring.Component):
    """A load and a store engine on one scratchpad, sharing the memory port through an arbiter."""

    def __init__(self, port, *, sp_depth, sp_init, burst, page_bytes=0):
        kw = dict(sp_depth=sp_depth, max_rows=8, max_row_bytes=64, burst=burst, page_bytes=page_bytes)
        self.load, self.store = DMALoad(port, **kw), DMAStore(port, **kw)
        self.arb = Arbiter(port, 2)
        self.sp = Memory(shape=port.data_width, depth=sp_depth, init=sp_init)
        cmd = stream.Signature(self.load.layout)
        super().__init__({"lcmd": In(cmd), "ldone": Out(self.load.done.signature),
                          "scmd": In(cmd), "sdone": Out(self.store.done.signature), "mem": Out(port)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.load, m.submodules.store, m.submodules.arb, m.submodules.sp = \
            self.load, self.store, self.arb, self.sp
        wiring.connect(m, self.load.sp, self.sp.write_port(granularity=8))
        wiring.connect(m, self.store.sp, self.sp.read_port(transparent_for=()))
        wiring.connect(m, self.load.mem, self.arb.req[0])
        wiring.connect(m, self.store.mem, self.arb.req[1])
        wiring.connect(m, wiring.flipped(self.mem), self.arb.mem)
        for ours, eng in ((self.lcmd, self.load.cmd), (self.scmd, self.store.cmd)):
            wiring.connect(m, wiring.flipped(ours), eng)
        wiring.connect(m, wiring.flipped(self.ldone), self.load.done)
        wiring.connect(m, wiring.flipped(self.sdone), self.store.done)
        return m


def _block(rng, W, ext_lo, ext_hi, sp_lo, sp_hi, tag):
    """A random block inside external words ext_lo..ext_hi and scratchpad words sp_lo..sp_hi."""
    rows, row_bytes = int(rng.integers(1, 5)), int(rng.integers(1, 4 * W + 2))
    words = -(-row_bytes // W)
    stride, sp_stride = words + int(rng.integers(0, 3)), words + int(rng.integers(0, 2))
    ext = int(rng.integers(ext_lo, ext_hi - rows * stride))
    sp = int(rng.integers(sp_lo, sp_hi - rows * sp_stride))
    return dict(ext=ext, stride=stride, sp=sp, sp_stride=sp_stride, rows=rows, row_bytes=row_bytes, tag=tag)


def _rows(b, W, side):
    """Byte ranges of a block's rows on ``side`` ("ext" or "sp")."""
    stride = b["stride"] if side == "ext" else b["sp_stride"]
    return [((b[side] + r * stride) * W, b["row_bytes"]) for r in range(b["rows"])]


def _expect(dst, src, b, W, dst_side):
    out = dst.copy()
    for (d, n), (s, _) in zip(_rows(b, W, dst_side), _rows(b, W, "sp" if dst_side == "ext" else "ext"), strict=True):
        out[d:d + n] = src[s:s + n]
    return out


async def _until(ctx, cond, limit):
    """Tick until ``cond()``; fail after ``limit`` cycles (a hang is a failure, not a stuck test)."""
    for _ in range(limit):
        if cond():
            return
        await ctx.tick()
    raise AssertionError(f"not done after {limit} cycles")


def _sp_bytes(ctx, sp, W):
    return np.array([(ctx.get(sp.data[i]) >> (8 * j)) & 0xFF for i in range(sp.depth) for j in range(W)], np.uint8)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("W,burst,page", [(1, 4, 0), (2, 5, 16), (4, 8, 32)])
def test_dma_random_blocks_exact(model, W, burst, page):
    rng = np.random.default_rng([W, burst, MODELS.index(model)])
    port = PortSignature(data_width=8 * W, addr_width=12, max_burst=8)
    sp_depth, ext_words = 96, 256
    sp0 = rng.integers(0, 256, sp_depth * W, dtype=np.uint8)
    sp_init = [int.from_bytes(sp0[i * W:(i + 1) * W].tobytes(), "little") for i in range(sp_depth)]
    ext0 = rng.integers(0, 256, ext_words * W, dtype=np.uint8)
    dut = System(port, sp_depth=sp_depth, sp_init=sp_init, burst=burst, page_bytes=page)
    mem = ext0.copy()
    model_ = MemoryModel(mem, timing(model), word_bytes=W, stalls=Stalls(0.3, int(rng.integers(1 << 32))))
    loads = [_block(rng, W, 0, ext_words // 2, 0, sp_depth // 2, t) for t in range(3)]
    stores = [_block(rng, W, ext_words // 2, ext_words, sp_depth // 2, sp_depth, 8 + t) for t in range(3)]
    loads.append(dict(loads[0], rows=0, tag=3))            # empty blocks are answered too
    stores.append(dict(stores[0], row_bytes=0, tag=11))
    res = {}

    def driver(cmd, done, blocks, key):
        async def tb(ctx):
            for b in blocks:        # one block at a time: later loads may overwrite earlier ones
                await put(ctx, cmd, [b], rng=rng, stall=0.3)
                res.setdefault(key, []).extend(t["tag"] for t in await get(ctx, done, 1, rng=rng, stall=0.3))
        return tb

    async def check(ctx):
        await _until(ctx, lambda: len(res.get("l", [])) == 4 and len(res.get("s", [])) == 4, 20000)
        res["sp"] = _sp_bytes(ctx, dut.sp, W)

    async def bursts(ctx):
        async for _, _, v, r, a, ln in ctx.tick().sample(dut.mem.cmd.valid, dut.mem.cmd.ready,
                                                          dut.mem.cmd.payload.addr, dut.mem.cmd.payload.length):
            if v and r:
                res.setdefault("bursts", []).append((int(a), int(ln)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(model_.serve(dut.mem), background=True)
    sim.add_testbench(driver(dut.lcmd, dut.ldone, loads, "l"))
    sim.add_testbench(driver(dut.scmd, dut.sdone, stores, "s"))
    sim.add_testbench(check)
    sim.add_testbench(bursts, background=True)
    sim.run()
    assert res["l"] == [0, 1, 2, 3] and res["s"] == [8, 9, 10, 11]
    assert res["bursts"] and all(1 <= ln <= burst for _, ln in res["bursts"])
    if page:
        assert all(a // (page // W) == (a + ln - 1) // (page // W) for a, ln in res["bursts"])
    want_sp = sp0
    for b in loads:
        want_sp = _expect(want_sp, ext0, b, W, "sp")
    want_ext = ext0
    for b in stores:
        want_ext = _expect(want_ext, sp0, b, W, "ext")
    np.testing.assert_array_equal(res["sp"], want_sp)
    np.testing.assert_array_equal(mem, want_ext)


def _one_transfer(model_spec, W, nbytes, *, write, burst=32, page=1024, clock_mhz=100.0):
    """Cycles from a block command's acceptance to its done token, one contiguous block of
    ``nbytes`` (rows of 512 bytes) from or to external address 0, nothing else running."""
    port = PortSignature(data_width=8 * W, addr_width=16, max_burst=burst)
    row = min(nbytes, 512)
    kw = dict(sp_depth=2 * nbytes // W, max_rows=nbytes // row, max_row_bytes=row, burst=burst, page_bytes=page)
    eng = (DMAStore if write else DMALoad)(port, **kw)
    sp = Memory(shape=8 * W, depth=kw["sp_depth"], init=[])
    top = Module()
    top.submodules.eng, top.submodules.sp = eng, sp
    wiring.connect(top, eng.sp, sp.read_port(transparent_for=()) if write else sp.write_port(granularity=8))
    t = timing(model_spec, clock_mhz)
    model = MemoryModel(np.zeros(nbytes, np.uint8), t, word_bytes=W)
    res = {}

    async def tb(ctx):
        lane = Lane(Stalls(), "x")
        await put(ctx, eng.cmd, [dict(ext=0, stride=row // W, sp=0, sp_stride=row // W, rows=nbytes // row,
                                      row_bytes=row, tag=1)], lane=lane)
        start = lane.cycle
        await get(ctx, eng.done, 1, lane=lane)
        res["cycles"] = lane.cycle - start

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(model.serve(eng.mem), background=True)
    sim.add_testbench(tb)
    sim.run()
    return res["cycles"], t


@pytest.mark.parametrize("write", [False, True])
def test_dma_sdram_bandwidth_is_the_planners(write):
    """A 4 KB block through the DMA on the SDRAM model at the ULX3S's 25 MHz (10 refreshes)
    takes the planner's transfer_cycles within 2%."""
    nbytes = 4096
    cycles, t = _one_transfer("sdram-ulx3s", 2, nbytes, write=write, clock_mhz=25.0)
    plan = SDRAM.transfer_cycles(nbytes, nbytes, 25.0, write)
    assert t.counters["refreshes"] >= 10
    assert abs(cycles / plan - 1) < 0.02, (cycles, plan)


@pytest.mark.parametrize("spec", ["ideal", "2,8"])
def test_dma_generic_cycles(spec):
    """Ideal: one word per cycle; B,L: the planner's GenericMemory (latency once per contiguous block)."""
    nbytes = 2048
    cycles, _ = _one_transfer(spec, 2, nbytes, write=False)
    want = nbytes // 2 if spec == "ideal" else wm.parse_memory(spec).transfer_cycles(nbytes, nbytes, 100.0)
    assert want <= cycles <= want + 4, (cycles, want)


@pytest.mark.parametrize("clock_mhz", [25.0, 100.0, 143.0])
@pytest.mark.parametrize("write", [False, True])
def test_sdram_sustained_equals_planner(clock_mhz, write):
    """1 MB sequential in 64-byte port bursts: the timing model within 0.5% of wino_gen.memory
    (the same page-crossing and refresh costs; the rest is rounding of refresh points)."""
    n = 1 << 20
    t = SDRAMTiming(SDRAM, clock_mhz)
    cycles = replay(t, [(a, 64, write) for a in range(0, n, 64)], 2)
    assert abs(cycles / SDRAM.transfer_cycles(n, n, clock_mhz, write) - 1) < 0.005
    assert t.counters["row_misses"] >= n // SDRAM.page_bytes


def _at100():
    t = SDRAMTiming(SDRAM, 100.0)
    assert (t.rcd, t.rp, t.ras, t.rc, t.rfc, t.cas, t.wr, t.refi) == (2, 2, 4, 6, 6, 3, 2, 781)
    return t


def test_sdram_row_hit_streams_on():
    t = _at100()
    # two reads in one row: a miss (ACT, tRCD, CL) then a hit whose data follows without a gap
    assert replay(t, [(0, 16, False), (16, 16, False)], 2) == 2 + 3 + 16
    assert t.counters == {"row_hits": 1, "row_misses": 1, "refreshes": 0, "refresh_stall_cycles": 0}


def test_sdram_row_miss_same_bank():
    t = _at100()
    # row 0 then row 1 of bank 0: PRE after the last READ (tRAS met), tRP, ACT, tRCD, CL
    assert replay(t, [(0, 16, False), (SDRAM.page_bytes, 16, False)], 2) == 2 + 8 + 2 + 2 + 3 + 8
    assert (t.counters["row_hits"], t.counters["row_misses"]) == (0, 2)


def test_sdram_rows_stay_open_per_bank():
    t = _at100()
    bank = SDRAM.capacity // SDRAM.banks
    replay(t, [(0, 16, False), (bank, 16, False), (32, 16, False), (bank + 64, 16, True), (0, 2, True)], 2)
    assert (t.counters["row_hits"], t.counters["row_misses"]) == (3, 2)


def test_sdram_write_recovery_and_tras():
    t = _at100()
    # one word written at ACT + tRCD; PRE waits tWR after it (and tRAS after ACT), then tRP, ACT, tRCD
    assert replay(t, [(0, 2, True), (SDRAM.page_bytes, 2, True)], 2) == max(2 + 2, 4) + 2 + 2 + 1


def test_sdram_refresh_stall_and_closed_rows():
    t = _at100()
    replay(t, [(0, 2, False)], 2)
    # a read arriving just after the first refresh fell due: precharge, tRFC, then a row miss
    end = replay(t, [(2, 2, False, 781)], 2)
    assert t.counters["refreshes"] == 1 and t.counters["row_misses"] == 2
    assert t.counters["refresh_stall_cycles"] == 2 + 6
    assert end == 781 + 2 + 6 + 2 + 3 + 1
    # after a long idle every refresh that fell due is done, none delays the next access
    replay(t, [(4, 2, False, 781 * 10 + 100)], 2)
    assert t.counters["refreshes"] == 10 and t.counters["refresh_stall_cycles"] == 8


def test_bandwidth_timing_latency_per_contiguous_run():
    t = BandwidthTiming(wm.GenericMemory(2, 10))
    assert replay(t, [(0, 64, False), (64, 64, False), (1000, 64, False)], 2) == 2 * 10 + 96
    assert t.counters["latencies"] == 2
    assert replay(IdealTiming(), [(0, 64, True), (640, 6, False)], 4) == 16 + 2


def test_timing_specs():
    assert isinstance(timing("sdram-ulx3s", 50.0), SDRAMTiming)
    with pytest.raises(UsageError):
        timing("fast")
    with pytest.raises(UsageError):
        timing("sdram-ulx3s", 200.0)


# -- arbiter ----------------------------------------------------------------------------------


def _arbiter_run(policy, n, bursts, *, stall, seed=0, cycles=6000):
    """``bursts[k]``: master k's bursts ``(word addr, length, write)``; each master writes the
    word ``k << 12 | addr`` (reads return the memory's bytes). Returns the memory, every
    master's read words, and the grant order seen at the memory side."""
    W = 2
    port = PortSignature(data_width=16, addr_width=10, max_burst=8)
    dut = Arbiter(port, n, policy=policy)
    mem = np.arange(2048, dtype=np.uint16).view(np.uint8).copy()
    model = MemoryModel(mem, IdealTiming(), word_bytes=W, stalls=Stalls(stall, seed + 99))
    rng = np.random.default_rng(seed)
    res = {"reads": [[] for _ in range(n)], "grants": []}

    def master(k):
        async def cmds(ctx):
            await put(ctx, dut.req[k].cmd, [dict(addr=a, length=ln, write=w) for a, ln, w in bursts[k]],
                      rng=rng, stall=stall)

        async def wdata(ctx):
            words = [dict(data=(k << 12 | a + i) & 0xFFFF, strb=3) for a, ln, w in bursts[k] if w for i in range(ln)]
            await put(ctx, dut.req[k].w, words, rng=rng, stall=stall)

        async def rdata(ctx):
            count = sum(ln for _, ln, w in bursts[k] if not w)
            res["reads"][k] = [d["data"] for d in await get(ctx, dut.req[k].r, count, rng=rng, stall=stall)]
        return cmds, wdata, rdata

    async def spy(ctx):
        async for _, _, v, r, a in ctx.tick().sample(dut.mem.cmd.valid, dut.mem.cmd.ready,
                                                      dut.mem.cmd.payload.addr):
            if v and r:
                res["grants"].append(int(a))

    async def watchdog(ctx):
        await _until(ctx, lambda: len(res["grants"]) == sum(map(len, bursts)), cycles)
        await ctx.tick().repeat(2)      # the memory takes the last write words

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(model.serve(dut.mem), background=True)
    sim.add_testbench(spy, background=True)
    sim.add_testbench(watchdog)
    for k in range(n):
        for tb in master(k):
            sim.add_testbench(tb)
    sim.run()
    return mem.view(np.uint16), res


@pytest.mark.parametrize("policy", ["round-robin", "priority"])
def test_arbiter_no_loss_no_reordering(policy):
    """Three masters, random bursts of random kinds on their own regions, stalls everywhere:
    every write lands, every read returns its own words in order, each master's bursts reach
    the memory in its order."""
    rng = np.random.default_rng(5)
    n = 3
    bursts = []
    for k in range(n):
        addr, bs = 256 * k, []
        for _ in range(12):
            ln = int(rng.integers(1, 9))
            bs.append((addr, ln, bool(rng.integers(2))))
            addr += ln
        bursts.append(bs)
    mem, res = _arbiter_run(policy, n, bursts, stall=0.3, seed=3)
    initial = np.arange(2048, dtype=np.uint16)
    for k in range(n):
        want_reads, expect = [], initial.copy()
        for a, ln, w in bursts[k]:
            for i in range(ln):
                if w:
                    expect[a + i] = k << 12 | a + i
                else:
                    want_reads.append(int(expect[a + i]))
        assert res["reads"][k] == want_reads
        lo, hi = 256 * k, 256 * k + 128
        np.testing.assert_array_equal(mem[lo:hi], expect[lo:hi])
        assert [a for a in res["grants"] if lo <= a < hi] == [a for a, _, _ in bursts[k]]


def test_arbiter_round_robin_is_fair_and_priority_is_not():
    """Three masters with long queues of one-word reads: round-robin grants them in turn;
    priority serves master 0 first."""
    bursts = [[(256 * k + i, 1, False) for i in range(30)] for k in range(3)]
    _, rr = _arbiter_run("round-robin", 3, bursts, stall=0.0, cycles=400)
    owners = [a // 256 for a in rr["grants"]]
    assert len(owners) == 90
    for i in range(0, 60, 3):
        assert sorted(owners[i:i + 3]) == [0, 1, 2]
    _, pr = _arbiter_run("priority", 3, bursts, stall=0.0, cycles=400)
    owners = [a // 256 for a in pr["grants"]]
    assert owners[:30] == [0] * 30 and owners[30:60] == [1] * 30


def test_constructor_errors_name_the_parameter():
    port = PortSignature(data_width=16, addr_width=8, max_burst=8)
    for bad, name in ((lambda: PortSignature(data_width=24, addr_width=8, max_burst=8), "data_width"),
                      (lambda: PortSignature(data_width=16, addr_width=8, max_burst=0), "max_burst"),
                      (lambda: Arbiter(port, 2, policy="lottery"), "policy"),
                      (lambda: DMALoad(port, sp_depth=8, max_rows=1, max_row_bytes=8, burst=9), "burst"),
                      (lambda: DMAStore(port, sp_depth=8, max_rows=1, max_row_bytes=8, burst=4, page_bytes=6),
                       "page_bytes")):
        with pytest.raises(ValueError, match=name):
            bad()
