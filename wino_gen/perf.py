"""Cycle model and resource estimate of the generated accelerator (``rtl.top``).

The cycle model sums :mod:`wino_gen.schedule`: its geometry, its per-block latencies and its
loop nest (for each tile row ``ty``, output-channel block ``kb``, tile column ``tx``, channel
group ``cg`` one PE-array step). Besides the steps it counts what the hardware waits for, with
the host streaming as fast as the accelerator accepts (one beat per cycle on ``x`` and ``w``,
``o`` always ready):

- the line buffer: a tile row starts once its n rows are loaded (``n_cg * nxb`` beats per
  row), and loading runs at most 2n rows ahead of the tile row being read;
- the output side: a tile's ``unroll`` channels leave one per cycle through the serializer,
  which takes a tile every ``unroll + 1`` cycles at most (its ready is registered); a tile
  done sooner waits at the PE array's output and stands the whole array still, its next
  steps included (:class:`_StepClock` counts the steps cycle by cycle, not a tile as
  ``max(n_cg, unroll + 1)`` cycles: a tile row whose rows arrive just as the previous one's
  steps end runs into that wait);
- the pipeline latency from ``start`` to the first output and from the last step to the last
  output.

Weight blocks are double buffered and need ``n_cg`` beats per block against ``tw * n_cg``
steps, so U weights never stall after the first block. Spatial weights (``cfg.weights ==
"spatial"``) take :func:`schedule.beats_per_word` beats per word through the weight-transform
unit: the first block arrives :func:`schedule.weight_path_latency` later, and a block whose
kernels take longer than the previous block's steps stalls the PE array (:class:`_SpatialWeights`).
The compute core (``rtl.core.Core``) takes a word of spatial kernels per channel group and
splits it into those beats without a register (``rtl.wtransform.KernelSplitter``), so its
Winograd commands take the engine's cycles in both weight formats (:func:`core_cycles`).
``sim`` measures the same cycles (tests compare the two).
"""

from __future__ import annotations

import math

from . import golden, schedule
from .config import AcceleratorConfig
from .limits import ADD_MULT_RANGE, AVGPOOL_MULT_RANGE


