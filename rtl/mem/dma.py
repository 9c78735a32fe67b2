"""DMA engines: move 2-D strided blocks between the memory port (:mod:`.port`) and a
scratchpad, the only traffic between external memory and the compute core's buffers.

A block is ``rows`` rows of ``row_bytes`` bytes; row ``r`` starts at external word
``ext + r * stride`` and at scratchpad word ``sp + r * sp_stride`` (all in port words of
``W`` bytes, so rows start word-aligned on both sides; ``row_bytes`` need not be a multiple of
``W``: the last word of a row moves only its ``row_bytes % W`` low bytes, masked by the port's
``strb`` on stores and the scratchpad's byte enables on loads, so the bytes beside a row are
never touched). The scratchpad is an ``amaranth.lib.memory.Memory`` of ``W``-byte words owned
by whoever builds the system: a load engine drives one of its write ports (byte granularity),
a store engine one of its read ports, and both connect with ``wiring.connect``.

Each engine takes block commands on ``cmd`` and answers each with its ``tag`` on ``done``, in
command order, once the block is in the scratchpad (load) or accepted by the port (store: by
the port's ordering contract every later burst sees it). Commands with no rows or empty rows
are answered at once. The burst issuer runs ahead of the data side by up to ``queue`` commands
so that consecutive blocks stream without a gap; it splits each row into bursts of at most
``burst`` words that never cross a ``page_bytes`` boundary (an SDRAM row: a burst that crosses
one pays a second row miss inside it), ``page_bytes = 0`` for no boundary.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2, exact_log2

from .port import PortSignature


def block_layout(port: PortSignature, sp_depth: int, max_rows: int, max_row_bytes: int,
                 tag_width: int) -> data.StructLayout:
    """One block command: external and scratchpad start word and row strides, rows, bytes per row, tag."""
    sp_aw = max(1, ceil_log2(sp_depth))
    return data.StructLayout({"ext": port.addr_width, "stride": port.addr_width, "sp": sp_aw, "sp_stride": sp_aw,
                              "rows": bits_for(max_rows), "row_bytes": bits_for(max_row_bytes), "tag": tag_width})


class _Engine(wiring.Component):
    """What both directions share: parameters, the burst issuer, the data side's row walker."""

    write = False

    def __init__(self, port: PortSignature, *, sp_depth: int, max_rows: int, max_row_bytes: int, burst: int,
                 page_bytes: int = 0, tag_width: int = 4, queue: int = 2):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if sp_depth < 1:
            raise ValueError(f"sp_depth {sp_depth}: must be positive")
        if max_rows < 1:
            raise ValueError(f"max_rows {max_rows}: must be positive")
        if max_row_bytes < 1:
            raise ValueError(f"max_row_bytes {max_row_bytes}: must be positive")
        if not 1 <= burst <= port.max_burst:
            raise ValueError(f"burst {burst}: must be in 1..{port.max_burst} (the port's max_burst)")
        W = port.word_bytes
        if page_bytes and (page_bytes % W or (page_bytes & (page_bytes - 1)) or page_bytes // W > 1 << port.addr_width):
            raise ValueError(f"page_bytes {page_bytes}: must be 0 or a power of two multiple of the word ({W} bytes)")
        if tag_width < 1:
            raise ValueError(f"tag_width {tag_width}: must be positive")
        if queue < 1:
            raise ValueError(f"queue {queue}: must be positive")
        self.port_sig, self.sp_depth, self.burst, self.page_bytes, self.queue = port, sp_depth, burst, page_bytes, queue
        self.max_row_words = -(-max_row_bytes // W)
        self.layout = block_layout(port, sp_depth, max_rows, max_row_bytes, tag_width)
        sp_aw = max(1, ceil_log2(sp_depth))
        sp = (In(WritePort.Signature(addr_width=sp_aw, shape=port.data_width, granularity=8)) if not self.write
              else In(ReadPort.Signature(addr_width=sp_aw, shape=port.data_width)))
        super().__init__({
            "cmd": In(stream.Signature(self.layout)),
            "done": Out(stream.Signature(data.StructLayout({"tag": tag_width}))),
            "mem": Out(port),
            "sp": sp,
            **({} if self.write else {"sp_ready": In(1, init=1)}),
        })

    def _row_words(self, row_bytes):
        return (row_bytes + self.port_sig.word_bytes - 1) >> exact_log2(self.port_sig.word_bytes)

    def _issuer(self, m, desc):
        """Accept block commands, queue them for the data side (``desc``) and issue their bursts."""
        cmd, pc = self.cmd, self.mem.cmd
        busy = Signal()
        addr, row_start, stride = (Signal(self.port_sig.addr_width, name=n) for n in ("addr", "row_start", "stride"))
        left, row_words = Signal(range(self.max_row_words + 1)), Signal(range(self.max_row_words + 1))
        rows_left = Signal.like(cmd.payload.rows)
        m.d.comb += [cmd.ready.eq(~busy & desc.w_rdy), desc.w_data.eq(cmd.payload.as_value()),
                     desc.w_en.eq(cmd.valid & cmd.ready)]
        words = self._row_words(cmd.payload.row_bytes)
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [addr.eq(cmd.payload.ext), row_start.eq(cmd.payload.ext), stride.eq(cmd.payload.stride),
                         left.eq(words), row_words.eq(words), rows_left.eq(cmd.payload.rows),
                         busy.eq((cmd.payload.rows != 0) & (cmd.payload.row_bytes != 0))]
        n, row_burst = (Signal(range(max(self.burst, self.max_row_words) + 1), name=x) for x in ("n", "row_burst"))
        m.d.comb += [row_burst.eq(Mux(left < self.burst, left, self.burst)), n.eq(row_burst)]
        if self.page_bytes:
            pw = self.page_bytes // self.port_sig.word_bytes
            to_page = Signal(range(pw + 1))
            m.d.comb += to_page.eq(pw - addr[:exact_log2(pw)])
            with m.If(to_page < row_burst):
                m.d.comb += n.eq(to_page)
        m.d.comb += [pc.valid.eq(busy), pc.payload.addr.eq(addr), pc.payload.length.eq(n),
                     pc.payload.write.eq(self.write)]
        with m.If(pc.valid & pc.ready):
            with m.If(left == n):
                m.d.sync += [rows_left.eq(rows_left - 1), row_start.eq(row_start + stride),
                             addr.eq(row_start + stride), left.eq(row_words)]
                with m.If(rows_left == 1):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += [addr.eq(addr + n), left.eq(left - n)]

    def _walker(self, m, desc, pending):
        """The data side: take queued blocks (while no answer is ``pending``) and walk their words.
        Returns ``(active, sp_addr, last, strb, step)``: drive ``step`` high when the word at
        ``sp_addr`` moves (``last``: the block's final word; ``strb``: its byte enables)."""
        W, lay = self.port_sig.word_bytes, self.layout
        d = data.View(lay, desc.r_data)
        active, step = Signal(), Signal()
        sp_row, sp_addr, sp_stride = (Signal.like(d.sp, name=n) for n in ("sp_row", "sp_addr", "sp_stride"))
        col, row_words = Signal(range(self.max_row_words + 1)), Signal(range(self.max_row_words + 1))
        rows_left, rem, tag = Signal.like(d.rows), Signal(range(W)), Signal.like(d.tag)
        strb, last = Signal(W), Signal()
        done = self.done
        m.d.comb += [desc.r_en.eq(~active & ~pending & ~done.valid), done.payload.tag.eq(tag),
                     last.eq((col == 1) & (rows_left == 1)),
                     strb.eq(Mux((col == 1) & (rem != 0), (Const(1, W + 1) << rem) - 1, (1 << W) - 1))]
        with m.If(desc.r_en & desc.r_rdy):
            empty = (d.rows == 0) | (d.row_bytes == 0)
            words = self._row_words(d.row_bytes)
            m.d.sync += [sp_row.eq(d.sp), sp_addr.eq(d.sp), sp_stride.eq(d.sp_stride), col.eq(words),
                         row_words.eq(words), rows_left.eq(d.rows), rem.eq(d.row_bytes[:exact_log2(W)] if W > 1 else 0),
                         tag.eq(d.tag), active.eq(~empty), done.valid.eq(empty)]
        with m.If(done.valid & done.ready):
            m.d.sync += done.valid.eq(0)
        with m.If(step):
            with m.If(col == 1):
                m.d.sync += [sp_row.eq(sp_row + sp_stride), sp_addr.eq(sp_row + sp_stride), col.eq(row_words),
                             rows_left.eq(rows_left - 1)]
                with m.If(rows_left == 1):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [sp_addr.eq(sp_addr + 1), col.eq(col - 1)]
        return active, sp_addr, last, strb, step


class DMALoad(_Engine):
    """External memory -> scratchpad: read bursts on ``mem``, words into the scratchpad's write
    port ``sp`` in cycles ``sp_ready`` is high (low: the port is another writer's; the word
    waits on ``mem.r``)."""

    write = False

    def elaborate(self, platform):
        m = Module()
        m.submodules.desc = desc = SyncFIFO(width=self.layout.size, depth=self.queue)
        self._issuer(m, desc)
        active, sp_addr, last, strb, step = self._walker(m, desc, Const(0))
        r = self.mem.r
        m.d.comb += [self.mem.w.valid.eq(0), r.ready.eq(active & self.sp_ready), step.eq(r.valid & r.ready),
                     self.sp.addr.eq(sp_addr), self.sp.data.eq(r.payload.data), self.sp.en.eq(Mux(step, strb, 0))]
        with m.If(step & last):
            m.d.sync += self.done.valid.eq(1)
        return m


class DMAStore(_Engine):
    """Scratchpad -> external memory: words from the scratchpad's read port ``sp`` as write bursts on ``mem``.
    The read port's output register is the one pipeline stage (its enable is the stage's), so a
    stalled ``w`` holds its word without a second copy."""

    write = True

    def elaborate(self, platform):
        m = Module()
        m.submodules.desc = desc = SyncFIFO(width=self.layout.size, depth=self.queue)
        self._issuer(m, desc)
        w = self.mem.w
        w_last = Signal()
        active, sp_addr, last, strb, step = self._walker(m, desc, w.valid & w_last)
        en = Signal()
        m.d.comb += [self.mem.r.ready.eq(0), en.eq(~w.valid | w.ready), step.eq(en & active),
                     self.sp.en.eq(en), self.sp.addr.eq(sp_addr), w.payload.data.eq(self.sp.data)]
        with m.If(en):
            m.d.sync += [w.valid.eq(active), w.payload.strb.eq(strb), w_last.eq(last)]
        with m.If(w.valid & w.ready & w_last):
            m.d.sync += self.done.valid.eq(1)
        return m
