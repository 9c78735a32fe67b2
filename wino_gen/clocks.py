"""The clock a bitstream runs at: PLL settings solved from a board's oscillator.

A board build asks for a frequency; :func:`plan_clock` answers with the frequency the design
will really run at and, unless that is the oscillator itself, the PLL setting that makes it:

- ECP5 ``EHXPLLL``, feedback from CLKOP: ``f_out = f_in / CLKI_DIV * CLKFB_DIV``,
  ``f_vco = f_out * CLKOP_DIV`` (the search of prjtrellis' ``ecppll``);
- iCE40 ``SB_PLL40_PAD`` / ``SB_PLL40_CORE``, SIMPLE feedback:
  ``f_out = f_in / (DIVR + 1) * (DIVF + 1) / 2**DIVQ``, ``f_vco = f_out * 2**DIVQ`` and the loop
  filter from the PFD frequency (the search of icestorm's ``icepll``).

The answer is the highest reachable frequency at or below the request (a clock above the one
asked for could miss timing that the request was sized for); ties go to the higher PFD, then
the higher VCO frequency (less jitter). Every frequency is an exact :class:`~fractions.Fraction`
of MHz, so the UART divisor and the one-second period derive from exactly what the PLL makes.
Pure Python: the RTL (``rtl.pll``) instantiates what this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .errors import UsageError


@dataclass(frozen=True)
class PllLimits:
    """One family's PLL: its primitive, the frequency ranges its data sheet allows (MHz,
    inclusive) and the divider ranges the primitive's parameters take."""

    family: str
    primitive: str
    input_mhz: tuple[float, float]
    pfd_mhz: tuple[float, float]
    vco_mhz: tuple[float, float]
    output_mhz: tuple[float, float]


#: Lattice DS1044 (ECP5 data sheet, sysCLOCK PLL timing) and TN1263 (ECP5 sysCLOCK PLL):
#: CLKI 8..400 MHz, PFD 3.125..400 MHz, VCO 400..800 MHz, CLKOP 3.125..400 MHz; dividers 1..128.
ECP5 = PllLimits("ecp5", "EHXPLLL", (8.0, 400.0), (3.125, 400.0), (400.0, 800.0), (3.125, 400.0))
#: Lattice iCE40 UltraPlus data sheet (DS1056) / TN1251 (iCE40 sysCLOCK PLL): REFERENCECLK
#: 10..133 MHz, PFD 10..133 MHz, VCO 533..1066 MHz, PLLOUT 16..275 MHz; DIVR 0..15,
#: DIVF 0..127, DIVQ 1..6.
ICE40 = PllLimits("ice40", "SB_PLL40", (10.0, 133.0), (10.0, 133.0), (533.0, 1066.0), (16.0, 275.0))

LIMITS = {"ecp5": ECP5, "ice40": ICE40}

ECP5_DIV = range(1, 129)
ICE40_DIVR, ICE40_DIVF, ICE40_DIVQ = range(16), range(128), range(1, 7)
# icepll's loop-filter choice: FILTER_RANGE 1..6 by the PFD frequency (upper bounds, MHz)
ICE40_FILTER = ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5))


@dataclass(frozen=True)
class PllSetting:
    """A solved PLL: the primitive's parameters (names as the primitive spells them) and the
    frequencies they make, in MHz."""

    family: str
    primitive: str
    params: dict
    input_mhz: Fraction
    pfd_mhz: Fraction
    vco_mhz: Fraction
    output_mhz: Fraction

    def to_dict(self) -> dict:
        return {"family": self.family, "primitive": self.primitive, "params": dict(self.params),
                **{k: float(getattr(self, k)) for k in ("input_mhz", "pfd_mhz", "vco_mhz", "output_mhz")}}


@dataclass(frozen=True)
class ClockPlan:
    """What a board runs at: ``mhz`` (exact), from the oscillator directly (``pll`` None) or
    through ``pll``; ``requested_mhz`` is what was asked for (None: nothing, the oscillator)."""

    requested_mhz: float | None
    oscillator_mhz: float
    mhz: Fraction
    pll: PllSetting | None

    @property
    def hz(self) -> float:
        return float(self.mhz * 1_000_000)

    def to_dict(self) -> dict:
        return {"requested_mhz": self.requested_mhz, "oscillator_mhz": self.oscillator_mhz,
                "mhz": float(self.mhz), "source": "pll" if self.pll else "oscillator",
                "pll": self.pll.to_dict() if self.pll else None}


def _within(f: Fraction, rng: tuple[float, float]) -> bool:
    return Fraction(rng[0]) <= f <= Fraction(rng[1])


