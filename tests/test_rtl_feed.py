# amaranth: UnusedElaboratable=no
"""Scratchpads and feeders (rtl.mem.scratchpad, rtl.feed): the scratchpad's byte windows and
DMA ports against a byte array; each feeder beat for beat against the host encoder
(``wino_gen.flow.host``, ``rtl.window.window_x_beats``) with random stalls on its stream,
from tensors at unaligned addresses in the layouts of docs/image.md; the writer against the
host's crop, touching no byte beside its tile; each feeder's cycles against the schedule's
(``wino_gen.schedule.feed_rates`` and the ``*_cycles`` beside it); and whole layers from a
preloaded scratchpad through the unchanged engines (and two chained layers through the
compute core) and back, against golden."""

import collections
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl.core import Core, command_word, core_out_layout
from rtl.feed import (
    WRITER_MODES,
    ActivationReader,
    OutputWriter,
    WeightReader,
    activation_fields,
    output_beat_layout,
    output_fields,
    weight_fields,
)
from rtl.mem.dma import DMALoad, DMAStore
from rtl.mem.port import PortSignature
from rtl.mem.scratchpad import Scratchpad
from rtl.tilebuf import input_beat_layout
from rtl.top import WinogradAccel, direct_out_layout, winograd_out_layout
from rtl.window import WindowedDirectAccel, group_layout, window_fields, window_x_beats, windowed_direct_layout
from sim.layers import random_direct, random_winograd
from sim.memory import MemoryModel, timing
from sim.streams import Stalls, get, lane_id, put
from wino_gen import golden, perf, schedule
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import DirectLayer, EltwiseLayer, WinogradLayer, pack, segment_image
from wino_gen.limits import int_range

STALL = 0.3


def _cfg(tile, unroll, ui, algo="winograd", **kw):
    """A small config: 16 columns, 16 channels (18 where ``unroll_in`` is 3)."""
    chans = 18 if ui == 3 else 16
    return AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=ui, algo=algo, max_width=16, max_channels=chans, **kw)


def _place(image: bytearray, addr: int, a, strides) -> None:
    """Write int array ``a`` into ``image`` at ``addr`` with byte ``strides`` (one per axis)."""
    for idx in np.ndindex(a.shape):
        image[addr + sum(i * s for i, s in zip(idx, strides, strict=True))] = int(a[idx]) & 0xFF


class _Gate(wiring.Component):
    """A stream passed on while ``open`` (a testbench's stall on it, both sides), except that a
    beat once offered stays offered until taken (the stream contract)."""

    def __init__(self, shape):
        super().__init__({"open": In(1), "i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        held = Signal()
        go = self.open | held
        m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid & go),
                     self.i.ready.eq(self.o.ready & go)]
        m.d.sync += held.eq(self.o.valid & ~self.o.ready)
        return m


class _Bench(wiring.Component):
    """A scratchpad and the feeders on its windows: ``feeders`` (name -> component), each read
    window ``rd`` / write window ``wr`` on the scratchpad's next one (a weight reader's on the
    weight scratchpad ``wsp`` where there is one); ``params`` an int32 parameter memory
    behind a weight reader's ``bias`` ports; ``engine`` (optional) between the readers ``act``
    (``x``), ``act2`` (``x2``, where there is one) and ``wgt`` (where there is one) and the
    writer ``out``; ``gated``: every engine stream through a :class:`_Gate` (``gates``)."""

    def __init__(self, sp, feeders, params=None, engine=None, wsp=None, gated=False):
        self.sp, self.wsp, self.feeders, self.params, self.engine = sp, wsp, feeders, params, engine
        self.gated, self.gates = gated, {}
        super().__init__({})

    def _link(self, m, name, src, dst):
        if not self.gated:
            wiring.connect(m, src, dst)
            return
        m.submodules[f"gate_{name}"] = gate = self.gates[name] = _Gate(src.payload.shape())
        wiring.connect(m, src, gate.i)
        wiring.connect(m, gate.o, dst)

    def elaborate(self, platform):
        m = Module()
        m.submodules.sp = self.sp
        if self.wsp is not None:
            m.submodules.wsp = self.wsp
        used = {}
        for name, f in self.feeders.items():
            m.submodules[name] = f
            sp = self.wsp if isinstance(f, WeightReader) and self.wsp is not None else self.sp
            for port in [] if isinstance(f, OutputWriter) else f.rd:
                wiring.connect(m, port, sp.rd[used.setdefault(id(sp), 0)])
                used[id(sp)] += 1
            for j, port in enumerate(f.wr if isinstance(f, OutputWriter) else []):
                wiring.connect(m, port, sp.wr[j])
            if isinstance(f, WeightReader):
                m.submodules.params = self.params
                for j, port in enumerate(f.bias):
                    wiring.connect(m, port, self.params.rd[j])
        if self.engine is not None:
            m.submodules.engine = eng = self.engine
            f = self.feeders
            self._link(m, "x", f["act"].x, eng.x)
            if "act2" in f:
                self._link(m, "x2", f["act2"].x, eng.x2)
            if "wgt" in f:
                self._link(m, "w", f["wgt"].w, eng.w)
            self._link(m, "o", eng.o, f["out"].i)
        return m


def _params(values, reads=1):
    """The parameter memory: a scratchpad of int32 ``values`` (64 of them), ``reads`` windows."""
    data = b"".join((int(v) & 0xFFFFFFFF).to_bytes(4, "little") for v in values)
    return Scratchpad(256, 32, dma_width=8, reads=reads, init=data)


async def _start(ctx, *units):
    for u, word in units:
        ctx.set(u.cmd.as_value(), word)
        ctx.set(u.start, 1)
    await ctx.tick()
    for u, _ in units:
        ctx.set(u.start, 0)


async def _until_idle(ctx, units, limit=200000):
    for _ in range(limit):
        await ctx.tick()
        if not any(ctx.get(u.busy) for u in units):
            return
    raise AssertionError(f"still busy after {limit} cycles")


