"""The memory-aware planner (pure Python): for every layer of a network on a board, where its
tensors live (on-chip scratchpad, external memory, resident weights), the tiling that fits the
scratchpads (:mod:`wino_gen.layercost` prices one), the transfers and compute steps, and the
overlapped cycle count, with the traffic and compute bounds beside it.

The plan is the contract the compiler and sequencer execute (issue 14) and the simulator
measures. Layers run one after another (no overlap between layers), over the whole batch of B
images, or image by image when that is faster. The search is over fixed families (activation
placements by a size threshold, resident-weight prefixes of two fixed orders, the scratchpad
splits of :data:`SPLITS`), each one needing more room the more it holds, and each layer takes
its cheapest tiling that fits: so a bigger scratchpad never gives a slower plan. The search
minimizes first the layers whose tiling the compute unit refuses
(:func:`wino_gen.layercost.refused`: a pooling band, say, which the interpreter runs), then
the cycles: a plan the hardware runs wherever one fits, the fastest of those.

A layer's cost is what the system runs for it (:mod:`wino_gen.layercost`): every tile a
COMPUTE on the one core, every transfer a LOAD/STORE through the DMA on the port, every
instruction fetched over that port, the layer's parameter LOAD; ``Plan.startup`` is the
prologue that loads the resident weights once. What a compiled program takes on the system,
with the sequencer's queues and tokens and the port shared by fetch, loads and stores, is
:func:`program_cycles`, cycle by cycle, against the memory timing the simulation uses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from . import isa, memory, nets, schedule
from . import layercost as lc
from .config import WEIGHT_FORMATS, AcceleratorConfig
from .errors import UsageError
from .layercost import Cost, Step, Tiling, Transfer

__all__ = ["Cost", "LayerPlan", "Options", "Plan", "Step", "Tiling", "Transfer", "WEIGHT_FORMATS", "evaluate", "plan"]

SPLITS = tuple(i / 8 for i in range(1, 8))   # activation shares of the free on-chip bytes tried by default


@dataclass(frozen=True)
class Options:
    """What the user chooses. ``act_bytes``/``weight_bytes`` None: the board's free block RAM,
    split between the two scratchpads as the best of :data:`SPLITS`. The weight transform's rate is
    the config's ``weight_lanes`` (:func:`wino_gen.layercost.spatial_view`). ``port_bytes``: the
    memory port's word (None: the memory's own, :func:`wino_gen.layercost.port_bytes`).
    ``partial_sums``: the layer may be split over input channels where its weights fit the
    weight bank whole (the format and the interpreter run such plans; the compute unit does not
    yet: :func:`wino_gen.commands.why_unsupported`), so the default plans for the hardware."""

    batch: int = 1
    weights: str = "winograd"
    act_bytes: int | None = None
    weight_bytes: int | None = None
    port_bytes: int | None = None
    partial_sums: bool = False

    def __post_init__(self):
        if not isinstance(self.batch, int) or self.batch < 1:
            raise UsageError(f"--batch: must be an integer >= 1, got {self.batch!r}")
        if self.weights not in WEIGHT_FORMATS:
            raise UsageError(f"--weights: {self.weights!r}; allowed: {', '.join(WEIGHT_FORMATS)}")
        if self.port_bytes is not None and (self.port_bytes < 1 or self.port_bytes & (self.port_bytes - 1)):
            raise UsageError(f"port_bytes: a power of two, got {self.port_bytes!r}")
        for name in ("act_bytes", "weight_bytes"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise UsageError(f"{name}: must be >= 0, got {v}")


@dataclass(frozen=True)
class LayerPlan:
    layer: nets.Layer
    engine: str                     # winograd | direct | eltwise
    placement: dict                 # tensor -> "chip" | "external" | "resident" | "flash"
    tiling: Tiling
    cost: Cost
    steps: tuple[Step, ...]
    bound_compute: int              # cycles per batch at peak
    bound_bytes: float = 0.0        # bytes per batch, minimum
    bound_memory: int = 0           # cycles per batch, bound_bytes at peak bandwidth
    act_used: int = 0               # activation scratchpad bytes in use: on-chip tensors + buffers
    w_used: int = 0                 # weight scratchpad bytes in use: resident weights + buffers
    refused: str | None = None      # why the compute unit refuses a band of the tiling (None: it runs all)

    @property
    def bound(self) -> str:
        """What limits the plan: memory when its transfers exceed its compute."""
        return "memory" if self.cost.memory > self.cost.compute else "compute"


@dataclass(frozen=True)
class Plan:
    board: str
    cfg: AcceleratorConfig
    options: Options
    clock_mhz: float
    act_bytes: int
    weight_bytes: int
    layers: tuple[LayerPlan, ...]
    bound_cycles: int               # per batch: max(peak compute, minimum traffic at peak rate)
    bound_bytes: float              # per batch
    repeat: int = 1                 # the layers' steps run this often: B when images go one by one
    startup: int = 0                # cycles of the prologue: the resident weights' LOADs, once per power-up

    @property
    def cycles(self) -> int:
        """Per batch."""
        return self.repeat * sum(lp.cost.total for lp in self.layers)

    @property
    def cycles_per_image(self) -> float:
        return self.cycles / self.options.batch

    @property
    def ms_per_image(self) -> float:
        return self.cycles_per_image / (self.clock_mhz * 1e3)

    @property
    def bytes_per_image(self) -> float:
        return self.repeat * sum(lp.cost.read + lp.cost.written for lp in self.layers) / self.options.batch

    @property
    def compute_cycles(self) -> int:
        return self.repeat * sum(lp.cost.compute for lp in self.layers)

    @property
    def refusal(self) -> str | None:
        """The first layer the compute unit refuses (``LayerPlan.refused``), named, or None: a
        plan the golden model runs but the hardware would stop on (status unsupported)."""
        lp = next((lp for lp in self.layers if lp.refused), None)
        return None if lp is None else f"{lp.layer.name}: {lp.refused}"

    @property
    def ratio_to_bound(self) -> float:
        return self.cycles / max(1, self.bound_cycles)

    @property
    def traffic_ratio(self) -> float:
        """Plan bytes over the minimum traffic (inf when the bound is 0 and the plan moves bytes)."""
        moved = self.bytes_per_image * self.options.batch
        return moved / self.bound_bytes if self.bound_bytes else (1.0 if not moved else math.inf)


# -- the network ----------------------------------------------------------------------------------

def _sizes(layers, batch: int = 1) -> dict[str, int]:
    """Bytes of every activation tensor for ``batch`` images."""
    sizes = {nets.INPUT: math.prod(next(la.in_shape for la in layers if nets.INPUT in la.inputs))}
    sizes.update({la.name: math.prod(la.out_shape) for la in layers})
    return {t: n * batch for t, n in sizes.items()}


def _lifetimes(layers) -> dict[str, tuple[int, int]]:
    """Tensor -> (producing layer, last consuming layer) indices; the input is produced at -1."""
    born = {nets.INPUT: -1} | {la.name: i for i, la in enumerate(layers)}
    last = dict(born)
    for i, la in enumerate(layers):
        for src in la.inputs:
            last[src] = i
    return {t: (born[t], last[t]) for t in born}


def _act_candidates(layers, external: bool, batch: int) -> list[dict]:
    """The activation placements searched: every tensor up to a size threshold on chip (the
    network input stays in external memory when there is one). A fixed family of placements,
    each needing more room the larger its threshold: with the per-layer search this keeps a
    bigger scratchpad from ever giving a slower plan."""
    sizes = _sizes(layers, batch)
    if not external:
        return [dict.fromkeys(sizes, True)]
    cands = []
    for t in [0, *sorted(set(sizes.values()))]:
        cands.append({n: n != nets.INPUT and s <= t for n, s in sizes.items()})
    return cands


def _live(layers, chip: dict, batch: int) -> list[int]:
    """On-chip activation bytes held while each layer runs (a batch keeps all its images)."""
    sizes, life = _sizes(layers, batch), _lifetimes(layers)
    return [sum(sizes[t] for t, (a, b) in life.items() if chip[t] and a <= i <= b) for i in range(len(layers))]


def _weight_candidates(ctxs) -> list[frozenset]:
    """Resident-weight sets searched: prefixes of the layers by ascending weight bytes and by
    weight bytes per compute cycle (the most memory-bound first)."""
    w = [i for i, c in enumerate(ctxs) if c.layer.has_weights]
    whole = {i: lc.tile_cycles(ctxs[i], (0, ctxs[i].layer.out_shape[1]), ctxs[i].layer.out_shape[0],
                               min(ctxs[i].layer.in_shape[0], ctxs[i].cmax)) for i in w}
    orders = (sorted(w, key=lambda i: ctxs[i].wbytes), sorted(w, key=lambda i: -ctxs[i].wbytes / whole[i]))
    cands = {frozenset()}
    for order in orders:
        cands.update(frozenset(order[:k]) for k in range(1, len(order) + 1))
    return sorted(cands, key=lambda s: (len(s), sorted(s)))


class _Tables:
    """Each layer's tilings with their costs, per (placement of its tensors, resident weights)."""

    def __init__(self, ctxs):
        self.ctxs, self.cache = ctxs, {}

    def get(self, i: int, chip: dict, resident: bool):
        lay = self.ctxs[i].layer
        key = (i, tuple(chip[s] for s in lay.inputs), chip[lay.name], resident)
        if key not in self.cache:
            self.cache[key] = lc.ranked(self.ctxs[i], {t: chip[t] for t in (*lay.inputs, lay.name)}, resident)
        return self.cache[key]