def _ceil(a, b):
    return -(-a // b)


def winograd_latency(cfg: AcceleratorConfig) -> int:
    """Cycles from a step command to its output beat (the last step of a tile)."""
    return schedule.latencies(cfg).winograd


class _UWeights:
    """U words, one per cycle: the first bank is full ``n_cg`` cycles after ``start``; later
    banks load while the other one serves at least ``n_cg`` steps, so they never stall."""

    def __init__(self, g: schedule.WinogradGeometry, lat: schedule.Latencies):
        self.first = lat.start + g.n_cg

    def full(self, block: int) -> int:
        return self.first if block == 0 else 0

    def ran(self, block: int, last: int) -> None:
        pass


class _StepClock:
    """The cycles in which the PE array takes steps: one per cycle from when a tile's inputs are
    there, except while it stands still because a finished tile waits for the serializer
    (which takes one every ``serializer_period`` cycles); a tile's sums reach the serializer
    ``latencies.pe`` running cycles after its last step."""

    def __init__(self, g: schedule.WinogradGeometry, lat: schedule.Latencies):
        self.n_cg, self.pe, self.period = g.n_cg, lat.pe, lat.serializer_period
        self.next, self.taken = 0, -self.period
        self.frozen: list[tuple[int, int]] = []      # [lo, hi): cycles the PE array stands still

    def _running(self, c: int) -> int:
        """The first running cycle from ``c`` on."""
        for lo, hi in self.frozen:
            if lo <= c < hi:
                c = hi
        return c

    def _after(self, c: int, n: int) -> int:
        """The cycle ``n`` running cycles after cycle ``c``."""
        for lo, hi in self.frozen:
            if hi <= c + 1:
                continue
            free = max(lo, c + 1) - (c + 1)
            if free >= n:
                return c + n
            n -= free
            c = hi - 1
        return c + n

    def tile(self, ready: int) -> tuple[int, int]:
        """Take a tile's ``n_cg`` steps, the first not before ``ready``: the cycles of its first
        and last step."""
        first = self._running(max(self.next, ready))
        last = self._after(first, self.n_cg - 1)
        out = self._after(last, self.pe)
        taken = max(out, self.taken + self.period)
        self.frozen = [f for f in self.frozen if f[1] > last] + ([(out, taken)] if taken > out else [])
        self.next, self.taken = last + 1, taken
        return first, last


class _SpatialWeights:
    """Kernel beats through the weight-transform unit (``rtl.wtransform.SpatialWeights``): a
    word is offered :func:`schedule.weight_path_latency` after its last beat, one word per
    ``beats_per_word`` cycles. While the weight buffer has no free bank the packer holds its
    word and the transform stalls, so the word is written in the cycle the bank frees (the
    cycle after the step that releases it, two blocks back) and the next one
    ``beats_per_word`` later: ``W_k = max(W_{k-1} + beats_per_word, free)``; the bank is full
    the cycle after."""

    def __init__(self, g: schedule.WinogradGeometry, lat: schedule.Latencies, cfg: AcceleratorConfig):
        self.g, self.kpw = g, schedule.beats_per_word(cfg)
        self.last = lat.start + schedule.weight_path_latency(cfg) - 1   # "word -1" written
        self.release: dict[int, int] = {}

    def full(self, block: int) -> int:
        free = self.release[block - 2] + 1 if block >= 2 else 0
        w = max(self.last + self.kpw, free) + (self.g.n_cg - 1) * self.kpw
        self.last = w
        return w + 1

    def ran(self, block: int, last: int) -> None:
        """The block's last step (cycle ``last``) releases its bank."""
        self.release[block] = last


def _winograd_end(g: schedule.WinogradGeometry, lat: schedule.Latencies, weights) -> int:
    """The cycle the serializer takes the last tile, from an event model of the line buffer,
    the weight banks and the PE array's steps (:class:`_StepClock`): a padded row loads in
    ``row_beats`` cycles once the tile row that frees its slot has started
    (:meth:`~schedule.WinogradGeometry.row_gate`); a block's first step reaches the PE array
    once its weight bank is full (``weights.full``) and, for a tile row's first block, the
    pipeline latency ``to_pe`` after the row's rows are in
    (:meth:`~schedule.WinogradGeometry.rows_needed`); every later step follows as the array
    takes it (the step commands queue in the pipeline). A tile row counts as started
    ``to_pe`` cycles before its first step: exactly when that step did not queue; when it did,
    the row was in long before and loading keeps at least two rows' beats ahead of its need,
    so the slot it frees is not the one the array waits for. ``weights.ran`` hears each
    block's last step (the release of a spatial-weight bank)."""
    to_pe = lat.tile_buffer + lat.skid + lat.input_transform + lat.rq    # a step command to the PE array
    clock = _StepClock(g, lat)
    starts, t, ys = [], lat.start, g.pad
    for ty in range(g.th):
        while ys < g.rows_needed(ty):
            gate = g.row_gate(ys)
            t = max(t, starts[gate] if gate else lat.start) + g.row_beats
            ys += 1
        for kb in range(g.n_kb):
            block = ty * g.n_kb + kb
            ready = max(weights.full(block), t + to_pe if kb == 0 else 0)
            for tx in range(g.tw):
                first, last = clock.tile(ready)
                if kb == tx == 0:
                    starts.append(first - to_pe)
            weights.ran(block, last)
    return clock.taken


def winograd_layer(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int,
                   padding: int = 1, *, beat_cycles: int = 1) -> dict:
    """Cycle estimate of one 3x3 stride-1 layer on the Winograd engine (one sample), its
    serializer paced to a beat every ``beat_cycles`` (the compute core's, for the system's
    output writer: :func:`schedule.writer_beat_cycles`)."""
    g = schedule.winograd_geometry(cfg, C, K, H, W, padding)
    lat = schedule.paced(schedule.latencies(cfg), cfg, beat_cycles)
    per_tile = max(g.n_cg, lat.serializer_period)
    band_cycles = g.n_kb * g.tw * per_tile
    weights = _SpatialWeights(g, lat, cfg) if cfg.weights == "spatial" else _UWeights(g, lat)
    # the last tile: its channels leave the serializer a beat every beat_cycles, then the output stage
    cycles = _winograd_end(g, lat, weights) + lat.serializer + lat.output_stage + (g.unroll - 1) * beat_cycles + 1
    lane_fill = (C / (g.n_cg * cfg.unroll_in)) * (K / (g.n_kb * cfg.unroll))
    return {
        "cycles": int(cycles), "steps": g.steps, "tiles": (g.th, g.tw), "n_cg": g.n_cg, "n_kb": g.n_kb,
        "utilization": g.steps * lane_fill / cycles,
        # steady state: a tile row either computes or waits for its m new input rows
        "steady_utilization": lane_fill * g.n_cg / per_tile * min(1.0, band_cycles / (g.m * g.row_beats)),
        "input_bound": g.m * g.row_beats > band_cycles,
        "direct_macs": H * W * C * K * 9 if padding == 1 else g.Ho * g.Wo * C * K * 9,
    }


def direct_layer(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, kernel: int = 3,
                 stride: int = 1, padding: int = 1) -> dict:
    """Cycle estimate of a convolution on the direct engine (same multipliers): the first
    weight block (``n_step`` beats) loads before the first step, then one step per cycle
    (weights double buffered), and the pipeline latency to the last output."""
    g = schedule.direct_geometry(cfg, C, K, H, W, kernel=kernel, stride=stride, padding=padding)
    lat = schedule.latencies(cfg)
    cycles = lat.start + g.n_step + g.steps + lat.direct
    macs = g.n_pix * C * K * g.kh * g.kw
    return {"cycles": int(cycles), "steps": g.steps, "n_step": g.n_step, "n_kb": g.n_kb,
            "utilization": macs / (cycles * cfg.multipliers),
            "steady_utilization": macs / (g.steps * cfg.multipliers), "direct_macs": macs}


def layer_perf(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, kernel: int = 3,
               stride: int = 1, padding: int = 1) -> dict:
    """Winograd engine for 3x3 stride-1 layers when ``cfg.algo == 'winograd'``, else (and for
    layers Winograd cannot take) the direct engine with the same multipliers."""
    if cfg.algo == "winograd" and kernel == 3 and stride == 1:
        return {"engine": "winograd", **winograd_layer(cfg, C, K, H, W, padding)}
    return {"engine": "direct", **direct_layer(cfg, C, K, H, W, kernel, stride, padding)}


def layer_cycles(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, kernel: int = 3,
                 stride: int = 1, padding: int = 1) -> int:
    return layer_perf(cfg, C, K, H, W, kernel, stride, padding)["cycles"]


# ResNet-18 (ImageNet, 224x224) convolutions: (name, C, K, H_in, kernel, stride, padding, count)
RESNET18 = [
    ("conv1", 3, 64, 224, 7, 2, 3, 1),
    ("layer1.3x3", 64, 64, 56, 3, 1, 1, 4),
    ("layer2.0.conv1", 64, 128, 56, 3, 2, 1, 1),
    ("layer2.0.down", 64, 128, 56, 1, 2, 0, 1),
    ("layer2.3x3", 128, 128, 28, 3, 1, 1, 3),
    ("layer3.0.conv1", 128, 256, 28, 3, 2, 1, 1),
    ("layer3.0.down", 128, 256, 28, 1, 2, 0, 1),
    ("layer3.3x3", 256, 256, 14, 3, 1, 1, 3),
    ("layer4.0.conv1", 256, 512, 14, 3, 2, 1, 1),
    ("layer4.0.down", 256, 512, 14, 1, 2, 0, 1),
    ("layer4.3x3", 512, 512, 7, 3, 1, 1, 3),
]


def resnet18(cfg: AcceleratorConfig) -> list[dict]:
    rows = []
    for name, C, K, H, k, s, p, count in RESNET18:
        r = layer_perf(cfg, C, K, H, H, k, s, p)
        rows.append({"name": name, "C": C, "K": K, "H": H, "kernel": k, "stride": s,
                     "count": count, **r})
    return rows


# -- resources --------------------------------------------------------------------------------

_BRAM_SHAPES = {  # (depth, width) configurations of one block RAM
    "ecp5": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],
    "ice40": [(2048, 2), (1024, 4), (512, 8), (256, 16)],
}


