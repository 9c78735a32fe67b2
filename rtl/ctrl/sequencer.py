"""The instruction sequencer: fetches a program of :mod:`wino_gen.isa` instructions from external
memory, checks and decodes each one and runs the LOAD, COMPUTE and STORE queues decoupled, with
VTA-style dependency tokens between neighbours (spec in docs/image.md).

- **Start**: a beat on ``start`` (taken while not ``busy``) names the program's byte address
  (a multiple of the port word, else "bad instruction" at index 0) and its instruction count
  (no END among them: "bad instruction" at index ``count``).
- **Fetch** reads the program over a memory-port master (:class:`rtl.mem.port.PortSignature`)
  in bursts of up to ``max_burst`` words into a prefetch FIFO of ``fetch_depth`` instructions;
  it only asks for words it has room for, so the shared port never waits on it.
- **Dispatch** takes one instruction a cycle, in program order: an unknown opcode, a dependency
  flag its queue does not have, a set bit outside the opcode's layout or a ``buffer``/``mode``
  that names nothing stop the sequencer with status "bad instruction" at that index before
  anything after it is dispatched. The rest go to their queue's FIFO (SYNC to the compute
  queue); END ends dispatch.
- **Queues** each start their head when its ``pop_*`` tokens are there (taking them), hand it
  on their stream to the unit (SYNC: to nobody) and, once the unit answers on ``*_done`` with
  status 0, add its ``push_*`` tokens. A unit's nonzero status stops the sequencer with that
  status and the instruction's index; a push beyond ``token_bits`` is status "overflow".
- **Stop**: after an error nothing starts any more; instructions already handed to a unit
  finish. After END the queues drain; tokens left then are status "tokens left at END". When
  every queue head waits for a token that nothing running can give, the status is "deadlock".
  ``done`` rises once nothing is in flight (the fetch's last words included), and stays up with
  ``status``/``index`` until the next ``start``; ``cycles`` counts the run's cycles.
- **Trace**: per queue, a strobe when an instruction starts (takes its tokens) and one when it
  retires (adds its tokens), with its index: what a cycle account or a token checker needs,
  SYNCs included, which no unit sees.

The decoded instruction layouts are :mod:`wino_gen.isa`'s ``LAYOUTS`` as ``data.StructLayout``s;
queue order, token channels and status codes too.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from rtl.mem.port import PortSignature
from wino_gen import isa, schedule
from wino_gen.isa import CHANNELS, QUEUE_ORDER, STATUS

#: status codes by meaning (docs/image.md's table)
CODE = {meaning: code for code, meaning in STATUS.items()}
#: a unit's answer to one instruction: its status (0 ok)
DONE = data.StructLayout({"status": range(len(STATUS))})
#: fields whose values beyond a count name nothing
_RANGES = {"buffer": len(isa.BUFFERS), "mode": len(isa.MODES)}
#: the opcode whose layout each queue's stream carries (SYNC's is COMPUTE's prefix)
_QUEUE_OP = {"load": "LOAD", "compute": "COMPUTE", "store": "STORE"}


def instr_layout(op: str) -> data.StructLayout:
    """``op``'s fields as a StructLayout, checked against the offsets :data:`isa.LAYOUTS` gives."""
    layout = data.StructLayout({f.name: f.bits for f in isa.LAYOUTS[op]})
    for f in isa.LAYOUTS[op]:
        if layout[f.name].offset != f.offset:
            raise AssertionError(f"{op}.{f.name}: isa offset {f.offset}, packed at {layout[f.name].offset}")
    return layout


def entry_layout(queue: str, max_instrs: int) -> data.StructLayout:
    """What a queue holds and hands to its unit: the instruction's index and its decoded fields."""
    return data.StructLayout({"index": range(max_instrs + 1), "instr": instr_layout(_QUEUE_OP[queue])})


def neighbour(queue: str, side: str) -> str | None:
    """The queue before (``prev``) or after (``next``) ``queue`` in LOAD -> COMPUTE -> STORE."""
    k = QUEUE_ORDER.index(queue) + (1 if side == "next" else -1)
    return QUEUE_ORDER[k] if 0 <= k < len(QUEUE_ORDER) else None


def _check_layouts() -> None:
    """LOAD and STORE share one stream layout, SYNC and END are the common prefix of all."""
    if instr_layout("LOAD") != instr_layout("STORE"):
        raise AssertionError("LOAD and STORE layouts differ: the transfer queues need one each")
    head = isa.LAYOUTS["SYNC"]
    if isa.LAYOUTS["END"] != head or any(lay[:len(head)] != head for lay in isa.LAYOUTS.values()):
        raise AssertionError("every layout must start with SYNC's fields (opcode and flags)")