def _search(layers, tables: _Tables, act_pool: int, w_pool: int, external: bool):
    """The best (placement, resident set, per-layer tilings) that fits the two pools, by
    (layers the compute unit refuses, cycles)."""
    best, batch = None, tables.ctxs[0].opts.batch
    for chip in _act_candidates(layers, external, batch):
        live = _live(layers, chip, batch)
        if max(live) > act_pool:
            continue
        for res in _weight_candidates(tables.ctxs):
            w_room = w_pool - sum(tables.ctxs[i].wbytes for i in res)
            if w_room < 0:
                continue
            key, picks = (0, 0), []
            for i in range(len(layers)):
                pick = lc.best_fit(tables.get(i, chip, i in res), act_pool - live[i], w_room)
                if pick is None:
                    break
                key = (key[0] + (lc.refused(tables.ctxs[i], pick[1]) is not None), key[1] + pick[0].total)
                if best and key >= best[0]:
                    break
                picks.append(pick[1])
            else:
                best = (key, chip, res, picks)
    return best


def _diagnose(layers, tables: _Tables, act_pool: int, w_pool: int, external: bool, board: str,
              free: int) -> UsageError:
    """One line naming the first layer no tiling can hold and the limit it exceeds."""
    batch = tables.ctxs[0].opts.batch
    chip = _act_candidates(layers, external, batch)[0]
    live = _live(layers, chip, batch)
    for i, lay in enumerate(layers):
        if live[i] > act_pool:
            return UsageError(f"{lay.name}: {live[i]} bytes of activations must stay on chip ({board} has no "
                              f"external RAM), the activation scratchpad holds {act_pool} (of {free} bytes free "
                              f"on chip)")
        opts = tables.get(i, chip, False)
        if lc.best_fit(opts, act_pool - live[i], w_pool) is None:
            need_a = min(c.need_act for c, _ in opts)
            need_w = min(c.need_w for c, _ in opts if c.need_act <= act_pool - live[i]) if any(
                c.need_act <= act_pool - live[i] for c, _ in opts) else 0
            what = (f"{need_a} bytes of activation scratchpad, has {act_pool - live[i]}"
                    if need_a > act_pool - live[i] else f"{need_w} bytes of weight scratchpad, has {w_pool}")
            return UsageError(f"{layers[i].name}: no tiling fits: needs at least {what}")
    return UsageError("no plan fits the scratchpads")