def _brams(depth: int, width: int, family: str) -> int:
    return min(_ceil(width, w) * _ceil(depth, d) for d, w in _BRAM_SHAPES[family])


def memories(cfg: AcceleratorConfig) -> list[schedule.Memory]:
    """(name, count, depth, width) of every memory in the generated design."""
    return list(schedule.memories(cfg))


def mac16_pairs(cfg: AcceleratorConfig) -> bool:
    """Whether the PE's products fit two per iCE40 SB_MAC16 (``rtl.mac16``: operands of at
    most 8 bits, an even count)."""
    xb = cfg.transform_bits if cfg.algo == "winograd" else cfg.act_bits
    return cfg.weight_bits <= 8 and xb <= 8 and cfg.multipliers % 2 == 0


def _naf_digits(c: int) -> int:
    """Non-zero canonical-signed digits of ``c`` (the shift-add terms of ``c * x``)."""
    c, k = abs(int(c)), 0
    while c:
        if c & 1:
            c -= 2 - (c & 3)
            k += 1
        c >>= 1
    return k


def _lin_comb_adders(T, width: int) -> int:
    """Adder bits of the rows of ``T`` applied as shift-add trees (one per row)."""
    return sum(max(sum(_naf_digits(c) for c in row) - 1, 0) for row in T) * width


