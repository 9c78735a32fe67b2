"""PLL clocking on a board: the family's PLL primitive with the parameters ``wino_gen.clocks``
solved, and the clock domain made from its output.

- :class:`ECP5PLL`: ``EHXPLLL``, feedback from CLKOP (as prjtrellis' ``ecppll`` writes it).
- :class:`ICE40PLL`: ``SB_PLL40_PAD`` when it is given the oscillator's pin (the iCEBreaker's
  12 MHz clock is on the PLL's own pad), ``SB_PLL40_CORE`` fed by a fabric clock otherwise;
  SIMPLE feedback (as icestorm's ``icepll`` writes it).
- :class:`PllClock`: requests the board's oscillator pin, runs it through the PLL and gives
  the clock and reset a top makes its ``sync`` domain from: in reset until the PLL has locked
  (and ``hold_cycles`` after that, :class:`LockReset`), released synchronously.

No clock constraint is written for the PLL's output: nextpnr derives it from the oscillator
pin's constraint (the platform's) and the primitive's dividers ("Derived frequency constraint
of 50.0 MHz for net clk" in the ECP5 log), exactly the frequency solved here. A constraint
named after an Amaranth signal would not reach it: yosys keeps another name for that net
(nextpnr: "net 'clkgen.clk' does not exist in design, ignoring clock constraint").

The component decides nothing: every divider comes from :class:`wino_gen.clocks.PllSetting`.
"""

from amaranth.hdl import ClockDomain, Const, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from wino_gen.clocks import PllSetting

# Loop-filter settings prjtrellis' ecppll writes as EHXPLLL attributes (taken from Lattice's
# tools); nextpnr puts them into the bitstream.
ECP5_FILTER_ATTRS = {"ICP_CURRENT": "12", "LPF_RESISTOR": "8", "MFG_ENABLE_FILTEROPAMP": "1",
                     "MFG_GMCREF_SEL": "2"}


def _check_setting(setting, family: str, names: tuple[str, ...]) -> None:
    if not isinstance(setting, PllSetting):
        raise TypeError(f"setting must be a wino_gen.clocks.PllSetting, not {setting!r}")
    if setting.family != family:
        raise ValueError(f"a {setting.family} PLL setting cannot configure the {family} PLL")
    if set(setting.params) != set(names):
        raise ValueError(f"PLL parameters {sorted(setting.params)} are not {sorted(names)}")


def _mhz_attr(f) -> str:
    return f"{float(f):.6f}".rstrip("0").rstrip(".")


class ECP5PLL(wiring.Component):
    """``EHXPLLL``: ``clk_out`` (CLKOP) at ``setting.output_mhz`` from ``clk_in`` (CLKI);
    ``locked`` is the PLL's LOCK (asynchronous to both clocks)."""

    clk_in: In(1)
    clk_out: Out(1)
    locked: Out(1)

    PARAMS = ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "CLKOP_FPHASE")

    def __init__(self, setting: PllSetting):
        _check_setting(setting, "ecp5", self.PARAMS)
        self.setting = setting
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        s = self.setting
        attrs = {f"a_{k}": v for k, v in ECP5_FILTER_ATTRS.items()}
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=_mhz_attr(s.input_mhz), a_FREQUENCY_PIN_CLKOP=_mhz_attr(s.output_mhz),
            **attrs,
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_FEEDBK_PATH="CLKOP",
            **{f"p_{k}": v for k, v in s.params.items()},
            i_CLKI=self.clk_in, i_CLKFB=self.clk_out, o_CLKOP=self.clk_out, o_LOCK=self.locked,
            i_RST=Const(0), i_STDBY=Const(0), i_PHASESEL0=Const(0), i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(0), i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0),
            i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
        )
        return m


