"""The one accelerator configuration: a frozen dataclass that feeds the generator, the golden
model, the simulator and the reports, and is written as JSON next to every artifact."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import safeio, winograd
from .errors import UsageError
from .limits import CONFIG_RANGES, int_range


class ConfigError(UsageError):
    """An invalid configuration value; the message names the field and the allowed range."""


#: The version of the config JSON (its ``wino_config`` field); other versions are refused.
CONFIG_VERSION = 1

TILES = (2, 4, 6)
GRANULARITIES = ("layer", "tap")
REQUANT_MODES = ("pow2", "fixed")
ALGOS = ("winograd", "direct")
#: What the Winograd engine's ``w`` port takes: pre-transformed U words, or int8 3x3 kernels that
#: its weight-transform unit (``rtl.wtransform``) turns into U (``golden.transform_weights``).
WEIGHT_FORMATS = ("winograd", "spatial")


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width that holds every integer in [lo, hi]."""
    w = 1
    while not (int_range(w)[0] <= lo and hi <= int_range(w)[1]):
        w += 1
    return w


def _linear_extremes(coeffs: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Exact min and max of sum(c * x) over x in [lo, hi] (worst-case sign pattern)."""
    c = np.asarray(coeffs, dtype=object).ravel()
    pos = sum(int(v) for v in c if v > 0)
    neg = sum(int(v) for v in c if v < 0)
    return pos * lo + neg * hi, pos * hi + neg * lo


def _transform_widths(T: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Widths of the first (T d) and second (T d Tᵀ) stage of a separable 2-D transform."""
    stage1 = max(signed_bits(*_linear_extremes(row, lo, hi)) for row in T)
    full = max(
        signed_bits(*_linear_extremes(np.outer(T[i], T[j]), lo, hi))
        for i in range(T.shape[0]) for j in range(T.shape[0])
    )
    return stage1, full


@dataclass(frozen=True)
class Widths:
    """Bit widths of every intermediate of the data path, derived from worst-case bounds."""

    in_stage1: int   # BT d (first, column pass of the input transform)
    in_full: int     # BT d B
    product: int     # U * V (or W * x for direct)
    accumulator: int  # sum over max_channels (x 9 taps for direct)
    out_stage1: int  # AT M (with tap alignment shifts)
    out_full: int    # AT M A
    out_sum: int     # AT M A + bias (or accumulator + bias for direct)


@dataclass(frozen=True)
class AcceleratorConfig:
    """Everything that shapes the hardware and its integer arithmetic.

    ``unroll`` output channels and ``unroll_in`` input channels are processed in parallel, each
    pair on n x n multipliers (n = tile + 2); ``algo="direct"`` builds a direct-convolution
    engine with the same multiplier count, so both algorithms get the same silicon budget.

    ``weights="spatial"`` gives the Winograd engine a weight-transform unit that takes
    ``weight_lanes`` int8 3x3 kernels per cycle (``wino_gen.schedule.steady_lanes`` says how
    many keep the PE array fed). The direct engine always takes spatial kernels, so the field
    changes nothing there (``dataclasses.replace(cfg, algo="direct")`` stays valid).
    """

    tile: int = 4
    unroll: int = 16
    unroll_in: int = 1
    act_bits: int = 8
    weight_bits: int = 8
    transform_bits: int = 8
    bias_bits: int = 32
    granularity: str = "layer"
    balance: str = "none"
    requant: str = "pow2"
    mult_bits: int = 16
    max_tap_shift: int = 8
    algo: str = "winograd"
    max_width: int = 256
    max_channels: int = 512
    weights: str = "winograd"
    weight_lanes: int = 1

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{f.name}: expected an integer, got {v!r}")
            if f.type == "str" and not isinstance(v, str):
                raise ConfigError(f"{f.name}: expected a string, got {v!r}")
        if self.tile not in TILES:
            raise ConfigError(f"tile: {self.tile} is not supported; allowed: {', '.join(map(str, TILES))}")
        for name, (lo, hi) in CONFIG_RANGES.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ConfigError(f"{name}: {v} is out of range; allowed: {lo}..{hi}")
        for name, allowed in (("granularity", GRANULARITIES), ("balance", winograd.BALANCES),
                              ("requant", REQUANT_MODES), ("algo", ALGOS),
                              ("weights", WEIGHT_FORMATS)):
            v = getattr(self, name)
            if v not in allowed:
                raise ConfigError(f"{name}: {v!r} is not supported; allowed: {', '.join(allowed)}")
        kernels = self.unroll * self.unroll_in
        if self.weight_lanes < 1 or (self.weights == "spatial" and kernels % self.weight_lanes):
            raise ConfigError(f"weight_lanes: {self.weight_lanes} must be >= 1 and, with weights='spatial', "
                              f"divide unroll * unroll_in ({kernels})")
        if self.max_channels % self.unroll_in:
            raise ConfigError(
                f"max_channels: {self.max_channels} must be a multiple of unroll_in ({self.unroll_in})")

    # -- derived ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Winograd tile side: the input tile is n x n for an m x m output tile."""
        return self.tile + 2

    @property
    def multipliers(self) -> int:
        """Multipliers in the PE array; the direct engine gets the same count."""
        return self.unroll * self.unroll_in * self.n * self.n

    @property
    def tap_shift(self) -> int:
        """Largest alignment shift of a per-tap M scale (0 with one scale per layer)."""
        return self.max_tap_shift if self.granularity == "tap" else 0

    @cached_property
    def widths(self) -> Widths:
        lo_a, hi_a = int_range(self.act_bits)
        lo_t, hi_t = int_range(self.transform_bits)
        lo_w, hi_w = int_range(self.weight_bits)
        prod_lo = min(lo_w * hi_t, hi_w * lo_t)
        prod_hi = lo_w * lo_t
        if self.algo == "direct":
            prod_lo, prod_hi = min(lo_w * hi_a, hi_w * lo_a), lo_w * lo_a
            acc = signed_bits(prod_lo * self.max_channels * 9, prod_hi * self.max_channels * 9)
            bias = int_range(self.bias_bits)
            out_sum = signed_bits(prod_lo * self.max_channels * 9 + bias[0],
                                  prod_hi * self.max_channels * 9 + bias[1])
            return Widths(0, 0, signed_bits(prod_lo, prod_hi), acc, 0, 0, out_sum)
        forms = winograd.integer_forms(self.tile, self.balance)
        in1, inf = _transform_widths(forms.BT, lo_a, hi_a)
        acc = signed_bits(prod_lo * self.max_channels, prod_hi * self.max_channels)
        s = 1 << self.tap_shift
        out1, outf = _transform_widths(forms.AT, lo_t * s, hi_t * s)
        o_lo, o_hi = int_range(outf)
        b_lo, b_hi = int_range(self.bias_bits)
        return Widths(in1, inf, signed_bits(prod_lo, prod_hi), acc, out1, outf,
                      signed_bits(o_lo + b_lo, o_hi + b_hi))

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps({"wino_config": CONFIG_VERSION, **self.to_dict()}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> AcceleratorConfig:
        d = dict(d)
        version = d.pop("wino_config", CONFIG_VERSION)
        if type(version) is not int or version != CONFIG_VERSION:
            raise ConfigError(f"wino_config: version {version!r} is not supported; this reader takes {CONFIG_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown config field; known: {', '.join(sorted(names))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> AcceleratorConfig:
        return cls._from_value(_as_config_error(safeio.parse_json, text, "config JSON"), "config JSON")

    @classmethod
    def load(cls, path: str | Path) -> AcceleratorConfig:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path}: No such file or directory")
        return cls._from_value(_as_config_error(safeio.read_json, path, "config file"), f"config file {path}")

    @classmethod
    def _from_value(cls, d, what: str) -> AcceleratorConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"{what}: expected an object")
        return cls.from_dict(d)

    def save(self, path: str | Path, flag: str | None = None) -> None:
        """Write the JSON atomically (a failed write leaves the old file); errors name ``flag``."""
        safeio.atomic_write(path, self.to_json(), flag)


def _as_config_error(read, source, what: str):
    """``read(source, what)`` (a :mod:`safeio` JSON reader) with its errors as :class:`ConfigError`."""
    try:
        return read(source, what)
    except UsageError as e:
        raise ConfigError(str(e)) from None
