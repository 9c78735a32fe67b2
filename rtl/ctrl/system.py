"""The control system: the sequencer, its program fetch and the LOAD/STORE executors sharing
one memory port through :class:`rtl.mem.arbiter.Arbiter` (fetch, loads, stores: masters 0, 1,
2), and the three scratchpads of :data:`wino_gen.isa.BUFFERS` as plain memories of port words.
The compute unit sits outside, on ``compute``/``compute_done``, so the same system serves a
mock unit in the tests and the compute core in the full system; it reaches the scratchpads
through ``sp`` (one ``amaranth.lib.memory.Memory`` per buffer, to add its own ports to).

The host sets the external windows the transfers may touch (``load_lo``/``load_hi``,
``store_lo``/``store_hi``, bytes; the image's regions) and starts a program on ``start``.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.mem.arbiter import POLICIES, Arbiter
from rtl.mem.port import PortSignature
from wino_gen import isa, schedule

from .sequencer import DONE, Sequencer
from .transfer import LoadExecutor, StoreExecutor

_STATUS = ("busy", "done", "status", "index", "cycles", "trace")


class ControlSystem(wiring.Component):
    """``sp_bytes``: bytes of each scratchpad (every name of :data:`isa.BUFFERS`);
    ``mem_bytes``: the external memory; ``burst``: the DMA engines' longest burst in words;
    the rest as :class:`Sequencer` and :class:`rtl.mem.arbiter.Arbiter` take them."""

    def __init__(self, port: PortSignature, *, sp_bytes: dict[str, int], mem_bytes: int, burst: int,
                 page_bytes: int = 0, policy: str = "round-robin", max_instrs: int = 65535,
                 fetch_depth: int = schedule.FETCH_DEPTH, queue_depth: int = schedule.QUEUE_DEPTH,
                 token_bits: int = 8):
        if set(sp_bytes) != set(isa.BUFFERS):
            raise ValueError(f"sp_bytes: needs exactly the buffers {', '.join(isa.BUFFERS)}, got {sorted(sp_bytes)}")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: must be one of {', '.join(POLICIES)}")
        kw = dict(mem_bytes=mem_bytes, burst=burst, page_bytes=page_bytes, max_instrs=max_instrs)
        self.seq = Sequencer(port, max_instrs=max_instrs, fetch_depth=fetch_depth, queue_depth=queue_depth,
                             token_bits=token_bits)
        self.loader = LoadExecutor(port, sp_bytes=sp_bytes, **kw)
        self.storer = StoreExecutor(port, sp_bytes=sp_bytes["act"], **kw)
        self.arb = Arbiter(port, 3, policy=policy)
        W = port.word_bytes
        self.sp = {b: Memory(shape=port.data_width, depth=-(-n // W), init=[]) for b, n in sp_bytes.items()}
        seq = self.seq.signature.members
        ext = self.loader.signature.members["lo"].shape
        super().__init__({
            "start": In(stream.Signature(self.seq.start_layout)),
            "compute": Out(stream.Signature(self.seq.entries["compute"])), "compute_done": In(stream.Signature(DONE)),
            "mem": Out(port),
            **{k: Out(seq[k].shape) for k in _STATUS},
            "load_lo": In(ext), "load_hi": In(ext, init=mem_bytes),
            "store_lo": In(ext), "store_hi": In(ext, init=mem_bytes),
        })

    def elaborate(self, platform):
        m = Module()
        seq, ld, st, arb = self.seq, self.loader, self.storer, self.arb
        m.submodules.seq, m.submodules.loader, m.submodules.storer, m.submodules.arb = seq, ld, st, arb
        for b, mem in self.sp.items():
            m.submodules[f"sp_{b}"] = mem
            wiring.connect(m, getattr(ld, f"sp_{b}"), mem.write_port(granularity=8))
        wiring.connect(m, st.sp_act, self.sp["act"].read_port(transparent_for=()))
        for k, master in enumerate((seq.fetch, ld.mem, st.mem)):
            wiring.connect(m, master, arb.req[k])
        wiring.connect(m, wiring.flipped(self.mem), arb.mem)
        wiring.connect(m, seq.load, ld.instr)
        wiring.connect(m, seq.store, st.instr)
        wiring.connect(m, ld.done, seq.load_done)
        wiring.connect(m, st.done, seq.store_done)
        wiring.connect(m, wiring.flipped(self.start), seq.start)
        wiring.connect(m, seq.compute, wiring.flipped(self.compute))
        wiring.connect(m, wiring.flipped(self.compute_done), seq.compute_done)
        m.d.comb += [getattr(self, k).eq(getattr(seq, k)) for k in _STATUS]
        m.d.comb += [ld.lo.eq(self.load_lo), ld.hi.eq(self.load_hi), st.lo.eq(self.store_lo), st.hi.eq(self.store_hi)]
        return m
