# amaranth: UnusedElaboratable=no
"""PLL settings (``wino_gen.clocks``) and the PLL blocks (``rtl.pll``): every solution inside
the data sheets' limits, the best one at or below the request (checked against a plain
enumeration of every divider), reference settings of icepll, one-line errors; the primitives
carry the solved parameters; the domain reset waits for lock."""

from fractions import Fraction

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl.pll import ECP5PLL, ICE40PLL, LockReset, PllClock
from wino_gen import clocks
from wino_gen.errors import UsageError

OSCILLATORS = {"ecp5": (8, 12, 25, 27, 50, 100), "ice40": (10, 12, 16, 25, 48, 100)}


def _in(f, rng) -> bool:
    return rng[0] <= f <= rng[1]


def _ecp5_out(f_in, p):
    """(pfd, vco, out) of an EHXPLLL setting, feedback from CLKOP, recomputed from its dividers."""
    pfd = Fraction(f_in) / p["CLKI_DIV"]
    out = pfd * p["CLKFB_DIV"]
    return pfd, out * p["CLKOP_DIV"], out


def _ice40_out(f_in, p):
    pfd = Fraction(f_in) / (p["DIVR"] + 1)
    vco = pfd * (p["DIVF"] + 1)
    return pfd, vco, vco / (1 << p["DIVQ"])


OUT = {"ecp5": _ecp5_out, "ice40": _ice40_out}