def _sim(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for b in benches:
        sim.add_testbench(b)
    sim.run()


# -- scratchpad -------------------------------------------------------------------------------

@pytest.mark.parametrize("width,dma_width", [(32, 8), (64, 16), (64, 64)])
def test_scratchpad_windows_and_dma_ports(width, dma_width):
    """Random window reads/writes (any byte address, wrapping at the top, partial enables) and
    DMA-word reads/writes, every read checked against a byte array kept beside it; a window
    write and a DMA write in one cycle share the banks' one write port: the window's lands,
    ``dma_w_ready`` is low (the DMA holds its word), high in every other cycle."""
    depth, B, Wd = 256, width // 8, dma_width // 8
    rng = np.random.default_rng(width + dma_width)
    init = rng.integers(0, 256, depth, dtype=np.uint8)
    sp = Scratchpad(depth, width, dma_width=dma_width, reads=1, writes=1, init=init.tobytes())
    model = init.copy()
    res = {"n": 0}

    async def bench(ctx):
        for _ in range(300):
            op = rng.integers(4)
            if op == 0:        # window write, now and then beside a DMA write it holds back
                a, d, en = int(rng.integers(depth)), rng.integers(0, 256, B, dtype=np.uint8), rng.integers(0, 2, B)
                ctx.set(sp.wr[0].addr, a)
                ctx.set(sp.wr[0].data, int.from_bytes(d.tobytes(), "little"))
                ctx.set(sp.wr[0].en, int(sum(int(e) << j for j, e in enumerate(en))))
                beside = bool(rng.integers(2))
                if beside:
                    ctx.set(sp.dma_w.addr, int(rng.integers(depth // Wd)))
                    ctx.set(sp.dma_w.data, int.from_bytes(rng.integers(0, 256, Wd, dtype=np.uint8).tobytes(), "little"))
                    ctx.set(sp.dma_w.en, (1 << Wd) - 1)
                assert ctx.get(sp.dma_w_ready) == (not en.any())
                await ctx.tick()
                ctx.set(sp.wr[0].en, 0)
                ctx.set(sp.dma_w.en, 0)
                assert ctx.get(sp.dma_w_ready) == 1
                if beside and not en.any():      # the port was the DMA's: its word landed
                    a_d, w_d = ctx.get(sp.dma_w.addr), ctx.get(sp.dma_w.data)
                    model[a_d * Wd:(a_d + 1) * Wd] = np.frombuffer(w_d.to_bytes(Wd, "little"), np.uint8)
                for j in range(B):
                    if en[j]:
                        model[(a + j) % depth] = d[j]
            elif op == 1:      # window read
                a = int(rng.integers(depth))
                ctx.set(sp.rd[0].addr, a)
                ctx.set(sp.rd[0].en, 1)
                await ctx.tick()
                ctx.set(sp.rd[0].en, 0)
                ctx.set(sp.rd[0].addr, int(rng.integers(depth)))     # held while en is low
                await ctx.tick()
                want = bytes(model[(a + j) % depth] for j in range(B))
                assert ctx.get(sp.rd[0].data) == int.from_bytes(want, "little"), a
                res["n"] += 1
            elif op == 2:      # DMA word write (byte enables)
                a = int(rng.integers(depth // Wd))
                d, en = rng.integers(0, 256, Wd, dtype=np.uint8), rng.integers(0, 2, Wd)
                ctx.set(sp.dma_w.addr, a)
                ctx.set(sp.dma_w.data, int.from_bytes(d.tobytes(), "little"))
                ctx.set(sp.dma_w.en, int(sum(int(e) << j for j, e in enumerate(en))))
                await ctx.tick()
                ctx.set(sp.dma_w.en, 0)
                for j in range(Wd):
                    if en[j]:
                        model[a * Wd + j] = d[j]
            else:              # DMA word read
                a = int(rng.integers(depth // Wd))
                ctx.set(sp.dma_r.addr, a)
                ctx.set(sp.dma_r.en, 1)
                await ctx.tick()
                ctx.set(sp.dma_r.en, 0)
                await ctx.tick()
                assert ctx.get(sp.dma_r.data) == int.from_bytes(model[a * Wd:(a + 1) * Wd].tobytes(), "little"), a
                res["n"] += 1
        assert bytes(sp.byte_at(ctx, i) for i in range(depth)) == model.tobytes()

    _sim(sp, bench)
    assert res["n"] > 100


def test_scratchpad_behind_dma_engines():
    """DMALoad fills the scratchpad's DMA write port from memory (16-bit port, 8-byte words)
    and DMAStore reads a block back out through its DMA read port, under memory stalls."""
    port = PortSignature(data_width=16, addr_width=10, max_burst=8)
    depth, W = 512, 2
    kw = dict(sp_depth=depth // W, max_rows=8, max_row_bytes=64, burst=4)
    rng = np.random.default_rng(5)
    ext = rng.integers(0, 256, 1024, dtype=np.uint8)
    mem = ext.copy()

    class Sys(wiring.Component):
        def __init__(self):
            self.load, self.store = DMALoad(port, **kw), DMAStore(port, **kw)
            self.sp = Scratchpad(depth, 64, dma_width=16, reads=0)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.load, m.submodules.store, m.submodules.sp = self.load, self.store, self.sp
            wiring.connect(m, self.load.sp, self.sp.dma_w)
            wiring.connect(m, self.store.sp, self.sp.dma_r)
            return m

    dut = Sys()
    load = dict(ext=3, stride=40, sp=5, sp_stride=13, rows=3, row_bytes=21, tag=1)
    store = dict(ext=300, stride=20, sp=5, sp_stride=13, rows=3, row_bytes=21, tag=2)

    async def bench(ctx):
        await put(ctx, dut.load.cmd, [load], rng=rng, stall=STALL)
        await get(ctx, dut.load.done, 1, rng=rng, stall=STALL)
        for r in range(3):
            base = (load["sp"] + r * load["sp_stride"]) * W
            row = bytes(dut.sp.byte_at(ctx, base + j) for j in range(21))
            assert row == ext[(3 + 40 * r) * W:(3 + 40 * r) * W + 21].tobytes()
        await put(ctx, dut.store.cmd, [store], rng=rng, stall=STALL)
        await get(ctx, dut.store.done, 1, rng=rng, stall=STALL)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for seed, eng in enumerate((dut.load, dut.store)):
        model = MemoryModel(mem, timing("ideal"), word_bytes=W, stalls=Stalls(STALL, 9 + seed))
        sim.add_testbench(model.serve(eng.mem), background=True)
    sim.add_testbench(bench)
    sim.run()
    for r in range(3):
        src = (3 + 40 * r) * W
        dst = (300 + 20 * r) * W
        assert mem[dst:dst + 21].tobytes() == ext[src:src + 21].tobytes()


# -- activation reader ------------------------------------------------------------------------

def _band(rng, cfg, C, H, W, *, depth, extremes=True):
    """A random int8 band ``[C][H][W]`` at an unaligned address at the bottom or the top of
    the memory (where a padding column's window wraps around), channels a random gap apart
    (``in_cstride >= H*W``), the rest of the scratchpad random."""
    lo, hi = int_range(cfg.act_bits)
    x = rng.integers(lo, hi + 1, (C, H, W))
    if extremes:
        x.flat[0], x.flat[-1] = lo, hi
    cs = H * W + int(rng.integers(0, 5))
    addr = int(rng.integers(0, 8)) if rng.integers(2) else depth - C * cs - int(rng.integers(1, 8))
    image = bytearray(rng.integers(0, 256, depth, dtype=np.uint8).tobytes())
    _place(image, addr, x, (cs, W, 1))
    return x, addr, cs, bytes(image)


def _run_reader(cfg, fields, image, n_beats, *, depth, width, seed):
    rd = ActivationReader(cfg, depth=depth, width=width)
    sp = Scratchpad(depth, width, dma_width=8, reads=cfg.unroll_in, init=image)
    dut = _Bench(sp, {"rd": rd})
    rng = np.random.default_rng(seed)
    res = {}

    async def bench(ctx):
        await _start(ctx, (rd, pack(rd.cmd.shape(), fields)))
        res["x"] = await get(ctx, rd.x, n_beats, rng=rng, stall=STALL, raw=True)
        await _until_idle(ctx, [rd], 10)

    _sim(dut, bench)
    return res["x"]


# tile, unroll_in, C, H, W, pad: F2/F4/F6, channels not a multiple of unroll_in, rows that are
# not whole tiles, a padding-0 layer, a 1-pixel-wide image
READER_CASES = [(2, 1, 3, 5, 7, 1), (2, 2, 3, 4, 9, 1), (4, 1, 2, 6, 5, 1), (4, 2, 5, 3, 11, 1),
                (6, 2, 3, 9, 8, 1), (4, 1, 2, 5, 6, 0), (2, 2, 2, 3, 1, 1)]


@pytest.mark.parametrize("case", READER_CASES, ids=lambda c: "F{}-ui{}-C{}-{}x{}-p{}".format(*c))
def test_activation_reader_winograd_beats(case):
    tile, ui, C, H, W, pad = case
    cfg = _cfg(tile, 2, ui)
    depth, width = 1024, 8 * (1 << (cfg.n - 1).bit_length())
    rng = np.random.default_rng(list(case))
    x, addr, cs, image = _band(rng, cfg, C, H, W, depth=depth)
    spec = WinogradLayer(cfg, np.zeros((2, C, cfg.n, cfg.n)), np.zeros(2), v=golden.Requant(1, 0),
                         m=golden.Requant(1, 0), y=golden.Requant(1, 0), padding=pad)
    g = spec.geometry(H, W)
    want = spec.x_beats(x)
    got = _run_reader(cfg, activation_fields(g, in_addr=addr, in_cstride=cs), image, len(want),
                      depth=depth, width=width, seed=sum(case))
    assert got == want


WINDOW_SIZES = dict(max_width=12, max_channels=6, max_kernel=7)


@pytest.mark.parametrize("ui,C,K,H,W,k,s,p", [(1, 3, 3, 7, 9, 3, 1, 1), (2, 5, 4, 6, 7, 3, 2, 1),
                                             (2, 3, 2, 5, 5, 1, 1, 0)])
def test_activation_reader_window_beats(ui, C, K, H, W, k, s, p):
    """Mode 1: the window generator's input order, the band once per output-channel block."""
    cfg = _cfg(2, 2, ui, "direct")
    buf = schedule.window_buffer(cfg, **WINDOW_SIZES)
    g = schedule.window_geometry(buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    rng = np.random.default_rng([ui, C, K, H])
    x, addr, cs, image = _band(rng, cfg, C, H, W, depth=512)
    xl = input_beat_layout(cfg)
    want = [pack(xl, b) for b in window_x_beats(g, buf, x)]
    assert g.d.n_kb > 1 or K <= cfg.unroll
    got = _run_reader(cfg, activation_fields(g, in_addr=addr, in_cstride=cs), image, len(want),
                      depth=512, width=32, seed=C + H)
    assert got == want


# tile, unroll_in, C, H, W: channels not a multiple of unroll_in, rows not a multiple of n,
# a row of one segment, a 1-pixel-wide image
SEGMENT_CASES = [(2, 1, 3, 4, 7), (2, 2, 3, 5, 9), (4, 2, 5, 3, 11), (4, 1, 2, 4, 5), (6, 2, 3, 2, 1)]


@pytest.mark.parametrize("case", SEGMENT_CASES, ids=lambda c: "F{}-ui{}-C{}-{}x{}".format(*c))
def test_activation_reader_segment_beats(case):
    """The element-wise modes: row segments in ``segment_order`` (group -> row -> segment),
    beat for beat the host encoder's (``EltwiseLayer.x_beats``: ``segment_beats``)."""
    tile, ui, C, H, W = case
    cfg = _cfg(tile, 2, ui)
    depth, width = 1024, _pow2_bits(cfg.n)
    rng = np.random.default_rng(list(case))
    x, addr, cs, image = _band(rng, cfg, C, H, W, depth=depth)
    g = schedule.segment_geometry(cfg, C, H, W)
    want = EltwiseLayer(cfg, "maxpool").x_beats(x)
    assert len(want) == g.beats
    got = _run_reader(cfg, activation_fields(g, in_addr=addr, in_cstride=cs, mode="maxpool"), image, len(want),
                      depth=depth, width=width, seed=sum(case))
    assert got == want


# -- weight reader ----------------------------------------------------------------------------

def _weights(rng, cfg, K, C, T, *, depth, bias_addr):
    """A random weight block ``[K][C][T]`` at an unaligned address, and its biases (extremes of
    the bias width among them) in int32 parameter words from word ``bias_addr``."""
    wlo, whi = int_range(cfg.weight_bits)
    Wt = rng.integers(wlo, whi + 1, (K, C, T))
    Wt.flat[0], Wt.flat[-1] = wlo, whi
    blo, bhi = int_range(cfg.bias_bits)
    bias = rng.integers(blo // 4, bhi // 4, K)
    bias[0] = blo
    addr = int(rng.integers(1, depth - K * C * T - 1))
    image = bytearray(rng.integers(0, 256, depth, dtype=np.uint8).tobytes())
    _place(image, addr, Wt, (C * T, T, 1))
    params = rng.integers(-(1 << 31), 1 << 31, 64)
    params[bias_addr:bias_addr + K] = bias
    return Wt, bias, addr, bytes(image), params


def _run_weights(cfg, fields, image, params, n_words, *, depth, width, seed, ports=1):
    wr = WeightReader(cfg, depth=depth, width=width, param_bytes=256, ports=ports)
    dut = _Bench(Scratchpad(depth, width, dma_width=8, reads=ports, init=image), {"wr": wr}, _params(params, ports))
    rng = np.random.default_rng(seed)
    res = {}

    async def bench(ctx):
        await _start(ctx, (wr, pack(wr.cmd.shape(), fields)))
        res["w"] = await get(ctx, wr.w, n_words, rng=rng, stall=STALL, raw=True)
        await _until_idle(ctx, [wr], 10)

    _sim(dut, bench)
    return res["w"]


# tile, unroll, unroll_in, K, C, H, W, width, ports: K and C not multiples of the unroll,
# several blocks and tile rows, reads of a whole row, of several pieces, a last piece short of
# one; windows reading rows side by side (2 of 3 rows: the second group one row short)
WEIGHT_CASES = [(2, 2, 1, 3, 3, 5, 5, 32, 1), (2, 3, 2, 4, 3, 4, 6, 512, 2), (4, 2, 1, 3, 2, 6, 4, 128, 1),
                (4, 2, 2, 2, 5, 6, 4, 256, 2), (6, 2, 1, 5, 2, 7, 5, 64, 1), (4, 3, 1, 5, 3, 6, 4, 64, 3)]


@pytest.mark.parametrize("case", WEIGHT_CASES, ids=lambda c: "F{}-u{}x{}-K{}-C{}-{}x{}-w{}-p{}".format(*c))
def test_weight_reader_winograd_words(case):
    tile, un, ui, K, C, H, W, width, ports = case
    cfg = _cfg(tile, un, ui)
    n, depth, bias_addr = cfg.n, 1024, 7
    rng = np.random.default_rng(list(case))
    Wt, bias, addr, image, params = _weights(rng, cfg, K, C, n * n, depth=depth, bias_addr=bias_addr)
    one = golden.Requant(1, 0)
    spec = WinogradLayer(cfg, Wt.reshape(K, C, n, n), bias, v=one, m=one, y=one)
    g = spec.geometry(H, W)
    want = spec.w_beats(H, W)
    assert g.th > 1
    got = _run_weights(cfg, weight_fields(g, w_addr=addr, bias_addr=4 * bias_addr), image, params, len(want),
                       depth=depth, width=width, seed=sum(case), ports=ports)
    assert got == want


@pytest.mark.parametrize("ui,K,C,k,width", [(1, 3, 3, 3, 64), (2, 2, 2, 1, 32), (1, 3, 2, 7, 128)])
def test_weight_reader_direct_words(ui, K, C, k, width):
    """im2col chunks of a direct kernel's rows: 3x3, 1x1 and 7x7 (a row of several chunks)."""
    cfg = _cfg(2, 2, ui, "direct")
    depth, bias_addr = 1024, 3
    rng = np.random.default_rng([ui, K, C, k])
    Wt, bias, addr, image, params = _weights(rng, cfg, K, C, k * k, depth=depth, bias_addr=bias_addr)
    spec = DirectLayer(cfg, Wt.reshape(K, C, k, k), bias, y=golden.Requant(1, 0), padding=k // 2)
    g = spec.geometry(9, 9)
    want = spec.w_beats(9, 9)
    got = _run_weights(cfg, weight_fields(g, w_addr=addr, bias_addr=4 * bias_addr), image, params, len(want),
                       depth=depth, width=width, seed=k + K)
    assert got == want


# -- output writer ----------------------------------------------------------------------------

def _run_writer(cfg, fields, beats, image, *, depth, width, seed, ports=1, modes=None):
    """The scratchpad's bytes after the writer took ``beats`` (value lists) under input stalls."""
    ow = OutputWriter(cfg, depth=depth, width=width, ports=ports, modes=modes)
    sp = Scratchpad(depth, width, dma_width=8, reads=0, writes=ports, init=image)
    dut = _Bench(sp, {"ow": ow})
    rng = np.random.default_rng(seed)
    lay = ow.i.payload.shape()
    packed = [pack(lay, b + [0] * (lay.length - len(b))) for b in beats]    # a core beat: zeros after
    res = {}

    async def bench(ctx):
        await _start(ctx, (ow, pack(ow.cmd.shape(), fields)))
        await put(ctx, ow.i, packed, rng=rng, stall=STALL, packed=True)
        await _until_idle(ctx, [ow], 20 * cfg.unroll)
        res["sp"] = np.frombuffer(bytes(sp.byte_at(ctx, a) for a in range(depth)), np.uint8)

    _sim(dut, bench)
    return res["sp"]


def _expect_written(image, addr, y, cs):
    """``image`` with ``y[K][rows][Wo]`` at ``addr``, channels ``cs`` apart."""
    want = bytearray(image)
    _place(want, addr, y, (cs, y.shape[2], 1))
    return np.frombuffer(bytes(want), np.uint8)


BOTH = ("winograd", "direct")


# tile, unroll, K, H, W, ports, modes: partial tiles at the bottom and the right, K not a
# multiple of unroll; windows writing rows side by side (3 of 4 rows: the second group 2 rows
# short); the compute core's two-mode writer
@pytest.mark.parametrize("case", [(2, 2, 3, 5, 6, 1, None), (4, 3, 4, 7, 5, 1, None), (6, 2, 2, 9, 8, 2, None),
                                  (4, 1, 1, 3, 3, 1, None), (4, 2, 3, 6, 7, 3, None), (4, 2, 2, 5, 5, 4, None),
                                  (2, 3, 4, 5, 5, 3, BOTH)],
                         ids=lambda c: "F{}-u{}-K{}-{}x{}-p{}".format(*c[:6]) + ("-core" if c[6] else ""))
def test_output_writer_winograd_crop(case):
    tile, un, K, H, W, ports, modes = case
    cfg = _cfg(tile, un, 1)
    depth, width = 1024, 8 * (1 << (tile - 1).bit_length())
    rng = np.random.default_rng(list(case[:6]))
    one = golden.Requant(1, 0)
    spec = WinogradLayer(cfg, np.zeros((K, 1, cfg.n, cfg.n)), np.zeros(K), v=one, m=one, y=one)
    g = spec.geometry(H, W)
    lo, hi = int_range(cfg.act_bits)
    beats = [rng.integers(lo, hi + 1, tile * tile).tolist() for _ in range(g.n_out)]
    y = spec.collect([pack(winograd_out_layout(cfg), b) for b in beats], H, W)
    cs = g.Ho * g.Wo + int(rng.integers(0, 4))
    addr = int(rng.integers(depth - K * cs))
    image = rng.integers(0, 256, depth, dtype=np.uint8).tobytes()
    got = _run_writer(cfg, output_fields(g, out_addr=addr, out_cstride=cs), beats, image,
                      depth=depth, width=width, seed=sum(case[:6]), ports=ports, modes=modes)
    np.testing.assert_array_equal(got, _expect_written(image, addr, y, cs))


@pytest.mark.parametrize("un,K,H,W,k,s,ports,modes", [(2, 3, 6, 7, 3, 2, 1, None), (3, 3, 5, 4, 1, 1, 1, None),
                                                      (3, 2, 4, 5, 3, 1, 2, None), (5, 6, 4, 4, 3, 1, 2, BOTH)])
def test_output_writer_direct(un, K, H, W, k, s, ports, modes):
    """Direct beats; the two-mode writer built from a Winograd config (tile 2: m² = 4 < unroll)."""
    cfg = _cfg(2, un, 1, "winograd" if modes else "direct")
    depth = 512
    rng = np.random.default_rng([un, K, H, W])
    spec = DirectLayer(cfg, np.zeros((K, 1, k, k)), np.zeros(K), y=golden.Requant(1, 0), stride=s, padding=k // 2)
    g = spec.geometry(H, W)
    lo, hi = int_range(cfg.act_bits)
    beats = [rng.integers(lo, hi + 1, un).tolist() for _ in range(g.n_out)]
    y = spec.collect([pack(direct_out_layout(cfg), b) for b in beats], H, W)
    cs = g.n_pix + int(rng.integers(0, 4))
    addr = int(rng.integers(depth - K * cs))
    image = rng.integers(0, 256, depth, dtype=np.uint8).tobytes()
    got = _run_writer(cfg, output_fields(g, out_addr=addr, out_cstride=cs), beats, image,
                      depth=depth, width=8 if not modes else 32, seed=K + H, ports=ports, modes=modes)
    np.testing.assert_array_equal(got, _expect_written(image, addr, y, cs))


# tile, unroll_in, C, H, W, ports, modes: channels not a multiple of unroll_in, widths not a
# multiple of n; windows writing channels side by side; the compute core's three-mode writer
@pytest.mark.parametrize("case", [(2, 2, 3, 4, 7, 1, ("eltwise",)), (2, 2, 3, 3, 9, 2, WRITER_MODES),
                                  (4, 3, 5, 3, 8, 2, ("eltwise",)), (6, 1, 2, 2, 5, 1, WRITER_MODES)],
                         ids=lambda c: "F{}-ui{}-C{}-{}x{}-p{}-{}".format(*c[:6], len(c[6])))
def test_output_writer_segments(case):
    """Element-wise outputs: element ``c*unroll_in + ch`` of a core beat is channel
    ``cg*unroll_in + ch``, column ``xb*n + c`` of row ``y``; the columns past the row and the
    channels past C (and the beat's elements past ``n * unroll_in``, random here) are not
    written."""
    tile, ui, C, H, W, ports, modes = case
    cfg = _cfg(tile, 2, ui)
    depth = 1024
    rng = np.random.default_rng(list(case[:6]))
    g = schedule.segment_geometry(cfg, C, H, W)
    lay = output_beat_layout(cfg, modes)
    assert lay == core_out_layout(cfg)
    lo, hi = int_range(cfg.act_bits)
    beats = [rng.integers(lo, hi + 1, lay.length).tolist() for _ in range(g.beats)]
    y = segment_image(g, [b[:cfg.n * ui] for b in beats])
    cs = H * W + int(rng.integers(0, 4))
    addr = int(rng.integers(depth - C * cs))
    image = rng.integers(0, 256, depth, dtype=np.uint8).tobytes()
    got = _run_writer(cfg, output_fields(g, out_addr=addr, out_cstride=cs, mode="avgpool"), beats, image,
                      depth=depth, width=_pow2_bits(cfg.n), seed=sum(case[:6]), ports=ports, modes=modes)
    np.testing.assert_array_equal(got, _expect_written(image, addr, y, cs))


def test_core_writer_beats_are_the_cores():
    """One definition of the core's ``o`` beat: a multi-mode writer takes ``core_out_layout``, also
    where a segment (n * unroll_in) is longer than a Winograd or a direct beat."""
    cfg = _cfg(2, 2, 2)
    assert cfg.n * cfg.unroll_in > max(cfg.tile ** 2, cfg.unroll)
    for modes in (BOTH, WRITER_MODES):
        assert OutputWriter(cfg, depth=1024, width=32, modes=modes).i.payload.shape() == core_out_layout(cfg)


# -- cycles and arguments ---------------------------------------------------------------------

def _last_cycle(dut, unit, word, stream_fn):
    """The last cycle in which ``unit`` is busy (``start`` in cycle 0), with nothing stalling:
    that of its last beat or write; ``stream_fn(ctx, lane)`` moves the beats."""
    from sim.streams import Lane
    res = {}

    async def bench(ctx):
        await _start(ctx, (unit, word))
        lane = Lane.random(None, 0)
        await stream_fn(ctx, lane)
        t = lane.cycle
        while ctx.get(unit.busy):
            await ctx.tick()
            t += 1
        res["t"] = t

    _sim(dut, bench)
    return res["t"]


def test_feeder_cycles_are_the_schedules():
    """With nothing stalling, each feeder's last beat (write) falls in the cycle that
    ``schedule.activation_read_cycles`` / ``weight_read_cycles`` / ``output_write_cycles`` say."""
    rng = np.random.default_rng(7)
    one = golden.Requant(1, 0)
    cfg = _cfg(4, 3, 2)
    n, C, K, H, W = cfg.n, 3, 4, 6, 7
    x, addr, cs, image = _band(rng, cfg, C, H, W, depth=1024)
    spec = WinogradLayer(cfg, rng.integers(-9, 9, (K, C, n, n)), np.zeros(K), v=one, m=one, y=one)
    g = spec.geometry(H, W)
    rd = ActivationReader(cfg, depth=1024, width=64)
    dut = _Bench(Scratchpad(1024, 64, dma_width=8, reads=2, init=image), {"rd": rd})
    word = pack(rd.cmd.shape(), activation_fields(g, in_addr=addr, in_cstride=cs))
    t = _last_cycle(dut, rd, word, lambda ctx, lane: get(ctx, rd.x, g.x_beats, lane=lane))
    assert t == schedule.activation_read_cycles(g.x_beats)
    for width, ports in ((64, 1), (512, 3)):
        wr = WeightReader(cfg, depth=1024, width=width, param_bytes=256, ports=ports)
        dut = _Bench(Scratchpad(1024, width, dma_width=8, reads=ports, init=image), {"wr": wr},
                     _params([0] * 64, ports))
        word = pack(wr.cmd.shape(), weight_fields(g, w_addr=3, bias_addr=0))
        t = _last_cycle(dut, wr, word, lambda ctx, lane, wr=wr: get(ctx, wr.w, g.w_beats, lane=lane))
        rate = schedule.feed_rates(cfg, weight_bytes=width // 8, weight_ports=ports).w
        assert wr.rate == rate and t == schedule.weight_read_cycles(g.w_beats, rate)
    olay = winograd_out_layout(cfg)
    beats = [pack(olay, [1] * 16) for _ in range(g.n_out)]
    for ports in (1, 3):
        ow = OutputWriter(cfg, depth=1024, width=64, ports=ports)
        dut = _Bench(Scratchpad(1024, 64, dma_width=8, reads=0, writes=ports), {"ow": ow})
        word = pack(ow.cmd.shape(), output_fields(g, out_addr=0, out_cstride=50))
        t = _last_cycle(dut, ow, word, lambda ctx, lane, ow=ow: put(ctx, ow.i, beats, lane=lane, packed=True))
        assert t == schedule.output_write_cycles(g.n_out, -(-cfg.tile // ports))


def test_segment_feeder_cycles():
    """Segments, nothing stalling: a beat a cycle from the reader; ``ceil(unroll_in / ports)``
    cycles a beat into the writer (``unroll_in`` windows: a beat a cycle, the add's rate)."""
    rng = np.random.default_rng(8)
    cfg = _cfg(4, 2, 3)
    C, H, W = 5, 4, 13
    x, addr, cs, image = _band(rng, cfg, C, H, W, depth=1024)
    g = schedule.segment_geometry(cfg, C, H, W)
    rd = ActivationReader(cfg, depth=1024, width=64)
    dut = _Bench(Scratchpad(1024, 64, dma_width=8, reads=3, init=image), {"rd": rd})
    word = pack(rd.cmd.shape(), activation_fields(g, in_addr=addr, in_cstride=cs, mode="add"))
    assert _last_cycle(dut, rd, word, lambda ctx, lane: get(ctx, rd.x, g.beats, lane=lane)) == \
        schedule.activation_read_cycles(g.beats)
    beats = [pack(core_out_layout(cfg), [1] * 18) for _ in range(g.beats)]
    for ports in (1, 2, 3):
        ow = OutputWriter(cfg, depth=1024, width=64, ports=ports, modes=("eltwise",))
        dut = _Bench(Scratchpad(1024, 64, dma_width=8, reads=0, writes=ports), {"ow": ow})
        word = pack(ow.cmd.shape(), output_fields(g, out_addr=0, out_cstride=60, mode="add"))
        t = _last_cycle(dut, ow, word, lambda ctx, lane, ow=ow: put(ctx, ow.i, beats, lane=lane, packed=True))
        assert t == schedule.output_write_cycles(g.beats, -(-cfg.unroll_in // ports))


@pytest.mark.parametrize("make,match", [
    (lambda: Scratchpad(1000, 64, dma_width=8), "depth 1000"),
    (lambda: Scratchpad(1024, 48, dma_width=8), "width 48"),
    (lambda: Scratchpad(1024, 32, dma_width=64), "dma_width 64"),
    (lambda: Scratchpad(8, 64, dma_width=8), "depth 8"),
    (lambda: ActivationReader(_cfg(4, 2, 1), depth=1024, width=32), "width 32"),
    (lambda: ActivationReader(_cfg(4, 2, 1), depth=1000, width=64), "depth 1000"),
    (lambda: ActivationReader(_cfg(2, 2, 1, act_bits=12, transform_bits=12), depth=1024, width=32), "int8"),
    (lambda: WeightReader(_cfg(2, 2, 1), depth=1024, width=32, param_bytes=100), "param_bytes 100"),
    (lambda: WeightReader(_cfg(2, 2, 1), depth=1024, width=32, param_bytes=64, ports=3), "ports 3"),
    (lambda: OutputWriter(_cfg(4, 2, 1), depth=1024, width=16), "width 16"),
    (lambda: OutputWriter(_cfg(4, 2, 1), depth=1024, width=32, ports=5), "ports 5"),
    (lambda: OutputWriter(_cfg(4, 2, 1, "direct"), depth=1024, width=32, modes=BOTH), "modes"),
    (lambda: OutputWriter(_cfg(4, 2, 1), depth=1024, width=32, modes=("direct",)), "modes"),
    (lambda: OutputWriter(_cfg(4, 2, 1, "direct"), depth=1024, width=32, modes=("winograd", "eltwise")), "modes"),
    (lambda: OutputWriter(_cfg(4, 2, 1), depth=1024, width=32, modes=("eltwise", "pool")), "modes"),
    (lambda: OutputWriter(_cfg(4, 2, 1), depth=1024, width=32, modes=("eltwise",)), "width 32"),
    (lambda: OutputWriter(_cfg(2, 2, 2), depth=1024, width=32, modes=("eltwise",), ports=3), "ports 3"),
    (lambda: activation_fields(schedule.segment_geometry(_cfg(2, 2, 1), 2, 3, 3), in_addr=0, in_cstride=9),
     "mode None"),
    (lambda: output_fields(schedule.segment_geometry(_cfg(2, 2, 1), 2, 3, 3), out_addr=0, out_cstride=9,
                           mode="direct"), "mode 'direct'"),
    (lambda: EltwiseLayer(_cfg(2, 2, 1), "conv"), "mode 'conv'"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- whole layers through the engines ---------------------------------------------------------

def _layer_image(rng, depth, regions):
    """A random scratchpad with each ``(array, strides)`` of ``regions`` at an unaligned
    address after the previous one; the image and the addresses."""
    image = bytearray(rng.integers(0, 256, depth, dtype=np.uint8).tobytes())
    addrs, at = [], 0
    for a, strides in regions:
        at += int(rng.integers(1, 8))
        addrs.append(at)
        _place(image, at, a, strides)
        at += sum((n - 1) * st for n, st in zip(a.shape, strides, strict=True)) + 1
    assert at <= depth
    return bytes(image), addrs


def _run_system(dut, units, layer_word, depth):
    """Start the engine and the feeders together; the scratchpad's bytes once all are idle and
    the cycles that took."""
    res = {}

    async def bench(ctx):
        ctx.set(dut.engine.layer.as_value(), layer_word)
        ctx.set(dut.engine.start, 1)
        await _start(ctx, *units)
        ctx.set(dut.engine.start, 0)
        t = 0
        while any(ctx.get(u.busy) for u, _ in units):
            await ctx.tick()
            t += 1
        res["cycles"] = t
        res["sp"] = np.frombuffer(bytes(dut.sp.byte_at(ctx, a) for a in range(depth)), np.uint8)

    _sim(dut, bench)
    return res["sp"], res["cycles"]


def _pow2_bits(nbytes):
    return 8 * (1 << (nbytes - 1).bit_length())


def _winograd_system(case, rng):
    """The layer of ``case`` in scratchpads: the bench, its units' commands, the engine's word,
    golden's output, where it goes, and the image it lands in."""
    tile, un, ui, gran, mode, C, K, H, W, wide = case
    cfg = AcceleratorConfig(tile=tile, unroll=un, unroll_in=ui, granularity=gran, requant=mode,
                            max_width=16, max_channels=16, max_tap_shift=2)
    n, depth = cfg.n, 4096
    x, kw = random_winograd(cfg, C, K, H, W, rng, extremes=True)
    want = golden.winograd_conv3x3(x, tile=tile, cfg=cfg, **kw)[0]
    assert len(np.unique(want)) > 20
    spec = WinogradLayer(cfg, **kw)
    g = spec.geometry(H, W)
    cs_in, cs_out = H * W + 3, g.Ho * g.Wo + 1
    U = kw["U"].reshape(K, C, n * n)
    image, (in_addr, w_addr, out_addr) = _layer_image(rng, depth, [
        (x[0], (cs_in, W, 1)), (U, (C * n * n, n * n, 1)), (np.zeros((K, g.Ho, g.Wo), np.int64), (cs_out, g.Wo, 1))])
    width = _pow2_bits(n)
    # shared: the weights in the activation scratchpad, one window each; wide: a weight
    # scratchpad of words as long as a row of a word and a window per row (a word a cycle),
    # a write window per tile row (a beat a cycle)
    wwidth, ports, oports = (_pow2_bits(schedule.pe_geometry(cfg).lanes), un, tile) if wide else (width, 1, 1)
    wsp = None
    if wide:
        wimage, (w_addr,) = _layer_image(rng, 2048, [(U, (C * n * n, n * n, 1))])
        wsp = Scratchpad(2048, wwidth, dma_width=8, reads=ports, init=wimage)
    bias_addr = 5
    params = np.zeros(64, np.int64)
    params[bias_addr:bias_addr + K] = kw["bias"]
    act = ActivationReader(cfg, depth=depth, width=width)
    wgt = WeightReader(cfg, depth=2048 if wide else depth, width=wwidth, param_bytes=256, ports=ports)
    out = OutputWriter(cfg, depth=depth, width=width, ports=oports)
    sp = Scratchpad(depth, width, dma_width=8, reads=ui + (0 if wide else 1), writes=oports, init=image)
    dut = _Bench(sp, {"act": act, "wgt": wgt, "out": out}, _params(params, ports), WinogradAccel(cfg), wsp)
    units = [(act, pack(act.cmd.shape(), activation_fields(g, in_addr=in_addr, in_cstride=cs_in))),
             (wgt, pack(wgt.cmd.shape(), weight_fields(g, w_addr=w_addr, bias_addr=4 * bias_addr))),
             (out, pack(out.cmd.shape(), output_fields(g, out_addr=out_addr, out_cstride=cs_out)))]
    return dut, units, spec, g, x, want, (image, out_addr, cs_out)


# tile, unroll, unroll_in, granularity, requant, C, K, H, W, wide weights: partial tiles, C and
# K not multiples of the unroll (the F2 shared-scratchpad case is slow: the row-band test below
# runs F2 from a shared scratchpad)
E2E_WINOGRAD = [pytest.param((2, 2, 1, "layer", "pow2", 3, 3, 7, 6, False), marks=pytest.mark.slow),
                (4, 2, 2, "tap", "fixed", 3, 3, 6, 7, True)]


@pytest.mark.parametrize("case", E2E_WINOGRAD, ids=["F2-u2x1-layer-pow2-shared", "F4-u2x2-tap-fixed-wide"])
def test_winograd_layer_from_scratchpad(case):
    """Input and weights preloaded in the scratchpads, the readers feed the unchanged
    WinogradAccel, the writer puts its output back: golden's output, byte for byte, and
    nothing else changed."""
    dut, units, spec, g, _, want, (image, out_addr, cs_out) = _winograd_system(case, np.random.default_rng(
        list(case[5:9])))
    got, cycles = _run_system(dut, units, spec.word(g.H, g.W), dut.sp.depth)
    np.testing.assert_array_equal(got, _expect_written(image, out_addr, want, cs_out))
    if case[-1]:
        # fed at a host's rate: the last write (the cycle after the engine's last output beat)
        # is perf's count of cycles up to that beat, later by at most the feeders' lag behind
        # a host (whose first beats come in cycle 1): the read, the word's two registers
        late = cycles - perf.layer_cycles(spec.cfg, g.C, g.K, g.H, g.W)
        assert 0 <= late <= schedule.FEED_READ_LATENCY + schedule.WEIGHT_WORD_STAGES


@pytest.mark.parametrize("ui,C,K,H,W,k,s,p", [(1, 3, 3, 7, 8, 3, 2, 1),
                                             pytest.param(2, 3, 2, 6, 5, 1, 1, 0, marks=pytest.mark.slow)])
def test_direct_layer_from_scratchpad(ui, C, K, H, W, k, s, p):
    """The same through the window generator and the unchanged direct engine
    (WindowedDirectAccel): the reader in window mode, the weights as im2col chunks."""
    cfg = _cfg(2, 2, ui, "direct")
    depth, width = 2048, 32
    rng = np.random.default_rng([ui, C, K, k])
    x, kw = random_direct(cfg, C, K, H, W, rng, kernel=k, stride=s, padding=p, relu=True, extremes=True)
    want = golden.direct_conv(x, cfg=cfg, **kw)[0]
    spec = DirectLayer(cfg, **kw)
    eng = WindowedDirectAccel(cfg, max_width=12, max_channels=4, max_kernel=3)
    g = schedule.window_geometry(eng.gen.buf, cfg, C, K, H, W, kernel=k, stride=s, padding=p)
    d = g.d
    cs_in, cs_out = H * W + 2, d.n_pix + 3
    image, (in_addr, w_addr, out_addr) = _layer_image(rng, depth, [
        (x[0], (cs_in, W, 1)), (kw["W"].reshape(K, C * k * k), (C * k * k, 1)),
        (np.zeros((K, d.n_pix), np.int64), (cs_out, 1))])
    params = np.zeros(64, np.int64)
    params[:K] = kw["bias"]
    act = ActivationReader(cfg, depth=depth, width=width)
    wgt = WeightReader(cfg, depth=depth, width=width, param_bytes=256)
    out = OutputWriter(cfg, depth=depth, width=width)
    sp = Scratchpad(depth, width, dma_width=8, reads=ui + 1, writes=1, init=image)
    dut = _Bench(sp, {"act": act, "wgt": wgt, "out": out}, _params(params), eng)
    lay = windowed_direct_layout(eng.gen.buf, cfg)
    word = pack(lay["win"].shape, window_fields(g)) | spec.word(H, W) << lay["eng"].offset
    units = [(act, pack(act.cmd.shape(), activation_fields(g, in_addr=in_addr, in_cstride=cs_in))),
             (wgt, pack(wgt.cmd.shape(), weight_fields(d, w_addr=w_addr, bias_addr=0))),
             (out, pack(out.cmd.shape(), output_fields(d, out_addr=out_addr, out_cstride=cs_out)))]
    got, cycles = _run_system(dut, units, word, depth)
    np.testing.assert_array_equal(got, _expect_written(image, out_addr, want, cs_out))


def test_two_layers_on_the_core_from_scratchpad():
    """Two layers back to back on the compute core (rtl.core), one scratchpad: a Winograd F2
    layer, then a direct 3x3 stride-2 layer that reads the first one's output where the writer
    left it (a layer's output is the next one's input, no reshuffle); the core's one output
    stream through the two-mode writer. Golden's outputs, byte for byte."""
    cfg = _cfg(2, 2, 1)
    core = Core(cfg, max_kernel=3)
    rng = np.random.default_rng(3)
    depth, n, C, K, K2, H, W = 4096, cfg.n, 3, 3, 4, 7, 6
    x1, kw1 = random_winograd(cfg, C, K, H, W, rng, extremes=True)
    want1 = golden.winograd_conv3x3(x1, tile=2, cfg=cfg, **kw1)[0]
    s1 = WinogradLayer(cfg, **kw1)
    g1 = s1.geometry(H, W)
    _, kw2 = random_direct(core.dcfg, K, K2, g1.Ho, g1.Wo, rng, kernel=3, stride=2, padding=1, relu=True)
    want2 = golden.direct_conv(want1[None], cfg=core.dcfg, **kw2)[0]
    s2 = DirectLayer(core.dcfg, min_steps=schedule.writer_beat_cycles(core.dcfg, "direct"), **kw2)
    g2 = schedule.core_window_geometry(core.dcfg, core.buf, K, K2, g1.Ho, g1.Wo, kernel=3, stride=2, padding=1)
    cs1, cs2, np2 = H * W + 3, g1.Ho * g1.Wo, g2.d.n_pix
    image, (in1, w1, out1, w2, out2) = _layer_image(rng, depth, [
        (x1[0], (cs1, W, 1)), (kw1["U"].reshape(K, C, n * n), (C * n * n, n * n, 1)),
        (np.zeros((K, g1.Ho, g1.Wo), np.int64), (cs2, g1.Wo, 1)), (kw2["W"].reshape(K2, K * 9), (K * 9, 1)),
        (np.zeros((K2, np2), np.int64), (np2, 1))])
    params = np.zeros(64, np.int64)
    params[:K], params[16:16 + K2] = kw1["bias"], kw2["bias"]
    act = ActivationReader(cfg, depth=depth, width=64)
    wgt = WeightReader(cfg, depth=depth, width=64, param_bytes=256)
    out = OutputWriter(cfg, depth=depth, width=64, modes=BOTH, ports=2)
    sp = Scratchpad(depth, 64, dma_width=8, reads=2, writes=2, init=image)
    dut = _Bench(sp, {"act": act, "wgt": wgt, "out": out}, _params(params), core)
    lay = core.layer.shape()
    dl = lay["direct"].shape
    word2 = pack(dl["win"].shape, window_fields(g2)) | s2.word(g1.Ho, g1.Wo) << dl["eng"].offset
    commands = [
        (command_word(lay, "winograd", s1.word(H, W)),
         [activation_fields(g1, in_addr=in1, in_cstride=cs1), weight_fields(g1, w_addr=w1, bias_addr=0),
          output_fields(g1, out_addr=out1, out_cstride=cs2)]),
        (command_word(lay, "direct", word2),
         [activation_fields(g2, in_addr=out1, in_cstride=cs2), weight_fields(g2.d, w_addr=w2, bias_addr=4 * 16),
          output_fields(g2.d, out_addr=out2, out_cstride=np2)])]
    res = {}

    async def bench(ctx):
        for word, fields in commands:
            ctx.set(core.layer.as_value(), word)
            ctx.set(core.start, 1)
            await _start(ctx, *[(u, pack(u.cmd.shape(), f)) for u, f in zip((act, wgt, out), fields, strict=True)])
            ctx.set(core.start, 0)
            await _until_idle(ctx, [act, wgt, out, core], 5000)
        res["sp"] = np.frombuffer(bytes(sp.byte_at(ctx, a) for a in range(depth)), np.uint8)

    _sim(dut, bench)
    want = _expect_written(image, out1, want1, cs2)
    np.testing.assert_array_equal(res["sp"], _expect_written(want.tobytes(), out2, want2.reshape(K2, 1, np2), np2))


def _run_gated(dut, bench, *, stall, seed):
    """``bench`` on ``dut`` (a gated :class:`_Bench`) with every gated stream closed with
    probability ``stall`` per cycle (``sim.streams.Stalls``'s pattern, a lane per gate)."""
    stalls = Stalls(stall, seed)

    async def gates(ctx):
        cycle = 0
        while True:
            for name, gate in dut.gates.items():
                ctx.set(gate.open, not stalls.stalled(lane_id(name), cycle))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(gates, background=True)
    sim.add_testbench(bench)
    sim.run()


def _eltwise_on_core(core, layer, operands, *, stall, seed):
    """``layer`` (:class:`EltwiseLayer`) on ``core`` from one preloaded scratchpad: its
    operands (``[C, H, W]``: one, two for ``add``) at unaligned addresses read by an
    ActivationReader each (the second on ``x2``), the result written back by an element-wise
    writer of ``unroll_in`` windows (a segment a cycle), every stream between them and the
    core stalling with probability ``stall``. Returns the scratchpad's bytes, what they should
    be with ``want`` written, and the cycles from ``start`` until every unit is idle."""
    cfg, (C, H, W) = core.cfg, operands[0].shape
    gi, go, _ = layer.geometry(C, H, W)
    want = (golden.add(*operands, **layer.add) if layer.mode == "add" else
            golden.maxpool(operands[0][None], **{k: layer.pool[k] for k in ("kernel", "stride", "padding")})[0]
            if layer.mode == "maxpool" else
            golden.avgpool(operands[0][None], **{k: layer.pool[k] for k in ("kernel", "stride", "mult", "shift")})[0])
    depth, width, rng = 2048, _pow2_bits(cfg.n), np.random.default_rng(seed)
    cs_in, cs_out = H * W + 1, go.H * go.W + 2
    image, addrs = _layer_image(rng, depth, [*((x, (cs_in, W, 1)) for x in operands),
                                             (np.zeros_like(want), (cs_out, go.W, 1))])
    readers = {name: ActivationReader(cfg, depth=depth, width=width) for name in ("act", "act2")[:len(operands)]}
    out = OutputWriter(cfg, depth=depth, width=width, ports=cfg.unroll_in, modes=WRITER_MODES)
    sp = Scratchpad(depth, width, dma_width=8, reads=cfg.unroll_in * len(operands), writes=cfg.unroll_in, init=image)
    dut = _Bench(sp, {**readers, "out": out}, engine=core, gated=True)
    units = [(rd, pack(rd.cmd.shape(), activation_fields(gi, in_addr=a, in_cstride=cs_in, mode=layer.mode)))
             for rd, a in zip(readers.values(), addrs, strict=False)]
    units.append((out, pack(out.cmd.shape(), output_fields(go, out_addr=addrs[-1], out_cstride=cs_out,
                                                           mode=layer.mode))))
    res = {}

    async def bench(ctx):
        ctx.set(core.layer.as_value(), layer.word(core, C, H, W))
        ctx.set(core.start, 1)
        await _start(ctx, *units)
        ctx.set(core.start, 0)
        t = 0
        while any(ctx.get(u.busy) for u in (core, *(u for u, _ in units))):
            await ctx.tick()
            t += 1
        res["cycles"] = t
        res["sp"] = np.frombuffer(bytes(sp.byte_at(ctx, a) for a in range(depth)), np.uint8)

    _run_gated(dut, bench, stall=stall, seed=seed)
    return res["sp"], _expect_written(image, addrs[-1], want, cs_out), res["cycles"], want


def _extremes(rng, C, H, W):
    lo, hi = int_range(8)
    x = rng.integers(lo, hi + 1, (C, H, W))
    x[:, 0, 0], x[:, -1, -1] = hi, lo
    return x


# cfg (tile, unroll, unroll_in), mode, parameters, C, H, W: an add whose segment (n * unroll_in = 8) is
# longer than a Winograd beat (m² = 4), saturating at both ends; a maxpool whose windows reach
# the padded corner; an avgpool 2x2 s2 with a trailing row and column no window reaches
ELTWISE_E2E = [((2, 2, 2), "add", dict(a_mult=8192, b_mult=8192, shift=13), 3, 5, 7),
               ((2, 2, 1), "maxpool", dict(kernel=3, stride=2, padding=1), 3, 5, 8),
               ((2, 2, 2), "avgpool", dict(kernel=2, stride=2, mult=1, shift=2), 3, 5, 7)]


@pytest.mark.parametrize("case", ELTWISE_E2E, ids=lambda c: "F{}-ui{}-".format(*c[0][::2]) + c[1])
def test_eltwise_layer_on_the_core_from_scratchpad(case):
    """add (two readers: the second on x2), maxpool and avgpool from a preloaded scratchpad
    through the compute core and back: golden's result, byte for byte, nothing else changed,
    with random stalls on x, x2 and o; without stalls the core's own cycles
    (``perf.core_eltwise_cycles``) plus at most the reader's read latency."""
    (tile, un, ui), mode, kw, C, H, W = case
    cfg = _cfg(tile, un, ui)
    layer = EltwiseLayer(cfg, mode, **kw)
    core = Core(cfg, max_kernel=3)
    rng = np.random.default_rng([tile, ui, C, H, W])
    operands = [_extremes(rng, C, H, W) for _ in range(2 if mode == "add" else 1)]
    if mode == "add":
        operands[1][:, 0, 0] = int_range(8)[0]          # -128 + 127: the extremes meet
        operands[1][:, 1, 1] = operands[0][:, 1, 1] = int_range(8)[1]
    got, want_sp, _, want = _eltwise_on_core(core, layer, operands, stall=0.3, seed=C + H)
    np.testing.assert_array_equal(got, want_sp)
    if mode == "add":
        assert (want == 127).any() and (want == -128).any()
    geo = {} if mode == "add" else {k: layer.pool[k] for k in ("kernel", "stride", "padding")}
    model = perf.core_eltwise_cycles(cfg, mode, C, H, W, max_pool=core.max_pool, **geo)
    got, _, cycles, _ = _eltwise_on_core(core, layer, operands, stall=0.0, seed=C + H)
    np.testing.assert_array_equal(got, want_sp)
    # the reader's first segment comes a read later than a host's; an avgpool whose pool walks
    # positions past its last output hides that
    assert 0 <= cycles - model <= schedule.FEED_READ_LATENCY, (cycles, model)


def _run_core_commands(dut, core, commands, *, stall, seed):
    """``commands`` (``(core word, [(feeder, its fields)])``) one after the other on ``core``
    in ``dut`` (a gated :class:`_Bench`), each started with its feeders once the previous
    one's units are idle, every gated stream stalling with probability ``stall``; the
    scratchpad's bytes at the end."""
    res = {}

    async def bench(ctx):
        for word, units in commands:
            ctx.set(core.layer.as_value(), word)
            ctx.set(core.start, 1)
            await _start(ctx, *[(u, pack(u.cmd.shape(), f)) for u, f in units])
            ctx.set(core.start, 0)
            await _until_idle(ctx, [core, *(u for u, _ in units)], 20000)
        res["sp"] = np.frombuffer(bytes(dut.sp.byte_at(ctx, a) for a in range(dut.sp.depth)), np.uint8)

    _run_gated(dut, bench, stall=stall, seed=seed)
    return res["sp"]


def test_network_chain_on_the_core_from_scratchpad():
    """conv -> add -> pool -> linear on one core from one scratchpad, each layer reading the
    previous one's output where the writer left it: a Winograd F2 conv, the residual add of
    its output and the conv's input (two readers, two channel strides), a global avgpool
    written one byte a channel (``out_cstride`` 1: the flattened vector), the linear layer
    reading that vector as the channels of a 1x1 image; random stalls on x, x2, w and o.
    Every layer's result equals golden's, byte for byte, and nothing else changed."""
    cfg = _cfg(2, 2, 1)
    core = Core(cfg, max_kernel=3, max_pool=4)
    rng = np.random.default_rng(13)
    depth, n, C, K2, H, W = 4096, cfg.n, 3, 5, 4, 4
    x1, kw1 = random_winograd(cfg, C, C, H, W, rng, relu=True, extremes=True)
    y1 = golden.winograd_conv3x3(x1, tile=2, cfg=cfg, **kw1)[0]
    add = EltwiseLayer(cfg, "add", a_mult=8192, b_mult=4164, shift=13, relu=True)
    y2 = golden.add(y1, x1[0], **add.add)
    pool = EltwiseLayer(cfg, "avgpool", kernel=4, stride=4, mult=1, shift=4)
    y3 = golden.avgpool(y2[None], kernel=4, stride=4, mult=1, shift=4)[0]
    _, kw4 = random_direct(core.dcfg, C, K2, 1, 1, rng, kernel=1, stride=1, padding=0, relu=False)
    y4 = golden.direct_conv(y3[None], cfg=core.dcfg, **kw4)[0]
    assert len(np.unique(y2)) > 5 and len(np.unique(y4)) > 2
    paced = schedule.writer_beat_cycles(core.dcfg, "direct")
    s1, s4 = WinogradLayer(cfg, **kw1), DirectLayer(core.dcfg, min_steps=paced, **kw4)
    g1 = s1.geometry(H, W)
    g4 = schedule.core_window_geometry(core.dcfg, core.buf, C, K2, 1, 1, kernel=1, stride=1, padding=0)
    cs1, hw = H * W + 3, H * W
    image, (in1, w1, out1, out2, out3, w4, out4) = _layer_image(rng, depth, [
        (x1[0], (cs1, W, 1)), (kw1["U"].reshape(C, C, n * n), (C * n * n, n * n, 1)),
        (np.zeros((C, H, W), np.int64), (hw, W, 1)), (np.zeros((C, H, W), np.int64), (hw, W, 1)),
        (np.zeros(C, np.int64), (1,)), (kw4["W"].reshape(K2, C), (C, 1)), (np.zeros(K2, np.int64), (1,))])
    params = np.zeros(64, np.int64)
    params[:C], params[32:32 + K2] = kw1["bias"], kw4["bias"]
    act, act2 = (ActivationReader(cfg, depth=depth, width=64) for _ in range(2))
    wgt = WeightReader(cfg, depth=depth, width=64, param_bytes=256)
    out = OutputWriter(cfg, depth=depth, width=64, modes=WRITER_MODES, ports=2)
    sp = Scratchpad(depth, 64, dma_width=8, reads=3, writes=2, init=image)
    dut = _Bench(sp, {"act": act, "act2": act2, "wgt": wgt, "out": out}, _params(params), core, gated=True)
    lay = core.layer.shape()
    dl = lay["direct"].shape
    seg = schedule.segment_geometry(cfg, C, H, W)
    pooled = schedule.segment_geometry(cfg, C, 1, 1)
    commands = [
        (command_word(lay, "winograd", s1.word(H, W)),
         [(act, activation_fields(g1, in_addr=in1, in_cstride=cs1)), (wgt, weight_fields(g1, w_addr=w1, bias_addr=0)),
          (out, output_fields(g1, out_addr=out1, out_cstride=hw))]),
        (add.word(core, C, H, W),
         [(act, activation_fields(seg, in_addr=out1, in_cstride=hw, mode="add")),
          (act2, activation_fields(seg, in_addr=in1, in_cstride=cs1, mode="add")),
          (out, output_fields(seg, out_addr=out2, out_cstride=hw, mode="add"))]),
        (pool.word(core, C, H, W),
         [(act, activation_fields(seg, in_addr=out2, in_cstride=hw, mode="avgpool")),
          (out, output_fields(pooled, out_addr=out3, out_cstride=1, mode="avgpool"))]),
        (command_word(lay, "linear", pack(dl["win"].shape, window_fields(g4)) | s4.word(1, 1) << dl["eng"].offset),
         [(act, activation_fields(g4, in_addr=out3, in_cstride=1)),
          (wgt, weight_fields(g4.d, w_addr=w4, bias_addr=4 * 32)),
          (out, output_fields(g4.d, out_addr=out4, out_cstride=1))]),
    ]
    got = _run_core_commands(dut, core, commands, stall=0.25, seed=4)
    want = _expect_written(image, out1, y1, hw)
    want = _expect_written(want.tobytes(), out2, y2, hw)
    want = _expect_written(want.tobytes(), out3, y3, 1)
    np.testing.assert_array_equal(got, _expect_written(want.tobytes(), out4, y4, 1))


def test_winograd_layer_in_row_bands():
    """A layer as the planner splits it: COMPUTEs of output rows ``[r0, r1)`` one after the
    other on the unchanged engine, each reading only its band of input rows in place
    (``schedule.winograd_band``), the writer dropping the rows that saw the engine's padding
    inside the image: together golden's output, byte for byte."""
    cfg = _cfg(2, 2, 1)
    n, depth, C, K, H, W = cfg.n, 2048, 3, 3, 9, 6
    rng = np.random.default_rng(21)
    x, kw = random_winograd(cfg, C, K, H, W, rng, extremes=True)
    want = golden.winograd_conv3x3(x, tile=2, cfg=cfg, **kw)[0]
    spec = WinogradLayer(cfg, **kw)
    Ho, Wo = want.shape[1:]
    cs_in, cs_out = H * W + 1, Ho * Wo
    image, (x_addr, w_addr, out_addr) = _layer_image(rng, depth, [
        (x[0], (cs_in, W, 1)), (kw["U"].reshape(K, C, n * n), (C * n * n, n * n, 1)),
        (np.zeros((K, Ho, Wo), np.int64), (cs_out, Wo, 1))])
    params = np.zeros(64, np.int64)
    params[:K] = kw["bias"]
    act = ActivationReader(cfg, depth=depth, width=32)
    wgt = WeightReader(cfg, depth=depth, width=32, param_bytes=256, ports=2)
    out = OutputWriter(cfg, depth=depth, width=32, ports=2)
    sp = Scratchpad(depth, 32, dma_width=8, reads=3, writes=2, init=image)
    dut = _Bench(sp, {"act": act, "wgt": wgt, "out": out}, _params(params, 2), WinogradAccel(cfg))
    bands = []
    for r0, r1 in ((0, 3), (3, 7), (7, Ho)):
        a, b, skip = schedule.winograd_band(H, 1, r0, r1)
        g = spec.geometry(b - a, W)
        bands.append((spec.word(b - a, W), [
            (act, pack(act.cmd.shape(), activation_fields(g, in_addr=x_addr + a * W, in_cstride=cs_in))),
            (wgt, pack(wgt.cmd.shape(), weight_fields(g, w_addr=w_addr, bias_addr=0))),
            (out, pack(out.cmd.shape(), output_fields(g, out_addr=out_addr + r0 * Wo, out_cstride=cs_out,
                                                      rows=(skip, skip + r1 - r0))))]))
    assert [schedule.winograd_band(H, 1, *r)[2] for r in ((0, 3), (3, 7), (7, Ho))] == [0, 1, 1]
    res = {}

    async def bench(ctx):
        for word, units in bands:
            ctx.set(dut.engine.layer.as_value(), word)
            ctx.set(dut.engine.start, 1)
            await _start(ctx, *units)
            ctx.set(dut.engine.start, 0)
            await _until_idle(ctx, [u for u, _ in units], 5000)
        res["sp"] = np.frombuffer(bytes(sp.byte_at(ctx, a) for a in range(depth)), np.uint8)

    _sim(dut, bench)
    np.testing.assert_array_equal(res["sp"], _expect_written(image, out_addr, want, cs_out))


# -- the core's resource estimate -------------------------------------------------------------

@pytest.mark.parametrize("cfg,kw", [
    (AcceleratorConfig(tile=2, unroll=2, unroll_in=2, requant="fixed", max_width=8, max_channels=4),
     dict(max_pool=4, window_sets=1)),
    (AcceleratorConfig(tile=2, unroll=1, requant="fixed", max_width=8, max_channels=4), dict(direct_only=True)),
], ids=["dual-fixed-sets1-pool4", "direct-only-fixed"])
def test_core_resource_estimate_counts_the_rtlil(cfg, kw):
    """``perf.estimate_resources(cfg, max_kernel=...)`` of a core: its block RAMs
    (``perf.core_memories``: weight buffer, Winograd line buffer, the window generator's banks,
    the pool's line buffer) are the core's RTLIL memories but the window generator's FIFO, and
    its DSPs (PE array, requant multipliers, the element-wise unit's) its ``$mul`` cells."""
    core = Core(cfg, max_kernel=3, **kw)
    text = rtlil.convert(core)
    got = collections.Counter((int(w), int(d)) for w, d in re.findall(r"memory width (\d+) size (\d+) ", text))
    got -= collections.Counter({(group_layout(core.buf).size, schedule.FIFO_DEPTH): 1})
    mems = perf.core_memories(cfg, 3, **kw)
    assert got == collections.Counter({(mem.width, mem.depth): mem.count for mem in mems})
    assert [mem.name for mem in mems][-2:] == ["window buffer", "pool line buffer"]
    est = perf.estimate_resources(cfg, max_kernel=3, **kw)
    assert est["dsp"] == len(re.findall(r"cell \$mul ", text))
    assert est["dsp"] > cfg.multipliers + schedule.eltwise_multipliers(cfg)      # and the requants'
    assert est["memory_bits"] == sum(mem.count * mem.depth * mem.width for mem in mems)