def _rq_cost(cfg: AcceleratorConfig, in_bits: int, out_bits: int) -> tuple[int, int]:
    """(LUTs, FFs) of one requantizer lane (``rtl.arith.rq_pipeline``) in the config's mode."""
    return _rq_lane(cfg.requant == "fixed", in_bits, out_bits, cfg.mult_bits)


def _rq_lane(fixed: bool, in_bits: int, out_bits: int, mult_bits: int) -> tuple[int, int]:
    """(LUTs, FFs) of one ``rtl.arith.rq_pipeline`` lane: ``fixed`` (a ``mult_bits`` product
    first) or ``pow2``."""
    pw = in_bits + mult_bits + 1 if fixed else in_bits
    return pw + out_bits * 3 // 2 + 3, (pw if fixed else 0) + 2 * out_bits + 2


def _csd_signs(c: int) -> list[int]:
    """Signs of the canonical signed digits of ``c`` (``rtl.arith.csd``'s digits)."""
    out = []
    while c:
        if c & 1:
            d = 2 - (c & 3)
            out.append(d)
            c -= d
        c >>= 1
    return out


def _tree_adders(coeffs) -> int:
    """Adders and negators of ``rtl.arith.lin_comb`` over constant ``coeffs``: one per pair of
    its balanced tree, one more where the tree's sum comes out negated."""
    signs = [sign for c in coeffs for sign in _csd_signs(int(c))]
    count = 0
    while len(signs) > 1:
        nxt = [-1 if a < 0 and b < 0 else 1 for a, b in zip(signs[::2], signs[1::2], strict=False)]
        count += len(nxt)
        if len(signs) % 2:
            nxt.append(signs[-1])
        signs = nxt
    return count + (1 if signs and signs[0] < 0 else 0)


def weight_transform_resources(cfg: AcceleratorConfig) -> dict[str, int]:
    """Structure of ``rtl.wtransform.SpatialWeights`` with ``cfg.weight_lanes`` lanes:
    ``adders`` (both passes of ``G'`` per lane), ``adder_bits`` (each adder at its pass's
    width), ``multipliers`` (``fixed``: one ``T`` x ``mult_bits`` per tap and lane),
    ``registers`` (flip-flop bits: the two transform stages, the requant pipeline of
    ``rtl.arith.rq_pipeline``, tags and valid bits, the packer's word, biases and counter)."""
    lanes = cfg.weight_lanes
    Gp, _ = golden.spatial_forms(cfg.tile)
    n, wb, S = cfg.n, cfg.weight_bits, cfg.n * cfg.n
    w1, w2 = golden.spatial_widths(cfg.tile, wb)
    per_row = sum(_tree_adders(row) for row in Gp)
    fixed = cfg.requant == "fixed"
    mb = cfg.mult_bits if fixed else 0
    rq_bits = (wb + 2) + wb + (w2 + mb + 1 if fixed else 0)
    stages = schedule.weight_transform_latency(cfg)
    kernels = cfg.unroll * cfg.unroll_in
    regs = lanes * (n * 3 * w1 + S * w2 + S * rq_bits + stages * cfg.bias_bits) + stages
    regs += kernels * (S * wb + cfg.bias_bits) + schedule.beats_per_word(cfg).bit_length() + 1
    return {"adders": lanes * (3 + n) * per_row, "adder_bits": lanes * per_row * (3 * w1 + n * w2),
            "multipliers": lanes * S if fixed else 0, "registers": regs}


# Calibration against place and route (benchmarks/results/synth.json, accelerator = total minus
# build.SELFTEST_OVERHEAD): LUT4s = scale * structural LUTs + offset, fitted on the ULX3S 2x1
# and 4x1 builds (the ECP5 maps the requant shifters and the deep line-buffer banks' read muxes
# into more LUT4s than the iCE40, and the 128-channel/64-column address logic is wider) and
# checked on 2x4; registers counted stage by stage come out ~12% high on every build (yosys
# merges duplicate pipeline copies); on the iCE40 (one LUT and one FF per logic cell) the cells
# per flip-flop that could not share a cell with its LUT (pipeline copies, RAM and DSP outputs).
_LUT_FIT = {"ecp5": (1.2, 830), "ice40": (1.0, 0)}
_FF_SCALE = 0.88
_ICE40_FF_CELLS = 0.59