class ICE40PLL(wiring.Component):
    """``SB_PLL40_PAD`` on ``pad`` (the oscillator's package pin, as
    ``platform.request(..., dir="-")`` returns it) or, without one, ``SB_PLL40_CORE`` on
    ``clk_in``: ``clk_out`` (PLLOUTGLOBAL) at ``setting.output_mhz``, ``locked`` its LOCK."""

    PARAMS = ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")

    def __init__(self, setting: PllSetting, *, pad=None):
        _check_setting(setting, "ice40", self.PARAMS)
        self.setting = setting
        self.pad = pad
        sig = {"clk_out": Out(1), "locked": Out(1)}
        if pad is None:
            sig["clk_in"] = In(1)
        super().__init__(sig)

    @property
    def primitive(self) -> str:
        return "SB_PLL40_CORE" if self.pad is None else "SB_PLL40_PAD"

    def elaborate(self, platform):
        m = Module()
        ref = {"i_REFERENCECLK": self.clk_in} if self.pad is None else {"i_PACKAGEPIN": self.pad.io}
        m.submodules.pll = Instance(
            self.primitive,
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            **{f"p_{k}": v for k, v in self.setting.params.items()},
            **ref, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=self.clk_out, o_LOCK=self.locked,
        )
        return m


class LockReset(wiring.Component):
    """The reset of a PLL's clock domain: ``rst`` is high until ``locked`` (the PLL's LOCK,
    asynchronous, synchronised here) has been high for ``hold_cycles`` + 1 cycles of
    ``domain``, and again whenever it drops; it changes on that clock only (a synchronous
    release). ``domain`` must be reset-less: nothing resets the logic that makes the reset,
    its counter starts from the registers' power-up zero."""

    locked: In(1)
    rst: Out(1, init=1)

    def __init__(self, *, hold_cycles: int = 0, domain: str = "sync"):
        if not isinstance(hold_cycles, int) or hold_cycles < 0:
            raise ValueError(f"hold_cycles={hold_cycles!r}: must be an integer >= 0")
        self.hold_cycles = hold_cycles
        self.domain = domain
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.locked, locked, o_domain=self.domain)
        count = Signal(range(self.hold_cycles + 2))
        with m.If(~locked):
            m.d[self.domain] += count.eq(0)
        with m.Elif(count <= self.hold_cycles):
            m.d[self.domain] += count.eq(count + 1)
        m.d[self.domain] += self.rst.eq(~locked | (count <= self.hold_cycles))
        return m


class PllClock(wiring.Component):
    """The board oscillator ``clock`` (a platform resource name) through the PLL of
    ``setting``: ``clk`` at the PLL's output and ``rst``, high until the PLL locks and for
    ``hold_cycles`` of ``clk`` after that (:class:`LockReset`; the iCE40's block RAMs read
    zeros for a few us after configuration); ``locked`` is the PLL's LOCK, for status outputs.
    The top defines its clock domain from ``clk`` and ``rst`` (a domain defined in a submodule
    and used above it is deprecated in Amaranth 0.5)."""

    clk: Out(1)
    rst: Out(1)
    locked: Out(1)

    def __init__(self, setting: PllSetting, clock: str, *, hold_cycles: int = 0):
        if not isinstance(setting, PllSetting) or setting.family not in ("ecp5", "ice40"):
            raise ValueError(f"setting must be an ecp5 or ice40 PllSetting, not {setting!r}")
        if not clock:
            raise ValueError("clock: the oscillator's resource name is required")
        self.setting = setting
        self.clock = clock
        self.reset = LockReset(hold_cycles=hold_cycles, domain="pll_por")
        super().__init__()

    def _pll(self, m, platform):
        pin = platform.request(self.clock, 0, dir="-")
        if self.setting.family == "ice40":
            m.submodules.pll = pll = ICE40PLL(self.setting, pad=pin)
        else:
            m.submodules.clk_buf = buf = io.Buffer("i", pin)
            m.submodules.pll = pll = ECP5PLL(self.setting)
            m.d.comb += pll.clk_in.eq(buf.i)
        return pll

    def elaborate(self, platform):
        m = Module()
        pll = self._pll(m, platform)
        m.domains.pll_por = por = ClockDomain("pll_por", reset_less=True, local=True)
        m.d.comb += [por.clk.eq(pll.clk_out), self.clk.eq(pll.clk_out), self.locked.eq(pll.locked)]
        m.submodules.reset = self.reset
        m.d.comb += [self.reset.locked.eq(pll.locked), self.rst.eq(self.reset.rst)]
        return m