def _check_capacity(ctxs, layers, bm: memory.BoardMemory, batch: int = 1) -> None:
    """Weights must fit their store; with the activations of ``batch`` images live at once
    (an allocator reuses a dead tensor's room: the peak over the layers counts), the external
    RAM must hold both when it is also the weight store."""
    w = sum(c.wbytes for c in ctxs)
    if w > bm.weight_store.capacity:
        raise UsageError(f"weights: {w / 2**20:.1f} MiB do not fit the {bm.weight_store.capacity / 2**20:.1f} MiB "
                         f"{bm.weight_store.part}")
    if bm.external is not None:
        acts = max(_live(layers, dict.fromkeys(_sizes(layers), True), batch))
        held = w if bm.external is bm.weight_store else 0
        if held + acts > bm.external.capacity:
            raise UsageError(f"weights and activations of {batch} image(s): {(held + acts) / 2**20:.1f} MiB do not "
                             f"fit the {bm.external.capacity / 2**20:.1f} MiB {bm.external.part}")


# -- bounds -----------------------------------------------------------------------------------------

def _bounds(layers, ctxs, free: int, bm: memory.BoardMemory, B: int):
    """Per layer (activation bytes, weight bytes) per batch that must cross whatever the plan:
    an activation larger than all of the free on-chip RAM is written once and read once per
    image (the network input read once), and at least the part of a layer's weights that the
    free on-chip RAM cannot hold is read once per batch. A lower bound for layer-by-layer
    execution (a fused schedule could keep a big tensor from ever existing whole)."""
    sizes, out = _sizes(layers), []
    first_use = {}
    for i, la in enumerate(layers):
        for src in la.inputs:
            first_use.setdefault(src, i)
    for i, la in enumerate(layers):
        a = 0
        if bm.external is not None:
            a += sum(sizes[s] for s in la.inputs if first_use[s] == i and (s == nets.INPUT or sizes[s] > free))
            a += sizes[la.name] if sizes[la.name] > free else 0
        out.append((a * B, max(0, ctxs[i].wbytes - free)))
    return out


