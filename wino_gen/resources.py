"""Fallback resource estimate used by the build flow's fit check while ``wino_gen.perf`` has no
``estimate_resources``. A per-multiplier model with coefficients fitted to measured YoWASP
builds (see benchmarks/results/synth.json); ``COEFFS`` names the builds they came from.
"""

from .config import AcceleratorConfig

# per-family coefficients: LUT4s per DSP-mapped multiplier lane (accumulator, adder tree,
# pipeline), extra LUT4s per multiplier built from LUTs, FFs per lane, fixed overhead
# (control, transforms, self-test, UART)
COEFFS = {
    "ecp5": {"lut_lane": 1.2, "lut_mult": 70.0, "ff_lane": 2.0, "lut_fixed": 1500, "ff_fixed": 800},
    "ice40": {"lut_lane": 1.2, "lut_mult": 90.0, "ff_lane": 2.0, "lut_fixed": 900, "ff_fixed": 500},
}


def estimate(cfg: AcceleratorConfig, board, use_dsp: bool) -> dict:
    k = COEFFS[board.family]
    lanes = cfg.multipliers
    acc = cfg.widths.accumulator
    lut = k["lut_fixed"] + lanes * acc * k["lut_lane"]
    if not use_dsp:
        lut += lanes * k["lut_mult"] * (cfg.weight_bits * cfg.transform_bits) / 64
    ff = k["ff_fixed"] + lanes * acc * k["ff_lane"]
    # weight buffer: two banks of max_channels/unroll_in words of unroll*unroll_in*n*n weights
    wbits = 2 * cfg.max_channels * cfg.unroll * cfg.n * cfg.n * cfg.weight_bits
    lbits = (cfg.n + 1) * cfg.max_width * cfg.unroll_in * cfg.act_bits
    bram = -(-wbits // board.bram_bits) + -(-lbits // board.bram_bits) + 2
    return {"lut": int(lut), "ff": int(ff), "dsp": lanes if use_dsp else 0, "bram": int(bram)}
