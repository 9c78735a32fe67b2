"""Scratchpad: a block-RAM buffer of ``depth`` bytes between the DMA engines (:mod:`.dma`) and
the compute core's feeders (:mod:`rtl.feed`), byte-addressed as ``docs/image.md`` lays out
activations and weights.

Two kinds of ports:

- the DMA side, in the memory port's words of ``dma_width`` bits (``W`` bytes, word ``a`` holds
  bytes ``a*W .. a*W+W-1``): ``dma_w``, the ``amaranth.lib.memory`` write port (byte enables)
  that :class:`~rtl.mem.dma.DMALoad` drives, and ``dma_r``, the read port that
  :class:`~rtl.mem.dma.DMAStore` drives; both connect with ``wiring.connect``;
- the feeder side, byte windows of ``width`` bits (``B`` bytes): ``rd[i]`` returns the ``B``
  bytes from any byte address in the cycle after ``en`` (held while ``en`` is low), ``wr[i]``
  writes the enabled ones of ``B`` bytes at any byte address, in one cycle each.

Tensors start anywhere (a tile's first row is ``in_addr + c*in_cstride + y*W``, rarely word
aligned), so the feeders cannot assume alignment. Any ``B`` consecutive bytes lie in two
consecutive words, one even and one odd, so the memory is two banks of ``B``-byte words (even
words, odd words) read or written together: word ``w`` is bank ``w & 1``, row ``w >> 1``, and
a window at byte ``a`` takes its low part from word ``a // B`` and the rest from the next word,
rotated by ``a % B``. Addresses wrap at ``depth`` (a power of two), so a window that starts
before address 0 (a padding column left of a band at address 0) reads valid memory; the feeder
masks those bytes. A read does not see a write of the same cycle.

Every port is a port of both banks. A block RAM has two ports, of which one writes while the
other reads, and copies of a bank serve more read ports; so a scratchpad with one write
window has one write port per bank, which the window shares with the DMA's load: the window
writes first (a COMPUTE keeps its cycles), and ``dma_w_ready`` is low in a cycle it writes,
when the DMA holds its word (a LOAD beside a COMPUTE's output may take longer than the
planner's transfer model says). More write windows (the feeders' tests) make every window a
write port of every bank: yosys builds that in logic, not block RAM; there the DMA is never
held.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2


def _pow2_bytes(bits: int) -> bool:
    return bits >= 8 and bits % 8 == 0 and (bits // 8) & (bits // 8 - 1) == 0


class ByteReadSignature(wiring.Signature):
    """A feeder's read window (the feeder's view): byte address ``addr`` and ``en``; ``data``
    holds bytes ``addr .. addr + B - 1`` (byte ``j`` in ``data[8j:8j+8]``) from the cycle after
    ``en`` until the next ``en``."""

    def __init__(self, *, addr_width: int, width: int):
        self.addr_width, self.width = addr_width, width
        super().__init__({"addr": Out(addr_width), "en": Out(1), "data": In(width)})


class ByteWriteSignature(wiring.Signature):
    """A feeder's write window (the feeder's view): byte ``j`` of ``data`` goes to byte address
    ``addr + j`` where ``en[j]`` is high."""

    def __init__(self, *, addr_width: int, width: int):
        self.addr_width, self.width = addr_width, width
        super().__init__({"addr": Out(addr_width), "data": Out(width), "en": Out(width // 8)})


class Scratchpad(wiring.Component):
    """``depth`` bytes (a power of two, at least two words) as two banks of ``width``-bit words;
    ``dma_width`` the memory port's word (dividing ``width``); ``reads``/``writes`` feeder
    windows; ``init`` the initial bytes (a testbench's preloaded layer)."""

    def __init__(self, depth: int, width: int, *, dma_width: int, reads: int = 1, writes: int = 0,
                 init: bytes = b""):
        if not _pow2_bytes(width):
            raise ValueError(f"width {width}: must be 8 times a power of two")
        if not _pow2_bytes(dma_width) or dma_width > width:
            raise ValueError(f"dma_width {dma_width}: must be 8 times a power of two, at most width ({width})")
        B = width // 8
        if depth < 2 * B or depth & (depth - 1):
            raise ValueError(f"depth {depth}: must be a power of two of at least two words ({2 * B} bytes)")
        if reads < 0 or writes < 0:
            raise ValueError(f"reads {reads}, writes {writes}: must not be negative")
        if len(init) > depth:
            raise ValueError(f"init: {len(init)} bytes exceed the depth ({depth})")
        self.depth, self.width, self.dma_width, self.word_bytes = depth, width, dma_width, B
        self.addr_width = ceil_log2(depth)
        dma_aw = ceil_log2(depth // (dma_width // 8))
        data = bytes(init).ljust(depth, b"\0")
        words = [int.from_bytes(data[i:i + B], "little") for i in range(0, depth, B)]
        self.banks = [Memory(shape=width, depth=depth // (2 * B), init=words[b::2]) for b in range(2)]
        sig = {"dma_w": Out(WritePort.Signature(addr_width=dma_aw, shape=dma_width, granularity=8)),
               "dma_r": Out(ReadPort.Signature(addr_width=dma_aw, shape=dma_width)), "dma_w_ready": Out(1)}
        win = {"addr_width": self.addr_width, "width": width}
        if reads:
            sig["rd"] = In(ByteReadSignature(**win)).array(reads)
        if writes:
            sig["wr"] = In(ByteWriteSignature(**win)).array(writes)
        self.n_reads, self.n_writes = reads, writes
        super().__init__(sig)

    def byte_at(self, ctx, addr: int) -> int:
        """The byte at ``addr`` as a testbench sees it now (``ctx``: a simulator context)."""
        w, j = divmod(addr % self.depth, self.word_bytes)
        return (ctx.get(self.banks[w & 1].data[w >> 1]) >> (8 * j)) & 0xFF

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank0, m.submodules.bank1 = self.banks
        dma = self._dma_write(m)
        self._dma_read(m)
        for i in range(self.n_reads):
            self._window_read(m, self.rd[i], i)
        if self.n_writes == 1:
            self._shared_write(m, dma, self._window_write(self.wr[0]))
        else:
            windows = list(self.wr) if self.n_writes else []
            for ports in (dma, *(self._window_write(wr) for wr in windows)):
                self._write_ports(m, ports)
            m.d.comb += self.dma_w_ready.eq(1)
        return m

    def _write_ports(self, m, ports):
        """A write port on each bank for ``ports``: per bank ``(row, data, byte enables)``."""
        for mem, (row, dat, en) in zip(self.banks, ports, strict=True):
            wp = mem.write_port(granularity=8)
            m.d.comb += [wp.addr.eq(row), wp.data.eq(dat), wp.en.eq(en)]

    def _shared_write(self, m, dma, win):
        """One write port per bank for the DMA's load and the window ``wr[0]``: the window's in a
        cycle it writes any byte (``dma_w_ready`` low), the DMA's otherwise."""
        busy = Signal(name="window_writes")
        m.d.comb += [busy.eq(self.wr[0].en != 0), self.dma_w_ready.eq(~busy)]
        ports = []
        for (d_row, d_dat, d_en), (w_row, w_dat, w_en) in zip(dma, win, strict=True):
            ports.append((Mux(busy, w_row, d_row), Mux(busy, w_dat, d_dat), Mux(busy, w_en, d_en)))
        self._write_ports(m, ports)

    def _dma_lane(self, addr):
        """Wide word and the DMA word's lane in it for a DMA word address."""
        k = exact_log2(self.width // self.dma_width)
        return addr >> k, (addr[:k] if k else Const(0, 1))

    def _dma_write(self, m):
        """The DMA load's write on each bank: ``(row, data, byte enables)``."""
        wd, B = self.dma_width // 8, self.word_bytes
        word, lane = self._dma_lane(self.dma_w.addr)
        wide_en = Signal(B)
        m.d.comb += wide_en.eq(self.dma_w.en << (lane * wd))
        return [(word >> 1, Cat(*[self.dma_w.data] * (B // wd)), Mux(word[0] == b, wide_en, 0))
                for b in range(len(self.banks))]

    def _dma_read(self, m):
        word, lane = self._dma_lane(self.dma_r.addr)
        ports = [mem.read_port(transparent_for=()) for mem in self.banks]
        odd, rlane = Signal(name="dma_odd"), Signal.like(lane, name="dma_lane")
        for rp in ports:
            m.d.comb += [rp.addr.eq(word >> 1), rp.en.eq(self.dma_r.en)]
        with m.If(self.dma_r.en):
            m.d.sync += [odd.eq(word[0]), rlane.eq(lane)]
        m.d.comb += self.dma_r.data.eq(Mux(odd, ports[1].data, ports[0].data).word_select(rlane, self.dma_width))

    def _rows(self, addr):
        """The window at byte ``addr``: its first word's parity, byte offset, and the rows of the
        even and the odd bank that hold it (word ``w`` and ``w + 1``)."""
        lb = exact_log2(self.word_bytes)
        w = addr >> lb
        return w[0], (addr[:lb] if lb else Const(0, 1)), ((w + 1) >> 1, w >> 1)

    def _window_read(self, m, rd, i):
        odd, off, rows = self._rows(rd.addr)
        ports = [mem.read_port(transparent_for=()) for mem in self.banks]
        r_odd, r_off = Signal(name=f"rd{i}_odd"), Signal.like(off, name=f"rd{i}_off")
        for rp, row in zip(ports, rows, strict=True):
            m.d.comb += [rp.addr.eq(row), rp.en.eq(rd.en)]
        with m.If(rd.en):
            m.d.sync += [r_odd.eq(odd), r_off.eq(off)]
        lo = Mux(r_odd, ports[1].data, ports[0].data)
        hi = Mux(r_odd, ports[0].data, ports[1].data)
        m.d.comb += rd.data.eq((Cat(lo, hi) >> (r_off * 8))[:self.width])

    def _window_write(self, wr):
        """A window's write on each bank: ``(row, data, byte enables)``."""
        odd, off, rows = self._rows(wr.addr)
        W, B = self.width, self.word_bytes
        dat, en = (wr.data << (off * 8))[:2 * W], (wr.en << off)[:2 * B]
        low, high = (dat[:W], en[:B]), (dat[W:], en[B:])     # for word w, for word w + 1
        ports = []
        for b, row in enumerate(rows):
            # bank 0 holds word w when w is even, else word w + 1; bank 1 the other one
            (d_even, e_even), (d_odd, e_odd) = (low, high) if b == 0 else (high, low)
            ports.append((row, Mux(odd, d_odd, d_even), Mux(odd, e_odd, e_even)))
        return ports