def _peak_cycles(nbytes: float, mem) -> float:
    return nbytes / mem.peak_bytes_per_cycle if nbytes else 0.0


# -- entry point ----------------------------------------------------------------------------------

def _pools(opts: Options, free: int) -> list[tuple[int, int]]:
    a, w = opts.act_bytes, opts.weight_bytes
    if a is not None and w is not None:
        return [(a, w)]
    if a is not None or w is not None:
        given = a if a is not None else w
        if given > free:
            raise UsageError(f"scratchpad: {given} bytes asked, {free} free on chip")
        return [(a, free - a)] if a is not None else [(free - w, w)]
    return [(int(free * f), free - int(free * f)) for f in SPLITS]


def plan(layers, cfg: AcceleratorConfig, board: str, clock_mhz: float, options: Options = Options(),
         memory_spec: str | None = None) -> Plan:
    """The best plan of ``layers`` (``nets.resnet18()``, ``nets.network(...)``) on ``board``
    for an engine built from ``cfg`` running at ``clock_mhz``. A batch runs layer by layer over
    its B images (weights once per batch, on-chip activations for all B), or one image after
    another (``Plan.repeat == B``) when that is faster or the batch does not fit."""
    bm = memory.board_memory(board, memory_spec)
    layers = tuple(layers)
    build = lc.core_build(layers)
    ctxs = [lc.make_ctx(la, cfg, bm, clock_mhz, options, build) for la in layers]
    _check_capacity(ctxs, layers, bm)
    free = bm.on_chip.free_bytes(memory.engine_blocks(cfg, board))
    best, repeat, B = None, 1, options.batch
    try:
        best = _plan_pass(layers, ctxs, bm, free, board)
    except UsageError:
        if B == 1:
            raise
    if B > 1:
        one = [dataclasses.replace(c, opts=dataclasses.replace(options, batch=1)) for c in ctxs]
        single = _plan_pass(layers, one, bm, free, board)
        if best is None or _key(single[2], B) < _key(best[2]):
            best, repeat = single, B
    act_pool, w_pool, lps = best
    bound_cycles, bound_bytes = _network_bound(layers, ctxs, free, bm)
    return Plan(board, cfg, options, clock_mhz, act_pool, w_pool, lps, bound_cycles, bound_bytes, repeat,
                _startup(lps, ctxs))


def _startup(lps, ctxs) -> int:
    """The prologue's cycles: a LOAD of every resident layer's weights, one after another on
    the port, each fetched, and the SYNC that hands their token on."""
    loads = [c for lp, c in zip(lps, ctxs, strict=True) if lp.placement.get(lp.layer.name + ".w") == "resident"]
    if not loads:
        return 0
    over = lc.overheads(loads[0])
    return over.fetch * (len(loads) + 1) + sum(lc.weight_load(c).cycles for c in loads)


def _key(lps, repeat: int = 1) -> tuple[int, int]:
    """What the planner minimizes: (layers the compute unit refuses, cycles of ``repeat`` runs)."""
    return sum(lp.refused is not None for lp in lps), repeat * sum(lp.cost.total for lp in lps)


def _plan_pass(layers, ctxs, bm, free: int, board: str):
    """``(act_pool, w_pool, layer plans)``: the best over the scratchpad splits."""
    opts = ctxs[0].opts
    _check_capacity(ctxs, layers, bm, opts.batch)
    tables, external = _Tables(ctxs), bm.external is not None
    found = []
    for a, w in _pools(opts, free):
        r = _search(layers, tables, a, w, external)
        if r:
            found.append((r[0], a, w, r))
    if not found:
        a, w = _pools(opts, free)[-1]
        raise _diagnose(layers, tables, a, w, external, board, free)
    _, act_pool, w_pool, (_, chip, res, tilings) = min(found, key=lambda f: f[0])
    live, held = _live(layers, chip, opts.batch), sum(ctxs[i].wbytes for i in res)
    bounds = _bounds(layers, ctxs, free, bm, opts.batch)
    lps = [_layer_plan(ctxs[i], t, chip, i in res) for i, t in enumerate(tilings)]
    moved, delayed = {}, {}
    for i, (j, m, waits) in hoists(lps, [weight_buffer(lp) for lp in lps], w_pool - held).items():
        moved[i] = lc.hoisted_cycles(lps[i].steps, lps[i].layer.name)
        idle = lc.idle_port(lps[m].steps, lc.overheads(ctxs[m]), lps[m].tiling.double)
        if waits:           # only under m's last COMPUTE
            idle = min(idle, lps[m].steps[-1].compute)
        delayed[j] = delayed.get(j, 0) + max(0, moved[i] - idle)
    out = []
    for i, lp in enumerate(lps):
        if i in moved or i in delayed:      # the same steps, their overlap repriced
            cost = lc.cost_of(lp.steps, (lp.cost.need_act, lp.cost.need_w), lc.overheads(ctxs[i]),
                              lp.tiling.double, moved.get(i, 0), delayed.get(i, 0))
            lp = dataclasses.replace(lp, cost=cost)
        a, w = bounds[i]
        mcyc = math.ceil(_peak_cycles(a, bm.external) + _peak_cycles(w, bm.weight_store)) if a or w else 0
        out.append(dataclasses.replace(lp, act_used=live[i] + lp.cost.need_act, w_used=held + lp.cost.need_w,
                                       bound_bytes=float(a + w), bound_memory=mcyc))
    return act_pool, w_pool, tuple(out)


