"""AcceleratorConfig: validation, JSON round trip, and derived widths that are exactly tight."""

import dataclasses

import numpy as np
import pytest

from wino_gen import golden, winograd
from wino_gen.config import AcceleratorConfig, ConfigError, int_range, signed_bits


@pytest.mark.parametrize("field,value,msg", [
    ("tile", 3, "tile: 3 is not supported; allowed: 2, 4, 6"),
    ("unroll", 0, "unroll: 0 is out of range; allowed: 1..256"),
    ("act_bits", 17, "act_bits: 17 is out of range; allowed: 4..16"),
    ("granularity", "chan", "granularity: 'chan' is not supported; allowed: layer, tap"),
    ("requant", "float", "requant: 'float' is not supported; allowed: pow2, fixed"),
    ("algo", "fft", "algo: 'fft' is not supported; allowed: winograd, direct"),
    ("balance", "even", "balance: 'even' is not supported; allowed: none, smooth"),
    ("unroll", 2.0, "unroll: expected an integer"),
    ("max_channels", 10**6, "max_channels: 1000000 is out of range"),
])
def test_validation_names_field(field, value, msg):
    with pytest.raises(ConfigError) as e:
        AcceleratorConfig(**{field: value})
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_unroll_in_divides_channels():
    with pytest.raises(ConfigError, match="max_channels: 100 must be a multiple of unroll_in"):
        AcceleratorConfig(unroll_in=8, max_channels=100)


def test_json_round_trip(tmp_path):
    cfg = AcceleratorConfig(tile=6, unroll=4, unroll_in=2, granularity="tap", requant="fixed", algo="direct")
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert AcceleratorConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="bogus: unknown config field"):
        AcceleratorConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="config JSON"):
        AcceleratorConfig.from_json("{")


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AcceleratorConfig().tile = 2


def worst(coeffs, lo, hi, sign):
    """The input pattern that drives sum(c * x) to its max (sign=+1) or min (sign=-1)."""
    return np.where(np.asarray(coeffs) * sign > 0, hi, lo)


CONFIGS = [AcceleratorConfig(tile=m, granularity=g, act_bits=b, transform_bits=b, weight_bits=b,
                             max_channels=16, max_tap_shift=3)
           for m in (2, 4, 6) for g in ("layer", "tap") for b in (4, 8, 12)] + [
    AcceleratorConfig(tile=m, granularity=g, balance="smooth", max_channels=16, max_tap_shift=3)
    for m in (2, 4, 6) for g in ("layer", "tap")]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"F{c.tile}-{c.granularity}-{c.act_bits}b-{c.balance}")
def test_widths_tight_at_extremes(cfg):
    """Drive the worst-case sign patterns through the golden model's steps: every extreme fits
    its derived width, and the widest one needs exactly that width (no slack, no overflow)."""
    f = winograd.integer_forms(cfg.tile, cfg.balance)
    w = cfg.widths
    fwd_in = lambda d: golden.input_transform(d, cfg.tile, cfg.balance)    # noqa: E731
    fwd_out = lambda m: golden.output_transform(m, cfg.tile, cfg.balance)  # noqa: E731
    lo, hi = int_range(cfg.act_bits)
    n = cfg.n
    seen = {"in_stage1": [], "in_full": [], "out_stage1": [], "out_full": []}
    for i in range(n):
        for sign in (1, -1):
            s1, _ = fwd_in(worst(np.repeat(f.BT[i][:, None], n, 1), lo, hi, sign))
            seen["in_stage1"].append(s1[i])
            for j in range(n):
                _, full = fwd_in(worst(np.outer(f.BT[i], f.BT[j]), lo, hi, sign))
                seen["in_full"].append(full[i, j])
    tlo, thi = int_range(cfg.transform_bits)
    s = 1 << cfg.tap_shift
    for a in range(cfg.tile):
        for sign in (1, -1):
            s1, _ = fwd_out(worst(np.repeat(f.AT[a][:, None], n, 1), tlo, thi, sign) * s)
            seen["out_stage1"].append(s1[a])
            for b in range(cfg.tile):
                _, full = fwd_out(worst(np.outer(f.AT[a], f.AT[b]), tlo, thi, sign) * s)
                seen["out_full"].append(full[a, b])
    for name, vals in seen.items():
        v = np.concatenate([np.ravel(x) for x in vals])
        assert signed_bits(int(v.min()), int(v.max())) == getattr(w, name), name
    wlo, _ = int_range(cfg.weight_bits)
    U = np.full((1, cfg.max_channels, 1), wlo)
    V = np.full((1, cfg.max_channels, 1, 1), tlo)
    P = golden.channel_sum(U, V)
    assert signed_bits(int(P.min()), int(P.max())) == w.accumulator


def test_golden_checks_widths_with_cfg():
    """A whole layer at the extremes runs clean within the derived widths, and the same data
    with more channels than the config allows is caught as an overflow."""
    cfg = AcceleratorConfig(tile=4, max_channels=8)
    n = cfg.n
    x = np.full((1, 8, n, n), -128)
    U = np.full((2, 8, n, n), -128)
    sat = golden.Requant(1, -20)  # saturate V and M at the int8 extremes
    golden.winograd_conv3x3(x, U, np.zeros(2), tile=4, v=sat, m=sat, y=golden.Requant(1, 20),
                            padding=0, cfg=cfg)
    x16 = np.full((1, 16, n, n), -128)
    with pytest.raises(golden.OverflowInPath, match="channel accumulator"):
        golden.winograd_conv3x3(x16, np.full((2, 16, n, n), -128), np.zeros(2), tile=4, v=sat, m=sat,
                                y=golden.Requant(1, 20), padding=0, cfg=cfg)


def test_multipliers_same_for_direct():
    a = AcceleratorConfig(tile=4, unroll=16, unroll_in=2)
    b = dataclasses.replace(a, algo="direct")
    assert a.multipliers == b.multipliers == 16 * 2 * 36


def test_load_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.json: No such file"):
        AcceleratorConfig.load(tmp_path / "nope.json")