def _add_weight_transform(cfg: AcceleratorConfig, lut, ff, dsp, mults_on_dsp: bool):
    """The weight-transform unit's share (:func:`weight_transform_resources`): its adders, its
    U requant lanes (:func:`_rq_cost`), its registers; ``fixed`` multipliers on DSPs or, when
    the DSPs do not take them, in LUTs."""
    r = weight_transform_resources(cfg)
    rl, _ = _rq_cost(cfg, golden.spatial_widths(cfg.tile, cfg.weight_bits)[1], cfg.weight_bits)
    lut += r["adder_bits"] + cfg.weight_lanes * cfg.n * cfg.n * rl
    ff += r["registers"]
    if r["multipliers"]:
        if mults_on_dsp:
            dsp += r["multipliers"]
        else:
            lut += r["multipliers"] * cfg.mult_bits * 12
    return lut, ff, dsp


CORE_MAX_POOL = schedule.DEFAULT_MAX_POOL


def pool_memory(cfg: AcceleratorConfig, max_pool: int) -> schedule.Memory:
    """The pool's line buffer (``rtl.eltwise.Pool``): ``max_pool - 1`` row banks of
    ``max_width + 1`` words, each ``unroll_in`` row sums of ``act_bits + ceil_log2(max_pool)``
    bits."""
    return schedule.Memory("pool line buffer", max_pool - 1, cfg.max_width + 1,
                           cfg.unroll_in * (cfg.act_bits + schedule.ceil_log2(max_pool)))


def core_memories(cfg: AcceleratorConfig, max_kernel: int, *, max_pool: int = CORE_MAX_POOL,
                  window_sets: int | None = None, direct_only: bool = False) -> list[schedule.Memory]:
    """The block RAMs of a compute core (``rtl.core.Core``): its PE array's weight buffer (the
    dual array's, the Winograd one; direct-only: the direct engine's) and the Winograd line
    buffer (dual build), the window generator's banks (:func:`schedule.core_window`) and the
    pool's line buffer. The window generator's FIFO (``schedule.FIFO_DEPTH`` words) maps to
    LUTs, as the engines' register files do, and is not listed."""
    engine = schedule.memories(schedule.direct_view(cfg) if direct_only else cfg)
    return [*engine, schedule.core_window(cfg, max_kernel, sets=window_sets).memory, pool_memory(cfg, max_pool)]


def _core_logic(cfg: AcceleratorConfig, max_kernel: int, max_pool: int, window_sets: int | None,
                direct_only: bool) -> tuple[float, float]:
    """(LUTs, FFs) a core adds to its engine, counted from the structure as the engines' are
    but not yet calibrated against a build: the window generator's gearbox and FIFO, the
    direct tail of a dual core (bias add, y requant), the add's ``n * unroll_in`` lanes
    (products, sum, pow2 requant), the pool's ``unroll_in`` lanes (window register, row and
    column trees, fixed requant), the segment splitter/packer and, in a dual spatial core, the
    weight path's kernel splitter and mode mux (:func:`_spatial_path_logic`; the transform
    itself is the engine's, :func:`_add_weight_transform`)."""
    buf = schedule.core_window(cfg, max_kernel, sets=window_sets)
    a, ui, lanes = cfg.act_bits, cfg.unroll_in, cfg.n * cfg.unroll_in
    ff = buf.gear * a + schedule.FIFO_DEPTH * buf.group_max * a
    lut = buf.gear * a * 2 + buf.group_max * a
    if not direct_only:
        w = cfg.widths
        rl, rf = _rq_cost(cfg, w.out_sum, a)
        lut += cfg.unroll * (w.out_sum + rl)
        ff += cfg.unroll * (w.out_sum + rf)
        if cfg.weights == "spatial":
            sl, sf = _spatial_path_logic(cfg)
            lut, ff = lut + sl, ff + sf
    prod = a + ADD_MULT_RANGE[1].bit_length()
    rl, rf = _rq_lane(False, prod + 1, a, 0)
    ff += lanes * (3 * prod + 1 + rf)
    lut += lanes * (prod + 1 + rl)
    row, total = a + schedule.ceil_log2(max_pool), a + 2 * schedule.ceil_log2(max_pool)
    rl, rf = _rq_lane(True, total, a, AVGPOOL_MULT_RANGE[1].bit_length())
    ff += ui * (max_pool * a + (max_pool - 1) * (row + total) + rf)
    lut += ui * ((max_pool - 1) * (row + total) * 2 + rl)
    ff += 2 * lanes * a
    lut += 2 * lanes * a
    return lut, ff


