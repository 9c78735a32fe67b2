"""Two signed 8 x 8 products per iCE40 ``SB_MAC16`` (its 8 x 8 mode).

The iCE40 UP5K has 8 ``SB_MAC16`` blocks and yosys maps one multiplier to each, so a 16-product
PE array (tile 2) would otherwise need 8 LUT multipliers of ~175 LCs each. In 8 x 8 mode one
block computes ``A[15:8] * B[15:8]`` and ``A[7:0] * B[7:0]`` side by side; its input registers
(A, B), product registers and output registers (each half's adder adding 0 to its product)
take the place of the PE's operand and two product stages, so the pair has the same
three-cycle latency and clock enable as :class:`rtl.pe.PEArray`'s own registers. Used by a
PE array built with ``mac16=True`` (``BuildOptions.ice40_mac16``, which the build flow sets
for iCE40 boards); the behaviour is yosys' ``SB_MAC16`` model (``cells_sim.v``),
checked against ``*`` in ``tests/test_rtl_mac16.py``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, signed


def mac16_pair(m, en, a0, b0, a1, b1, name: str):
    """``(a0 * b0, a1 * b1)`` as 16-bit signed Values, three enabled cycles (input, product
    and output registers) after the operands (signed, at most 8 bits each)."""
    ops = []
    for v in (a0, b0, a1, b1):
        if len(v) > 8:
            raise ValueError(f"{name}: SB_MAC16 8x8 mode takes operands of at most 8 bits")
        s = Signal(signed(8), name=f"{name}_op{len(ops)}")
        m.d.comb += s.eq(v)           # sign-extends narrower operands
        ops.append(s)
    o = Signal(32, name=f"{name}_o")
    one, zero = Const(1, 1), Const(0, 1)
    m.submodules[name] = Instance(
        "SB_MAC16",
        p_NEG_TRIGGER=zero, p_C_REG=zero, p_A_REG=one, p_B_REG=one, p_D_REG=zero,
        p_TOP_8x8_MULT_REG=one, p_BOT_8x8_MULT_REG=one,
        p_PIPELINE_16x16_MULT_REG1=zero, p_PIPELINE_16x16_MULT_REG2=zero,
        # each half: product + C (D) = product + 0 into the output register, no carries
        p_TOPOUTPUT_SELECT=Const(1, 2), p_TOPADDSUB_LOWERINPUT=Const(1, 2),
        p_TOPADDSUB_UPPERINPUT=one, p_TOPADDSUB_CARRYSELECT=Const(0, 2),
        p_BOTOUTPUT_SELECT=Const(1, 2), p_BOTADDSUB_LOWERINPUT=Const(1, 2),
        p_BOTADDSUB_UPPERINPUT=one, p_BOTADDSUB_CARRYSELECT=Const(0, 2),
        p_MODE_8x8=one, p_A_SIGNED=one, p_B_SIGNED=one,
        i_CLK=ClockSignal(), i_CE=en,
        i_A=Cat(ops[0], ops[2]), i_B=Cat(ops[1], ops[3]), i_C=Const(0, 16), i_D=Const(0, 16),
        i_AHOLD=zero, i_BHOLD=zero, i_CHOLD=zero, i_DHOLD=zero,
        i_IRSTTOP=zero, i_IRSTBOT=zero, i_ORSTTOP=zero, i_ORSTBOT=zero,
        i_OLOADTOP=zero, i_OLOADBOT=zero, i_ADDSUBTOP=zero, i_ADDSUBBOT=zero,
        i_OHOLDTOP=zero, i_OHOLDBOT=zero, i_CI=zero, i_ACCUMCI=zero, i_SIGNEXTIN=zero,
        o_O=o)
    return o[:16].as_signed(), o[16:].as_signed()
