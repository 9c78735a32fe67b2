# amaranth: UnusedElaboratable=no
"""rtl.ctrl: the sequencer, its LOAD/STORE executors and the control system, against the
instruction semantics of docs/image.md.

examples/tiny compiled by wino_gen.compile runs from a memory model with random latency and
stalls, its COMPUTEs done by a mock unit that runs the interpreter's golden step on a shadow of
the scratchpads: the network output equals ``run_model``; every instruction runs exactly once,
each queue in program order, every token rule holds (a checker written from the spec, not
from the RTL), every LOAD leaves the named image bytes in its scratchpad and every STORE the
scratchpad bytes in memory. Random deadlock-free programs do the same on random transfers.
Bad programs stop with the right status and index and write nothing after it."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.ctrl.sequencer import Sequencer
from rtl.ctrl.system import ControlSystem
from rtl.ctrl.transfer import LoadExecutor
from rtl.mem.port import PortSignature
from sim.memory import MemoryModel, timing
from sim.streams import Stalls, get, put, unpack
from wino_gen import format as fmt
from wino_gen import isa, network, plan
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"
STATUS = {meaning: code for code, meaning in interp.STATUS.items()}
# the spec's neighbours (docs/image.md): LOAD -> COMPUTE -> STORE
PREV = {"compute": "load", "store": "compute"}
NEXT = {"load": "compute", "compute": "store"}
QUEUES = ("load", "compute", "store")


# -- the bench --------------------------------------------------------------------------------

class Bench:
    """A ControlSystem on a memory model of ``mem`` (numpy uint8, changed by stores), a mock
    compute unit (``compute(ctx, entry)`` may act on the scratchpads; it answers ``status``),
    random stalls on every stream. Records every queue event and checks every transfer at
    the moment it completes."""

    def __init__(self, mem, *, W, sp_bytes, seed, model="2,3", stall=0.2, sp_init=None, burst=4, max_burst=8,
                 compute=None, compute_status=None, latency=6, on_load=None, token_bits=8, policy="round-robin"):
        self.W, self.mem, self.rng = W, mem, np.random.default_rng(seed)
        self.port = PortSignature(data_width=8 * W, addr_width=max(1, (len(mem) // W - 1).bit_length()),
                                  max_burst=max_burst)
        self.dut = ControlSystem(self.port, sp_bytes=sp_bytes, mem_bytes=len(mem), burst=burst, policy=policy,
                                 max_instrs=255, token_bits=token_bits)
        for b, init in (sp_init or {}).items():
            self.dut.sp[b].init = words(init, W)
        self.model = MemoryModel(mem, timing(model), word_bytes=W,
                                 stalls=Stalls(stall, int(self.rng.integers(1 << 32))))
        self.stall, self.latency, self.compute, self.on_load = stall, latency, compute, on_load
        self.compute_status = compute_status or (lambda entry: 0)
        self.events, self.transfers = [], []

    def sp_bytes(self, ctx, buf, addr, n):
        W, mem = self.W, self.dut.sp[buf]
        w0, w1 = addr // W, -(-(addr + n) // W)
        raw = b"".join(ctx.get(mem.data[w]).to_bytes(W, "little") for w in range(w0, w1))
        return np.frombuffer(raw, np.uint8)[addr - w0 * W:addr - w0 * W + n]

    def rows(self, ctx, ins):
        """(external bytes, scratchpad bytes) the transfer names, row by row, as they are now."""
        buf = isa.BUFFERS[ins["buffer"]]
        ext = [self.mem[ins["ext_addr"] + j * ins["ext_stride"]:][:ins["burst"]] for j in range(ins["count"])]
        sp = [self.sp_bytes(ctx, buf, ins["sp_addr"] + j * ins["sp_stride"], ins["burst"]) for j in range(ins["count"])]
        return ext, sp

    def _monitor(self):
        d = self.dut
        units = {"load": d.loader, "store": d.storer}
        sigs = [d.trace.as_value()]
        for u in units.values():
            sigs += [u.instr.valid, u.instr.ready, u.instr.payload.as_value(), u.done.valid, u.done.ready,
                     u.done.payload.status]
        tr_shape = d.trace.shape()

        async def run(ctx):
            cycle, cur = 0, {}
            async for _, _, tr, *vals in ctx.tick().sample(*sigs):
                cycle += 1
                t = unpack(tr_shape, int(tr))
                for q in QUEUES:
                    for kind in ("issue", "retire"):
                        if t[q][kind]:
                            self.events.append((cycle, kind, q, t[q]["index"]))
                for k, (q, u) in enumerate(units.items()):
                    iv, ir, ip, dv, dr, ds = vals[6 * k:6 * k + 6]
                    if iv and ir:
                        cur[q] = unpack(u.instr.payload.shape(), int(ip))
                    if dv and dr and ds == 0:
                        e = cur.pop(q)
                        ext, sp = self.rows(ctx, e["instr"])
                        for a, b in zip(ext, sp, strict=True):
                            np.testing.assert_array_equal(a, b, err_msg=f"{q} {e['index']}")
                        self.transfers.append((q, e["index"]))
                        if q == "load" and self.on_load:
                            self.on_load(ctx, e, sp)
        return run

    def _unit(self):
        d, rng = self.dut, self.rng

        async def run(ctx):
            while True:
                [e] = await get(ctx, d.compute, 1, rng=rng, stall=self.stall)
                if self.compute:
                    self.compute(ctx, e)
                wait = self.latency(e) if callable(self.latency) else int(rng.integers(0, self.latency + 1))
                for _ in range(wait):
                    await ctx.tick()
                await put(ctx, d.compute_done, [{"status": self.compute_status(e)}], rng=rng, stall=self.stall)
        return run

    def run(self, jobs, *, windows=None, limit=200_000):
        """Run each ``(byte address, count)`` program in turn; their (status, index, cycles)."""
        d, res = self.dut, []
        lo, hi = windows or ((0, len(self.mem)), (0, len(self.mem)))

        async def main(ctx):
            ctx.set(d.load_lo, lo[0])
            ctx.set(d.load_hi, lo[1])
            ctx.set(d.store_lo, hi[0])
            ctx.set(d.store_hi, hi[1])
            for addr, count in jobs:
                await put(ctx, d.start, [{"addr": addr, "count": count}], rng=self.rng, stall=self.stall)
                for _ in range(limit):
                    if ctx.get(d.done):
                        break
                    await ctx.tick()
                else:
                    raise AssertionError(f"not done after {limit} cycles")
                res.append((ctx.get(d.status), ctx.get(d.index), ctx.get(d.cycles)))
                self.events.append((None, "end", None, None))

        sim = Simulator(d)
        sim.add_clock(1e-6)
        sim.add_testbench(self.model.serve(d.mem), background=True)
        sim.add_testbench(self._monitor(), background=True)
        sim.add_testbench(self._unit(), background=True)
        sim.add_testbench(main)
        sim.run()
        return res


def words(b, W):
    b = np.asarray(b, np.uint8)
    b = np.concatenate([b, np.zeros(-len(b) % W, np.uint8)])
    return [int.from_bytes(b[i:i + W].tobytes(), "little") for i in range(0, len(b), W)]


# -- the token checker (from docs/image.md, independent of the RTL) --------------------------

def check_run(program, events, *, stop=None):
    """Every instruction before ``stop`` (all when None) issued and retired exactly once and
    nothing after it issued (END excluded); each queue in program order, one at a time; every
    pop after the matching push of its neighbour. Returns the issued indices."""
    issue, retire = {}, {}
    for cycle, kind, q, i in events:
        if kind == "end":
            break
        table = issue if kind == "issue" else retire
        assert i not in table, f"instruction {i} {kind}d twice"
        assert isa.QUEUES[program[i].OP] == q, f"instruction {i} ({program[i].OP}) ran in the {q} queue"
        table[i] = cycle
    for i, c in retire.items():
        assert i in issue and issue[i] < c, f"instruction {i} retired without issue"
    if stop is None:
        want = {i for i, ins in enumerate(program) if ins.OP != "END"}
        assert set(issue) == set(retire) == want, sorted(want - set(retire))
    else:
        assert all(i < stop for i in issue), f"instructions after {stop} ran: {sorted(i for i in issue if i >= stop)}"
    for q in QUEUES:
        mine = [i for i in sorted(issue) if isa.QUEUES[program[i].OP] == q]
        for a, b in zip(mine, mine[1:], strict=False):
            assert a in retire and retire[a] < issue[b], f"{q} queue: {b} started before {a} ended"
        assert sorted(mine, key=issue.get) == mine, f"{q} queue out of program order"
    for a, b in (("load", "compute"), ("compute", "load"), ("compute", "store"), ("store", "compute")):
        side_push = "push_next" if NEXT.get(a) == b else "push_prev"
        side_pop = "pop_prev" if PREV.get(b) == a else "pop_next"
        pushers = [i for i, ins in enumerate(program) if isa.QUEUES[ins.OP] == a and getattr(ins, side_push)]
        poppers = [i for i, ins in enumerate(program) if isa.QUEUES[ins.OP] == b and getattr(ins, side_pop)]
        for k, j in enumerate(poppers):
            if j in issue:
                assert k < len(pushers) and pushers[k] in retire and retire[pushers[k]] < issue[j], \
                    f"{b} {j} took a token from {a} before its push"
    return set(issue)


# -- examples/tiny ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    model = fmt.load_model(TINY)
    return model, network.config_for(model), model.layers[0].arrays["x"]


def _tiny_bench(model, cfg, x, opts, W, mem_model, seed):
    img = compiler.compile_model(model, cfg, options=plan.Options(**opts), trace=True, port_bytes=W).image
    x = x[:img.batch]
    mem = np.zeros(-(-img.memory_size // W) * W, np.uint8)
    mem[:img.file_size] = np.frombuffer(img.to_bytes(), np.uint8)
    slot = img.slot(im.INPUT_SLOT)
    mem[slot.offset:slot.offset + slot.size] = x.astype(np.int8).view(np.uint8).ravel()
    shadow = interp.Machine(img, cfg)          # the scratchpads as the golden steps see them
    sp_bytes = {b: len(shadow.sp[b]) for b in isa.BUFFERS}

    def on_load(ctx, e, sp):
        ins = e["instr"]
        buf = shadow.sp[isa.BUFFERS[ins["buffer"]]]
        for j, row in enumerate(sp):
            at = ins["sp_addr"] + j * ins["sp_stride"]
            buf[at:at + len(row)] = row

    bench, decoded = None, _decoded_compute(img.program)

    def compute(ctx, e):
        """The interpreter's golden step on the shadow; the tile it writes goes to the RTL's
        activation scratchpad too."""
        decoded(ctx, e)
        before = shadow.sp["act"].copy()
        shadow._execute(e["index"], img.program[e["index"]])
        act, mem_ = shadow.sp["act"], bench.dut.sp["act"]
        for w in np.unique(np.flatnonzero(act != before) // W):
            ctx.set(mem_.data[int(w)], int.from_bytes(act[w * W:(w + 1) * W].tobytes(), "little"))

    bench = Bench(mem, W=W, sp_bytes=sp_bytes, seed=seed, model=mem_model, compute=compute, on_load=on_load,
                  burst=8, max_burst=8)
    windows = ((img.regions()["params"][0], img.memory_size), img.regions()["act"])
    return img, bench, windows, x


SLOW = pytest.mark.slow


@pytest.mark.parametrize("opts,W,mem_model", [
    (dict(), 8, "8,4"),
    pytest.param(dict(act_bytes=2400, weight_bytes=2400, partial_sums=True), 4, "4,2", marks=SLOW),
    pytest.param(dict(), 2, "sdram-ulx3s", marks=SLOW),
    pytest.param(dict(batch=2), 2, "sdram-ulx3s", marks=SLOW),
    pytest.param(dict(act_bytes=1600, weight_bytes=4700), 1, "2,3", marks=SLOW),
])
def test_tiny_runs_from_memory(tiny, opts, W, mem_model):
    model, cfg, x = tiny
    img, bench, windows, x = _tiny_bench(model, cfg, x, opts, W, mem_model, seed=W)
    [(status, index, cycles)] = bench.run([(img.program_offset, len(img.program))], windows=windows)
    end = next(i for i, ins in enumerate(img.program) if ins.OP == "END")
    assert (status, index) == (0, end)
    check_run(img.program, bench.events)
    transfers = [i for i, ins in enumerate(img.program) if ins.OP in ("LOAD", "STORE")]
    assert sorted(i for _, i in bench.transfers) == transfers
    ref = network.run_model(model, x)
    for t in img.tensors:
        if t.flags & im.STORED and t.name in ref:
            got = bench.mem[t.offset:t.offset + t.size].view(np.int8).reshape(ref[t.name].shape)
            np.testing.assert_array_equal(got, ref[t.name], err_msg=t.name)
    assert 0 < cycles


# -- random programs ------------------------------------------------------------------------

def _flags(rng, q, avail):
    """Random flags for a ``q`` instruction; a pop only where an earlier push is unmatched
    (so the program cannot deadlock), pushes counted after the pops."""
    flags = {}
    for side, nb in (("prev", PREV.get(q)), ("next", NEXT.get(q))):
        if nb and avail[(nb, q)] and rng.random() < 0.5:
            flags[f"pop_{side}"] = 1
            avail[(nb, q)] -= 1
    for side, nb in (("prev", PREV.get(q)), ("next", NEXT.get(q))):
        if nb and rng.random() < 0.4:
            flags[f"push_{side}"] = 1
            avail[(q, nb)] += 1
    return flags


def _transfer(rng, W, op, ext_lo, ext_hi, sp_lo, sp_hi):
    """A random transfer inside both ranges, word-aligned; the rows it writes do not overlap."""
    while True:
        count, burst = int(rng.integers(0, 4)), int(rng.integers(0, 3 * W + 2))
        words_ = -(-burst // W)
        dense, any_ = W * (words_ + int(rng.integers(0, 2))), W * int(rng.integers(0, words_ + 2))
        ext_stride, sp_stride = (dense, any_) if op == "STORE" else (any_, dense)
        ext_span, sp_span = (max(0, count - 1) * st + burst for st in (ext_stride, sp_stride))
        if ext_lo + ext_span <= ext_hi and sp_lo + sp_span <= sp_hi:
            break
    ext = W * int(rng.integers(-(-ext_lo // W), (ext_hi - ext_span) // W + 1))
    sp = W * int(rng.integers(-(-sp_lo // W), (sp_hi - sp_span) // W + 1))
    return dict(ext_addr=ext, ext_stride=ext_stride, count=count, burst=burst, sp_addr=sp, sp_stride=sp_stride)


EXT, PROG_AT, STORE_AT = 8192, 256, 7680
SP = {"act": 96, "wgt": 64, "param": 32}


def random_program(rng, n, W):
    """``n`` random instructions, the SYNCs/transfers that take the tokens left over, and END:
    loads from [0, PROG_AT) into any scratchpad (the activations' lower half), stores from the
    activations' upper half into [STORE_AT, EXT)."""
    avail = dict.fromkeys((("load", "compute"), ("compute", "load"), ("compute", "store"), ("store", "compute")), 0)
    prog, A = [], SP["act"]
    for _ in range(n):
        op = str(rng.choice(["LOAD", "LOAD", "STORE", "COMPUTE", "SYNC"]))
        flags = _flags(rng, isa.QUEUES[op], avail)
        if op == "LOAD":
            buf = int(rng.integers(0, len(isa.BUFFERS)))
            hi = A // 2 if isa.BUFFERS[buf] == "act" else SP[isa.BUFFERS[buf]]
            prog.append(isa.Load(buffer=buf, **flags, **_transfer(rng, W, op, 0, PROG_AT, 0, hi)))
        elif op == "STORE":
            prog.append(isa.Store(**flags, **_transfer(rng, W, op, STORE_AT, EXT, A // 2, A)))
        elif op == "COMPUTE":
            prog.append(isa.Compute(mode=int(rng.integers(0, len(isa.MODES))), layer=int(rng.integers(0, 1 << 12)),
                                    r1=int(rng.integers(0, 1 << 13)), out_addr=int(rng.integers(0, 1 << 24)),
                                    **flags))
        else:
            prog.append(isa.Sync(**flags))
    drain = {("load", "compute"): isa.Sync(pop_prev=1), ("store", "compute"): isa.Sync(pop_next=1),
             ("compute", "load"): isa.Load(pop_next=1), ("compute", "store"): isa.Store(pop_prev=1)}
    for ch, n_left in avail.items():
        prog += [drain[ch]] * n_left
    return prog + [isa.End()]


def _place(mem, programs):
    """Write the programs (instructions or raw words) one after another from PROG_AT; their jobs."""
    at, jobs = PROG_AT, []
    for p in programs:
        code = b"".join(w if isinstance(w, bytes) else isa.encode(w) for w in p)
        mem[at:at + len(code)] = np.frombuffer(code, np.uint8)
        jobs.append((at, len(p)))
        at += len(code)
    assert at <= STORE_AT
    return jobs


def _apply_stores(mem, program, ran, sp_act):
    """``mem`` after the STOREs in ``ran`` (program order), from the activation scratchpad ``sp_act``."""
    out = mem.copy()
    for i in sorted(ran):
        ins = program[i]
        if ins.OP == "STORE":
            for j in range(ins.count):
                e, s = ins.ext_addr + j * ins.ext_stride, ins.sp_addr + j * ins.sp_stride
                out[e:e + ins.burst] = sp_act[s:s + ins.burst]
    return out


def _runs(events):
    """The events of each run, split at its end."""
    out, cur = [], []
    for e in events:
        if e[1] == "end":
            out.append(cur)
            cur = []
        else:
            cur.append(e)
    return out


def _decoded_compute(programs):
    """A mock compute step that checks the decoded fields against the program's instruction."""
    def compute(ctx, e):
        ins = programs[e["index"]]
        assert {f: e["instr"][f] for f in e["instr"] if f != "opcode"} == \
            {f.name: getattr(ins, f.name) for f in isa.LAYOUTS["COMPUTE"][1:]}
    return compute


@pytest.mark.parametrize("seed", [0, 1, pytest.param(2, marks=SLOW), pytest.param(3, marks=SLOW)])
def test_random_programs(seed):
    rng = np.random.default_rng(seed)
    W = (1, 2, 4, 2)[seed]
    programs = [random_program(rng, int(rng.integers(4, 16)), W) for _ in range(2)]
    mem = rng.integers(0, 256, EXT, dtype=np.uint8)
    jobs = _place(mem, programs)
    act = rng.integers(0, 256, SP["act"], dtype=np.uint8)
    mem0 = mem.copy()
    bench = Bench(mem, W=W, sp_bytes=SP, seed=seed, sp_init={"act": act}, model=("ideal", "2,3", "0.5,1", "2,3")[seed],
                  latency=(0, 3, 8, 20)[seed], stall=(0.0, 0.2, 0.4, 0.3)[seed],
                  policy=("round-robin", "priority")[seed % 2])
    # each COMPUTE checked against the program now running (runs ended so far)
    bench.compute = lambda ctx, e: _decoded_compute(programs[len(_runs(bench.events))])(ctx, e)
    res = bench.run(jobs)
    for (status, index, cycles), p, events in zip(res, programs, _runs(bench.events), strict=True):
        assert (status, index) == (0, len(p) - 1)
        assert cycles > 0
        check_run(p, events)
    # loads never write the activations' upper half: the stores' data is the initial one
    want = mem0
    for p in programs:
        want = _apply_stores(want, p, range(len(p)), act)
    np.testing.assert_array_equal(mem, want)


# -- bad programs -----------------------------------------------------------------------------

def _base(W):
    """A chain that runs every queue: load -> compute -> store, and a store of its own."""
    return [isa.Load(buffer=0, ext_addr=384, count=2, burst=3, ext_stride=4 * W, sp_addr=0, sp_stride=4 * W,
                     push_next=1),
            isa.Compute(pop_prev=1, push_next=1),
            isa.Store(pop_prev=1, ext_addr=STORE_AT, count=1, burst=5, sp_addr=48),
            isa.Store(ext_addr=STORE_AT + 64, count=2, burst=2 * W, ext_stride=4 * W, sp_addr=64, sp_stride=2 * W)]


#: a store that must never run after a bad instruction (nothing else writes there)
AFTER = STORE_AT + 256


def _word(ins, *bits):
    v = int.from_bytes(isa.encode(ins), "little")
    for b in bits:
        v |= 1 << b
    return v.to_bytes(isa.WORD_BYTES, "little")


def _bit(op, name):
    return next(f.offset for f in isa.LAYOUTS[op] if f.name == name)


def _used(op):
    return max(f.offset + f.bits for f in isa.LAYOUTS[op])


BAD_DECODE = {
    "opcode 0": bytes(isa.WORD_BYTES),
    "opcode 6": (6).to_bytes(isa.WORD_BYTES, "little"),
    "opcode 15": (15).to_bytes(isa.WORD_BYTES, "little"),
    "LOAD pop_prev": _word(isa.Load(), _bit("LOAD", "pop_prev")),
    "LOAD push_prev": _word(isa.Load(), _bit("LOAD", "push_prev")),
    "STORE push_next": _word(isa.Store(), _bit("STORE", "push_next")),
    "STORE pop_next": _word(isa.Store(), _bit("STORE", "pop_next")),
    "END pop_prev": _word(isa.End(), _bit("END", "pop_prev")),
    "SYNC reserved": _word(isa.Sync(), _used("SYNC")),
    "LOAD reserved": _word(isa.Load(), _used("LOAD")),
    "COMPUTE top bit": _word(isa.Compute(), isa.WORD_BITS - 1),
    "LOAD buffer 3": _word(isa.Load(), _bit("LOAD", "buffer"), _bit("LOAD", "buffer") + 1),
    "COMPUTE mode 7": _word(isa.Compute(), *range(_bit("COMPUTE", "mode"), _bit("COMPUTE", "mode") + 3)),
}


def _bad_runs(programs, *, W=2, windows=None, seed=0, **kw):
    """Run each of ``programs`` (instructions or raw words), each followed by a good program
    on the same system (which must run); returns each bad run's status, index and events."""
    rng = np.random.default_rng(seed)
    good = _base(W) + [isa.End()]
    mem = rng.integers(0, 256, EXT, dtype=np.uint8)
    jobs = _place(mem, [p for bad in programs for p in (bad, good)])
    act = rng.integers(0, 256, SP["act"], dtype=np.uint8)
    mem0 = mem.copy()
    bench = Bench(mem, W=W, sp_bytes=SP, seed=seed, sp_init={"act": act}, **kw)
    res, runs = bench.run(jobs, windows=windows), _runs(bench.events)
    for again, events in zip(res[1::2], runs[1::2], strict=True):
        assert again[:2] == (0, len(good) - 1), "the system does not run again after an error"
        check_run(good, events)
    # every store a bad run made is one of the good program's, with the same data
    np.testing.assert_array_equal(mem, _apply_stores(mem0, good, range(len(good)), act))
    return [(status, index, events) for (status, index, _), events in zip(res[::2], runs[::2], strict=True)]


def test_bad_instruction_stops_dispatch():
    programs = {what: _base(2) + [word, isa.Store(ext_addr=AFTER, count=1, burst=8), isa.End()]
                for what, word in BAD_DECODE.items()}
    for (what, program), (status, index, events) in zip(programs.items(), _bad_runs(list(programs.values())),
                                                        strict=True):
        assert (status, index) == (STATUS["bad instruction"], 4), what
        check_run([isa.End() if isinstance(w, bytes) else w for w in program], events, stop=4)


BAD_TRANSFERS = [
    ("load beyond the memory", isa.Load(ext_addr=EXT - 16, count=1, burst=32), "memory outside its regions"),
    ("load below the window", isa.Load(ext_addr=0, count=1, burst=2), "memory outside its regions"),
    ("load rows beyond the memory", isa.Load(ext_addr=512, count=3, burst=2, ext_stride=EXT // 2, sp_stride=2),
     "memory outside its regions"),
    ("load beyond the scratchpad", isa.Load(buffer=2, ext_addr=300, count=2, burst=4, sp_addr=24, sp_stride=8),
     "memory outside its regions"),
    ("store below its window", isa.Store(ext_addr=300, count=1, burst=4), "memory outside its regions"),
    ("store beyond its window", isa.Store(ext_addr=EXT - 64, count=1, burst=4), "memory outside its regions"),
    ("store from the weights", isa.Store(buffer=1, ext_addr=AFTER, count=1, burst=4), "memory outside its regions"),
    ("store beyond the scratchpad", isa.Store(ext_addr=AFTER, count=1, burst=4, sp_addr=94),
     "memory outside its regions"),
    ("misaligned load", isa.Load(ext_addr=301, count=1, burst=4), "bad instruction"),
    ("misaligned stride", isa.Store(ext_addr=AFTER, count=2, burst=2, ext_stride=3, sp_stride=4), "bad instruction"),
]


def test_transfer_outside_memory_is_an_error():
    """Each bad transfer pushes the token that would start the rest: nothing after it runs."""
    programs = []
    for _, ins, _ in BAD_TRANSFERS:
        q = isa.QUEUES[ins.OP]
        flagged = dataclasses.replace(ins, **{"push_next" if q == "load" else "push_prev": 1})
        relay = isa.Sync(pop_prev=1, push_next=1) if q == "load" else isa.Sync(pop_next=1, push_next=1)
        programs.append(_base(2) + [flagged, relay, isa.Store(pop_prev=1, ext_addr=AFTER, count=1, burst=8),
                                    isa.End()])
    # the load window reaches past the memory: the memory's own size still bounds it
    runs = _bad_runs(programs, windows=((256, EXT + 1024), (STORE_AT, EXT - 128)))
    for (what, _, code), program, (status, index, events) in zip(BAD_TRANSFERS, programs, runs, strict=True):
        assert (status, index) == (STATUS[code], 4), what
        issued = check_run(program, events, stop=5)
        assert 4 in issued and 4 not in {i for _, k, _, i in events if k == "retire"}, what


def test_sequencer_faults():
    """No END, a deadlock, tokens left at END, a token counter overflow (1-bit counters), a
    unit's error status: each its status and index."""
    cases = [
        ([isa.Load(), isa.Sync()], "bad instruction", 2),
        ([isa.Load(), isa.Load(pop_next=1, push_next=1), isa.Compute(pop_prev=1, push_prev=1), isa.End()],
         "deadlock", 1),
        ([isa.Load(push_next=1), isa.End()], "tokens left at END", 1),
        ([isa.Compute(layer=7), isa.Load(push_next=1), isa.Load(push_next=1), isa.Sync(pop_prev=1),
          isa.Sync(pop_prev=1), isa.End()], "overflow", 2),
        ([isa.Compute(), isa.Compute(layer=5), isa.Compute(), isa.End()], "overflow", 1),
    ]
    runs = _bad_runs([p for p, _, _ in cases], token_bits=1,
                     latency=lambda e: 300 if e["instr"]["layer"] == 7 else 0,
                     compute_status=lambda e: STATUS["overflow"] if e["instr"]["layer"] == 5 else 0)
    for (program, code, index), (status, got, _) in zip(cases, runs, strict=True):
        assert (status, got) == (STATUS[code], index), program


def test_misaligned_program_address():
    mem = np.zeros(512, np.uint8)
    bench = Bench(mem, W=2, sp_bytes=SP, seed=0)
    [(status, index, _)] = bench.run([(257, 1)])
    assert (status, index) == (STATUS["bad instruction"], 0)


def test_parameters_are_checked():
    port = PortSignature(data_width=16, addr_width=8, max_burst=4)
    with pytest.raises(ValueError, match="data_width"):
        Sequencer(PortSignature(data_width=512, addr_width=8, max_burst=4))
    with pytest.raises(ValueError, match="queue_depth"):
        Sequencer(port, queue_depth=0)
    with pytest.raises(ValueError, match="mem_bytes"):
        LoadExecutor(port, sp_bytes={"act": 16}, mem_bytes=1 << 12, burst=4)
    with pytest.raises(ValueError, match="names no buffer"):
        LoadExecutor(port, sp_bytes={"acts": 16}, mem_bytes=256, burst=4)
    with pytest.raises(ValueError, match="sp_bytes"):
        ControlSystem(port, sp_bytes={"act": 16}, mem_bytes=256, burst=4)
