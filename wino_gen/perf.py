"""Cycle model and resource estimate of the generated accelerator (``rtl.top``).

The cycle model follows the hardware's schedule (``rtl.tilebuf.LayerController``): for each
tile row ``ty``, output-channel block ``kb``, tile column ``tx``, channel group ``cg`` one
PE-array step. Besides the steps it counts what the hardware waits for, with the host
streaming as fast as the accelerator accepts (one beat per cycle on ``x`` and ``w``, ``o``
always ready):

- the line buffer: a tile row starts once its n rows are loaded (``n_cg * nxb`` beats per
  row), and loading runs at most 2n rows ahead of the tile row being read;
- the output side: a tile's ``unroll`` channels leave one per cycle through the serializer,
  so a tile takes ``max(n_cg, unroll + 1)`` cycles (the serializer's ready is registered);
- the pipeline latency from ``start`` to the first output and from the last step to the last
  output.

Weight blocks are double buffered and need ``n_cg`` beats per block against ``tw * n_cg``
steps, so they never stall after the first one. ``sim`` measures the same cycles (tests
compare the two).
"""

from __future__ import annotations

import math

from .config import AcceleratorConfig

# pipeline latency (register stages) of the blocks, as built in rtl/
_TILEBUF, _ITF, _SER = 4, 2, 1


def _rq(cfg: AcceleratorConfig) -> int:
    """A requantizer's stages (``rtl.arith.rq_latency``): the product takes one more."""
    return 3 if cfg.requant == "fixed" else 2


