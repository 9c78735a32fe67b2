"""Model dir -> memory image: executes the planner's plan (:func:`wino_gen.plan.plan`).

For each layer the compiler lays out its parameter block (:class:`image.Desc`), its weights
blocked as the plan's tiling reads them (block (k-block, c-split) after block, each one burst,
``[k][c][tap]`` inside; for a ``weights='spatial'`` build the Winograd layers' int8 3x3 kernels
``W`` and their U requant instead of ``U``), and an activation region for every tensor; it places the on-chip
tensors and the layer's buffers in the scratchpads, and emits per plan step the LOADs, one
COMPUTE and the STOREs. Dependencies are derived, not hand-placed: every instruction names the
memory ranges it reads and writes, each hazard becomes a token between neighbouring queues
(a SYNC relays one between LOAD and STORE), and only the latest one per queue pair is kept, so
loads run ahead of compute as far as the double buffers allow.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .. import isa, limits, memory, nets, plan
from ..config import AcceleratorConfig
from ..errors import UsageError
from ..format import INPUT, Model
from . import image as im

MODE_OF = {"winograd_conv3x3": "winograd", "direct_conv": "direct", "linear": "linear", "add": "add",
           "maxpool": "maxpool", "avgpool": "avgpool"}
ACC_BYTES = 4
DEFAULT_CLOCK_MHZ = 80.0


@dataclass(frozen=True)
class Compiled:
    image: im.Image
    plan: plan.Plan
    plan_bytes: int          # bytes the plan's transfers move (per batch)
    step_bytes: int          # bytes the program's LOAD/STORE of those transfers move
    extra_bytes: int         # parameter blocks, resident weights, output/trace stores


def pieces(total: int, size: int) -> list[tuple[int, int]]:
    """Half-open ranges of ``total`` cut into ``size`` (the plan's blocks and splits)."""
    return [(a, min(total, a + size)) for a in range(0, total, size)]


def rows_in(lay: nets.Layer, r0: int, r1: int) -> tuple[int, int]:
    """Image rows [a, b) that output rows [r0, r1) read, clipped to the image (padding is not
    stored anywhere: the engine makes it)."""
    H = lay.in_shape[1]
    if lay.op == "add":
        return r0, r1
    return max(0, r0 * lay.stride - lay.padding), min(H, (r1 - 1) * lay.stride - lay.padding + lay.kernel)


def _rows_max(lay: nets.Layer, band: int) -> int:
    """Rows an input band buffer holds (``layercost``'s count: the halo included, capped at H)."""
    return band if lay.op == "add" else min(lay.in_shape[1], (band - 1) * lay.stride + lay.kernel)


# -- the build must have what the model uses -------------------------------------------------

def check_build(model: Model, cfg: AcceleratorConfig) -> None:
    """Refuse a model the build of ``cfg`` cannot run bit for bit: one line naming the layer."""
    for key in ("act_bits", "transform_bits"):
        if getattr(model, key) != getattr(cfg, key):
            raise UsageError(f"{key}: the model saturates at {getattr(model, key)} bits, the config at "
                             f"{getattr(cfg, key)}")
    if model.weight_bits > cfg.weight_bits:
        raise UsageError(f"weight_bits: the model's {model.weight_bits}-bit weights exceed the config's "
                         f"{cfg.weight_bits}")
    for lay in model.layers:
        a = lay.arrays
        if lay.op == "winograd_conv3x3":
            if cfg.weights == "spatial" and "W" not in a:
                raise UsageError(f"{lay.name}: the config's engine takes spatial weights (weights=spatial); the "
                                 f"layer holds only U (a wino-int8/2 model dir with W and u_mult/u_shift)")
            if cfg.algo != "winograd":
                raise UsageError(f"{lay.name}: winograd_conv3x3 needs a Winograd engine; the config builds "
                                 f"algo={cfg.algo}")
            if model.tile != cfg.tile or model.balance != cfg.balance:
                raise UsageError(f"{lay.name}: Winograd F{model.tile} ({model.balance} balance) on an F{cfg.tile} "
                                 f"({cfg.balance} balance) engine")
            for key in ("v", "m"):
                if cfg.granularity == "layer" and (np.any(a[f"{key}_mult"] != a[f"{key}_mult"].flat[0])
                                                   or np.any(a[f"{key}_shift"] != a[f"{key}_shift"].flat[0])):
                    raise UsageError(f"{lay.name}: per-tap {key} scales need a granularity=tap build")
            if int(a["m_align"].max(initial=0)) > cfg.tap_shift:
                raise UsageError(f"{lay.name}: m_align {int(a['m_align'].max())} exceeds the build's tap shift "
                                 f"{cfg.tap_shift}")
        if lay.op in ("winograd_conv3x3", "direct_conv", "linear"):
            _check_requant(lay, cfg)


def _check_requant(lay, cfg: AcceleratorConfig) -> None:
    a = lay.arrays
    mlo, mhi = limits.hw_mult_range(cfg.requant, cfg.mult_bits)
    slo, shi = limits.HW_SHIFT_RANGE
    for key in ("v", "m", "y", "u"):
        if f"{key}_mult" not in a or (key == "u" and cfg.weights != "spatial"):
            continue
        mult, shift = a[f"{key}_mult"], a[f"{key}_shift"]
        if int(mult.min()) < mlo or int(mult.max()) > mhi:
            raise UsageError(f"{lay.name}: {key}_mult outside the build's {cfg.requant} multipliers {mlo}..{mhi}")
        if int(shift.min()) < slo or int(shift.max()) > shi:
            raise UsageError(f"{lay.name}: {key}_shift outside the hardware's shifts {slo}..{shi}")
    blo, bhi = limits.int_range(cfg.bias_bits)
    if a["bias"].size and (int(a["bias"].min()) < blo or int(a["bias"].max()) > bhi):
        raise UsageError(f"{lay.name}: bias exceeds the build's {cfg.bias_bits}-bit bias")


# -- dependencies ---------------------------------------------------------------------------------

class _Deps:
    """Memory hazards -> tokens. ``entries[mem]``: [lo, hi, writer, {queue: last reader}]."""

    def __init__(self):
        self.entries: dict[str, list] = {}
        self.satisfied: dict[tuple[str, str], int] = {}

    def hazards(self, reads, writes) -> set[int]:
        deps = set()
        for mem, lo, hi in reads:
            for e in self.entries.get(mem, ()):
                if e[0] < hi and lo < e[1] and e[2] is not None:
                    deps.add(e[2])
        for mem, lo, hi in writes:
            for e in self.entries.get(mem, ()):
                if e[0] < hi and lo < e[1]:
                    deps.update(d for d in (e[2], *e[3].values()) if d is not None)
        return deps

    def record(self, idx: int, queue: str, reads, writes) -> None:
        for mem, lo, hi in writes:       # the bytes written forget their old writer and readers
            lst = self.entries.setdefault(mem, [])
            lst[:] = [part for e in lst for part in _outside(e, lo, hi)]
            lst.append([lo, hi, idx, {}])
        for mem, lo, hi in reads:
            hit = False
            for e in self.entries.setdefault(mem, []):
                if e[0] < hi and lo < e[1]:
                    e[3][queue] = idx
                    hit |= e[0] <= lo and hi <= e[1]
            if not hit:
                self.entries[mem].append([lo, hi, None, {queue: idx}])


def _outside(e: list, lo: int, hi: int) -> list:
    """The parts of hazard entry ``e`` outside [lo, hi), each with its writer and readers."""
    if e[1] <= lo or hi <= e[0]:
        return [e]
    return [[a, b, e[2], dict(e[3])] for a, b in ((e[0], lo), (hi, e[1])) if a < b]


class _Program:
    """Instructions in program order as field dicts, with tokens from their hazards."""

    def __init__(self):
        self.ops: list[dict] = []
        self.deps = _Deps()
        self.moved = 0

    def emit(self, op: str, reads=(), writes=(), **fields) -> int:
        queue = isa.QUEUES[op]
        by_queue: dict[str, int] = {}
        for d in self.deps.hazards(reads, writes):
            q = self.ops[d]["queue"]
            if q != queue:
                by_queue[q] = max(by_queue.get(q, -1), d)
        far = {"load": "store", "store": "load"}.get(queue)
        if far in by_queue:
            x = by_queue.pop(far)
            if x > self.deps.satisfied.get((far, queue), -1):
                sync = self.append("SYNC")
                self.token(x, sync)
                self.deps.satisfied[(far, queue)] = x
                by_queue["compute"] = sync
        idx = self.append(op, fields)
        for d in by_queue.values():
            self.token(d, idx)
        self.deps.record(idx, queue, reads, writes)
        if op in ("LOAD", "STORE"):
            self.moved += fields["count"] * fields["burst"]
        return idx

    def append(self, op: str, fields: dict | None = None) -> int:
        self.ops.append({"op": op, "queue": isa.QUEUES[op], "fields": dict(fields or {})})
        return len(self.ops) - 1

    def token(self, src: int, dst: int) -> None:
        """Make ``dst`` wait for ``src`` unless an earlier token between their queues covers it
        (each queue runs in order, so waiting for a later instruction covers the earlier ones)."""
        qs, qd = self.ops[src]["queue"], self.ops[dst]["queue"]
        if src <= self.deps.satisfied.get((qs, qd), -1):
            return
        forward = isa.QUEUE_ORDER.index(qs) < isa.QUEUE_ORDER.index(qd)
        self.ops[src]["fields"]["push_next" if forward else "push_prev"] = 1
        self.ops[dst]["fields"]["pop_prev" if forward else "pop_next"] = 1
        self.deps.satisfied[(qs, qd)] = src

    def resolve(self, where: dict[int, str]) -> tuple:
        out = []
        for i, o in enumerate(self.ops):
            try:
                out.append(isa.CLASSES[o["op"]](**o["fields"]))
            except ValueError as e:
                raise UsageError(f"{where.get(i, 'program')}: {e}") from None
        return tuple(out)


# -- layout ---------------------------------------------------------------------------------------

@dataclass
class _Buffers:
    """A layer's scratchpad buffers: ``(base, slot size, slots)`` each (None where absent), and
    the bytes between channels of each input (``in_cs``) and of the output buffer (``out_cs``)."""

    inputs: list
    out: tuple | None
    acc: tuple | None
    wgt: tuple | None
    in_cs: list
    out_cs: int

    @property
    def act_bytes(self) -> int:
        return sum(s * n for _, s, n in [*filter(None, self.inputs), *filter(None, (self.out, self.acc))])


def _taps(lp: plan.LayerPlan, cfg: AcceleratorConfig) -> int:
    lay = lp.layer
    if lp.engine == "winograd":
        return 9 if cfg.weights == "spatial" else cfg.n * cfg.n
    return lay.kernel ** 2 if lay.op == "conv" else 1


def _up(n: int, w: int) -> int:
    """``n`` rounded up to a multiple of ``w``."""
    return -(-n // w) * w


def _pitch(used: int, plane: int, bands, head: int, w: int) -> int:
    """Bytes between channels of a band buffer holding ``used`` bytes a channel, for a tensor of
    ``plane`` bytes a channel moved in bands of ``bands`` bytes a channel, each channel's row
    starting up to ``head`` bytes early (docs/image.md, "Port words"): ``plane`` itself when the
    buffer holds whole planes and every partial band leaves that room before the next channel,
    else the smallest pitch with the room congruent to ``plane`` modulo the ``w``-byte word."""
    if used == plane and all(b == plane or plane - b >= head for b in bands):
        return plane
    need = used + head
    return need + (plane - need) % w


def _head(starts, w: int) -> int:
    """The most bytes any of these external row starts lies past a port word."""
    return max((e % w for e in starts), default=0)


def _buffers(lp: plan.LayerPlan, cfg: AcceleratorConfig, B: int, repeat: int, top: int, held: int,
             w: int) -> _Buffers:
    """The layer's buffers as ``layercost.needs`` counts them, each with the room its realigned
    transfers need on a port of ``w`` bytes (the most any row of the layer's steps starts early,
    images ``range(repeat)`` when they go one by one): activations placed downwards from ``top``
    of the activation scratchpad, weights upwards from ``held`` (both multiples of ``w``)."""
    lay, t = lp.layer, lp.tiling
    (C, H, W), (K, Ho, Wo) = lay.in_shape, lay.out_shape
    n_b, n_k, n_c = -(-Ho // t.band), -(-K // t.kc), -(-C // t.cc)
    T = _taps(lp, cfg)

    def slots(units):
        return 2 if t.double and units > 1 else 1

    def rows(shape, row, chans):
        """Region-relative starts of a block's rows (the first ``w`` channels: the rest repeat them)."""
        n, h, wd = shape
        for s in lp.steps:
            for i in ([s.image] if repeat == 1 else range(repeat)):
                for c in range(*chans(s))[:w]:
                    yield ((i * n + c) * h + row(s)) * wd

    sizes, in_cs = [], []
    for src in lay.inputs:
        if lp.placement[src] == "chip":
            sizes.append(None)
            in_cs.append(H * W)
            continue
        ch, units = (C, n_b * B) if t.order == "rows" else (t.cc, n_b * n_k * n_c * B)
        used = _rows_max(lay, t.band) * W
        head = _head(rows(lay.in_shape, lambda s: rows_in(lay, *s.rows)[0],
                          lambda s: (0, C) if t.order == "rows" else s.c), w)
        cs = _pitch(used, H * W, {(b - a) * W for a, b in (rows_in(lay, *s.rows) for s in lp.steps)}, head, w)
        in_cs.append(cs)
        sizes.append((_up(head + (ch - 1) * cs + used, w), slots(units)))
    out, band = None, min(t.band, Ho)
    head = _head(rows(lay.out_shape, lambda s: s.rows[0], lambda s: s.k), w)
    out_cs = _pitch(band * Wo, Ho * Wo, {(s.rows[1] - s.rows[0]) * Wo for s in lp.steps}, head, w)
    if lp.placement[lay.name] != "chip":
        out = (_up(head + (t.kc - 1) * out_cs + band * Wo, w), slots(n_b * n_k * B))
    acc = None
    if n_c > 1:
        m = cfg.tile
        tiles = -(-t.band // m) * -(-Wo // m) * cfg.n ** 2 if lp.engine == "winograd" else t.band * Wo
        acc = (_up(tiles * t.kc * ACC_BYTES, w), 1)
    placed, at = [], top
    for s in [*sizes, out, acc]:
        if s is None:
            placed.append(None)
            continue
        at -= s[0] * s[1]
        placed.append((at, *s))
    wgt = None
    hold = t.hold if lay.has_weights else "resident"
    if hold == "layer":
        wgt = (held, _up(C * K * T, w), 1)
    elif hold == "block":       # a block (k-block, c-split) starts k0·C·T + (k1 − k0)·c0·T into the blob
        if t.order == "rows":
            head = _head(((s.k[0] * C + (s.k[1] - s.k[0]) * s.c[0]) * T for s in lp.steps), w)
            wgt = (held, _up(head + t.kc * t.cc * T, w), slots(n_b * n_k * n_c * B))
        else:
            wgt = (held, _up(_head((s.k[0] * C * T for s in lp.steps), w) + t.kc * C * T, w), slots(n_k))
    return _Buffers(placed[:len(sizes)], placed[-2], placed[-1], wgt, in_cs, out_cs)


def _lives(lps) -> tuple[dict, dict]:
    """Every tensor's first and last layer (the network input is born at -1)."""
    born = {INPUT: -1} | {lp.layer.name: i for i, lp in enumerate(lps)}
    last = dict(born)
    for i, lp in enumerate(lps):
        for s in lp.layer.inputs:
            last[s] = i
    return born, last


def _on_chip(lps, tensors) -> list[str]:
    return [t for t in tensors if any(lp.placement.get(t) == "chip" for lp in lps)]


def _allocate_chip(lps, sizes: dict, tops: list[int], w: int) -> dict[str, int]:
    """Addresses (multiples of ``w``) of the on-chip tensors in the activation scratchpad below
    each layer's buffers (``tops[i]``): first fit by birth, else by size; a UsageError when
    neither fits."""
    born, last = _lives(lps)
    chip = _on_chip(lps, sizes)
    for order in (sorted(chip, key=lambda t: born[t]), sorted(chip, key=lambda t: -sizes[t])):
        at: dict[str, int] = {}
        for t in order:
            life = range(born[t], last[t] + 1)
            busy = sorted((at[u], at[u] + sizes[u]) for u in at if born[u] <= last[t] and born[t] <= last[u])
            a = 0
            for lo, hi in busy:
                if a + sizes[t] <= lo:
                    break
                a = _up(max(a, hi), w)
            if all(a + sizes[t] <= tops[i] for i in life if i >= 0):
                at[t] = a
            else:
                break
        else:
            return at
    name = min(chip, key=lambda t: born[t])
    raise UsageError(f"{name}: the on-chip tensors do not fit the activation scratchpad without fragmenting it "
                     f"(try --act-bytes)")


def _weight_blocks(lay, lp: plan.LayerPlan, cfg: AcceleratorConfig) -> tuple[bytes, dict]:
    """The layer's weights in the plan's order and the offset of every (k-block, c-split):
    a Winograd layer's U, or its spatial kernels W for a ``weights='spatial'`` build."""
    t = lp.tiling
    w = lay.arrays["U" if lay.op == "winograd_conv3x3" and cfg.weights != "spatial" else "W"]
    Wt = w.reshape(w.shape[0], w.shape[1], -1)
    K, C = Wt.shape[:2]
    parts, offs, at = [], {}, 0
    for kb in pieces(K, t.kc):
        for cs in pieces(C, t.cc):
            blk = np.ascontiguousarray(Wt[kb[0]:kb[1], cs[0]:cs[1]]).astype(np.int8).tobytes()
            offs[(kb, cs)] = at
            parts.append(blk)
            at += len(blk)
    return b"".join(parts), offs


def _desc(index: int, lay, lp: plan.LayerPlan, cfg: AcceleratorConfig, bufs: _Buffers) -> im.Desc:
    """The parameter block of a layer: geometry, strides of its buffers, requant, bias."""
    nl, a, s = lp.layer, lay.arrays, lay.spec
    (C, H, W), (K, Ho, Wo) = nl.in_shape, nl.out_shape
    words = dict(layer=index, mode=isa.MODES.index(MODE_OF[lay.op]), C=C, H=H, W=W, K=K, Ho=Ho, Wo=Wo,
                 kernel=nl.kernel, stride=nl.stride, padding=nl.padding, relu=int(s.get("relu", False)),
                 in_cstride=bufs.in_cs[0], in2_cstride=bufs.in_cs[1] if len(nl.inputs) > 1 else 0,
                 out_cstride=Ho * Wo if bufs.out is None else bufs.out_cs,
                 acc_addr=bufs.acc[0] if bufs.acc else 0, taps=0, mult=0, shift=0, mult2=0)
    taps, bias = {}, np.zeros(0, np.int64)
    if lay.op in ("winograd_conv3x3", "direct_conv", "linear"):
        words.update(mult=int(a["y_mult"]), shift=int(a["y_shift"]))
        bias = a["bias"].astype(np.int64)
    if lay.op == "winograd_conv3x3":
        n2 = cfg.n * cfg.n
        words["taps"] = n2
        names = im.Desc.tap_arrays(cfg.weights == "spatial")
        taps = {k: np.broadcast_to(a[k].astype(np.int64), (cfg.n, cfg.n)).ravel() for k in names}
    elif lay.op == "add":
        words.update(mult=int(a["a_mult"]), shift=int(a["shift"]), mult2=int(a["b_mult"]))
    elif lay.op == "avgpool":
        words.update(mult=int(a["mult"]), shift=int(a["shift"]))
    return im.Desc(words, taps, bias)


# -- the program ----------------------------------------------------------------------------------

class _Layout:
    """Every external offset the program uses, region-relative until :func:`_assemble`."""

    def __init__(self, shapes: dict, B: int):
        self.shapes = shapes                                  # tensor -> (C, H, W)
        self.sizes = {t: B * math.prod(s) for t, s in shapes.items()}
        self.t_off, at = {}, 0
        for t in shapes:
            self.t_off[t], at = at, at + im.align(self.sizes[t])
        self.params: list[bytes] = []
        self.param_off: list[int] = []
        self.weights: dict[str, bytes] = {}
        self.w_off: dict[str, int] = {}
        self.w_blocks: dict[str, dict] = {}
        self.w_end = 0

    def add_param(self, data: bytes) -> None:
        self.param_off.append(sum(im.align(len(p)) for p in self.params))
        self.params.append(data)

    def add_weights(self, name: str, data: bytes, blocks: dict) -> None:
        self.w_off[name] = self.w_end
        self.w_end += im.align(len(data))
        self.weights[name] = data
        self.w_blocks[name] = blocks


def _blob(parts) -> bytes:
    return b"".join(p.ljust(im.align(len(p)), b"\0") for p in parts)


@dataclass
class _Ctx:
    """What every layer's emitter shares."""

    prog: _Program
    L: _Layout
    chip_at: dict
    resident: dict
    cfg: AcceleratorConfig
    chip_batch: int         # images an on-chip tensor holds: the batch, or 1 when images go one by one
    where: dict             # instruction index -> layer name (for messages)
    w: int                  # the memory port's word in bytes: every transfer row starts on one


@dataclass(frozen=True)
class _Rows:
    """One transfer instruction's block (region-relative external offset ``ext``); ``head``:
    the bytes it moves before the first byte asked for, to start on a port word."""

    ext: int
    es: int
    count: int
    burst: int
    sp: int
    ss: int
    head: int


def realign(e: int, es: int, count: int, burst: int, s: int, ss: int, w: int) -> list[_Rows]:
    """A block of ``count`` rows of ``burst`` bytes, row ``j`` from external ``e + j*es`` to
    scratchpad ``s + j*ss``, as blocks whose rows start on ``w``-byte words on both sides
    (docs/image.md, "Port words"): rows that lie back to back on both sides are one row; each
    row starts ``e_j % w`` bytes early (the scratchpad side is congruent: ``s ≡ e`` and ``ss ≡
    es`` modulo ``w``), and rows with the same offset in the word go together, so a stride that
    is not a multiple of the word gives at most ``w`` blocks of a stride that is."""
    if (s - e) % w or (ss - es) % w:
        raise AssertionError(f"scratchpad {s}/{ss} not congruent to external {e}/{es} modulo the {w}-byte word")
    if count > 1 and es == ss == burst:
        count, burst = 1, count * burst
    period = w // math.gcd(es % w, w) if count > 1 else 1
    out = []
    for g in range(min(period, count)):
        eg, sg = e + g * es, s + g * ss
        r = eg % w
        out.append(_Rows(eg - r, period * es, len(range(g, count, period)), burst + r, sg - r, period * ss, r))
    return out


class _Emitter:
    """Emits one layer's plan steps; holds the round-robin state of its buffer slots."""

    def __init__(self, ctx: _Ctx, lp: plan.LayerPlan, index: int, op: str, bufs: _Buffers):
        self.c, self.lp, self.index, self.op, self.bufs = ctx, lp, index, op, bufs
        self.taps = _taps(lp, ctx.cfg)
        self.in_slot: list = [None] * len(lp.layer.inputs)     # (first channel's address, first channel held)
        self.w_slot = None                                      # (block's address, block offset held first)
        self.out_slot = (0, 0)                                  # (slot base, first channel's address)
        self.next: dict = {}
        self.plan_bytes = 0
        self.pending: list = []                                 # STOREs held back (:meth:`_transfer`)
        self.hoisted = None                                     # the step whose weight LOAD went early

    def emit(self, op: str, **kw) -> None:
        self.c.where[self.c.prog.emit(op, **kw)] = self.lp.layer.name

    def _slot(self, key, buf) -> int:
        n = self.next.get(key, 0)
        self.next[key] = n + 1
        return buf[0] + (n % buf[2]) * buf[1]

    def _ext(self, tensor: str, shape, img: int, ch: int, row: int) -> int:
        C, H, W = shape
        return self.c.L.t_off[tensor] + ((img * C + ch) * H + row) * W

    def _ext_range(self, tensor: str):
        off = self.c.L.t_off[tensor]
        return ("ext", off, off + self.c.L.sizes[tensor])

    def _chip(self, tensor: str, img: int) -> int:
        """Where image ``img`` of an on-chip tensor starts: congruent to its external address
        modulo the port word (an image after the first of a region holding one image at a time
        starts a little later in its allocation)."""
        n, B = math.prod(self.c.L.shapes[tensor]), self.c.chip_batch
        return self.c.chip_at[tensor] + (img - img % B) * n % self.c.w + (img % B) * n

    def _transfer(self, op: str, region: str, ext_rng, *, e: int, es: int, count: int, burst: int, s: int, ss: int,
                  buffer: int, reads, writes) -> None:
        """Emit a block (:func:`realign`); a STORE's rows that start early first LOAD the bytes
        before them from external memory, so that it writes back what was there. That LOAD
        waits for the STORE before it (a SYNC in the compute queue), so such a STORE is held
        back until the next step's LOADs are out (:meth:`flush`): they prefetch meanwhile."""
        blocks = realign(e, es, count, burst, s, ss, self.c.w)

        def go():
            for b in blocks if op == "STORE" else ():
                if b.head:
                    heads = [("act", b.sp + i * b.ss, b.sp + i * b.ss + b.head) for i in range(b.count)]
                    self.emit("LOAD", reads=[ext_rng], writes=heads, buffer=buffer, ext_addr=(region, b.ext),
                              ext_stride=b.es, count=b.count, burst=b.head, sp_addr=b.sp, sp_stride=b.ss)
            for b in blocks:
                self.emit(op, reads=reads, writes=writes, buffer=buffer, ext_addr=(region, b.ext), ext_stride=b.es,
                          count=b.count, burst=b.burst, sp_addr=b.sp, sp_stride=b.ss)

        if op == "STORE" and any(b.head for b in blocks):
            self.pending.append(go)
        else:
            go()

    def flush(self) -> None:
        """Emit the STOREs held back."""
        for go in self.pending:
            go()
        self.pending.clear()

    def prefetch(self, s: plan.Step) -> None:
        """Emit the weight LOAD of the layer's first step ``s`` now, before the layer's parameter
        LOAD: that one waits for the previous layer's last COMPUTE (one parameter buffer) and
        the load queue runs in order, so a weight LOAD behind it could not start before. Ahead
        of it, the weight LOAD waits only for its own hazards and runs under the previous
        layer's compute (:func:`wino_gen.plan.hoists` says where, and the plan prices it so)."""
        self._load_w(s)
        self.hoisted = s

    def step(self, s: plan.Step, img: int) -> None:
        nl = self.lp.layer
        ins = iter(j for j in range(len(nl.inputs)) if self.bufs.inputs[j] is not None)
        for x in s.loads:
            self.plan_bytes += x.bytes
            if x.tensor == nl.name + ".w":
                if s is not self.hoisted:
                    self._load_w(s)
            else:
                self._load_in(next(ins), s, img)
        self.flush()
        self._compute(s, img)
        for x in s.stores:
            self.plan_bytes += x.bytes
            self._store(s, img)

    def _load_in(self, j: int, s: plan.Step, img: int) -> None:
        nl, t = self.lp.layer, self.lp.tiling
        src, (C, H, W) = nl.inputs[j], nl.in_shape
        a, b = rows_in(nl, *s.rows)
        c0, c1 = (0, C) if t.order == "rows" else s.c
        buf = self.bufs.inputs[j]
        base = self._slot(("in", j), buf)
        e = self._ext(src, nl.in_shape, img, c0, a)
        first = base + e % self.c.w
        self.in_slot[j] = (first, c0)
        self._transfer("LOAD", "act", self._ext_range(src), e=e, es=H * W, count=c1 - c0, burst=(b - a) * W,
                       s=first, ss=self.bufs.in_cs[j], buffer=0, reads=[self._ext_range(src)],
                       writes=[("act", base, base + buf[1])])

    def _load_w(self, s: plan.Step) -> None:
        nl, t = self.lp.layer, self.lp.tiling
        blocks, C = self.c.L.w_blocks[nl.name], nl.in_shape[0]
        if t.hold == "layer":
            start, size = 0, len(self.c.L.weights[nl.name])
        elif t.order == "rows":
            start, size = blocks[(s.k, s.c)], (s.k[1] - s.k[0]) * (s.c[1] - s.c[0]) * self.taps
        else:
            start, size = blocks[(s.k, (0, min(C, t.cc)))], (s.k[1] - s.k[0]) * C * self.taps
        base = self._slot("w", self.bufs.wgt)
        e = self.c.L.w_off[nl.name] + start
        self.w_slot = (base + e % self.c.w, start)
        self._transfer("LOAD", "weights", None, e=e, es=0, count=1, burst=size, s=self.w_slot[0], ss=0, buffer=1,
                       reads=(), writes=[("wgt", base, base + self.bufs.wgt[1])])

    def _w_addr(self, s: plan.Step):
        nl = self.lp.layer
        if not nl.has_weights:
            return 0, []
        off = self.c.L.w_blocks[nl.name][(s.k, s.c)]
        if nl.name in self.c.resident:
            lo = self.c.resident[nl.name]
            return lo + off, [("wgt", lo, lo + len(self.c.L.weights[nl.name]))]
        first, start = self.w_slot
        base = first - first % self.c.w
        return first + off - start, [("wgt", base, base + self.bufs.wgt[1])]

    def _in_addr(self, j: int, s: plan.Step, img: int):
        nl = self.lp.layer
        src, (C, H, W) = nl.inputs[j], nl.in_shape
        a, _ = rows_in(nl, *s.rows)
        c0 = s.c[0] if nl.has_weights else 0
        if self.bufs.inputs[j] is None:
            base = self._chip(src, img)
            return base + c0 * H * W + a * W, [("act", base, base + C * H * W)]
        first, held = self.in_slot[j]
        base = first - first % self.c.w
        return first + (c0 - held) * self.bufs.in_cs[j], [("act", base, base + self.bufs.inputs[j][1])]

    def _compute(self, s: plan.Step, img: int) -> None:
        nl = self.lp.layer
        (C, _, _), (K, Ho, Wo) = nl.in_shape, nl.out_shape
        reads = [("param", 0, len(self.c.L.params[self.index]))]
        addrs = []
        for j in range(len(nl.inputs)):
            a, r = self._in_addr(j, s, img)
            addrs.append(a)
            reads += r
        w_addr, r = self._w_addr(s)
        reads += r
        c0, c1 = s.c if nl.has_weights else (0, C)
        first, finish = c0 == 0, c1 == C
        writes, out, acc = [], 0, self.bufs.acc
        if acc and not first:
            reads.append(("act", acc[0], acc[0] + acc[1]))
        if acc and not finish:
            writes.append(("act", acc[0], acc[0] + acc[1]))
        if finish and self.bufs.out is None:
            base = self._chip(nl.name, img)
            out = base + s.k[0] * Ho * Wo + s.rows[0] * Wo
            writes.append(("act", base, base + K * Ho * Wo))
        elif finish:
            base = self._slot("out", self.bufs.out)
            out = base + self._ext(nl.name, nl.out_shape, img, s.k[0], s.rows[0]) % self.c.w
            self.out_slot = (base, out)
            writes.append(("act", base, base + self.bufs.out[1]))
        self.emit("COMPUTE", reads=reads, writes=writes, mode=isa.MODES.index(MODE_OF[self.op]),
                  accumulate=int(not first), finish=int(finish), layer=self.index, r0=s.rows[0], r1=s.rows[1],
                  k0=s.k[0], k1=s.k[1], c0=c0, c1=c1, in_addr=addrs[0], in2_addr=addrs[1] if len(addrs) > 1 else 0,
                  w_addr=w_addr, out_addr=out)

    def _store(self, s: plan.Step, img: int) -> None:
        nl = self.lp.layer
        K, Ho, Wo = nl.out_shape
        (k0, k1), (r0, r1) = s.k, s.rows
        base, first = self.out_slot
        self._transfer("STORE", "act", self._ext_range(nl.name), e=self._ext(nl.name, nl.out_shape, img, k0, r0),
                       es=Ho * Wo, count=k1 - k0, burst=(r1 - r0) * Wo, s=first, ss=self.bufs.out_cs, buffer=0,
                       reads=[("act", base, base + self.bufs.out[1])], writes=[self._ext_range(nl.name)])

    def store_whole(self, img: int) -> None:
        """STORE the on-chip output whole (the network output, or every layer with ``trace``):
        every image it holds, the first of them image ``img``."""
        name = self.lp.layer.name
        n = self.c.chip_batch * math.prod(self.c.L.shapes[name])
        sp, ext = self._chip(name, img), self.c.L.t_off[name] + img * math.prod(self.c.L.shapes[name])
        lo = sp - sp % self.c.w
        self._transfer("STORE", "act", self._ext_range(name), e=ext, es=0, count=1, burst=n, s=sp, ss=0, buffer=0,
                       reads=[("act", lo, sp + n)], writes=[self._ext_range(name)])


def _shapes(model: Model, layers) -> dict[str, tuple[int, int, int]]:
    """Every tensor's (C, H, W): the network input, then each layer's output (linear: (K, 1, 1))."""
    return {INPUT: tuple(model.manifest["input"]["shape"]), **{la.name: la.out_shape for la in layers}}


_REPLANS = 6


def port_word(board: str, port_bytes: int | None = None) -> int:
    """The memory port's word in bytes the image is compiled for: ``port_bytes``, by default
    the width of the board's external memory (ULX3S: 2, its 16-bit SDRAM; a ``--memory`` study
    memory keeps the board's port); a power of two up to :data:`image.ALIGN`."""
    if port_bytes is None:
        ext = memory.board_memory(board).external
        port_bytes = getattr(ext, "word_bytes", 1)
    if port_bytes < 1 or port_bytes & (port_bytes - 1) or port_bytes > im.ALIGN:
        raise UsageError(f"--port-bits: {8 * port_bytes}: the memory port's word must be 8 bits or a power of two "
                         f"multiple of it, at most {8 * im.ALIGN}")
    return port_bytes


@dataclass(frozen=True)
class _Tight:
    """The aligned buffers exceed the scratchpads: by about ``act`` and ``wgt`` bytes."""

    act: int
    wgt: int


def _place(p: plan.Plan, cfg: AcceleratorConfig, shapes: dict, batch: int, A: int, Wt: int, w: int):
    """``(resident weights, buffers per layer, on-chip tensors)`` of ``p`` in scratchpads of
    ``A`` and ``Wt`` bytes, everything a transfer touches on ``w``-byte words; or :class:`_Tight`.
    Weight scratchpad: resident weights from 0, then the layer's buffers; activation scratchpad:
    the layer's buffers at the top, the on-chip tensors below them."""
    B = batch if p.repeat == 1 else 1
    resident, held = {}, 0
    for lp in p.layers:
        if lp.placement.get(lp.layer.name + ".w") == "resident":
            resident[lp.layer.name] = held
            held = _up(held + lp.layer.in_shape[0] * lp.layer.out_shape[0] * _taps(lp, cfg), w)
    top = A - A % w
    bufs = [_buffers(lp, cfg, B, p.repeat, top, held, w) for lp in p.layers]
    bufs, w_room = _sides(bufs, held, Wt - Wt % w)
    d_wgt = max([held - Wt] + [held + b.wgt[1] * b.wgt[2] - Wt for b in bufs if b.wgt])
    if w == 1 and (d_wgt > 0 or any(b.act_bytes > lp.cost.need_act for lp, b in zip(p.layers, bufs, strict=True))):
        raise AssertionError("buffers exceed the plan's scratchpad")
    # an image after the first of a tensor on chip one image at a time may start inside a word
    sizes = {t: _up(B * math.prod(s) + _head((i * math.prod(s) for i in range(p.repeat)), w), w)
             for t, s in shapes.items()}
    try:
        chip_at = _allocate_chip(p.layers, sizes, [top - b.act_bytes for b in bufs], w)
    except UsageError:          # fragmented: a plan on a smaller scratchpad may leave room
        chip_at = None
    born, last = _lives(p.layers)
    chip = _on_chip(p.layers, sizes)
    d_act = max(b.act_bytes + sum(sizes[t] for t in chip if born[t] <= i <= last[t]) - top
                for i, b in enumerate(bufs))
    if chip_at is None or d_act > 0 or d_wgt > 0:
        return _Tight(max(w, d_act) if chip_at is None or d_act > 0 else 0, max(0, d_wgt))
    return resident, bufs, chip_at, w_room


def _sides(bufs: list[_Buffers], held: int, top: int) -> tuple[list[_Buffers], tuple[list, int]]:
    """The weight buffers on the sides :func:`wino_gen.plan.weight_sides` gives them in the
    weight scratchpad's bytes ``held`` (the resident weights' end) to ``top``: at the top,
    ending there, or at the bottom where :func:`_buffers` put them; and (their sizes, the
    room) that :func:`wino_gen.plan.hoists` takes."""
    sizes = [(b.wgt[1] * b.wgt[2], b.wgt[2]) if b.wgt else None for b in bufs]
    sides = plan.weight_sides(sizes, top - held)
    return [dataclasses.replace(b, wgt=(top - n[0], *b.wgt[1:])) if up else b
            for b, n, up in zip(bufs, sizes, sides, strict=True)], (sizes, top - held)


def compile_model(model: Model, cfg: AcceleratorConfig, board: str = "ulx3s-85f",
                  clock_mhz: float = DEFAULT_CLOCK_MHZ, options: plan.Options | None = None,
                  memory_spec: str | None = None, trace: bool = False, port_bytes: int | None = None) -> Compiled:
    """The memory image that runs ``model`` on a build of ``cfg`` on ``board`` as the planner
    plans it; ``trace`` adds a STORE of every on-chip layer output so that every layer can be
    read back (the network output is always stored). Every transfer starts on a word of the
    memory port (``port_bytes``, else the plan's ``Options.port_bytes``, else :func:`port_word`'s
    default), and the plan prices its transfers on that same word (its ``Options.port_bytes``):
    the image's header and the plan name one port. When the room the alignment takes is more
    than the plan left, the plan is made again on scratchpads smaller by the difference."""
    options = options or plan.Options(weights=cfg.weights)
    if options.weights != cfg.weights:
        raise UsageError(f"--weights {options.weights}: the config's engine takes {cfg.weights} weights "
                         f"(compile for a config with weights={options.weights})")
    check_build(model, cfg)
    bm = memory.board_memory(board, memory_spec)
    if bm.external is None:
        raise UsageError(f"--board: {board} has no external RAM to hold a memory image")
    layers = nets.from_model_dir(model.path)
    planned = options.port_bytes
    if port_bytes is not None and planned is not None and port_bytes != planned:
        raise UsageError(f"--port-bits {8 * port_bytes}: the plan is made for a {8 * planned}-bit port")
    w = port_word(board, port_bytes if port_bytes is not None else planned)
    options = dataclasses.replace(options, port_bytes=w)      # the one port: the plan's and the image's
    p = plan.plan(layers, cfg, board, clock_mhz, options, memory_spec)
    A, Wt = p.act_bytes, p.weight_bytes               # the scratchpads the image declares
    L = _Layout(_shapes(model, layers), options.batch)
    for _ in range(_REPLANS):
        placed = _place(p, cfg, L.shapes, options.batch, A, Wt, w)
        if not isinstance(placed, _Tight):
            break
        # the aligned buffers need room the plan did not count: plan on smaller scratchpads
        shrunk = dataclasses.replace(options, act_bytes=p.act_bytes - placed.act,
                                     weight_bytes=p.weight_bytes - placed.wgt)
        if min(shrunk.act_bytes, shrunk.weight_bytes) < 0:
            break
        p = plan.plan(layers, cfg, board, clock_mhz, shrunk, memory_spec)
    if isinstance(placed, _Tight):
        raise UsageError(f"{model.name}: the plan's buffers do not fit the scratchpads ({A} + {Wt} bytes) once "
                         f"aligned to the {w}-byte memory port (try --act-bytes / --weight-bytes)")
    resident, bufs, chip_at, (w_sizes, w_room) = placed
    early: dict[int, list[int]] = {}            # layer -> the layers whose first weight LOAD goes before its own
    for i, (j, *_) in plan.hoists(p.layers, w_sizes, w_room).items():
        early.setdefault(j, []).append(i)
    B = options.batch if p.repeat == 1 else 1         # images the plan's on-chip tensors hold
    for i, (lp, fl) in enumerate(zip(p.layers, model.layers, strict=True)):
        L.add_param(_desc(i, fl, lp, cfg, bufs[i]).to_bytes())
        if lp.layer.has_weights:
            L.add_weights(fl.name, *_weight_blocks(fl, lp, cfg))
    ctx = _Ctx(_Program(), L, chip_at, resident, cfg, B, {}, w)
    prog = ctx.prog

    # prologue: resident weights, loaded once per power-up; its SYNC takes their token
    for name, sp in resident.items():
        n = len(L.weights[name])
        ctx.where[prog.emit("LOAD", writes=[("wgt", sp, sp + n)], buffer=1, ext_addr=("weights", L.w_off[name]),
                            ext_stride=0, count=1, burst=n, sp_addr=sp, sp_stride=0)] = name
    if resident:
        prog.token(len(prog.ops) - 1, prog.append("SYNC"))
    main_entry, extra0 = len(prog.ops), prog.moved
    plan_bytes = step_bytes = 0
    final = p.layers[-1].layer.name
    for r in range(p.repeat):
        ems = [_Emitter(ctx, lp, i, fl.op, bufs[i])
               for i, (lp, fl) in enumerate(zip(p.layers, model.layers, strict=True))]
        for i, (lp, fl) in enumerate(zip(p.layers, model.layers, strict=True)):
            em = ems[i]
            for k in early.get(i, ()):          # weights that load under the previous layer's compute
                ems[k].prefetch(p.layers[k].steps[0])
            pb = L.params[i]
            em.emit("LOAD", writes=[("param", 0, len(pb))], buffer=2, ext_addr=("params", L.param_off[i]),
                    ext_stride=0, count=1, burst=len(pb), sp_addr=0, sp_stride=0)
            before = prog.moved
            for s in lp.steps:
                em.step(s, s.image if p.repeat == 1 else r)
            em.flush()
            step_bytes += prog.moved - before
            plan_bytes += em.plan_bytes
            if lp.placement[fl.name] == "chip" and (trace or fl.name == final):
                em.store_whole(r)
                em.flush()
    prog.emit("END")
    stored = {lp.layer.name for lp in p.layers if lp.placement[lp.layer.name] == "external" or trace} | {final}
    img = _assemble(ctx, p, main_entry, options.batch, stored, f"{model.name} on {board} ({bm.external.part})",
                    bm.external.capacity, (A, Wt))
    return Compiled(img, p, plan_bytes, step_bytes, prog.moved - extra0 - step_bytes)


def _assemble(ctx: _Ctx, p: plan.Plan, main_entry: int, B: int, stored: set, where: str, capacity: int,
              scratch: tuple[int, int]) -> im.Image:
    """Resolve the region-relative addresses, build the image (``scratch``: its activation and
    weight scratchpad bytes), check its size and every transfer."""
    L, prog = ctx.L, ctx.prog
    params, weights = _blob(L.params), _blob(L.weights.values())
    program_offset = im.align(im.HEADER_BYTES + im.TENSOR_RECORD * len(L.shapes))
    params_offset = im.align(program_offset + isa.WORD_BYTES * len(prog.ops))
    weights_offset = im.align(params_offset + len(params))
    act_offset = im.align(weights_offset + len(weights))
    act_size = max(L.t_off[t] + L.sizes[t] for t in L.shapes)
    if act_offset + act_size > capacity:
        raise UsageError(f"{where}: the image needs {(act_offset + act_size) / 2**20:.2f} MiB of external memory, "
                         f"the memory holds {capacity / 2**20:.2f} MiB")
    base = {"params": params_offset, "weights": weights_offset, "act": act_offset}
    for o in prog.ops:
        ext = o["fields"].get("ext_addr")
        if isinstance(ext, tuple):
            o["fields"]["ext_addr"] = base[ext[0]] + ext[1]
    final = p.layers[-1].layer.name
    tensors = []
    for t, shape in L.shapes.items():
        if len(t.encode()) > im.NAME_BYTES:
            raise UsageError(f"{t}: tensor names are limited to {im.NAME_BYTES} bytes in an image")
        flags = (im.STORED * (t in stored)) | (im.INPUT_SLOT * (t == INPUT)) | (im.OUTPUT_SLOT * (t == final))
        tensors.append(im.Tensor(t, act_offset + L.t_off[t], shape, B, flags))
    fmt = im.WEIGHTS_SPATIAL if ctx.cfg.weights == "spatial" else im.WEIGHTS_U
    img = im.Image(im.config_sha256(ctx.cfg), B, prog.resolve(ctx.where), main_entry, params, weights,
                   tuple(tensors), act_offset, act_size, *scratch, max(len(b) for b in L.params), len(p.layers), fmt,
                   ctx.w)
    for i, ins in enumerate(img.program):
        why = im.check_transfer(img, ins) if ins.OP in ("LOAD", "STORE") else None
        if why:
            raise UsageError(f"{ctx.where.get(i, 'program')}: instruction {i} ({ins.OP}) references memory outside "
                             f"its regions: {why}")
        odd = im.misaligned(ins, ctx.w) if ins.OP in ("LOAD", "STORE") else None
        if odd:
            raise AssertionError(f"{ctx.where.get(i, 'program')}: instruction {i} ({ins.OP}): {odd}")
    return img
