# amaranth: UnusedElaboratable=no
"""The SPRAM memory (rtl.mem.spram) behind the memory port, in pysim on its Memory model of
the SB_SPRAM256KA (``primitive=False``: the same controller logic).

Random mixed bursts (lengths, byte strobes, bursts across the SPRAMs' boundaries and across the
port's reach) under random stalls on cmd, w and r against a numpy memory: every read word and
every word left in the SPRAMs is the model's. Unmapped words (3 SPRAMs on a 16-bit port) read 0
and keep no write. Unstalled, a long burst and back-to-back short ones move one word per cycle
both ways, and a read's first word comes two cycles after its command. The whole system runs
a compiled two-layer network from one SPRAM. ``primitive=True`` elaborates to SB_SPRAM256KA cells."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl.mem.spram import MAX_SPRAMS, SPRAM_WORDS, SPRAMMemory
from sim import system
from sim.streams import Lane, Stalls, get, put
from wino_gen import format as fmt
from wino_gen import network
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im
from wino_gen.example import _Builder
from wino_gen.format import INPUT


def _bursts(rng, n, *, count, addr_width, max_burst):
    """``n`` random bursts near a few hot spots (word 0, each SPRAM's end, the port's last word,
    one random word) so that reads see earlier writes, many of them crossing a boundary."""
    reach = 1 << addr_width
    spots = sorted({0, reach - 1, int(rng.integers(reach))} | {k * SPRAM_WORDS - 1 for k in range(1, count + 1)
                                                              if k * SPRAM_WORDS <= reach})
    out = []
    for _ in range(n):
        length = int(rng.integers(1, max_burst + 1))
        addr = (spots[int(rng.integers(len(spots)))] + int(rng.integers(-max_burst, 4))) % reach
        write = bool(rng.random() < 0.5)
        words = [dict(data=int(rng.integers(1 << 16)), strb=int(rng.integers(4))) for _ in range(length * write)]
        out.append(dict(addr=addr, length=length, write=write, words=words))
    return out


def _reference(bursts, *, count, addr_width):
    """Read words and final memory (one uint16 per port word) of ``bursts`` on numpy."""
    mem, reads, mapped = np.zeros(1 << addr_width, np.int64), [], count * SPRAM_WORDS
    for b in bursts:
        addrs = (b["addr"] + np.arange(b["length"])) % len(mem)
        if not b["write"]:
            reads += [int(v) for v in mem[addrs]]
            continue
        for a, w in zip(addrs, b["words"], strict=True):
            keep = sum(0xFF << (8 * j) for j in range(2) if not w["strb"] >> j & 1)
            if a < mapped:
                mem[a] = (mem[a] & keep) | (w["data"] & ~keep & 0xFFFF)
    return reads, mem


NO_STALLS = Stalls()


def _run(dut, bursts, *, stalls=NO_STALLS, peek=(), limit=20_000):
    """``bursts`` through ``dut`` under ``stalls``; returns the read words, the words at ``peek``
    (port addresses) in the SPRAMs afterwards, and the cycles of every cmd, w and r beat;
    AssertionError when a word is still missing after ``limit`` cycles."""
    n_reads = sum(b["length"] for b in bursts if not b["write"])
    res, beats = {}, {"cmd": [], "w": [], "r": []}

    async def commands(ctx):
        await put(ctx, dut.mem.cmd, [{k: b[k] for k in ("addr", "length", "write")} for b in bursts],
                  lane=Lane(stalls, "cmd"))

    async def writes(ctx):
        await put(ctx, dut.mem.w, [w for b in bursts if b["write"] for w in b["words"]], lane=Lane(stalls, "w"))
        while "reads" not in res:
            await ctx.tick()
        res["peek"] = [_word(ctx, dut, a) for a in peek]

    async def reads(ctx):
        res["reads"] = [x["data"] for x in await get(ctx, dut.mem.r, n_reads, lane=Lane(stalls, "r"))]

    async def monitor(ctx):
        p = dut.mem
        cycle = 0
        async for _, _, *s in ctx.tick().sample(p.cmd.valid, p.cmd.ready, p.w.valid, p.w.ready, p.r.valid, p.r.ready):
            for name, (v, r) in zip(beats, (s[0:2], s[2:4], s[4:6]), strict=True):
                if v and r:
                    beats[name].append(cycle)
            cycle += 1
            assert cycle < limit, f"{len(beats['r'])} of {n_reads} read words after {limit} cycles"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(commands, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(writes)
    sim.add_testbench(reads)
    sim.run()
    return res["reads"], res["peek"], beats


def _word(ctx, dut, addr):
    """The word at port address ``addr`` in the simulation SPRAMs (0 where none is)."""
    k, at = divmod(addr, SPRAM_WORDS)
    return ctx.get(dut.rams[k].data[at]) if k < dut.count else 0


@pytest.mark.parametrize("count,addr_width,stall", [(4, None, 0.3), (3, 16, 0.3), (2, None, 0.0), (1, 10, 0.5)])
def test_random_bursts_equal_numpy(count, addr_width, stall):
    """4 SPRAMs, 3 on a 16-bit port (a quarter unmapped), 2 unstalled, 1 on a 10-bit port (it
    wraps at word 1023): read words and the SPRAMs' contents equal the numpy model's."""
    rng = np.random.default_rng([count, stall > 0])
    dut = SPRAMMemory(count, max_burst=16, addr_width=addr_width, primitive=False)
    aw = dut.port_sig.addr_width
    bursts = _bursts(rng, 150, count=count, addr_width=aw, max_burst=16)
    crossing = [b for b in bursts if (b["addr"] % SPRAM_WORDS) + b["length"] > min(SPRAM_WORDS, 1 << aw)]
    assert any(b["write"] for b in crossing) and any(not b["write"] for b in crossing)
    want, mem = _reference(bursts, count=count, addr_width=aw)
    touched = sorted({int(a) % (1 << aw) for b in bursts if b["write"] for a in b["addr"] + np.arange(b["length"])})
    reads, peek, _ = _run(dut, bursts, stalls=Stalls(stall, int(rng.integers(1 << 32))), peek=touched)
    assert reads == want
    assert peek == [int(mem[a]) for a in touched]
    if dut.unmapped:
        assert any(a >= count * SPRAM_WORDS for a in touched) and any(v for v in want)


def _seq(addr, length, write):
    return dict(addr=addr, length=length, write=write,
                words=[dict(data=(addr + i) * 7 & 0xFFFF, strb=3) for i in range(length)] if write else [])


def test_one_word_per_cycle_both_ways():
    """Unstalled: a 64-word write across SPRAMs 0 and 1, then 8 back-to-back 8-word reads of it,
    then a 64-word read: every w and r word in consecutive cycles, the data the written words;
    the first write word is taken the cycle after its command, a read of an idle memory
    answers two cycles after its command."""
    dut = SPRAMMemory(MAX_SPRAMS, max_burst=64, primitive=False)
    base = SPRAM_WORDS - 32
    bursts = [_seq(base, 64, True)] + [_seq(base + 8 * i, 8, False) for i in range(8)] + [_seq(base, 64, False)]
    reads, _, beats = _run(dut, bursts)
    assert reads == [(base + i) * 7 & 0xFFFF for i in range(64)] * 2
    for name in ("w", "r"):
        got = beats[name]
        assert got == list(range(got[0], got[0] + len(got))), name
    assert beats["w"][0] == beats["cmd"][0] + 1
    reads, _, beats = _run(SPRAMMemory(MAX_SPRAMS, max_burst=64, primitive=False), [_seq(base, 1, False)])
    assert reads == [0] and beats["r"][0] == beats["cmd"][0] + 2


#: cycles the system test's network may take (it takes ~1.2k)
LIMIT = 20_000


def test_system_runs_a_network_from_spram(tmp_path):
    """A compiled two-layer network (a Winograd F2 layer, a direct stride-2 one) on
    rtl.system.System with its memory port on one SPRAM (the image and the input written into
    it first, as the host link would): the sequencer ends well and every stored tensor equals
    the interpreter's."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(3), 1, (4, 6, 6), 1 / 32)
    b.winograd("conv1", INPUT, 4)
    b.direct("down", "conv1", 6, stride=2)
    model = fmt.write_model(tmp_path / "m", b.manifest, b.arrays)
    cfg = network.config_for(model, unroll=2)
    img = compiler.compile_model(model, cfg, memory_spec="2,4", trace=True, port_bytes=2).image
    x = model.layers[0].arrays["x"][:img.batch]
    want = interp.run(img, cfg, x)
    mem = system.base_memory(img, 2)
    slot = img.slot(im.INPUT_SLOT)
    mem[slot.offset:slot.offset + slot.size] = system.input_chunk(img, x)
    dut = system.build(img, cfg, 2 * SPRAM_WORDS, 2)
    spram = SPRAMMemory(1, addr_width=dut.mem.cmd.payload.addr.shape().width, max_burst=system.MAX_BURST,
                        primitive=False)
    top = Module()
    top.submodules.system, top.submodules.spram = dut, spram
    wiring.connect(top, dut.mem, spram.mem)
    words = mem.view(np.uint16)
    res = {}

    async def bench(ctx):
        for i, v in enumerate(words):
            ctx.set(spram.rams[0].data[i], int(v))
        for k, v in system.regions(img).items():
            ctx.set(getattr(dut, k), v)
        await put(ctx, dut.start, [system.start_beat(img)])
        for _ in range(LIMIT):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"the system is not done after {LIMIT} cycles")
        res["status"] = (ctx.get(dut.status), ctx.get(dut.index))
        res["mem"] = np.array([ctx.get(spram.rams[0].data[i]) for i in range(len(words))], np.uint16).view(np.uint8)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    end = next(i for i, ins in enumerate(img.program) if ins.OP == "END")
    assert res["status"] == (0, end)
    for t in img.tensors:
        if t.name in want:
            got = res["mem"][t.offset:t.offset + t.size].view(np.int8).reshape(t.batch, *t.shape)
            np.testing.assert_array_equal(got, want[t.name], err_msg=t.name)
    assert set(want) >= {"conv1", "down"}


@pytest.mark.parametrize("count", [1, 4])
def test_primitive_instantiates_the_spram_cells(count):
    text = rtlil.convert(SPRAMMemory(count, max_burst=8))
    cells = text.count("cell \\SB_SPRAM256KA ")
    assert cells == count
    assert text.count("connect \\POWEROFF 1'1") == count
    assert "$mem" not in text           # no memory besides the cells


@pytest.mark.parametrize("kw,msg", [
    (dict(count=0), "count"),
    (dict(count=5), "count"),
    (dict(count=2.0), "count"),
    (dict(count=2, addr_width=14), "addr_width"),      # SPRAM 1 out of reach
    (dict(count=4, addr_width=17), "addr_width"),      # beyond the SPRAMs
    (dict(count=1, addr_width=0), "addr_width"),
    (dict(max_burst=0), "max_burst"),
    (dict(primitive="yes"), "primitive"),
])
def test_rejects_bad_parameters(kw, msg):
    args = dict(max_burst=8) | kw
    with pytest.raises(ValueError, match=msg):
        SPRAMMemory(**args)
