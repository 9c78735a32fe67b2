# amaranth: UnusedElaboratable=no
"""The self-test top in Amaranth simulation: on the layer the host side encodes it passes, it
fails when one expected word is corrupted or an output never comes; its UART prints the status
line."""

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from rtl import selftest
from wino_gen import boards, clocks, golden
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import WinogradLayer, selftest_data, selftest_layer


def _layer(tile=2, unroll=1):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, max_width=16, max_channels=8)
    return selftest_layer(cfg, channels=3, size=4)


def _selftest(layer, **kw):
    data = selftest_data(layer)
    return selftest.SelfTest(layer["cfg"], data, **kw), data


def test_selftest_layer_is_golden_and_not_trivial():
    lay = _layer(tile=4, unroll=2)
    y = golden.winograd_conv3x3(lay["x"], lay["U"], lay["bias"], tile=4, v=lay["v"], m=lay["m"],
                                y=lay["y_req"], cfg=lay["cfg"])
    assert np.array_equal(y, lay["y"])
    # calibrated: outputs use the range, not all saturated or all zero
    assert len(np.unique(lay["y"])) > 10
    assert np.mean(np.abs(lay["y"]) == 127) < 0.5


def _run(st, max_cycles=20000, uart=None):
    sim = Simulator(st if uart is None else uart)
    sim.add_clock(1e-6)
    result = {}

    async def tb(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
            if ctx.get(st.done):
                break
        result.update(done=ctx.get(st.done), passed=ctx.get(st.passed), failed=ctx.get(st.failed),
                      mismatches=ctx.get(st.mismatches), outputs=ctx.get(st.outputs),
                      cycles=ctx.get(st.cycles), timed_out=ctx.get(st.timed_out))
    sim.add_testbench(tb)
    sim.run()
    return result


@pytest.mark.parametrize("tile,unroll", [(2, 1), (4, 2), (6, 1)])
def test_selftest_passes(tile, unroll):
    st, data = _selftest(_layer(tile, unroll))
    r = _run(st)
    assert r["done"] and r["passed"] and not r["failed"], r
    assert r["mismatches"] == 0 and r["outputs"] == len(data.expected)


@pytest.mark.parametrize("where", [0, -1])
def test_selftest_fails_on_corrupted_expected(where):
    lay = _layer(2, 1)
    st, _ = _selftest(lay, corrupt=where % len(selftest_data(lay).expected))
    r = _run(st)
    assert r["done"] and r["failed"] and not r["passed"], r
    assert r["mismatches"] == 1


def test_expected_is_the_golden_output():
    """The expected words, read back in the host's output order, are exactly golden's image."""
    lay = _layer(4, 2)
    data = selftest_data(lay)
    H, W = lay["x"].shape[2:]
    spec = WinogradLayer(lay["cfg"], lay["U"], lay["bias"], v=lay["v"], m=lay["m"], y=lay["y_req"])
    np.testing.assert_array_equal(spec.collect(data.expected, H, W), lay["y"][0])


def test_selftest_times_out_when_an_output_never_comes():
    lay = _layer(2, 1)
    data = selftest_data(lay)
    more = dataclasses.replace(data, expected=data.expected + (0,))   # one more than the engine makes
    r = _run(selftest.SelfTest(lay["cfg"], more, timeout=2000))
    assert r["done"] and r["failed"] and r["timed_out"]


def test_selftest_refuses_what_it_cannot_check():
    lay = _layer(2, 1)
    data = selftest_data(lay)
    for kw in ({"corrupt": len(data.expected)}, {"corrupt": -1}, {"timeout": 0}):
        with pytest.raises(ValueError):
            selftest.SelfTest(lay["cfg"], data, **kw)
    with pytest.raises(ValueError):
        selftest.SelfTest(lay["cfg"], dataclasses.replace(data, expected=()))
    with pytest.raises(ValueError, match="Winograd"):
        selftest_data({**lay, "cfg": dataclasses.replace(lay["cfg"], algo="direct")})


def test_status_line_over_uart():
    st, data = _selftest(_layer(2, 1))
    div = 4
    line = selftest.StatusLine(st, clock_hz=div * 115200, baud=115200, period=100000)
    top = Module()
    top.submodules += [st, line]
    sim = Simulator(top)
    sim.add_clock(1e-6)
    got = []

    async def tb(ctx):
        # sample the line in the middle of each bit; decode 8N1
        prev = 1
        cyc = 0
        while len(got) < 200 and cyc < 60000:
            await ctx.tick()
            cyc += 1
            tx = ctx.get(line.tx)
            if prev == 1 and tx == 0:       # start bit edge
                await ctx.tick().repeat(div // 2)
                assert ctx.get(line.tx) == 0
                byte = 0
                for b in range(8):
                    await ctx.tick().repeat(div)
                    byte |= ctx.get(line.tx) << b
                await ctx.tick().repeat(div)
                assert ctx.get(line.tx) == 1     # stop bit
                got.append(byte)
                if byte == ord("\n"):
                    break
                cyc += 10 * div
            prev = ctx.get(line.tx)
        got.append(("final", ctx.get(st.mismatches), ctx.get(st.outputs), ctx.get(st.cycles)))
    sim.add_testbench(tb)
    sim.run()
    final = got.pop()
    text = bytes(got).decode()
    assert text == selftest.status_text(True, 0, len(data.expected), final[3]), text
    assert text.startswith("wino selftest PASS mism=0000")


def test_board_top_counts_cycles_of_the_clock_it_runs_at():
    """The UART divisor and the one-second period come from the clock the design runs at: the
    oscillator's, or the PLL's exact output (here 25 MHz / 7 * 9 = 32.14 MHz)."""
    lay = _layer(2, 1)
    data = selftest_data(lay)
    ulx = boards.get_board("ulx3s-85f")
    osc = selftest.BoardTop(lay["cfg"], data, ulx)
    assert (osc.divisor, osc.period) == (217, 25_000_000)
    clock = clocks.plan_clock("ecp5", 25, 33.3)
    pll = selftest.BoardTop(lay["cfg"], data, ulx, clock=clock)
    assert clock.mhz == Fraction(225, 7)
    assert (pll.divisor, pll.period) == (round(225e6 / 7 / 115200), round(225e6 / 7))
    with pytest.raises(ValueError, match="baud 2000000 at 3125000.* cycles per bit"):
        selftest.BoardTop(lay["cfg"], data, ulx, baud=2_000_000, clock=clocks.plan_clock("ecp5", 25, 3.2))