def _ceil(a, b):
    return -(-a // b)


def _pe_latency(cfg: AcceleratorConfig) -> int:
    reduce = cfg.unroll_in if cfg.algo == "winograd" else cfg.unroll_in * cfg.n * cfg.n
    # step, operand (RAM -> multiplier) and two product registers + adder tree levels
    return 4 + math.ceil(math.log2(reduce)) if reduce > 1 else 4


def winograd_latency(cfg: AcceleratorConfig) -> int:
    """Cycles from a step command to its output beat (the last step of a tile)."""
    out_stage = 2 * _rq(cfg) + 3
    return _TILEBUF + _ITF + _rq(cfg) + _pe_latency(cfg) + _SER + out_stage


def winograd_layer(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int,
                   padding: int = 1) -> dict:
    """Cycle estimate of one 3x3 stride-1 layer on the Winograd engine (one sample)."""
    n, m = cfg.n, cfg.tile
    n_cg, n_kb = _ceil(C, cfg.unroll_in), _ceil(K, cfg.unroll)
    Ho, Wo = H + 2 * padding - 2, W + 2 * padding - 2
    th, tw = _ceil(Ho, m), _ceil(Wo, m)
    nxb = _ceil(tw * m + 2, n)
    row_beats = n_cg * nxb
    per_tile = max(n_cg, cfg.unroll + 1)   # the serializer frees its buffer a cycle late
    band_cycles = n_kb * tw * per_tile
    # event model of the line buffer (padded row coordinates ys = pad .. H + pad - 1): a row
    # loads in row_beats cycles, may start once the tile row it would overwrite is no longer
    # read (loading runs at most 2n rows ahead), and a tile row starts when its rows are in
    band_start = []
    t = 1                       # the first beat is taken the cycle after start
    ys = padding
    last_row = H + padding
    t_band_end = 0
    for b in range(th):
        need = min(b * m + n, last_row)
        while ys < need:
            allow = max(0, _ceil(ys - 2 * n + 1, m))
            t = max(t, band_start[allow] if allow else 1) + row_beats
            ys += 1
        s = max(t_band_end, t, n_cg + 1)      # rows in, previous tile row done, weights in
        band_start.append(s)
        t_band_end = s + band_cycles
    # the last tile: its channels leave one per cycle after the pipeline latency
    cycles = t_band_end - (per_tile - n_cg) + winograd_latency(cfg) + cfg.unroll - 1
    steps = th * n_kb * tw * n_cg
    lane_fill = (C / (n_cg * cfg.unroll_in)) * (K / (n_kb * cfg.unroll))
    return {
        "cycles": int(cycles), "steps": steps, "tiles": (th, tw), "n_cg": n_cg, "n_kb": n_kb,
        "utilization": steps * lane_fill / cycles,
        # steady state: a tile row either computes or waits for its m new input rows
        "steady_utilization": lane_fill * n_cg / per_tile * min(1.0, band_cycles / (m * row_beats)),
        "input_bound": m * row_beats > band_cycles,
        "direct_macs": H * W * C * K * 9 if padding == 1 else Ho * Wo * C * K * 9,
    }


def direct_layer(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, kernel: int = 3,
                 stride: int = 1, padding: int = 1) -> dict:
    """Cycle estimate of a convolution on the direct engine (same multipliers)."""
    L = cfg.unroll_in * cfg.n * cfg.n
    E = C * kernel * kernel
    n_step = _ceil(E, L)
    Ho = (H + 2 * padding - kernel) // stride + 1
    Wo = (W + 2 * padding - kernel) // stride + 1
    n_kb = _ceil(K, cfg.unroll)
    steps = n_kb * Ho * Wo * n_step
    # the first weight block (n_step beats) loads before the first step; then one step per
    # cycle (weights double buffered), and the pipeline latency to the last output
    cycles = n_step + steps + _pe_latency(cfg) + 2 + _rq(cfg)
    macs = Ho * Wo * C * K * kernel * kernel
    return {"cycles": int(cycles), "steps": steps, "n_step": n_step, "n_kb": n_kb,
            "utilization": macs / (cycles * cfg.multipliers),
            "steady_utilization": macs / (steps * cfg.multipliers), "direct_macs": macs}


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


def memories(cfg: AcceleratorConfig) -> list[tuple[str, int, int, int]]:
    """(name, count, depth, width) of every memory in the generated design."""
    n, S = cfg.n, cfg.n * cfg.n
    L = cfg.unroll_in * S
    if cfg.algo == "winograd":
        depth = cfg.max_channels // cfg.unroll_in
    else:
        depth = _ceil(cfg.max_channels * 9, L)
    mems = [("weights", 1, 2 * depth, cfg.unroll * L * cfg.weight_bits)]
    if cfg.algo == "winograd":
        # word address {column word, slot, channel group}: the channel-group field is a
        # power of two (rtl.tilebuf.geometry)
        xb = _ceil(cfg.max_width + 6 + n, n)
        cg_words = 1 << (depth - 1).bit_length()
        mems.append(("line buffer", n * n, 2 * cg_words * xb, cfg.unroll_in * cfg.act_bits))
    return mems


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
    """(LUTs, FFs) of one requantizer lane (``rtl.arith.rq_pipeline``)."""
    fixed = cfg.requant == "fixed"
    pw = in_bits + cfg.mult_bits + 1 if fixed else in_bits
    return pw + out_bits * 3 // 2 + 3, (pw if fixed else 0) + 2 * out_bits + 2


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


def estimate_resources(cfg: AcceleratorConfig, board: str = "ulx3s-85f",
                       use_dsp: bool = True) -> dict:
    """LUT/FF/DSP/BRAM estimate of the accelerator from the structure of ``rtl/``: register
    bits counted stage by stage, LUTs as adder/mux bits per block, calibrated per family
    against builds (:data:`_LUT_FIT`, :data:`_FF_SCALE`). On the iCE40 ``lut`` is logic cells (LUT + FF pairs), the
    unit nextpnr reports and the device is sized in; with DSPs the products go two per
    SB_MAC16 (:func:`mac16_pairs`)."""
    family = "ice40" if "ice" in board else "ecp5"
    w = cfg.widths
    n, S, ui, un = cfg.n, cfg.n * cfg.n, cfg.unroll_in, cfg.unroll
    mults = cfg.multipliers
    fixed = cfg.requant == "fixed"
    xb = cfg.transform_bits if cfg.algo == "winograd" else cfg.act_bits
    pairs = family == "ice40" and use_dsp and mac16_pairs(cfg)
    tag = 8 + max(1, math.ceil(math.log2(max(cfg.max_channels // ui, 2))))
    # PE array: step register, operand and product registers (inside the SB_MAC16 pairs on
    # the iCE40), adder trees, accumulators, bias copies, weight-buffer control
    red = ui if cfg.algo == "winograd" else ui * S
    lanes = un * (S if cfg.algo == "winograd" else 1)
    levels = math.ceil(math.log2(red)) if red > 1 else 0
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
    scale, offset = _LUT_FIT[family]
    lut = lut * scale + offset
    ff *= _FF_SCALE
    if family == "ice40":
        lut += _ICE40_FF_CELLS * ff
    bram = sum(c * _brams(d, wd, family) for _, c, d, wd in memories(cfg))
    bits = sum(c * d * wd for _, c, d, wd in memories(cfg))
    return {"lut": int(lut), "ff": int(ff), "dsp": int(dsp), "bram": int(bram),
            "memory_bits": int(bits)}