def weight_buffer(lp: LayerPlan) -> tuple[int, int] | None:
    """(bytes, slots) of the layer's weight buffers (its tiling's: two slots where it loads more
    than one block double buffered), None when it has none (resident weights or none at all)."""
    if not lp.layer.has_weights or lp.tiling.hold == "resident":
        return None
    return lp.cost.need_w, 2 if lp.tiling.double and _weight_loads(lp) > 1 else 1


def _weight_loads(lp: LayerPlan) -> int:
    return sum(x.tensor == lp.layer.name + ".w" for s in lp.steps for x in s.loads)


def weight_sides(sizes, room: int) -> list[bool]:
    """Per layer, whether its weight buffers (``sizes[i]``: (bytes, slots), None: none) lie at
    the top of the ``room`` bytes of weight scratchpad above the resident weights rather than
    at its bottom: the top where the last layer before with weight buffers has them at the
    bottom and both fit, so that a layer's weight LOAD can run while that layer still reads its
    own (:func:`hoists`)."""
    out, prev = [], None
    for n in sizes:
        top = n is not None and prev is not None and sizes[prev][0] + n[0] <= room and not out[prev]
        out.append(top)
        prev = prev if n is None else len(out) - 1
    return out


def hoists(lps, sizes, room: int) -> dict[int, tuple[int, int, bool]]:
    """The weight LOADs the compiler issues early: layer ``i`` -> ``(j, m, waits)``, the LOAD of
    layer ``i``'s first weight block emitted before layer ``j``'s parameter LOAD and run under
    layer ``m``'s compute (``m = j - 1``). A parameter LOAD waits for the previous layer's last
    COMPUTE (one parameter buffer) and the load queue runs in order, so a weight LOAD behind
    its own layer's would wait too. It goes before its own layer's (``j = i``), or before the
    previous layer's where that one moves nothing but its parameters (``j = i - 1``), and only
    where its slot (the first of layer ``i``'s buffers, ``sizes``/``room`` placed by
    :func:`weight_sides`) is apart from the one layer ``m``'s last COMPUTE reads: else it would
    wait for that COMPUTE all the same. ``waits``: its slot overlaps another of ``m``'s, so it
    starts only once ``m``'s earlier COMPUTEs are done (under ``m``'s last one). Layer 0 is never
    hoisted (in a batch run image by image it follows the last layer: priced as not)."""
    top = weight_sides(sizes, room)

    def slot(k, s):
        size, slots = sizes[k]
        lo = (room - size if top[k] else 0) + s * (size // slots)
        return lo, lo + size // slots

    def apart(a, b):
        return a[1] <= b[0] or b[1] <= a[0]

    def quiet(k):
        return not any(s.loads or s.stores for s in lps[k].steps)

    def clear(m, i):
        return sizes[m] is None or apart(slot(i, 0), slot(m, (_weight_loads(lps[m]) - 1) % sizes[m][1]))

    out = {}
    for i in range(1, len(lps)):
        if not lc.hoisted_cycles(lps[i].steps, lps[i].layer.name):
            continue
        j = i - 1 if i >= 2 and quiet(i - 1) and clear(i - 2, i) else i
        m = j - 1
        if clear(m, i):
            waits = sizes[m] is not None and not all(apart(slot(i, 0), slot(m, s)) for s in range(sizes[m][1]))
            out[i] = (j, m, waits)
    return out


def _layer_plan(ctx: lc.Ctx, t: Tiling, chip: dict, resident: bool) -> LayerPlan:
    lay = ctx.layer
    sub = {s: chip[s] for s in (*lay.inputs, lay.name)}
    steps = tuple(lc.layer_steps(ctx, t, sub))
    place = {s: "chip" if chip[s] else "external" for s in sub}
    if lay.has_weights:
        place[lay.name + ".w"] = "resident" if resident else ("flash" if not ctx.wmem.writable else "external")
    cost = lc.cost_of(steps, lc.needs(ctx, t, sub), lc.overheads(ctx), t.double)
    return LayerPlan(lay, ctx.engine, place, t, cost, steps, lc.compute_bound(ctx), refused=lc.refused(ctx, t))


def evaluate(layer: nets.Layer, cfg: AcceleratorConfig, board: str, clock_mhz: float, tiling: Tiling,
             on_chip: dict, options: Options = Options(), memory_spec: str | None = None) -> LayerPlan:
    """One layer under a given tiling, its tensors on chip where ``on_chip`` (tensor -> bool)
    says: what the compiler asks of a tiling it chose, and the planner's cost in the tests."""
    ctx = lc.make_ctx(layer, cfg, memory.board_memory(board, memory_spec), clock_mhz, options)
    return _layer_plan(ctx, tiling, on_chip, tiling.hold == "resident")


def _network_bound(layers, ctxs, free: int, bm) -> tuple[int, float]:
    """Per batch: (max(peak compute, minimum traffic at peak rate) cycles, minimum bytes); the
    weights that the free on-chip RAM cannot all hold cross at least once per batch."""
    bounds = _bounds(layers, ctxs, free, bm, ctxs[0].opts.batch)
    a_bytes = sum(a for a, _ in bounds)
    w_bytes = max(sum(w for _, w in bounds), sum(c.wbytes for c in ctxs) - free)
    mem = _peak_cycles(a_bytes, bm.external) + _peak_cycles(w_bytes, bm.weight_store) if a_bytes or w_bytes else 0
    comp = sum(lc.compute_bound(c) for c in ctxs)
    return max(comp, math.ceil(mem)), float(a_bytes + w_bytes)


# -- a compiled program on the system (the sequencer's overlap) ------------------------------------

@dataclass(frozen=True)
class SystemBuild:
    """What of ``rtl.system.System``'s build the program's timing depends on, by default the
    build that ``rtl.system`` defaults to and ``sim.system.build`` makes (the constants of
    :mod:`wino_gen.schedule`): the port's word and longest burst, the sequencer's prefetch and
    queue depths, the memory's command queue. ``dma_ahead``, the bursts of one transfer granted
    and not yet served, is the model's own: no build parameter sets it (a transfer is one DMA
    block, so the DMA's command queue does not: pysim's cycles are the same for queues of 1
    and 4), and 2 is where the model meets pysim."""

    port_bytes: int = 1
    max_burst: int = schedule.MAX_BURST
    fetch_depth: int = schedule.FETCH_DEPTH
    queue_depth: int = schedule.QUEUE_DEPTH
    mem_depth: int = schedule.MEMORY_DEPTH
    dma_ahead: int = 2


@dataclass
class _Transfer:
    """A LOAD/STORE in its DMA: its bursts ``(byte address, bytes)`` still to issue, how many
    are granted and not yet served, the cycle its first may be issued, its last word's cycle."""

    bursts: list
    ready: int
    flying: int = 0
    last: int = -1


class _Port:
    """The one memory port: a round-robin arbiter granting one whole burst a cycle of fetch (0),
    load (1) and store (2) into the memory's command queue, served in order by ``timing`` (the
    protocol of :mod:`wino_gen.timing`: ``split``, ``start``, ``finish``, ``rate``), its words
    one port word every ``word / rate`` cycles, at least one."""

    def __init__(self, timing, build: SystemBuild):
        self.t, self.W, self.depth = timing, build.port_bytes, build.mem_depth
        rate = getattr(timing, "rate", None)
        self.ivl = 1.0 if rate is None else max(1.0, self.W / float(rate))
        self.queue: list = []         # granted: (address, bytes, write, done callback, cycle known)
        self.busy_until = 0
        self.last = 2

    def cycle(self, now: int, wants) -> None:
        if len(self.queue) < self.depth:
            for k in range(1, 4):
                m = (self.last + k) % 3
                burst = wants[m](now)
                if burst is not None:
                    self.queue.append((*burst, now + 1))
                    self.last = m
                    break
        while self.queue and self.busy_until <= now:
            addr, nbytes, write, done, known = self.queue.pop(0)
            end = now
            for a, n in self.t.split(addr, nbytes):
                first = max(self.t.start(a, n, write, known), known + lc.STORE_READ if write else 0)
                end = math.ceil(first + self.ivl * math.ceil(n / self.W) - 1) + 1
                self.t.finish(end)
            self.busy_until = end
            done(end - 1)


class _Fetch:
    """The sequencer's fetch: bursts of the program into a prefetch FIFO of ``fetch_depth``
    instructions' words as far as it has room, one word a cycle into the instruction register."""

    def __init__(self, n: int, start_addr: int, build: SystemBuild):
        self.W, self.wpi, self.max_burst = build.port_bytes, isa.WORD_BYTES // build.port_bytes, build.max_burst
        self.addr, self.left = start_addr, n * self.wpi
        self.credit = max(build.fetch_depth * self.wpi, build.max_burst)
        self.arrive: list[int] = []
        self.fifo = self.have = self.index = 0
        self.ready = self.ended = False

    def want(self, now: int):
        k = min(self.left, self.max_burst)
        if self.ended or not k or self.credit < k:
            return None
        addr, self.addr, self.left, self.credit = self.addr, self.addr + k * self.W, self.left - k, self.credit - k
        return addr, k * self.W, False, lambda last: self.arrive.extend(range(last - k + 1, last + 1))

    def cycle(self, now: int) -> None:
        """Words that arrived before ``now`` enter the FIFO; one goes on into the register."""
        came = sum(a < now for a in self.arrive)
        if came:
            self.arrive, self.fifo = [a for a in self.arrive if a >= now], self.fifo + came
        if not self.ready and self.fifo and not self.ended:
            self.fifo, self.credit, self.have = self.fifo - 1, self.credit + 1, self.have + 1
            if self.have == self.wpi:
                self.have, self.ready = 0, True


class _Sequencer:
    """``rtl.ctrl.sequencer`` cycle by cycle: dispatch in program order into queues of
    ``queue_depth``, each queue's head started once its tokens are there, retired when its unit
    answers (a COMPUTE after its cycles, a SYNC the next cycle, a LOAD/STORE two cycles after its
    last word), its tokens counted the cycle after."""

    def __init__(self, program, compute_cycles, port: _Port, fetch: _Fetch, build: SystemBuild):
        self.program, self.compute_cycles, self.port, self.fetch = program, compute_cycles, port, fetch
        self.depth, self.W, self.max_burst, self.ahead = build.queue_depth, build.port_bytes, build.max_burst, \
            build.dma_ahead
        self.queues = {q: [] for q in isa.QUEUE_ORDER}          # (index, cycle it can start)
        self.cur: dict = dict.fromkeys(isa.QUEUE_ORDER)          # (index, retire cycle or None: a transfer)
        self.free = dict.fromkeys(isa.QUEUE_ORDER, 0)
        self.tokens, self.pushed = dict.fromkeys(isa.CHANNELS, 0), []
        self.xfer: dict = {"load": None, "store": None}
        self.times: dict[int, tuple[int, int]] = {}

    def dma_want(self, q: str):
        def want(now):
            x = self.xfer[q]
            if x is None or not x.bursts or now < x.ready or x.flying >= self.ahead:
                return None
            x.flying += 1
            addr, nbytes = x.bursts.pop(0)

            def done(last):
                x.flying -= 1
                x.last = last
            return addr, nbytes, q == "store", done
        return want

    def _answered(self, q: str, now: int) -> bool:
        ends = self.cur[q][1]
        if ends is not None:
            return ends <= now
        x = self.xfer[q]
        return not x.bursts and not x.flying and x.last + lc.XFER_ANSWER <= now

    def retire(self, now: int) -> None:
        for ch in self.pushed:
            self.tokens[ch] += 1
        self.pushed.clear()
        for q in isa.QUEUE_ORDER:
            if self.cur[q] is None or not self._answered(q, now):
                continue
            i = self.cur[q][0]
            self.pushed += [(q, _neighbour(q, s)) for s in ("prev", "next") if getattr(self.program[i], f"push_{s}", 0)]
            self.times[i] = (self.times[i][0], now)
            self.cur[q], self.free[q] = None, now + 1
            if q in self.xfer:
                self.xfer[q] = None

    def start(self, now: int) -> None:
        for q in isa.QUEUE_ORDER:
            if self.cur[q] is not None or self.free[q] > now or not self.queues[q] or self.queues[q][0][1] > now:
                continue
            i = self.queues[q][0][0]
            ins = self.program[i]
            pops = [(_neighbour(q, s), q) for s in ("prev", "next") if getattr(ins, f"pop_{s}", 0)]
            if any(self.tokens[ch] == 0 for ch in pops):
                continue
            for ch in pops:
                self.tokens[ch] -= 1
            self.queues[q].pop(0)
            self.times[i] = (now, -1)
            if ins.OP == "SYNC":
                self.cur[q] = (i, now + 1)
            elif ins.OP == "COMPUTE":
                self.cur[q] = (i, now + 1 + self.compute_cycles(i))
            else:
                step = self.max_burst * self.W
                bursts = [(ins.ext_addr + j * ins.ext_stride + o, min(step, ins.burst - o))
                          for j in range(ins.count) for o in range(0, ins.burst, step)]
                self.xfer[q] = _Transfer(bursts, now + lc.XFER_ISSUE)
                self.cur[q] = (i, None if bursts else now + lc.XFER_ISSUE)

    def dispatch(self, now: int) -> None:
        f = self.fetch
        if not f.ready or f.ended:
            return
        q = isa.QUEUES[self.program[f.index].OP]
        if q is not None and len(self.queues[q]) >= self.depth:
            return
        if q is None:
            f.ended = True
        else:
            self.queues[q].append((f.index, now + 1))
        f.index, f.ready = f.index + 1, False

    def done(self, now: int) -> bool:
        return (self.fetch.ended and all(c is None for c in self.cur.values()) and not any(self.queues.values())
                and self.port.busy_until <= now)


def image_cycles(img, compute_cycles, timing, limit: int = 10_000_000) -> tuple[int, dict[int, tuple[int, int]]]:
    """:func:`program_cycles` of a compiled image (``wino_gen.compile.image.Image``): its program
    fetched from where the image puts it, over the image's port (``img.port_bytes``)."""
    return program_cycles(img.program, compute_cycles, timing, SystemBuild(port_bytes=img.port_bytes),
                          start_addr=img.program_offset, limit=limit)


def program_cycles(program, compute_cycles, timing, build: SystemBuild = SystemBuild(),
                   start_addr: int = 0, limit: int = 10_000_000) -> tuple[int, dict[int, tuple[int, int]]]:
    """The sequencer's cycles for ``program`` (``wino_gen.isa`` instructions, fetched from byte
    ``start_addr``) and every instruction's (start, retire) cycle, as ``rtl.system`` runs it:
    the fetch's bursts and the LOAD/STOREs' bursts share the port (``timing`` the memory's,
    ``build`` the port's); a COMPUTE is busy ``compute_cycles(index)`` from its hand-over to its
    answer (:func:`compute_costs`); tokens order the queues. ``limit``: cycles before an
    AssertionError (a program that never ends)."""
    port, fetch = _Port(timing, build), _Fetch(len(program), start_addr, build)
    seq = _Sequencer(program, compute_cycles, port, fetch, build)
    wants = (fetch.want, seq.dma_want("load"), seq.dma_want("store"))
    for now in range(limit):
        seq.retire(now)
        seq.start(now)
        seq.dispatch(now)
        fetch.cycle(now)
        port.cycle(now, wants)
        if seq.done(now):
            return now + 1, seq.times
    raise AssertionError(f"the program is not done after {limit} cycles")


def _neighbour(queue: str, side: str) -> str | None:
    k = isa.QUEUE_ORDER.index(queue) + (1 if side == "next" else -1)
    return isa.QUEUE_ORDER[k] if 0 <= k < len(isa.QUEUE_ORDER) else None


def compute_costs(p: Plan, program) -> dict[int, int]:
    """Every COMPUTE's cycles in ``program`` (compiled from ``p``), hand-over to answer, as the
    plan prices its tiles (:func:`wino_gen.layercost.tile_cycles`); a COMPUTE after one of the
    same layer and mode finds its parameters cached."""
    build = lc.core_build([lp.layer for lp in p.layers])
    bm = memory.board_memory(p.board)
    ctxs = [lc.make_ctx(lp.layer, p.cfg, bm, p.clock_mhz, p.options, build) for lp in p.layers]
    out, prev = {}, None
    for i, ins in enumerate(program):
        if ins.OP != "COMPUTE":
            continue
        ctx = ctxs[ins.layer]
        if isa.MODES[ins.mode] != ctx.mode:
            raise ValueError(f"instruction {i}: mode {isa.MODES[ins.mode]}, the plan's layer runs {ctx.mode}")
        out[i] = lc.tile_cycles(ctx, (ins.r0, ins.r1), ins.k1 - ins.k0, ins.c1 - ins.c0,
                                cached=(ins.layer, ins.mode) == prev)
        prev = ins.layer, ins.mode
    return out
