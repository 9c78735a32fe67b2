"""The LOAD and STORE executors: each takes one transfer instruction at a time from its
sequencer queue (:func:`rtl.ctrl.sequencer.entry_layout`), checks it, hands it to its DMA engine
(:mod:`rtl.mem.dma`) as one block and answers on ``done`` once the block has moved.

An instruction copies ``count`` bursts of ``burst`` bytes, burst ``j`` from external byte
``ext_addr + j * ext_stride`` to scratchpad byte ``sp_addr + j * sp_stride`` (docs/image.md):
exactly the DMA's 2-D block, rows = bursts, in port words. Checked before anything moves
(status codes of docs/image.md):

- "memory outside its regions" when the external bytes leave the window ``[lo, hi)`` (inputs:
  the host sets them from the image, e.g. parameters to the end of the activations for loads,
  the activation regions for stores; ``hi`` starts at the constructor's ``mem_bytes``, the
  memory's size, which no window can pass), when the
  scratchpad bytes leave the buffer, or when a STORE names a buffer other than the activations;
- "bad instruction" when a row does not start on a port word on both sides (``ext_addr``,
  ``sp_addr``, and the strides of a transfer of several rows, multiples of the word): the DMA
  moves whole words, masking only a row's tail.

A transfer with no rows or empty rows moves nothing and is answered at once, as the
interpreter does. The checks take two cycles (a registered product for the last row's start).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from rtl.mem.dma import DMALoad, DMAStore
from rtl.mem.port import PortSignature
from wino_gen import isa

from .sequencer import CODE, DONE, entry_layout

_FIELDS = {f.name: f for f in isa.LAYOUTS["LOAD"]}


def sp_addr_width(nbytes: int, word_bytes: int) -> int:
    """Address bits of a scratchpad of ``nbytes`` bytes in ``word_bytes``-byte words."""
    return max(1, ceil_log2(-(-nbytes // word_bytes)))


class _Executor(wiring.Component):
    """What both directions share: the instruction check and the DMA block command. A
    subclass names its DMA ``engine`` and its sequencer ``queue``."""

    engine: type
    queue: str

    def __init__(self, port: PortSignature, *, sp_bytes: dict[str, int], mem_bytes: int, burst: int,
                 page_bytes: int = 0, max_instrs: int = 65535):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        for name, n in sp_bytes.items():
            if name not in isa.BUFFERS:
                raise ValueError(f"sp_bytes: {name!r} names no buffer ({', '.join(isa.BUFFERS)})")
            if n < 1:
                raise ValueError(f"sp_bytes[{name!r}] {n}: must be positive")
        if not sp_bytes:
            raise ValueError("sp_bytes: at least one scratchpad")
        W = port.word_bytes
        if not 1 <= mem_bytes <= W << port.addr_width:
            raise ValueError(f"mem_bytes {mem_bytes}: must be in 1..{W << port.addr_width} (the port's reach)")
        if max_instrs < 1:
            raise ValueError(f"max_instrs {max_instrs}: must be positive")
        self.port_sig, self.sp_bytes, self.mem_bytes = port, dict(sp_bytes), mem_bytes
        depth = max(-(-n // W) for n in sp_bytes.values())
        self.dma = self.engine(port, sp_depth=depth, max_rows=(1 << _FIELDS["count"].bits) - 1,
                               max_row_bytes=(1 << _FIELDS["burst"].bits) - 1, burst=burst,
                               page_bytes=page_bytes, tag_width=1)
        ext = port.addr_width + exact_log2(W) + 1
        super().__init__({
            "instr": In(stream.Signature(entry_layout(self.queue, max_instrs))),
            "done": Out(stream.Signature(DONE)),
            "mem": Out(port),
            "lo": In(ext), "hi": In(ext, init=mem_bytes),
            **self._sp_members(),
        })

    def _sp_members(self) -> dict:
        W, dw = self.port_sig.word_bytes, self.port_sig.data_width
        return {f"sp_{b}": In(WritePort.Signature(addr_width=sp_addr_width(n, W), shape=dw, granularity=8))
                for b, n in self.sp_bytes.items()}

    def _check(self, m, cur):
        """``(status, empty)`` of the latched instruction ``cur`` (valid the cycle after the
        spans were registered)."""
        W = self.port_sig.word_bytes
        lw = exact_log2(W)
        span_e, span_s = Signal(_FIELDS["count"].bits + _FIELDS["ext_stride"].bits), \
            Signal(_FIELDS["count"].bits + _FIELDS["sp_stride"].bits)
        m.d.sync += [span_e.eq((cur.count - 1) * cur.ext_stride), span_s.eq((cur.count - 1) * cur.sp_stride)]
        size = Signal(range(max(self.sp_bytes.values()) + 1))
        with m.Switch(cur.buffer):
            for b, n in self.sp_bytes.items():
                with m.Case(isa.BUFFERS.index(b)):
                    m.d.comb += size.eq(n)
        several = cur.count > 1
        aligned = ((cur.ext_addr[:lw] == 0) & (cur.sp_addr[:lw] == 0)
                   & (~several | ((cur.ext_stride[:lw] == 0) & (cur.sp_stride[:lw] == 0))))
        end = cur.ext_addr + span_e + cur.burst
        inside = ((cur.ext_addr >= self.lo) & (end <= self.hi) & (end <= self.mem_bytes)
                  & (cur.sp_addr + span_s + cur.burst <= size))
        status = Signal(DONE["status"].shape)
        m.d.comb += status.eq(Mux(~inside, CODE["memory outside its regions"],
                                  Mux(~aligned, CODE["bad instruction"], 0)))
        return status, (cur.count == 0) | (cur.burst == 0)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self.dma
        wiring.connect(m, wiring.flipped(self.mem), dma.mem)
        lw = exact_log2(self.port_sig.word_bytes)
        ins = self.instr
        cur = Signal(ins.payload.instr.shape())
        self._connect_sp(m, dma, cur)
        status, empty = self._check(m, cur)
        done = self.done
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += ins.ready.eq(1)
                with m.If(ins.valid):
                    m.d.sync += cur.eq(ins.payload.instr)
                    m.next = "SPAN"
            with m.State("SPAN"):
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(empty | (status != 0)):
                    m.d.sync += [done.valid.eq(1), done.payload.status.eq(Mux(empty, 0, status))]
                    m.next = "ANSWER"
                with m.Else():
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                p = dma.cmd.payload
                m.d.comb += [dma.cmd.valid.eq(1), p.ext.eq(cur.ext_addr >> lw), p.stride.eq(cur.ext_stride >> lw),
                             p.sp.eq(cur.sp_addr >> lw), p.sp_stride.eq(cur.sp_stride >> lw), p.rows.eq(cur.count),
                             p.row_bytes.eq(cur.burst), p.tag.eq(0)]
                with m.If(dma.cmd.ready):
                    m.next = "MOVE"
            with m.State("MOVE"):
                m.d.comb += dma.done.ready.eq(1)
                with m.If(dma.done.valid):
                    m.d.sync += [done.valid.eq(1), done.payload.status.eq(0)]
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                with m.If(done.ready):
                    m.d.sync += done.valid.eq(0)
                    m.next = "IDLE"
        return m


class LoadExecutor(_Executor):
    """LOAD: external memory -> one of the scratchpads ``sp_bytes`` names (``sp_act``,
    ``sp_wgt``, ``sp_param``: write ports to connect to each buffer's memory; ``sp_act_ready``:
    the activation scratchpad's ``dma_w_ready``)."""

    engine, queue = DMALoad, "load"

    def _sp_members(self) -> dict:
        """Each buffer's write port; the activations' ``sp_act_ready`` (its port is shared)."""
        ready = {"sp_act_ready": In(1, init=1)} if "act" in self.sp_bytes else {}
        return {**super()._sp_members(), **ready}

    def _connect_sp(self, m, dma, cur):
        """The DMA's one write port goes to the buffer the instruction names."""
        sp = dma.sp
        for b in self.sp_bytes:
            port = getattr(self, f"sp_{b}")
            m.d.comb += [port.addr.eq(sp.addr), port.data.eq(sp.data),
                         port.en.eq(Mux(cur.buffer == isa.BUFFERS.index(b), sp.en, 0))]
        if "act" in self.sp_bytes:
            m.d.comb += dma.sp_ready.eq((cur.buffer != isa.BUFFERS.index("act")) | self.sp_act_ready)


class StoreExecutor(_Executor):
    """STORE: the activation scratchpad (``sp_act``, a read port of its memory) -> external memory."""

    engine, queue = DMAStore, "store"

    def __init__(self, port: PortSignature, *, sp_bytes: int, **kw):
        super().__init__(port, sp_bytes={"act": sp_bytes}, **kw)

    def _sp_members(self) -> dict:
        W = self.port_sig.word_bytes
        return {"sp_act": In(ReadPort.Signature(addr_width=sp_addr_width(self.sp_bytes["act"], W),
                                                shape=self.port_sig.data_width))}

    def _connect_sp(self, m, dma, cur):
        wiring.connect(m, dma.sp, wiring.flipped(self.sp_act))

