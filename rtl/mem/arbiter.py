"""The arbiter: ``n`` masters (program fetch, DMA loads, DMA stores) share one memory port.

It grants whole bursts, one command at a time, round-robin (every waiting master is served
within ``n`` grants) or by fixed priority (the lowest index first: program fetch, say, before
bulk loads). A master's bursts keep their order (each master issues in order and the port
serves in order), and the port's ordering contract holds across masters in grant order. Each
granted burst's owner and length wait in a queue, one for reads and one for writes, which
routes the read words back and takes the write words from the owner, in command order; a full
queue holds the next grant of its kind. A grant stays fixed while its command waits, so the
port's ``cmd`` keeps its payload until taken.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .port import PortSignature

POLICIES = ("round-robin", "priority")


class Arbiter(wiring.Component):
    def __init__(self, port: PortSignature, n: int, *, policy: str = "round-robin", depth: int = 4):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if n < 1:
            raise ValueError(f"n {n}: must be positive")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: must be one of {', '.join(POLICIES)}")
        if depth < 1:
            raise ValueError(f"depth {depth}: must be positive")
        self.port_sig, self.n, self.policy, self.depth = port, n, policy, depth
        super().__init__({"req": In(port).array(n), "mem": Out(port)})

    def _pick(self, m, last):
        """The master to grant next: the first waiting one after ``last`` (round-robin) or after
        ``n - 1`` (priority)."""
        pick = Signal(range(self.n))
        with m.Switch(last if self.policy == "round-robin" else self.n - 1):
            for lo in range(self.n):
                with m.Case(lo):
                    for k in reversed([(lo + o) % self.n for o in range(1, self.n + 1)]):
                        with m.If(self.req[k].cmd.valid):
                            m.d.comb += pick.eq(k)
        return pick

    def _owners(self, m, name):
        owner = data.StructLayout({"id": range(self.n), "length": self.mem.cmd.payload.length.shape()})
        q = SyncFIFO(width=owner.size, depth=self.depth)
        m.submodules[name] = q
        return q, data.View(owner, q.r_data)

    def _route(self, m, q, head, beats, name):
        """Move the head burst's words on the stream ``beats`` (the port's ``r`` or ``w``) and
        retire the head after its last word."""
        count = Signal.like(head.length, name=f"{name}_count")
        with m.If(beats.valid & beats.ready):
            with m.If(count + 1 == head.length):
                m.d.sync += count.eq(0)
                m.d.comb += q.r_en.eq(1)
            with m.Else():
                m.d.sync += count.eq(count + 1)

    def elaborate(self, platform):
        m = Module()
        out, req = self.mem.cmd, self.req
        last, held, held_sel, sel = Signal(range(self.n)), Signal(), Signal(range(self.n)), Signal(range(self.n))
        pick = self._pick(m, last)
        m.d.comb += sel.eq(Mux(held, held_sel, pick))
        rq, rhead = self._owners(m, "reads")
        wq, whead = self._owners(m, "writes")
        valid = Signal()
        with m.Switch(sel):
            for k in range(self.n):
                with m.Case(k):
                    m.d.comb += [out.payload.eq(req[k].cmd.payload), valid.eq(req[k].cmd.valid)]
        room = Mux(out.payload.write, wq.w_rdy, rq.w_rdy)
        fire = out.valid & out.ready
        m.d.comb += out.valid.eq(valid & room)
        for k in range(self.n):
            m.d.comb += req[k].cmd.ready.eq((sel == k) & out.ready & room)
        m.d.sync += [held.eq(out.valid & ~out.ready), held_sel.eq(sel)]
        with m.If(fire):
            m.d.sync += last.eq(sel)
        for q, write in ((rq, 0), (wq, 1)):
            m.d.comb += [q.w_data.eq(Cat(sel, out.payload.length)), q.w_en.eq(fire & (out.payload.write == write))]
        r, w = self.mem.r, self.mem.w
        for k in range(self.n):
            m.d.comb += [req[k].r.payload.eq(r.payload), req[k].r.valid.eq(r.valid & rq.r_rdy & (rhead.id == k)),
                         req[k].w.ready.eq(w.ready & wq.r_rdy & (whead.id == k))]
        with m.Switch(rhead.id):
            for k in range(self.n):
                with m.Case(k):
                    m.d.comb += r.ready.eq(rq.r_rdy & req[k].r.ready)
        with m.Switch(whead.id):
            for k in range(self.n):
                with m.Case(k):
                    m.d.comb += [w.payload.eq(req[k].w.payload), w.valid.eq(wq.r_rdy & req[k].w.valid)]
        self._route(m, rq, rhead, r, "r")
        self._route(m, wq, whead, w, "w")
        return m
