# amaranth: UnusedElaboratable=no
"""A layer's first weight LOAD runs under the previous layer's compute (``plan.hoists``): the
compiler emits it ahead of the layer's parameter LOAD, which waits for the previous layer's
last COMPUTE (one parameter buffer) and would hold it back in the in-order load queue. Checked
on compiled programs and on the system in pysim (no stalls), whose trace the plan's program
model must reproduce."""

from pathlib import Path

import numpy as np
import pytest

from sim import system
from sim.__main__ import weight_owner
from sim.memory import timing
from wino_gen import format as fmt
from wino_gen import isa, network, plan
from wino_gen.compile import compiler
from wino_gen.example import _Builder
from wino_gen.format import INPUT

PARAM = isa.BUFFERS.index("param")
WGT = isa.BUFFERS.index("wgt")
#: the whole run against the program model (tests/test_plan_system.py's RUN_TOLERANCE)
RUN_TOLERANCE = 0.02


def _model(tmp_path: Path):
    """Two Winograd layers with a residual add between them, 8 channels: weights that a small
    weight scratchpad cannot hold resident, so every layer loads its own."""
    def build(b):
        b.winograd("conv1", INPUT, 8)
        b.add("res", "conv1", INPUT)
        b.winograd("conv2", "res", 8)
        b.winograd("conv3", "conv2", 8)
    b = _Builder(2, "layer", "pow2", np.random.default_rng(3), 1, (8, 6, 6), 1 / 32)
    build(b)
    return fmt.write_model(tmp_path / "m", b.manifest, b.arrays)


def _compile(model, cfg, weight_bytes: int, W: int = 2):
    return compiler.compile_model(model, cfg, clock_mhz=100.0, memory_spec=None, port_bytes=W,
                                  options=plan.Options(port_bytes=W, weight_bytes=weight_bytes))


def _layer_loads(img):
    """Per layer index: (the index of its parameter LOAD, the indices of its weight LOADs,
    :func:`weight_owner`'s)."""
    params, weights, layer = {}, {}, 0
    for i, ins in enumerate(img.program):
        if ins.OP == "LOAD" and ins.buffer == PARAM:
            params[layer] = i
            layer += 1
        elif ins.OP == "LOAD" and ins.buffer == WGT:
            weights.setdefault(weight_owner(img, i), []).append(i)
    return params, weights


def _resident(lp) -> bool:
    return lp.placement.get(lp.layer.name + ".w") == "resident"


def _hoists(c):
    """``plan.hoists`` as the planner prices it (the tiling's buffers, the room above the resident weights)."""
    held = sum(lp.layer.in_shape[0] * lp.layer.out_shape[0] * 16 for lp in c.plan.layers if _resident(lp))
    return plan.hoists(c.plan.layers, [plan.weight_buffer(lp) for lp in c.plan.layers], c.plan.weight_bytes - held)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = _model(tmp_path_factory.mktemp("overlap"))
    return model, network.config_for(model, unroll=2)


@pytest.mark.parametrize("weight_bytes", [1280, 2048])
def test_weight_load_goes_before_the_parameter_load(tiny, weight_bytes):
    """Every hoist the plan names is in the program: the layer's first weight LOAD before the
    parameter LOAD of the layer it goes under; the rest after their own parameter LOAD; and
    the two layers' weight buffers apart where a hoisted LOAD runs beside the other's reads."""
    model, cfg = tiny
    c = _compile(model, cfg, weight_bytes)
    ups = _hoists(c)
    assert ups, "no layer hoisted: the test model no longer exercises the overlap"
    params, weights = _layer_loads(c.image)
    for k in range(len(c.plan.layers)):
        loads = weights.get(k, [])
        if k in ups:
            j = ups[k][0]
            assert loads and loads[0] < params[j] and params[j - 1] < loads[0], (k, loads, params)
        elif loads and not _resident(c.plan.layers[k]):
            assert loads[0] > params[k], (k, loads, params)


def test_system_runs_the_hoisted_loads_early(tiny):
    """On the system (pysim, the ULX3S SDRAM's timing): bit-exact (status 0, every COMPUTE the
    plan's price), a hoisted weight LOAD starts before the last COMPUTE of the layer it goes
    under retires, the run is what the program model says, and so is every layer's window."""
    model, cfg = tiny
    c = _compile(model, cfg, 2048)
    img = c.image
    x = model.layers[0].arrays["x"][:img.batch]
    run = system.run_image(img, cfg, x, word_bytes=2, memory="sdram-ulx3s", max_pool=system.max_pool_for(model))
    assert run.status[0] == 0, run.status
    costs = plan.compute_costs(c.plan, img.program)
    assert {i: cyc for i, (cyc, _) in run.computes.items()} == costs
    total, times = plan.program_cycles(img.program, costs.__getitem__, timing("sdram-ulx3s"),
                                       plan.SystemBuild(port_bytes=2), start_addr=img.program_offset)
    measured = run.status[2]
    assert abs(measured - total) <= RUN_TOLERANCE * measured, (measured, total)
    _, weights = _layer_loads(img)
    ups = _hoists(c)
    assert ups
    last = {}
    for i, ins in enumerate(img.program):
        if ins.OP == "COMPUTE":
            last[ins.layer] = i
    for k, (_, m, _) in ups.items():
        first = weights[k][0]
        assert run.times[first][0] < run.times[last[m]][1], (k, m, run.times[first], run.times[last[m]])
        assert times[first][0] < times[last[m]][1]


def test_a_partial_rewrite_forgets_only_its_bytes():
    """A write over part of a range leaves the rest with its old writer and readers: a later
    write to the rest waits for those, not for a reader of the rewritten part only (which
    would hold a hoisted weight LOAD behind the COMPUTE of the layer it runs under)."""
    d = compiler._Deps()
    d.record(0, "load", (), [("wgt", 0, 100)])
    d.record(1, "compute", [("wgt", 0, 100)], ())
    d.record(2, "load", (), [("wgt", 0, 50)])
    d.record(3, "compute", [("wgt", 0, 50)], ())
    assert d.hazards((), [("wgt", 50, 100)]) == {0, 1}
    assert d.hazards((), [("wgt", 0, 50)]) == {2, 3}
    assert d.hazards([("wgt", 40, 60)], ()) == {0, 2}