class Sequencer(wiring.Component):
    """Fetch, check, dispatch and run a program (see the module doc). ``port``: the fetch master's
    memory port; ``max_instrs``: the longest program; ``fetch_depth``: instructions prefetched;
    ``queue_depth``: instructions each queue holds (both by default the system's build,
    :mod:`wino_gen.schedule`); ``token_bits``: width of the token counters (an overflowing push
    is status "overflow"); ``cycle_bits``: width of the cycle counter."""

    def __init__(self, port: PortSignature, *, max_instrs: int = 65535, fetch_depth: int = schedule.FETCH_DEPTH,
                 queue_depth: int = schedule.QUEUE_DEPTH, token_bits: int = 8, cycle_bits: int = 32):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if port.data_width > isa.WORD_BITS:
            raise ValueError(f"port data_width {port.data_width}: at most one instruction ({isa.WORD_BITS} bits)")
        if max_instrs < 1:
            raise ValueError(f"max_instrs {max_instrs}: must be positive")
        if fetch_depth < 1:
            raise ValueError(f"fetch_depth {fetch_depth}: must be positive")
        if queue_depth < 1:
            raise ValueError(f"queue_depth {queue_depth}: must be positive")
        if token_bits < 1:
            raise ValueError(f"token_bits {token_bits}: must be positive")
        if cycle_bits < 1:
            raise ValueError(f"cycle_bits {cycle_bits}: must be positive")
        _check_layouts()
        self.port_sig, self.max_instrs, self.token_bits = port, max_instrs, token_bits
        self.fetch_depth, self.queue_depth = fetch_depth, queue_depth
        self.wpi = isa.WORD_BITS // port.data_width                 # port words per instruction
        self.fetch_words = max(fetch_depth * self.wpi, port.max_burst)
        self.entries = {q: entry_layout(q, max_instrs) for q in QUEUE_ORDER}
        index = range(max_instrs + 1)
        trace = data.StructLayout({q: data.StructLayout({"issue": 1, "retire": 1, "index": index})
                                   for q in QUEUE_ORDER})
        self.start_layout = data.StructLayout({"addr": port.addr_width + exact_log2(port.word_bytes), "count": index})
        done = stream.Signature(DONE)
        super().__init__({
            "start": In(stream.Signature(self.start_layout)),
            "fetch": Out(port),
            **{q: Out(stream.Signature(self.entries[q])) for q in QUEUE_ORDER},
            **{f"{q}_done": In(done) for q in QUEUE_ORDER},
            "busy": Out(1), "done": Out(1), "status": Out(DONE["status"].shape), "index": Out(index),
            "cycles": Out(cycle_bits),
            "trace": Out(trace),
        })

    # -- fetch: bursts into the prefetch FIFO, words assembled into instructions ----------------
    def _fetch(self, m, run, stop, begin):
        """Returns ``(ir, ir_valid, take, idle)``: the assembled instruction, whether it is there,
        the strobe dispatch drives when it takes it, and whether no fetched word is left anywhere."""
        port, W, wpi = self.port_sig, self.port_sig.word_bytes, self.wpi
        m.submodules.words = words = SyncFIFO(width=port.data_width, depth=self.fetch_words)
        addr = Signal(port.addr_width)
        left = Signal(range((self.max_instrs + 1) * wpi))
        credit = Signal(range(self.fetch_words + 1), init=self.fetch_words)
        cmd, r = self.fetch.cmd, self.fetch.r
        n = Signal(range(port.max_burst + 1))
        m.d.comb += n.eq(Mux(left < port.max_burst, left, port.max_burst))
        with m.If(begin.valid & begin.ready):
            m.d.sync += [addr.eq(begin.payload.addr >> exact_log2(W)), left.eq(begin.payload.count * wpi)]
        issue = run & ~stop & ~cmd.valid & (left != 0) & (credit >= n)
        with m.If(issue):
            m.d.sync += [cmd.valid.eq(1), cmd.payload.addr.eq(addr), cmd.payload.length.eq(n),
                         cmd.payload.write.eq(0)]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [cmd.valid.eq(0), addr.eq(addr + cmd.payload.length), left.eq(left - cmd.payload.length)]
        m.d.comb += [self.fetch.w.valid.eq(0), r.ready.eq(words.w_rdy), words.w_data.eq(r.payload.data),
                     words.w_en.eq(r.valid)]
        ir, ir_valid, take = Signal(isa.WORD_BITS), Signal(), Signal()
        have = Signal(range(wpi))
        m.d.comb += words.r_en.eq(stop | ~ir_valid | take)
        pop = words.r_en & words.r_rdy
        m.d.sync += credit.eq(credit - Mux(issue, n, 0) + pop)
        with m.If(take | stop):
            m.d.sync += ir_valid.eq(0)
        with m.If(stop):
            m.d.sync += have.eq(0)
        with m.Elif(pop):
            m.d.sync += [ir.eq(Cat(ir[port.data_width:], words.r_data)), have.eq(Mux(have == wpi - 1, 0, have + 1))]
            with m.If(have == wpi - 1):
                m.d.sync += ir_valid.eq(1)
        return ir, ir_valid, take, (credit == self.fetch_words) & ~cmd.valid

    # -- dispatch: check, decode and queue ----------------------------------------------------
    @staticmethod
    def _checks(m, ir):
        """``(ok, target)``: whether ``ir`` is a well-formed instruction, and the queue (index in
        QUEUE_ORDER, or len(QUEUE_ORDER) for END) it goes to."""
        ok, target = Signal(), Signal(range(len(QUEUE_ORDER) + 1))
        head = data.View(instr_layout("END"), ir[:instr_layout("END").size])
        with m.Switch(head.opcode):
            for op, code in isa.OPCODES.items():
                with m.Case(code):
                    lay = instr_layout(op)
                    v = data.View(lay, ir[:lay.size])
                    allowed = isa.ALLOWED_FLAGS[isa.QUEUES[op]]
                    conds = [ir[lay.size:] == 0] if lay.size < isa.WORD_BITS else []
                    conds += [~v[f] for f in isa.FLAGS if f not in allowed]
                    conds += [v[f] < lim for f, lim in _RANGES.items() if f in lay.members]
                    q = isa.QUEUES[op]
                    m.d.comb += [ok.eq(Cat(*conds).all() if conds else 1),
                                 target.eq(QUEUE_ORDER.index(q) if q else len(QUEUE_ORDER))]
        return ok, target

    def elaborate(self, platform):
        m = Module()
        begin = self.start
        run, errored, ended = Signal(), Signal(), Signal()
        stop = errored | ended
        m.d.comb += [begin.ready.eq(~run), self.busy.eq(run)]
        count, idx, end_idx = (Signal(range(self.max_instrs + 1), name=n) for n in ("count", "idx", "end_idx"))
        with m.If(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        aligned = begin.payload.addr[:exact_log2(self.port_sig.word_bytes)] == 0
        with m.If(begin.valid & begin.ready):      # a misaligned program is refused at once
            m.d.sync += [run.eq(1), errored.eq(~aligned), ended.eq(0), self.done.eq(0), self.index.eq(0),
                         self.status.eq(Mux(aligned, 0, CODE["bad instruction"])), self.cycles.eq(0),
                         idx.eq(0), count.eq(begin.payload.count)]
        ir, ir_valid, take, fetch_idle = self._fetch(m, run, stop, begin)

        fifos = {}
        for q in QUEUE_ORDER:
            fifos[q] = m.submodules[f"{q}_q"] = SyncFIFO(width=self.entries[q].size, depth=self.queue_depth)
        errors = []          # (condition, status, index), the first one wins

        ok, target = self._checks(m, ir)
        room = Signal()
        with m.Switch(target):
            for k, q in enumerate(QUEUE_ORDER):
                with m.Case(k):
                    m.d.comb += room.eq(fifos[q].w_rdy)
            with m.Default():
                m.d.comb += room.eq(1)
        dispatching = run & ~stop & ir_valid
        m.d.comb += take.eq(dispatching & ok & room)
        errors.append((dispatching & ~ok, CODE["bad instruction"], idx))
        errors.append((run & ~stop & (idx == count), CODE["bad instruction"], count))     # no END
        for k, q in enumerate(QUEUE_ORDER):
            entry = data.View(self.entries[q], fifos[q].w_data)
            m.d.comb += [entry.index.eq(idx), entry.instr.eq(ir[:self.entries[q]["instr"].shape.size]),
                         fifos[q].w_en.eq(take & (target == k))]
        with m.If(take):
            m.d.sync += idx.eq(idx + 1)
            with m.If(target == len(QUEUE_ORDER)):
                m.d.sync += [ended.eq(1), end_idx.eq(idx)]

        tokens = {ch: Signal(self.token_bits, name=f"tok_{ch[0]}_{ch[1]}") for ch in CHANNELS}
        inc = {ch: Signal(name=f"inc_{ch[0]}_{ch[1]}") for ch in CHANNELS}
        dec = {ch: Signal(name=f"dec_{ch[0]}_{ch[1]}") for ch in CHANNELS}
        pusher = {}
        units = {q: self._queue(m, q, fifos[q], tokens, inc, dec, errored, errors, pusher) for q in QUEUE_ORDER}
        full = (1 << self.token_bits) - 1
        for ch in CHANNELS:
            m.d.sync += tokens[ch].eq(tokens[ch] + inc[ch] - dec[ch])
            errors.append((inc[ch] & ~dec[ch] & (tokens[ch] == full), CODE["overflow"], pusher[ch]))
        with m.If(begin.valid & begin.ready):          # an errored run may leave tokens behind
            m.d.sync += [t.eq(0) for t in tokens.values()]

        idle = Cat(*(~busy for busy, _, _ in units.values())).all()
        empty = Cat(*(~f.r_rdy for f in fifos.values())).all()
        waiting = Cat(*(~f.r_rdy | ~can for f, (_, can, _) in zip(fifos.values(), units.values(), strict=True))).all()
        stuck = ended | (ir_valid & ok & ~room)
        first = self._first_head(m, fifos, units)
        errors.append((run & ~errored & idle & ~empty & waiting & stuck, CODE["deadlock"], first))
        left_tokens = Cat(*(t != 0 for t in tokens.values())).any()
        finished = run & stop & idle & empty & fetch_idle
        errors.append((finished & ~errored & left_tokens, CODE["tokens left at END"], end_idx))

        chain = None
        for cond, code, index in errors:
            chain = m.If(cond & ~errored) if chain is None else m.Elif(cond & ~errored)
            with chain:
                m.d.sync += [errored.eq(1), self.status.eq(code), self.index.eq(index)]
        with m.If(finished & (errored | ~left_tokens)):
            m.d.sync += [run.eq(0), self.done.eq(1)]
            with m.If(~errored):
                m.d.sync += self.index.eq(end_idx)
        return m

    def _first_head(self, m, fifos, units):
        """The smallest index at the head of a non-empty queue (where a deadlock is reported)."""
        first = self.max_instrs
        for f, (_, _, head) in zip(fifos.values(), units.values(), strict=True):
            first = Mux(f.r_rdy & (head.index < first), head.index, first)
        return first

    def _queue(self, m, q, fifo, tokens, inc, dec, errored, errors, pusher):
        """One in-order queue: start its head once its tokens are there, hand it to the unit,
        push its tokens when the unit answers. Returns ``(busy, can_start, head)``."""
        out, done, tr = getattr(self, q), getattr(self, f"{q}_done"), self.trace[q]
        head = data.View(self.entries[q], fifo.r_data)
        cur = Signal(self.entries[q], name=f"{q}_cur")
        busy, sync = Signal(name=f"{q}_busy"), Signal(name=f"{q}_sync")
        sides = [s for s in ("prev", "next") if neighbour(q, s)]
        pops = {s: (neighbour(q, s), q) for s in sides}
        pushes = {s: (q, neighbour(q, s)) for s in sides}
        can = Cat(*(~head.instr[f"pop_{s}"] | (tokens[ch] != 0) for s, ch in pops.items())).all()
        start = Signal(name=f"{q}_start")
        m.d.comb += [start.eq(fifo.r_rdy & ~busy & ~errored & can), out.payload.eq(cur)]
        m.d.comb += fifo.r_en.eq(start | errored)
        is_sync = (head.instr.opcode == isa.OPCODES["SYNC"]) if q == "compute" else 0
        with m.If(start):
            m.d.sync += [cur.eq(head), busy.eq(1), sync.eq(is_sync), out.valid.eq(~is_sync)]
        for s, ch in pops.items():
            m.d.comb += dec[ch].eq(start & head.instr[f"pop_{s}"])
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        m.d.comb += done.ready.eq(busy & ~out.valid & ~sync)
        answered = done.valid & done.ready
        retire = Signal(name=f"{q}_retire")
        m.d.comb += retire.eq(sync | (answered & (done.payload.status == 0)))
        with m.If(retire | answered):
            m.d.sync += [busy.eq(0), sync.eq(0)]
        for s, ch in pushes.items():
            m.d.comb += inc[ch].eq(retire & cur.instr[f"push_{s}"])
            pusher[ch] = cur.index
        errors.insert(0, (answered & (done.payload.status != 0), done.payload.status, cur.index))
        m.d.comb += [tr.issue.eq(start), tr.retire.eq(retire), tr.index.eq(Mux(start, head.index, cur.index))]
        return busy, can, head

