"""One layer's cost under a tiling (pure Python): its tiles in execution order with their
transfers (the steps the compiler and sequencer execute), the scratchpad bytes it needs, and
its compute, memory and overlapped cycles; :mod:`wino_gen.plan` searches over these.

Execution model, stated once:

- a conv layer is cut into output-row bands x output-channel blocks (``kc``) x input-channel
  splits (``cc``, accumulated on chip in a partial-sum buffer of 4 bytes per Winograd-domain
  or output value); loop order ``rows`` (image -> band -> block -> split: an input band is read
  once, weights are re-read per band unless the layer's weights are held) or ``weights``
  (block -> image -> band -> split: each weight block is read once per batch, the input is
  re-read per block); add/pool layers are cut into row bands;
- a band the compute unit refuses (:func:`refused`: a pooling band, a band whose first input
  row is padding) is ranked after every tiling it runs, so that the planner takes one only
  where nothing the unit runs fits (the interpreter runs them all);
- each tile is one COMPUTE on the one core (``rtl.compute``): the compute unit's setup (its
  parameter reads on a layer's first COMPUTE, cached after), the core's exact cycles
  (``perf.core_cycles`` / ``perf.core_eltwise_cycles``) on the band the unit gives the engine
  (``commands.engine_band``: a later Winograd band starts a tile row early), and the feeders'
  lag (``commands.compute_cycles``);
- transfers are double buffered per tensor: a layer takes ``L_first + max(C, M - L_first -
  S_last) + S_last`` cycles (C compute, M memory cycles on the one memory port, the first
  tile's loads and the last tile's stores exposed). That is the least any schedule of these
  steps on one port can take (compute waits for the first loads, the last stores for the last
  compute, everything else shares the middle), reached when every transfer can run ahead into
  its second buffer; a layer whose units are uneven (one large load among small tiles) can take
  more, which the sequencer's simulation will show (issue 14). A layer done as one tile per
  image may instead be single buffered (half the scratchpad, no overlap: ``C + M``);
- activations are stored channel-major (C, H, W), so a band of one channel is one burst; weights
  in the order the plan reads them, so a weight block is one burst;
- a transfer is one LOAD/STORE: its executor's issue and answer cycles (:data:`XFER_ISSUE`,
  :data:`XFER_ANSWER`) around the memory's cycles, and never faster than one word of the
  port (``Options.port_bytes``) a cycle; every instruction is fetched over the same port
  (``isa.WORD_BYTES``), so its fetch counts as memory cycles;
- a layer's parameter block (geometry, requant, bias) is one LOAD before its first COMPUTE,
  which waits for the previous layer's last COMPUTE to be done with the one parameter buffer:
  it is exposed, added to the layer's total;
- so the compiler issues a layer's first weight LOAD ahead of that parameter LOAD, under an
  earlier layer's compute where their weight buffers lie apart (:func:`wino_gen.plan.hoists`):
  the planner then takes its cycles out of the layer's first loads (``cost_of``'s ``hoisted``)
  and adds to the layer whose parameter LOAD waits behind it what the port's idle time under
  the earlier compute did not hold (:func:`idle_port`, ``cost_of``'s ``delayed``).
The whole run as the sequencer overlaps a compiled program's instructions is
:func:`wino_gen.plan.program_cycles`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from . import commands, isa, memory, nets, perf, schedule
from .config import AcceleratorConfig
from .errors import UsageError

ACC_BYTES = 4          # a partial sum (int32)
#: cycles from a transfer's start in its queue to its DMA's first burst command (the executor's
#: IDLE, SPAN, CHECK and ISSUE states, the DMA's command register), and from its last word to
#: its retire (the DMA's done, the executor's ANSWER): ``rtl.ctrl.transfer``
XFER_ISSUE, XFER_ANSWER = 5, 2
#: a STORE's write data comes a cycle after its burst's command (the scratchpad's read register)
STORE_READ = 1


def _ceil(a: int, b: int) -> int:
    return -(-a // b)

@dataclass(frozen=True)
class Transfer:
    """``bytes`` of ``tensor`` in bursts of ``burst`` bytes; ``write`` to external memory."""

    tensor: str
    bytes: int
    burst: int
    write: bool
    cycles: int


@dataclass(frozen=True)
class Step:
    """One tile in execution order: loads, then compute, then stores; ``image`` of the batch,
    output rows ``rows``, output channels ``k``, input channels ``c`` (half-open ranges)."""

    image: int
    rows: tuple[int, int]
    k: tuple[int, int]
    c: tuple[int, int]
    loads: tuple[Transfer, ...]
    compute: int
    stores: tuple[Transfer, ...]


@dataclass(frozen=True)
class Tiling:
    order: str       # "rows" | "weights"
    band: int        # output rows per band
    kc: int          # output channels per block
    cc: int          # input channels per split
    hold: str        # weights: "resident" (on chip for good), "layer" (whole layer held), "block"
    double: bool = True   # double-buffered transfers (False: one buffer each, no overlap)


@dataclass(frozen=True)
class Cost:
    """Per batch: compute, memory and overlapped cycles, bytes read/written, scratchpad bytes
    needed (activations incl. partial sums, weights)."""

    compute: int
    memory: int
    total: int
    read: int
    written: int
    need_act: int
    need_w: int


# -- per-layer context ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ctx:
    """A layer with everything its cost depends on besides the scratchpad sizes."""

    layer: nets.Layer
    engine: str
    cfg: AcceleratorConfig          # the engine's config (direct layers: the direct engine's)
    taps: int                       # weight bytes per (output, input) channel pair
    cmax: int                       # largest input-channel split the weight bank holds
    mem: object                     # activations' memory (None: none)
    wmem: object                    # weights' memory
    clock: float
    opts: object                    # plan.Options: batch, weights
    core: AcceleratorConfig         # the core's build, whose cycles its tiles take
    max_kernel: int = 3             # the core's largest direct kernel
    max_pool: int = schedule.DEFAULT_MAX_POOL    # the core's largest pooling window

    @property
    def mode(self) -> str:
        """The core's mode for this layer's COMPUTEs."""
        if self.engine == "eltwise":
            return self.layer.op
        if self.engine == "winograd":
            return "winograd"
        return "linear" if self.layer.op == "linear" else "direct"

    @property
    def wbytes(self) -> int:
        C, K = self.layer.in_shape[0], self.layer.out_shape[0]
        return C * K * self.taps if self.layer.has_weights else 0


def _engine(layer: nets.Layer, cfg: AcceleratorConfig) -> str:
    if not layer.has_weights:
        return "eltwise"
    return "winograd" if layer.winograd and cfg.algo == "winograd" else "direct"


def core_build(layers) -> tuple[int, int]:
    """``(max_kernel, max_pool)`` of the core that runs ``layers``: their largest direct kernel
    (at least 3) and pooling window (at least the schedule's default)."""
    kernels = [la.kernel for la in layers if la.op == "conv" and not la.winograd]
    pools = [la.kernel for la in layers if la.op in ("maxpool", "avgpool")]
    return max([3, *kernels]), max([schedule.DEFAULT_MAX_POOL, *pools])


def make_ctx(layer: nets.Layer, cfg: AcceleratorConfig, bm: memory.BoardMemory, clock: float, opts,
             build: tuple[int, int] | None = None) -> Ctx:
    """Engine, weight format and limits of ``layer`` on a core built for ``build``
    (:func:`core_build`; None: the layer's own); a layer wider than the line buffer is refused."""
    engine = _engine(layer, cfg)
    C = layer.in_shape[0]
    if engine == "winograd":
        if layer.in_shape[2] > cfg.max_width:
            raise UsageError(f"{layer.name}: image width {layer.in_shape[2]} exceeds the line buffer's "
                             f"max_width {cfg.max_width}")
        taps, ecfg = (cfg.n * cfg.n if opts.weights == "winograd" else 9), cfg
        cmax = schedule.pe_geometry(cfg).depth * cfg.unroll_in
    elif engine == "direct":
        ecfg = dataclasses.replace(cfg, algo="direct")
        pe = schedule.pe_geometry(ecfg)
        taps = layer.kernel ** 2
        cmax = (pe.depth * pe.lanes) // taps
        cmax -= cmax % cfg.unroll_in
        if cmax < 1:
            raise UsageError(f"{layer.name}: one {layer.kernel}x{layer.kernel} kernel exceeds the weight bank "
                             f"({pe.depth * pe.lanes} elements)")
    else:
        ecfg, taps, cmax = cfg, 0, C
    mk, mp = build or core_build([layer])
    core = cfg
    if engine == "winograd":
        core = spatial_view(cfg) if opts.weights == "spatial" else dataclasses.replace(cfg, weights="winograd")
    return Ctx(layer, engine, ecfg, taps, cmax, bm.external, bm.weight_store, clock, opts, core, mk, mp)


def core_band_cycles(mode: str, core: AcceleratorConfig, layer: nets.Layer, r0: int, r1: int, kc: int, cc: int,
                     max_kernel: int, max_pool: int) -> int:
    """The core's cycles (``perf``, no stalls) of one COMPUTE: output rows ``[r0, r1)``, ``kc``
    outputs, ``cc`` inputs, on the band the compute unit gives the engine
    (:func:`wino_gen.commands.engine_band`); an add's band of rows; a pooling of the input rows
    its band reads. A layer beyond the build's window generator (``max_width``, ``max_channels``:
    ResNet-18's 224-wide stem on a 64-wide build) is priced on a window widened to it, the
    build a system running it needs."""
    C, H, W = layer.in_shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    if mode == "add":
        rows = r1 - r0
    elif mode in ("maxpool", "avgpool"):
        rows = min(H, (r1 - 1) * s - p + k) - max(0, r0 * s - p)
    else:
        a_e, b, _ = commands.engine_band(mode, H=H, kernel=k, stride=s, padding=p, r0=r0, r1=r1, tile=core.tile)
        rows = b - a_e
    return _core_cycles(mode, core, cc, kc, rows, W, k, s, p, max_kernel, max_pool)


@lru_cache(maxsize=1 << 16)
def _core_cycles(mode: str, core: AcceleratorConfig, C: int, K: int, H: int, W: int, k: int, s: int, p: int,
                 max_kernel: int, max_pool: int) -> int:
    """``perf``'s cycles of one core command on an ``H``-row input, cached: a layer's bands
    repeat a few heights many times over the search."""
    if mode != "winograd" and (max(H, W) > core.max_width or C > core.max_channels):
        chans = _ceil(max(core.max_channels, C), core.unroll_in) * core.unroll_in
        core = dataclasses.replace(core, max_width=max(core.max_width, H, W), max_channels=chans)
    if mode in ("add", "maxpool", "avgpool"):
        kw = {} if mode == "add" else {"kernel": k, "stride": s, "padding": p}
        return perf.core_eltwise_cycles(core, mode, C, H, W, max_pool=max_pool, **kw)
    return perf.core_cycles(core, mode, C, K, H, W, kernel=k, stride=s, padding=p, max_kernel=max_kernel,
                            direct_only=core.algo == "direct")


def tile_cycles(ctx: Ctx, rows: tuple[int, int], kc: int, cc: int, cached: bool = True) -> int:
    """Cycles of one tile's COMPUTE from its hand-over to the unit's answer
    (:func:`wino_gen.commands.compute_cycles`); ``cached``: the unit holds the layer's
    parameters already (every COMPUTE of a layer but its first)."""
    core = core_band_cycles(ctx.mode, ctx.core, ctx.layer, *rows, kc, cc, ctx.max_kernel, ctx.max_pool)
    lay = ctx.layer
    dropped = commands.drops_tail(ctx.mode, H=lay.in_shape[1], kernel=lay.kernel, stride=lay.stride,
                                  padding=lay.padding, r0=rows[0], r1=rows[1], tile=ctx.core.tile)
    return commands.compute_cycles(ctx.core, ctx.mode, cached, core, tail=not dropped)


def first_setup(ctx: Ctx) -> int:
    """Cycles a layer's first COMPUTE adds: its parameter reads."""
    return commands.setup_cycles(ctx.core, ctx.mode, False) - commands.setup_cycles(ctx.core, ctx.mode, True)


def spatial_view(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """The engine with spatial weights: a spatial config as built; a U config, planned with
    spatial weights as an alternative, with a transform of one word (``unroll x unroll_in``
    kernels) per cycle, the rate at which the PE array never waits for a weight bank."""
    if cfg.weights == "spatial":
        return cfg
    return dataclasses.replace(cfg, weights="spatial", weight_lanes=cfg.unroll * cfg.unroll_in)


def _rows_in(layer: nets.Layer, ho: int) -> int:
    """Input rows a band of ``ho`` output rows reads (its halo included, capped at the image)."""
    H = layer.in_shape[1]
    if layer.op == "add":
        return ho
    return min(H, (ho - 1) * layer.stride + layer.kernel)


def _runs(total: int, size: int) -> list[tuple[int, int]]:
    """``(length, count)`` of the pieces of ``total`` cut into ``size``: full ones, then the rest."""
    full, rest = divmod(total, size)
    return [(size, full)] * (full > 0) + [(rest, 1)] * (rest > 0)


def _pieces(total: int, size: int) -> list[tuple[int, int]]:
    """Half-open ranges of ``total`` cut into ``size``."""
    return [(a, min(total, a + size)) for a in range(0, total, size)]


# -- candidates ---------------------------------------------------------------------------------

def _halvings(total: int, quantum: int) -> list[int]:
    """``total``, then halves rounded up to a multiple of ``quantum``, down to ``quantum``."""
    out, v = [], total
    while True:
        q = min(total, _ceil(v, quantum) * quantum)
        if q not in out:
            out.append(q)
        if q <= quantum:
            return out
        v = _ceil(v, 2)


def tilings(ctx: Ctx, resident: bool):
    """Every tiling the planner considers for a layer."""
    lay = ctx.layer
    C, K, Ho = lay.in_shape[0], lay.out_shape[0], lay.out_shape[1]
    if ctx.engine == "eltwise":
        for band in _halvings(Ho, 1):
            yield Tiling("rows", band, K, C, "resident")
        yield Tiling("rows", Ho, K, C, "resident", double=False)
        return
    m = ctx.cfg.tile if ctx.engine == "winograd" else 1
    bands = sorted({min(Ho, b * m) for b in _halvings(_ceil(Ho, m), 1)}, reverse=True)
    # without Options.partial_sums only a layer deeper than the weight bank is split
    whole = C <= ctx.cmax and not ctx.opts.partial_sums
    ccs = [C] if whole else _halvings(min(C, ctx.cmax), ctx.cfg.unroll_in)
    holds = ("resident",) if resident else ("layer", "block")
    for band in bands:
        for kc in _halvings(K, ctx.cfg.unroll):
            for cc in ccs:
                for hold in holds:
                    yield Tiling("rows", band, kc, cc, hold)
                if not resident:
                    yield Tiling("weights", band, kc, cc, "block")
    if C <= ctx.cmax:     # one tile per image, single buffered
        for hold in holds:
            yield Tiling("rows", Ho, K, C, hold, double=False)


def port_bytes(ctx: Ctx, mem) -> int | None:
    """The port's word: ``Options.port_bytes``, else the memory's own word (an SDRAM's bus;
    None for a generic memory: no port limit)."""
    return ctx.opts.port_bytes or getattr(mem, "word_bytes", None)


def _xfer(ctx: Ctx, tensor: str, nbytes: int, burst: int, write: bool = False, weights: bool = False) -> Transfer:
    mem = ctx.wmem if weights else ctx.mem
    if mem is None:
        raise UsageError(f"{ctx.layer.name}: tensor {tensor} off chip, but the board has no external RAM")
    return Transfer(tensor, nbytes, burst, write, _mem_cycles(mem, nbytes, burst, ctx.clock, write,
                                                              port_bytes(ctx, mem)))


@lru_cache(maxsize=1 << 16)
def _mem_cycles(mem, nbytes: int, burst: int, clock: float, write: bool, port: int | None) -> int:
    """One LOAD/STORE's cycles (module docstring), cached: the search asks for the same
    transfers many times."""
    if not nbytes:
        return 0
    full, rest = divmod(nbytes, burst)
    words = full * _ceil(burst, port) + _ceil(rest, port) if port else 0
    return XFER_ISSUE + XFER_ANSWER + max(mem.transfer_cycles(nbytes, burst, clock, write), words)


def weight_load(ctx: Ctx) -> Transfer:
    """The LOAD of all of a layer's weights in one burst (a resident layer's, at power-up)."""
    return _xfer(ctx, ctx.layer.name + ".w", ctx.wbytes, ctx.wbytes, weights=True)


@dataclass(frozen=True)
class Overheads:
    """What a layer's instructions cost beyond its tiles: a fetch per instruction (memory
    cycles), its parameter LOAD (bytes read; cycles exposed, fetch included)."""

    fetch: int
    param_bytes: int
    param_cycles: int


def overheads(ctx: Ctx) -> Overheads:
    mem = ctx.wmem
    port = port_bytes(ctx, mem)
    fetch = _mem_cycles(mem, isa.WORD_BYTES, isa.WORD_BYTES, ctx.clock, False, port) - XFER_ISSUE - XFER_ANSWER
    n = commands.param_bytes(ctx.core, ctx.mode, ctx.layer.out_shape[0])
    return Overheads(fetch, n, fetch + _mem_cycles(mem, n, n, ctx.clock, False, port))


def layer_steps(ctx: Ctx, t: Tiling, chip: dict):
    """The tiles of a layer in execution order with their transfers (off-chip tensors only)."""
    lay = ctx.layer
    (C, H, W), (K, Ho, Wo) = lay.in_shape, lay.out_shape
    bands, kbs, css = _pieces(Ho, t.band), _pieces(K, t.kc), _pieces(C, t.cc)

    def load_in(r, c, first_of_band):
        if not first_of_band:
            return ()
        rin = _rows_in(lay, r[1] - r[0])
        burst = (c[1] - c[0]) * H * W if rin == H else rin * W
        return tuple(_xfer(ctx, src, rin * W * (c[1] - c[0]), burst) for src in lay.inputs if not chip[src])

    def load_w(kb, c, first):
        if t.hold == "resident" or not lay.has_weights or not first:
            return ()
        n = ctx.wbytes if t.hold == "layer" else (kb[1] - kb[0]) * (c[1] - c[0]) * ctx.taps
        return (_xfer(ctx, lay.name + ".w", n, n, weights=True),)

    def store(r, kb):
        if chip[lay.name]:
            return ()
        ho = r[1] - r[0]
        burst = (kb[1] - kb[0]) * Ho * Wo if ho == Ho else ho * Wo
        return (_xfer(ctx, lay.name, ho * Wo * (kb[1] - kb[0]), burst, write=True),)

    first_tile = [True]

    def tile(b, r, kb, c, loads):
        cyc = tile_cycles(ctx, r, kb[1] - kb[0], c[1] - c[0], cached=not first_tile[0])
        first_tile[0] = False
        return Step(b, r, kb, c, loads, cyc, store(r, kb) if c == css[-1] else ())

    B = ctx.opts.batch
    if t.order == "rows":
        first = True
        for b in range(B):
            for r in bands:
                for j, kb in enumerate(kbs):
                    for i, c in enumerate(css):
                        w_first = first if t.hold == "layer" else True
                        yield tile(b, r, kb, c, load_in(r, (0, C), j == 0 and i == 0) + load_w(kb, c, w_first))
                        first = False
    else:
        for kb in kbs:
            for b in range(B):
                for n, r in enumerate(bands):
                    for i, c in enumerate(css):
                        loads = load_w(kb, (0, C), b == 0 and n == 0 and i == 0) + load_in(r, c, True)
                        yield tile(b, r, kb, c, loads)


def needs(ctx: Ctx, t: Tiling, chip: dict) -> tuple[int, int]:
    """Scratchpad bytes a tiling needs beyond the on-chip tensors: (activations, weights).
    Buffers of a tensor with more than one unit are doubled (the next unit loads meanwhile)
    unless the tiling is single buffered."""
    lay = ctx.layer
    (C, _, W), (K, Ho, Wo) = lay.in_shape, lay.out_shape
    n_b, n_k, n_c, B = _ceil(Ho, t.band), _ceil(K, t.kc), _ceil(C, t.cc), ctx.opts.batch
    rin = _rows_in(lay, t.band)

    def buffers(units):
        return 2 if t.double and units > 1 else 1

    act = 0
    for src in lay.inputs:
        if not chip[src]:
            ch, units = (C, n_b * B) if t.order == "rows" else (t.cc, n_b * n_k * n_c * B)
            act += rin * W * ch * buffers(units)
    if not chip[lay.name]:
        act += t.kc * t.band * Wo * buffers(n_b * n_k * B)
    if n_c > 1:
        m = ctx.cfg.tile
        tiles = _ceil(t.band, m) * _ceil(Wo, m) * ctx.cfg.n ** 2 if ctx.engine == "winograd" else t.band * Wo
        act += tiles * t.kc * ACC_BYTES
    if t.hold == "resident" or not lay.has_weights:
        w = 0
    elif t.hold == "layer":
        w = ctx.wbytes
    elif t.order == "rows":
        w = t.kc * t.cc * ctx.taps * buffers(n_b * n_k * n_c * B)
    else:
        w = t.kc * C * ctx.taps * buffers(n_k)
    return act, w


def _overlap(comp: int, mem: int, first: int, last: int, double: bool) -> int:
    """Cycles of a layer from its compute and memory cycles (module docstring)."""
    return first + max(comp, mem - first - last) + last if double else comp + mem


def idle_port(steps, over: Overheads, double: bool = True) -> int:
    """Cycles the port idles under a layer's compute after its last LOAD (:func:`cost_of`'s
    overlap): what a later layer's weight LOAD issued behind this layer's transfers (the load
    queue runs in order) can take without delaying the next parameter LOAD. Double buffered,
    the last step's loads run under the compute of the step before it, and the steps from it on
    compute after them; a LOAD after the layer's COMPUTEs in program order is dispatched only
    once the last of them has room in the compute queue (``schedule.QUEUE_DEPTH`` waiting
    behind the one running)."""
    comp = sum(s.compute for s in steps)
    mem = sum(over.fetch * (1 + len(s.loads) + len(s.stores)) + sum(x.cycles for x in s.loads + s.stores)
              for s in steps)
    if not double:
        return comp
    last = max((k for k, s in enumerate(steps) if s.loads), default=0)
    if last:        # the steps from the last load on wait for it
        after = max(sum(s.compute for s in steps[last:]),
                    sum(s.compute for s in steps[last - 1:]) - sum(x.cycles for x in steps[last].loads))
    else:           # the first loads run before any compute, the stores beside it
        after = comp - (mem - sum(x.cycles for x in steps[0].loads) - sum(x.cycles for x in steps[-1].stores))
    queued = sum(s.compute for s in steps[-(schedule.QUEUE_DEPTH + 1):])
    return max(0, min(after, queued))


def hoisted_cycles(steps, name: str) -> int:
    """Cycles of the weight LOAD of a layer's first step (0: none), the one the compiler issues
    under the previous layer's compute (:func:`wino_gen.plan.hoists`)."""
    return sum(x.cycles for x in steps[0].loads if x.tensor == name + ".w") if steps else 0


def cost_of(steps, need: tuple[int, int], over: Overheads, double: bool = True, hoisted: int = 0,
            delayed: int = 0) -> Cost:
    """Totals of a step list with its instructions' ``over``, and the overlap of its transfers
    with compute. ``hoisted``: cycles of the first step's weight LOAD that run before the
    layer's window (under an earlier layer's compute): out of its first loads and its memory
    cycles in the overlap (the ``memory`` field keeps them, the layer's own transfers);
    ``delayed``: cycles its parameter LOAD waits behind such a LOAD that the port's idle time
    under the previous layer's compute did not hold (:func:`idle_port`)."""
    comp = mem = rd = wr = 0
    for s in steps:
        comp += s.compute
        mem += over.fetch * (1 + len(s.loads) + len(s.stores))
        for x in s.loads + s.stores:
            mem += x.cycles
            rd, wr = (rd, wr + x.bytes) if x.write else (rd + x.bytes, wr)
    first = sum(x.cycles for x in steps[0].loads) - hoisted
    last = sum(x.cycles for x in steps[-1].stores)
    total = _overlap(comp, mem - hoisted, first, last, double) + over.param_cycles + delayed
    return Cost(comp, mem + over.param_cycles, total, rd + over.param_bytes, wr, *need)


def fast_cost(ctx: Ctx, t: Tiling, chip: dict) -> Cost:
    """:func:`cost_of` of :func:`layer_steps` in closed form (pieces of equal size counted, not listed):
    the search evaluates every tiling with it; a test checks it against the step list."""
    lay = ctx.layer
    (C, H, W), (K, Ho, Wo) = lay.in_shape, lay.out_shape
    B = ctx.opts.batch
    bands, kbs, css = _runs(Ho, t.band), _runs(K, t.kc), _runs(C, t.cc)
    srcs = [src for src in lay.inputs if not chip[src]]
    acc = {"comp": first_setup(ctx), "mem": 0, "rd": 0, "wr": 0}
    over = overheads(ctx)
    for r in _pieces(Ho, t.band):
        for kc, nk in kbs:
            for cc, nc in css:
                acc["comp"] += B * nk * nc * tile_cycles(ctx, r, kc, cc)
                acc["mem"] += B * nk * nc * over.fetch

    def add(x: Transfer, count: int) -> int:
        acc["mem"] += (x.cycles + over.fetch) * count
        acc["wr" if x.write else "rd"] += x.bytes * count
        return x.cycles

    def inp(ho, ch):
        rin = _rows_in(lay, ho)
        return _xfer(ctx, "x", rin * W * ch, ch * H * W if rin == H else rin * W)

    def out(ho, kc):
        return _xfer(ctx, "y", ho * Wo * kc, kc * Ho * Wo if ho == Ho else ho * Wo, write=True)

    def wblk(n):
        return _xfer(ctx, "w", n, n, weights=True)

    for ho, nb in bands:
        for kc, nk in kbs:
            for cc, nc in css:
                if t.order == "weights":
                    for _ in srcs:
                        add(inp(ho, cc), B * nb * nk * nc)
                elif t.hold == "block" and lay.has_weights:
                    add(wblk(kc * cc * ctx.taps), B * nb * nk * nc)
            if not chip[lay.name]:
                add(out(ho, kc), B * nb * nk)
        if t.order == "rows":
            for _ in srcs:
                add(inp(ho, C), B * nb)
    first = 0
    if lay.has_weights and t.hold != "resident":
        if t.hold == "layer":
            first += add(wblk(ctx.wbytes), 1)
        elif t.order == "weights":
            for kc, nk in kbs:
                add(wblk(kc * C * ctx.taps), nk)
            first += wblk(kbs[0][0] * C * ctx.taps).cycles
        else:
            first += wblk(kbs[0][0] * css[0][0] * ctx.taps).cycles
    if srcs:
        first += len(srcs) * inp(bands[0][0], C if t.order == "rows" else css[0][0]).cycles
    last = 0 if chip[lay.name] else out(bands[-1][0], kbs[-1][0]).cycles
    total = _overlap(acc["comp"], acc["mem"], first, last, t.double) + over.param_cycles
    return Cost(acc["comp"], acc["mem"] + over.param_cycles, total, acc["rd"] + over.param_bytes, acc["wr"],
                *needs(ctx, t, chip))


def refused(ctx: Ctx, t: Tiling) -> str | None:
    """Why the compute unit refuses the layer (:func:`wino_gen.commands.beyond_build`: the
    plan is then priced on the wider build it needs) or a band of ``t``
    (:func:`wino_gen.commands.why_unsupported` on every band with all input channels: splits are
    ``Options.partial_sums``'s), or None."""
    lay = ctx.layer
    (C, H, W), (K, Ho, Wo) = lay.in_shape, lay.out_shape
    return commands.beyond_build(ctx.core, ctx.mode, C=C, K=K, H=H, W=W, Ho=Ho, Wo=Wo, kernel=lay.kernel,
                                 stride=lay.stride, padding=lay.padding, max_kernel=ctx.max_kernel,
                                 max_pool=ctx.max_pool) \
        or _refused_band(ctx.mode, C, Ho, lay.stride, lay.padding, t.band)


@lru_cache(maxsize=1 << 12)
def _refused_band(mode: str, C: int, Ho: int, stride: int, padding: int, band: int) -> str | None:
    for r0, r1 in _pieces(Ho, band):
        why = commands.why_unsupported(mode, accumulate=0, finish=1, r0=r0, r1=r1, c0=0, c1=C, C=C, Ho=Ho,
                                       stride=stride, padding=padding)
        if why:
            return why
    return None


def ranked(ctx: Ctx, chip: dict, resident: bool) -> list[tuple[Cost, Tiling]]:
    """Every tiling's cost: those the compute unit runs first (:func:`refused`), each group
    cheapest first (ties: fewer scratchpad bytes)."""
    out = [(fast_cost(ctx, t, chip), t) for t in tilings(ctx, resident)]
    out.sort(key=lambda ct: (refused(ctx, ct[1]) is not None, ct[0].total, ct[0].need_act + ct[0].need_w))
    return out


def best_fit(options, a_room: int, w_room: int):
    return next(((c, t) for c, t in options if c.need_act <= a_room and c.need_w <= w_room), None)


def compute_bound(ctx: Ctx) -> int:
    """Cycles at peak: the engine's products over its multipliers (elements over lanes)."""
    lay, cfg = ctx.layer, ctx.cfg
    C, (K, Ho, Wo) = lay.in_shape[0], lay.out_shape
    if ctx.engine == "winograd":
        prods = _ceil(Ho, cfg.tile) * _ceil(Wo, cfg.tile) * cfg.n ** 2 * C * K
    elif ctx.engine == "direct":
        prods = Ho * Wo * C * K * lay.kernel ** 2
    else:      # the element-wise unit's own rate: its cycles on the whole layer
        return ctx.opts.batch * core_band_cycles(ctx.mode, ctx.core, lay, 0, Ho, K, C, ctx.max_kernel, ctx.max_pool)
    return _ceil(prods * ctx.opts.batch, cfg.multipliers)