def _check_within_limits(s: clocks.PllSetting):
    lim = clocks.limits(s.family)
    pfd, vco, out = OUT[s.family](s.input_mhz, s.params)
    assert (pfd, vco, out) == (s.pfd_mhz, s.vco_mhz, s.output_mhz)
    for f, rng in ((s.input_mhz, lim.input_mhz), (pfd, lim.pfd_mhz), (vco, lim.vco_mhz), (out, lim.output_mhz)):
        assert _in(f, rng), (s, f, rng)
    p = s.params
    if s.family == "ecp5":
        assert all(1 <= p[k] <= 128 for k in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"))
        assert p["CLKOP_CPHASE"] == p["CLKOP_DIV"] - 1 and p["CLKOP_FPHASE"] == 0
    else:
        assert 0 <= p["DIVR"] <= 15 and 0 <= p["DIVF"] <= 127 and 1 <= p["DIVQ"] <= 6
        assert 1 <= p["FILTER_RANGE"] <= 6


_ENUMERATED = {}


def _every_output(family, f_in) -> list[float]:
    """Every output frequency of the family's PLL from ``f_in``, by trying every divider in
    floating point (independent of the solver's exact, pruned search)."""
    key = (family, f_in)
    if key not in _ENUMERATED:
        lim, outs = clocks.limits(family), set()
        eps = 1e-9
        if family == "ecp5":
            for a in range(1, 129):
                if not _in(f_in / a, lim.pfd_mhz):
                    continue
                for b in range(1, 129):
                    out = f_in / a * b
                    if _in(out, lim.output_mhz) and any(_in(out * c, lim.vco_mhz) for c in range(1, 129)):
                        outs.add(round(out / eps) * eps)
        else:
            for r in range(16):
                for f in range(128):
                    vco = f_in / (r + 1) * (f + 1)
                    for q in range(1, 7):
                        if _in(f_in / (r + 1), lim.pfd_mhz) and _in(vco, lim.vco_mhz) \
                                and _in(vco / 2 ** q, lim.output_mhz):
                            outs.add(round(vco / 2 ** q / eps) * eps)
        _ENUMERATED[key] = sorted(outs)
    return _ENUMERATED[key]


def _step_bound(family, f_in) -> float:
    """How far below a request the answer may lie (MHz, relative for the iCE40): the ECP5 makes
    every multiple of its smallest PFD step; the iCE40's VCO steps by its smallest PFD over
    a range spanning exactly one octave (two steps at the octave's edge)."""
    lim = clocks.limits(family)
    pfd = f_in / int(f_in // lim.pfd_mhz[0])
    return pfd if family == "ecp5" else 2 * pfd / lim.vco_mhz[0]


@st.composite
def _requests(draw):
    family = draw(st.sampled_from(sorted(OSCILLATORS)))
    f_in = draw(st.sampled_from(OSCILLATORS[family]))
    outs = _every_output(family, f_in)
    # just above the lowest output: the enumeration's rounding must not step below it
    req = draw(st.floats(min_value=outs[0] + 1e-6, max_value=clocks.limits(family).output_mhz[1]))
    return family, f_in, req


@settings(max_examples=150, deadline=None)
@given(_requests())
def test_solution_is_the_best_at_or_below_the_request(case):
    family, f_in, req = case
    s = clocks.solve_pll(family, f_in, req)
    _check_within_limits(s)
    got = float(s.output_mhz)
    assert got <= req
    outs = _every_output(family, f_in)
    assert not [f for f in outs if got + 1e-6 < f <= req], "a closer setting exists"
    bound = _step_bound(family, f_in)
    if family == "ecp5":
        assert got > req - bound - 1e-9
    elif req <= outs[-1]:
        assert got >= req * (1 - bound) - 1e-9


@pytest.mark.parametrize("mhz,params", [
    # icepll -i 12 -o 48 / -o 30 (the iCEBreaker's usual PLLs)
    (48, {"DIVR": 0, "DIVF": 63, "DIVQ": 4, "FILTER_RANGE": 1}),
    (30, {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1}),
])
def test_icebreaker_settings_match_icepll(mhz, params):
    s = clocks.solve_pll("ice40", 12, mhz)
    assert s.params == params and s.output_mhz == mhz and s.primitive == "SB_PLL40"


@pytest.mark.parametrize("mhz", [50, 75, 100, 125, 200])
def test_ulx3s_round_frequencies_are_exact(mhz):
    s = clocks.solve_pll("ecp5", 25, mhz)
    assert s.output_mhz == mhz
    assert s.pfd_mhz == 25           # no input division where none is needed (less jitter)


def test_between_settings_the_lower_one():
    """From 25 MHz nothing lies between 50 and 53.125 MHz (PFD >= 3.125 MHz): 52 gets 50."""
    assert clocks.solve_pll("ecp5", 25, 52).output_mhz == 50
    assert clocks.solve_pll("ecp5", 25, 53.125).output_mhz == Fraction(425, 8)


@pytest.mark.parametrize("family,f_in,req,msg", [
    ("ecp5", 25, 401, "EHXPLLL from 25 MHz: 401 MHz is out of range; allowed: 3.125..400 MHz"),
    ("ecp5", 25, 3, "out of range; allowed: 3.125..400 MHz"),
    ("ice40", 12, 16, "SB_PLL40 from 12 MHz: 16 MHz is out of range; allowed: 16.125..270 MHz"),
    ("ice40", 12, 300, "allowed: 16.125..270 MHz"),
    ("ice40", 5, 20, "SB_PLL40: a 5 MHz input is outside its 10..133 MHz range"),
    ("ecp5", 500, 100, "EHXPLLL: a 500 MHz input is outside its 8..400 MHz range"),
])
def test_impossible_requests_are_one_line(family, f_in, req, msg):
    with pytest.raises(UsageError) as e:
        clocks.solve_pll(family, f_in, req)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_unknown_family_is_a_value_error():
    with pytest.raises(ValueError, match="no PLL model for family 'gowin'"):
        clocks.solve_pll("gowin", 27, 50)


def test_plan_clock_uses_the_oscillator_when_asked_for_it():
    for req in (None, 25, 25.0):
        plan = clocks.plan_clock("ecp5", 25, req)
        assert plan.pll is None and plan.mhz == 25 and plan.to_dict()["source"] == "oscillator"
    plan = clocks.plan_clock("ice40", 12, 33)
    assert plan.pll.output_mhz == plan.mhz <= 33 and plan.hz == float(plan.mhz) * 1e6
    d = plan.to_dict()
    assert d["source"] == "pll" and d["pll"]["params"] == plan.pll.params and d["requested_mhz"] == 33


# -- rtl.pll ----------------------------------------------------------------------------------

def _il(component) -> str:
    return rtlil.convert(component, ports=None)


def test_ecp5_pll_instance_carries_the_solved_dividers():
    s = clocks.solve_pll("ecp5", 25, 75)
    il = _il(ECP5PLL(s))
    assert "cell \\EHXPLLL" in il and 'parameter \\FEEDBK_PATH "CLKOP"' in il
    for k, v in s.params.items():
        assert f"parameter \\{k} {v}\n" in il, k
    assert 'attribute \\FREQUENCY_PIN_CLKOP "75"' in il


def test_ice40_core_pll_instance_carries_the_solved_dividers():
    s = clocks.solve_pll("ice40", 12, 36)
    pll = ICE40PLL(s)
    assert pll.primitive == "SB_PLL40_CORE" and "clk_in" in pll.signature.members
    il = _il(pll)
    assert "cell \\SB_PLL40_CORE" in il and 'parameter \\FEEDBACK_PATH "SIMPLE"' in il
    for k, v in s.params.items():
        assert f"parameter \\{k} {v}\n" in il, k


def test_pll_blocks_refuse_another_familys_setting():
    ecp5, ice40 = clocks.solve_pll("ecp5", 25, 50), clocks.solve_pll("ice40", 12, 24)
    with pytest.raises(ValueError, match="a ice40 PLL setting cannot configure the ecp5 PLL"):
        ECP5PLL(ice40)
    with pytest.raises(ValueError, match="a ecp5 PLL setting cannot configure the ice40 PLL"):
        ICE40PLL(ecp5)
    with pytest.raises(TypeError):
        ECP5PLL({"CLKI_DIV": 1})
    with pytest.raises(ValueError, match="hold_cycles=-1"):
        LockReset(hold_cycles=-1)
    with pytest.raises(ValueError, match="resource name"):
        PllClock(ecp5, "")


@pytest.mark.parametrize("hold", [0, 5])
def test_lock_reset_holds_until_lock_and_after_a_loss(hold):
    """rst is high from power-up until LOCK has been seen (two synchroniser stages) for
    hold + 1 cycles, drops on the clock, and rises again when LOCK drops (until it is back
    for as long again)."""
    dut = LockReset(hold_cycles=hold)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    trace = []

    async def tb(ctx):
        for locked in [0] * 4 + [1] * (hold + 8) + [0] * 4 + [1] * (hold + 8):
            ctx.set(dut.locked, locked)
            await ctx.tick()
            trace.append(ctx.get(dut.rst))
    sim.add_testbench(tb)
    sim.run()
    # LOCK rises before tick 5; two synchroniser stages, hold + 1 counts, the rst register
    high = 4 + 2 + hold + 1
    assert trace[:high] == [1] * high and trace[high:12 + hold] == [0] * (12 + hold - high)
    # LOCK lost: seen two synchroniser stages later; then the same wait as from power-up
    second = trace[12 + hold:]
    assert second == [0, 0] + [1] * (high - 2) + [0] * (len(second) - high)