def _ecp5_candidates(f_in: Fraction):
    for clki in ECP5_DIV:
        pfd = f_in / clki
        if not _within(pfd, ECP5.pfd_mhz):
            continue
        for clkfb in ECP5_DIV:
            out = pfd * clkfb
            if not _within(out, ECP5.output_mhz):
                continue
            # the CLKOP_DIV values that put the VCO in range (ceil and floor of its bounds)
            first = max(ECP5_DIV.start, -(-Fraction(ECP5.vco_mhz[0]) // out))
            last = min(ECP5_DIV.stop - 1, Fraction(ECP5.vco_mhz[1]) // out)
            for clkop in range(first, last + 1):
                # CPHASE = DIV - 1 is 0 degrees in the encoding Lattice's tools emit; with
                # feedback from CLKOP the PLL aligns CLKOP to CLKI whatever its phase
                yield (out, pfd, out * clkop, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                                               "CLKOP_CPHASE": clkop - 1, "CLKOP_FPHASE": 0})


def _ice40_filter(pfd: Fraction) -> int:
    return next((r for hi, r in ICE40_FILTER if pfd < hi), 6)


def _ice40_candidates(f_in: Fraction):
    for divr in ICE40_DIVR:
        pfd = f_in / (divr + 1)
        if not _within(pfd, ICE40.pfd_mhz):
            continue
        for divf in ICE40_DIVF:
            vco = pfd * (divf + 1)
            if not _within(vco, ICE40.vco_mhz):
                continue
            for divq in ICE40_DIVQ:
                out = vco / (1 << divq)
                if _within(out, ICE40.output_mhz):
                    yield (out, pfd, vco, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                           "FILTER_RANGE": _ice40_filter(pfd)})


CANDIDATES = {"ecp5": _ecp5_candidates, "ice40": _ice40_candidates}


@lru_cache(maxsize=16)
def _settings(family: str, input_mhz: Fraction) -> tuple:
    """Every distinct output frequency the family's PLL makes from ``input_mhz``, with its best
    setting (higher PFD, then higher VCO), sorted by frequency."""
    best = {}
    for out, pfd, vco, params in CANDIDATES[family](input_mhz):
        key = (pfd, vco)
        if out not in best or key > best[out][0]:
            best[out] = (key, pfd, vco, params)
    return tuple((out, pfd, vco, params) for out, (_, pfd, vco, params) in sorted(best.items()))


def limits(family: str) -> PllLimits:
    try:
        return LIMITS[family]
    except KeyError:
        raise ValueError(f"no PLL model for family {family!r}; known: {', '.join(LIMITS)}") from None


def solve_pll(family: str, input_mhz: float, request_mhz: float) -> PllSetting:
    """The PLL setting of ``family`` whose output is the highest at or below ``request_mhz``
    from an oscillator of ``input_mhz``; :class:`UsageError` (one line, with the range) when
    the request is outside what the PLL can make from that input."""
    lim = limits(family)
    f_in = Fraction(input_mhz)
    if not _within(f_in, lim.input_mhz):
        raise UsageError(f"{lim.primitive}: a {input_mhz:g} MHz input is outside its "
                         f"{lim.input_mhz[0]:g}..{lim.input_mhz[1]:g} MHz range")
    table = _settings(family, f_in)
    lo, hi = table[0][0], table[-1][0]
    req = Fraction(request_mhz)
    if not lo <= req <= Fraction(lim.output_mhz[1]):
        raise UsageError(f"{lim.primitive} from {input_mhz:g} MHz: {request_mhz:g} MHz is out of "
                         f"range; allowed: {float(lo):g}..{float(hi):g} MHz")
    out, pfd, vco, params = max((s for s in table if s[0] <= req), key=lambda s: s[0])
    return PllSetting(family=family, primitive=lim.primitive, params=params, input_mhz=f_in,
                      pfd_mhz=pfd, vco_mhz=vco, output_mhz=out)


def plan_clock(family: str, oscillator_mhz: float, request_mhz: float | None) -> ClockPlan:
    """The clock a board design runs at: the oscillator itself when nothing or exactly the
    oscillator's frequency is asked for (no PLL), else :func:`solve_pll`'s setting."""
    if request_mhz is None or Fraction(request_mhz) == Fraction(oscillator_mhz):
        return ClockPlan(requested_mhz=request_mhz, oscillator_mhz=oscillator_mhz,
                         mhz=Fraction(oscillator_mhz), pll=None)
    pll = solve_pll(family, oscillator_mhz, request_mhz)
    return ClockPlan(requested_mhz=request_mhz, oscillator_mhz=oscillator_mhz, mhz=pll.output_mhz, pll=pll)