def _spatial_path_logic(cfg: AcceleratorConfig) -> tuple[int, int]:
    """(LUTs, FFs) of a spatial core's weight path beside the transform
    (``rtl.wtransform.KernelSplitter`` and the mode mux in ``rtl.core.Core``): the
    splitter's ``beats_per_word``:1 mux on each beat bit (``weight_lanes`` kernels of 9 weights
    and a bias), its beat counter, and a 2:1 mux on every bit of the PE array's weight word."""
    kpw = schedule.beats_per_word(cfg)
    beat = cfg.weight_lanes * (3 * 3 * cfg.weight_bits + cfg.bias_bits)
    word = cfg.unroll * (cfg.unroll_in * cfg.n * cfg.n * cfg.weight_bits + cfg.bias_bits)
    return beat * (kpw - 1) + word, schedule.ceil_log2(max(kpw, 2))


def estimate_resources(cfg: AcceleratorConfig, board: str = "ulx3s-85f",
                       use_dsp: bool = True, *, max_kernel: int | None = None, max_pool: int = CORE_MAX_POOL,
                       window_sets: int | None = None, direct_only: bool = False) -> dict:
    """LUT/FF/DSP/BRAM estimate of the accelerator from the structure of ``rtl/``: register
    bits counted stage by stage, LUTs as adder/mux bits per block, calibrated per family
    against builds (:data:`_LUT_FIT`, :data:`_FF_SCALE`). On the iCE40 ``lut`` is logic cells (LUT + FF pairs), the
    unit nextpnr reports and the device is sized in; with DSPs the products go two per
    SB_MAC16 (:func:`mac16_pairs`).

    ``max_kernel`` asks for a compute core (``rtl.core.Core(cfg, max_kernel=..., max_pool=...,
    window_sets=..., direct_only=...)``) instead of ``cfg.algo``'s engine: the engine it holds
    (the Winograd one, with its weight-transform unit for a spatial ``cfg``; direct-only: the
    direct engine of :func:`schedule.direct_view`), plus
    :func:`core_memories`' RAMs, the element-wise unit's
    :func:`schedule.eltwise_multipliers` (a DSP each) and, in a dual ``fixed`` core, the direct
    tail's ``unroll`` y-requant multipliers; their logic is :func:`_core_logic`'s."""
    family = "ice40" if "ice" in board else "ecp5"
    if max_kernel is not None:
        return _core_resources(cfg, family, use_dsp, max_kernel, max_pool, window_sets, direct_only)
    return _calibrated(family, *_engine_logic(cfg, family, use_dsp), memories(cfg))


def _engine_logic(cfg: AcceleratorConfig, family: str, use_dsp: bool) -> tuple[float, float, int]:
    """(LUTs, FFs, DSPs) of ``cfg.algo``'s engine, counted from the structure (uncalibrated)."""
    w = cfg.widths
    n, S, ui, un = cfg.n, cfg.n * cfg.n, cfg.unroll_in, cfg.unroll
    mults = cfg.multipliers
    fixed = cfg.requant == "fixed"
    xb = cfg.transform_bits if cfg.algo == "winograd" else cfg.act_bits
    pairs = family == "ice40" and use_dsp and mac16_pairs(cfg)
    tag = 8 + max(1, math.ceil(math.log2(max(cfg.max_channels // ui, 2))))
    # PE array: step register, operand and product registers (inside the SB_MAC16 pairs on
    # the iCE40), adder trees, accumulators, bias copies, weight-buffer control
    pe = schedule.pe_geometry(cfg)
    red = pe.tree_inputs
    lanes = un * pe.acc_lanes
    levels = schedule.latencies(cfg).pe_tree
    ff = ui * S * xb + 3 + tag
    if not pairs:
        ff += un * ui * S * xb + un * ui * S * cfg.weight_bits + 2 * mults * w.product
    ff += lanes * (red - 1) * w.accumulator + lanes * w.accumulator
    ff += un * cfg.bias_bits * (5 + levels) + 2 * tag
    lut = lanes * red * w.accumulator + un * cfg.bias_bits + 100
    if not use_dsp:
        lut += mults * cfg.weight_bits * xb
    dsp = (mults // 2 if pairs else mults) if use_dsp else 0
    if cfg.algo == "winograd":
        from . import winograd
        forms = winograd.integer_forms(cfg.tile, cfg.balance)
        m_ = cfg.tile
        # line buffer: write/read counters, two read-data and one output register, row/column
        # rotation (n:1 muxes) and padding mask; the skid buffer behind it (not on the iCE40)
        tile_bits = S * ui * cfg.act_bits
        ff += 3 * tile_bits + 3 * tag + 4 * n + 60
        lut += tile_bits * (2 * 0.6 * (n - 1) + 1) + 60
        if family != "ice40":
            ff += tile_bits + tag + 1
            lut += tile_bits
        # layer controller
        ff += 60
        lut += 70
        # input transform Bᵀ d B, two registered passes
        ff += ui * S * (w.in_stage1 + w.in_full) + 2 * (1 + tag)
        lut += ui * (_lin_comb_adders(forms.BT, w.in_stage1) * n + _lin_comb_adders(forms.BT, w.in_full) * n)
        # V requant
        rl, rf = _rq_cost(cfg, w.in_full, cfg.transform_bits)
        lut += ui * S * rl
        ff += ui * S * rf + 3 * (1 + tag)
        # serializer: one channel of the block per beat (a shift register when unroll > 1)
        ff += un * (S * w.accumulator + cfg.bias_bits) + 8
        lut += (un - 1) * (S * w.accumulator + cfg.bias_bits) + 10
        # output stage: M requant, Aᵀ M A (two registered passes), bias add, y requant
        rl, rf = _rq_cost(cfg, w.accumulator, cfg.transform_bits)
        lut += S * rl
        ff += S * rf
        lut += _lin_comb_adders(forms.AT, w.out_stage1) * n + _lin_comb_adders(forms.AT, w.out_full) * m_
        ff += m_ * n * w.out_stage1 + m_ * m_ * (w.out_full + w.out_sum)
        lut += m_ * m_ * w.out_sum
        rl, rf = _rq_cost(cfg, w.out_sum, cfg.act_bits)
        lut += m_ * m_ * rl
        ff += m_ * m_ * rf + cfg.bias_bits * 6 + 20
        if fixed:
            dsp += ui * S + S + m_ * m_ if use_dsp and not pairs else 0
    else:
        rl, rf = _rq_cost(cfg, w.out_sum, cfg.act_bits)
        lut += un * (w.out_sum + rl) + 120
        ff += un * (w.out_sum + rf) + 100
        if fixed:
            dsp += un if use_dsp and not pairs else 0
    if fixed and pairs:    # the requant multipliers stay in LUTs (the DSPs hold the pairs)
        n_rq = (ui * S + S + cfg.tile ** 2) if cfg.algo == "winograd" else un
        lut += n_rq * cfg.mult_bits * 12
    if cfg.algo == "winograd" and cfg.weights == "spatial":
        lut, ff, dsp = _add_weight_transform(cfg, lut, ff, dsp, use_dsp and not pairs)
    return lut, ff, dsp


def _calibrated(family: str, lut: float, ff: float, dsp: int, mems) -> dict:
    """The structural counts through the family's calibration, and the block RAMs of ``mems``."""
    scale, offset = _LUT_FIT[family]
    lut = lut * scale + offset
    ff *= _FF_SCALE
    if family == "ice40":
        lut += _ICE40_FF_CELLS * ff
    bram = sum(c * _brams(d, wd, family) for _, c, d, wd in mems)
    bits = sum(c * d * wd for _, c, d, wd in mems)
    return {"lut": int(lut), "ff": int(ff), "dsp": int(dsp), "bram": int(bram),
            "memory_bits": int(bits)}


#: The core's LUTs on ECP5 builds with a live command word (``benchmarks/synth.py --core``: every
#: input from an LFSR, so yosys cannot fold the runtime shifters and rotations away as it does in
#: the self-tests :data:`_LUT_FIT` is calibrated on) over :func:`_calibrated`'s count: F4 unroll 4
#: dual 83,360 / 24,390 (3.42), direct-only 27,050 / 8,579 (3.15), F2 unroll 2 dual 28,470 /
#: 7,006 (4.06); their geometric mean, within 15% of each. No such iCE40 build yet (1.0).
_CORE_LUT_SCALE = {"ecp5": 3.5, "ice40": 1.0}


def _core_resources(cfg, family, use_dsp, max_kernel, max_pool, window_sets, direct_only) -> dict:
    """:func:`estimate_resources` of a compute core (its doc), its LUTs scaled by
    :data:`_CORE_LUT_SCALE`."""
    if not 2 <= max_pool <= cfg.max_width:
        raise ValueError(f"max_pool: {max_pool} must be in 2..{cfg.max_width} (cfg.max_width)")
    lut, ff, dsp = _engine_logic(schedule.direct_view(cfg) if direct_only else cfg, family, use_dsp)
    core_lut, core_ff = _core_logic(cfg, max_kernel, max_pool, window_sets, direct_only)
    extra = schedule.eltwise_multipliers(cfg)
    if cfg.requant == "fixed" and not direct_only:
        extra += cfg.unroll
    if use_dsp:
        dsp += extra
    else:
        core_lut += extra * cfg.act_bits * 16
    mems = core_memories(cfg, max_kernel, max_pool=max_pool, window_sets=window_sets, direct_only=direct_only)
    est = _calibrated(family, lut + core_lut, ff + core_ff, dsp, mems)
    return {**est, "lut": int(est["lut"] * _CORE_LUT_SCALE[family])}


# -- the compute core (rtl.core) --------------------------------------------------------------

def core_direct_cycles(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, *, kernel: int,
                       stride: int, padding: int, max_kernel: int, direct_only: bool = False) -> int:
    """Cycles of a direct command on ``rtl.core.Core`` with no stalls, from ``start`` up to and
    including the cycle its last output beat is taken: the window generator's
    (:func:`schedule.window_cycles`, its fill included; the PE array keeps its pace) and the
    core's direct latency behind it."""
    buf = schedule.core_window(cfg, max_kernel)
    g = schedule.core_window_geometry(cfg, buf, C, K, H, W, kernel=kernel, stride=stride, padding=padding)
    return schedule.window_cycles(g, buf) + schedule.core_latencies(cfg, direct_only=direct_only).direct


def core_cycles(cfg: AcceleratorConfig, mode: str, C: int, K: int, H: int, W: int, *, kernel: int = 3,
                stride: int = 1, padding: int = 1, max_kernel: int, direct_only: bool = False) -> int:
    """Cycles of one core command (``mode`` ``winograd``: the Winograd engine's datapath,
    :func:`winograd_layer`, with the weight model of ``cfg.weights``; ``direct``, and
    ``linear`` as its 1x1 case: :func:`core_direct_cycles`).
    A command starts once the previous one's last output is taken (``busy`` low), so a sequence
    of commands, of one mode or mixed, takes the sum: the mode switch costs nothing beyond each command's own drain."""
    if mode == "winograd":
        if direct_only or kernel != 3 or stride != 1:
            raise ValueError("winograd mode: a 3x3 stride-1 layer on a core with Winograd built in")
        return winograd_layer(cfg, C, K, H, W, padding,
                              beat_cycles=schedule.writer_beat_cycles(cfg, "winograd"))["cycles"]
    if mode == "linear":    # a 1x1 convolution of a 1x1 image: C inputs, K outputs
        if (H, W, kernel, stride, padding) != (1, 1, 1, 1, 0):
            raise ValueError("linear mode: a 1x1 image, kernel 1, stride 1, no padding")
    elif mode != "direct":
        raise ValueError(f"mode {mode!r}: core_cycles counts 'winograd', 'direct' and 'linear' "
                         "(element-wise modes: core_eltwise_cycles)")
    return core_direct_cycles(cfg, C, K, H, W, kernel=kernel, stride=stride, padding=padding,
                              max_kernel=max_kernel, direct_only=direct_only)


def core_eltwise_cycles(cfg: AcceleratorConfig, mode: str, C: int, H: int, W: int, *, kernel: int = 1,
                        stride: int = 1, padding: int = 0, max_pool: int) -> int:
    """Cycles of one element-wise core command on a ``[C, H, W]`` input with no stalls, from
    ``start`` to the next command's: ``add`` (:func:`schedule.core_add_cycles`), ``maxpool`` /
    ``avgpool`` with the pooling's ``kernel``/``stride``/``padding`` on a core built for
    ``max_pool`` (:func:`schedule.core_pool_cycles`)."""
    g = schedule.segment_geometry(cfg, C, H, W)
    if mode == "add":
        return schedule.core_add_cycles(g, schedule.writer_beat_cycles(cfg, "eltwise"))
    if mode not in ("maxpool", "avgpool"):
        raise ValueError(f"mode {mode!r}: the element-wise modes are 'add', 'maxpool' and 'avgpool'")
    return schedule.core_pool_cycles(schedule.pool_geometry(H, W, kernel, stride, padding), g.groups, max_pool)
