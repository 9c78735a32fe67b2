"""wino_gen.memory and wino_gen.plan: memory timings and per-layer costs computed by hand,
the planner's choices on whole networks (U weights memory-bound, spatial weights on chip
compute-bound), and properties over random small networks: no plan below its bounds or above a
scratchpad, a bigger scratchpad never slower, the closed-form search cost equal to the step list
the compiler gets, and a one-tile layer's compute equal to perf's exact cycles."""

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wino_gen import boards, layercost, memory, nets, perf, plan, schedule
from wino_gen import commands as cm
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError

F2 = AcceleratorConfig(tile=2, unroll=2, unroll_in=1, max_channels=8, max_width=8)
CONV = nets.Layer("c", "conv", (nets.INPUT,), (4, 8, 8), (4, 8, 8), 3, 1, 1, winograd=True)
ONE = "1,0"    # 1 byte per cycle, no latency: memory cycles equal bytes
#: on ONE: a LOAD/STORE's executor cycles around its bytes, an instruction's fetch (32 bytes),
#: CONV's parameter block (header, 5 tap arrays of 16, 4 biases: 104 words) and its LOAD
XFER = layercost.XFER_ISSUE + layercost.XFER_ANSWER
FETCH = 32
PARAMS = 4 * (20 + 5 * 16 + 4)
PARAM_LOAD = FETCH + XFER + PARAMS


def _eval(tiling, chip, **opts):
    return plan.evaluate(CONV, F2, "ulx3s-85f", 50.0, tiling, chip, plan.Options(**opts), memory_spec=ONE)


def _wbytes(lp):
    return sum(x.bytes for s in lp.steps for x in s.loads if x.tensor.endswith(".w"))


def _tile(K, r0, r1, cached, cfg=F2):
    """One COMPUTE of CONV's output rows [r0, r1) and K outputs: the unit's setup (parameter
    reads unless ``cached``), the core on the band the unit gives it (from a tile row early
    after the first band), the feeders' lag."""
    a_e, b, _ = cm.engine_band("winograd", H=8, kernel=3, stride=1, padding=1, r0=r0, r1=r1, tile=cfg.tile)
    assert a_e == (0 if r0 == 0 else r0 - cfg.tile)
    core = perf.core_cycles(cfg, "winograd", 4, K, b - a_e, 8, max_kernel=3)
    return cm.setup_cycles(cfg, "winograd", cached) + core + cm.FEED_LAG + cfg.tile - 1   # the writer's last beat


# -- memory ---------------------------------------------------------------------------------------

def test_sdram_page_burst_by_hand():
    """100 MHz: tRCD = tRP = 2, tRAS = 4 (37 ns), tRC = 6, CL 3, tDPL 2. A read page (512
    words): PRE, ACT, then READ; the next PRE may come CL - 1 cycles before the last word, so
    ACT..PRE = tRCD + 512 and the CAS latency is paid once per transfer: 2 + 514 + 3. Two pages
    back to back: 2 * 516 + 3. A write page: ACT..PRE = tRCD + 511 + tDPL. Refresh every
    floor(7812.5 ns * 0.1) = 781 cycles: tRP + tRFC (6) + tRCD, + tDPL - 1 on writes (a read's
    CAS latency hides behind its draining data, as at a page crossing)."""
    s = memory.IS42S16160G_7
    rd, wr = 1 - 10 / 781, 1 - 11 / 781
    assert s.transfer_cycles(1024, 1024, 100.0) == math.ceil(519 / rd)
    assert s.transfer_cycles(2048, 1024, 100.0) == s.transfer_cycles(2048, 2048, 100.0) == math.ceil(1035 / rd)
    assert s.transfer_cycles(1024, 1024, 100.0, write=True) == math.ceil((2 + 2 + 511 + 2) / wr)
    # 16-byte bursts: 8 words, ACT..PRE = 10 (> tRAS, > tRC - tRP): 12 cycles per burst
    assert s.transfer_cycles(16 * 100, 16, 100.0) == math.ceil((100 * 12 + 3) / rd)
    # a 2-word burst is held open for tRC - tRP = 4 (tRAS 4): 6 cycles
    assert s.transfer_cycles(4, 4, 100.0) == math.ceil((6 + 3) / rd)
    assert s.sustained(16, 100.0) < s.sustained(256, 100.0) < s.sustained(4096, 100.0) < 1
    with pytest.raises(UsageError, match="outside"):
        s.transfer_cycles(16, 16, 200.0)


def test_flash_and_generic_by_hand():
    assert memory.W25Q128JV.transfer_cycles(64, 64, 30.0) == 21 + 128
    assert memory.W25Q128JV.transfer_cycles(100, 64, 30.0) == 21 + 128 + 21 + 72
    assert memory.parse_memory("2,10").transfer_cycles(100, 50, 1.0) == 2 * 10 + 50


@pytest.mark.parametrize("text", ["", "2", "2,", "x,1", "0,1", "-1,2", "2,-1", "nan,1", "2,1,3", "inf,0"])
def test_bad_memory_string(text):
    with pytest.raises(UsageError, match="BYTES_PER_CYCLE,LATENCY"):
        memory.parse_memory(text)


def test_board_memory_from_board_fields(monkeypatch):
    """On-chip RAM comes from the board's own resources; a board without a memory declared
    has no memory model: one line."""
    ulx = boards.get_board("ulx3s-85f")
    um = memory.of_board(ulx)
    assert um.on_chip == memory.OnChip(ulx.bram, 2048)
    assert um.external is um.weight_store is memory.IS42S16160G_7
    ice = memory.of_board(boards.get_board("icebreaker"))
    assert (ice.external, ice.weight_store, ice.on_chip.spram_bytes) == (None, memory.W25Q128JV, 131072)
    bare = dataclasses.replace(ulx, name="bare", external_ram="", weight_store="")
    with pytest.raises(UsageError, match="^--board: bare has no memory model"):
        memory.of_board(bare)
    monkeypatch.setitem(boards.BOARDS, "bare", bare)
    with pytest.raises(UsageError, match="bare has no memory model"):
        plan.plan(nets.resnet20(), R20_CFG, "bare", 80.0)


def test_on_chip_budget():
    ecp5, ice = memory.board_memory("ulx3s-85f").on_chip, memory.board_memory("icebreaker").on_chip
    assert ecp5.free_bytes(0) == 208 * 2048
    assert ice.free_bytes(26) == 4 * 512 + 4 * 32768
    cfg = AcceleratorConfig(tile=4, unroll=4, max_channels=64, max_width=32)
    assert memory.engine_blocks(cfg, "ulx3s-85f") == perf.estimate_resources(cfg, "ulx3s-85f")["bram"]


# -- one layer, by hand ---------------------------------------------------------------------------

def test_weights_fit():
    """Weights resident, output kept on chip: only the input crosses, in one burst, before the
    one tile, after the layer's parameter LOAD; the tile's compute is its COMPUTE's exact count;
    two instructions (the LOAD, the COMPUTE) are fetched."""
    lp = _eval(plan.Tiling("rows", 8, 4, 4, "resident"), {nets.INPUT: False, "c": True})
    c = lp.cost
    assert (c.read, c.written, c.memory) == (256 + PARAMS, 0, 256 + XFER + 2 * FETCH + PARAM_LOAD)
    assert c.compute == _tile(4, 0, 8, False)
    assert c.total == PARAM_LOAD + 256 + XFER + c.compute
    assert (c.need_act, c.need_w) == (256, 0)
    assert lp.placement == {nets.INPUT: "external", "c": "chip", "c.w": "resident"}


def test_input_fits():
    """Input and output on chip, weights streamed block by block (weights order): each block
    of 2 x 4 x 16 U bytes crosses once; the first is exposed, the second overlaps."""
    lp = _eval(plan.Tiling("weights", 8, 2, 4, "block"), {nets.INPUT: True, "c": True})
    c = lp.cost
    assert (c.read, c.written) == (256 + PARAMS, 0)
    assert c.compute == _tile(2, 0, 8, False) + _tile(2, 0, 8, True)
    assert c.total == PARAM_LOAD + 128 + XFER + max(c.compute, 128 + XFER + 4 * FETCH)
    assert (c.need_act, c.need_w) == (0, 2 * 128)


def test_neither_fits():
    """Everything off chip, rows order, bands of 4 rows, blocks of 2 outputs: each band reads
    6 input rows of 4 channels (halo), each tile a 128-byte weight block, each (band, block)
    writes 4 rows x 2 channels."""
    lp = _eval(plan.Tiling("rows", 4, 2, 4, "block"), {nets.INPUT: False, "c": False})
    c = lp.cost
    assert (c.read, c.written) == (2 * 6 * 8 * 4 + 4 * 128 + PARAMS, 4 * 4 * 8 * 2)
    steps = c.read - PARAMS + c.written + 10 * XFER + 14 * FETCH     # 10 transfers, 4 COMPUTEs
    assert c.memory == steps + PARAM_LOAD
    assert c.compute == _tile(2, 0, 4, False) + _tile(2, 0, 4, True) + 2 * _tile(2, 4, 8, True)
    first, last = 6 * 8 * 4 + 128 + 2 * XFER, 4 * 8 * 2 + XFER
    assert c.total == PARAM_LOAD + first + max(c.compute, steps - first - last) + last
    assert (c.need_act, c.need_w) == (2 * 6 * 8 * 4 + 2 * 2 * 4 * 8, 2 * 128)
    assert len(lp.steps) == 4 and [s.rows for s in lp.steps] == [(0, 4), (0, 4), (4, 8), (4, 8)]


def test_batch_amortizes_weights():
    one = _eval(plan.Tiling("weights", 8, 2, 4, "block"), {nets.INPUT: False, "c": True})
    four = _eval(plan.Tiling("weights", 8, 2, 4, "block"), {nets.INPUT: False, "c": True}, batch=4)
    assert _wbytes(one) == _wbytes(four) == 256
    assert four.cost.read - _wbytes(four) - PARAMS == 4 * (one.cost.read - _wbytes(one) - PARAMS)
    reads = cm.setup_cycles(F2, "winograd", False) - cm.setup_cycles(F2, "winograd", True)
    assert four.cost.compute == 4 * one.cost.compute - 3 * reads     # the parameters are read once


def test_u_versus_spatial():
    """Spatial weights are 9/16 of F2's U bytes; a transform at one word per cycle (the rate
    a U config is planned with) never stalls the PE array; a spatial build with one kernel per
    cycle is planned at perf's exact cycles for it, weight stalls included."""
    t, chip = plan.Tiling("rows", 4, 2, 4, "block"), {nets.INPUT: False, "c": False}
    u, s = _eval(t, chip), _eval(t, chip, weights="spatial")
    assert _wbytes(u) == 512 and _wbytes(s) == 288
    # the same steps; a spatial block's first COMPUTE also reads the U requant's words
    extra = cm.param_words(layercost.spatial_view(F2), "winograd") - cm.param_words(F2, "winograd")
    assert extra > 0 and s.cost.compute - u.cost.compute == extra
    one_lane = dataclasses.replace(F2, weights="spatial", weight_lanes=1, unroll=4, unroll_in=4)
    slow = plan.evaluate(CONV, one_lane, "ulx3s-85f", 50.0, t, chip, plan.Options(weights="spatial"),
                         memory_spec=ONE)
    fast = dataclasses.replace(one_lane, weight_lanes=16)
    tiles = [(0, 4, False), (0, 4, True), (4, 8, True), (4, 8, True)]
    assert slow.cost.compute == sum(_tile(2, *t, cfg=one_lane) for t in tiles)
    assert slow.cost.compute > sum(_tile(2, *t, cfg=fast) for t in tiles)


# -- whole networks -------------------------------------------------------------------------------

R20_CFG = AcceleratorConfig(tile=4, unroll=4, max_channels=64, max_width=32)


@pytest.fixture(scope="module")
def r20():
    net = nets.resnet20()
    run = {w: plan.plan(net, R20_CFG, "ulx3s-85f", 81.6, plan.Options(weights=w)) for w in plan.WEIGHT_FORMATS}
    run["direct"] = plan.plan(net, AcceleratorConfig(tile=4, unroll=4, max_channels=64, max_width=32, algo="direct"),
                              "ulx3s-85f", 81.6)
    return run


def test_resnet20_finds_both_regimes(r20):
    """The issue's expectation, found by the planner itself: U weights from SDRAM make the
    144-multiplier F4 engine memory-bound and slower than direct; spatial weights held on chip
    make it compute-bound and faster than direct."""
    u, s, d = r20["winograd"], r20["spatial"], r20["direct"]
    assert u.bytes_per_image > 0.5e6 and u.cycles > d.cycles
    assert sum(lp.cost.total for lp in u.layers if lp.bound == "memory") > u.cycles / 2
    assert s.cycles < d.cycles and s.bytes_per_image < u.bytes_per_image / 5
    assert sum(lp.cost.total for lp in s.layers if lp.bound == "compute") > s.cycles / 2


def test_icebreaker_keeps_activations_in_spram():
    """No external RAM: every activation stays on chip, weights come from the QSPI flash (or
    stay resident), and only weights cross."""
    cfg = AcceleratorConfig(tile=2, unroll=1, max_channels=16, max_width=32, bias_bits=16)
    p = plan.plan(nets.resnet20(), cfg, "icebreaker", 32.7, plan.Options(weights="spatial"))
    places = {v for lp in p.layers for k, v in lp.placement.items() if not k.endswith(".w")}
    assert places == {"chip"}
    assert {lp.placement[lp.layer.name + ".w"] for lp in p.layers if lp.layer.has_weights} <= {"flash", "resident"}
    assert all(x.tensor.endswith(".w") for lp in p.layers for s in lp.steps for x in s.loads + s.stores)
    assert p.cycles >= p.bound_cycles


def test_resnet_shapes():
    r18, r20 = nets.resnet18(), nets.resnet20()
    conv3 = [la for la in r18 if la.op == "conv" and la.winograd]
    assert sum(la.in_shape[0] * la.out_shape[0] * 9 for la in conv3) == 9_437_184     # the issue's 9.44 MB
    assert len([la for la in r20 if la.op == "conv"]) == 21 and r20[-1].out_shape == (10, 1, 1)
    w20 = sum(la.in_shape[0] * la.out_shape[0] * la.kernel ** 2 for la in r20 if la.op == "conv")
    assert w20 == 269_968
    assert [la.out_shape for la in r18 if la.name in ("maxpool", "layer4.1.add")] == [(64, 56, 56), (512, 7, 7)]


def test_model_dir_layers():
    layers = nets.network("examples/tiny")
    assert [la.op for la in layers] == ["conv", "conv", "add", "conv", "conv", "avgpool", "linear"]
    assert layers[3].stride == 2 and not layers[3].winograd and layers[0].winograd
    cfg = AcceleratorConfig(tile=4, unroll=2, max_channels=16, max_width=16)
    p = plan.plan(layers, cfg, "ulx3s-85f", 80.0)
    assert p.cycles >= p.bound_cycles and len(p.layers) == 7


#: a pool that reads the network input from external memory (tests/test_system_random.py's
#: generator, seed 4): two row bands are cheaper, their loads overlapping the pooling, but the
#: compute unit refuses a pooling band
POOL_IN = nets.Layer("pool", "maxpool", (nets.INPUT,), (5, 7, 7), (5, 4, 4), 2, 2, 1)
POOL_OPTS = dict(weight_bytes=4096, port_bytes=1)


def test_pool_is_planned_as_one_band():
    p = plan.plan((POOL_IN,), F2, "ulx3s-85f", 80.0, plan.Options(**POOL_OPTS), "2,4")
    (lp,) = p.layers
    assert lp.placement["input"] == "external" and lp.tiling.band == 4 and lp.refused is None
    assert [s.rows for s in lp.steps] == [(0, 4)]
    banded = plan.evaluate(POOL_IN, F2, "ulx3s-85f", 80.0, dataclasses.replace(lp.tiling, band=2),
                           {"input": False, "pool": True}, plan.Options(**POOL_OPTS), "2,4")
    assert banded.cost.total < lp.cost.total and banded.refused == "a pooling band"


def test_pool_too_large_for_one_band_is_banded_and_named():
    """Where no single band fits, the plan still runs in the interpreter, and names the band
    the unit refuses."""
    whole = plan.plan((POOL_IN,), F2, "ulx3s-85f", 80.0, plan.Options(**POOL_OPTS), "2,4").layers[0].cost.need_act
    p = plan.plan((POOL_IN,), F2, "ulx3s-85f", 80.0, plan.Options(act_bytes=whole - 1, **POOL_OPTS), "2,4")
    (lp,) = p.layers
    assert lp.tiling.band < 4 and lp.refused == "a pooling band" and lp.cost.need_act < whole


def test_refused_band_of_a_convolution_is_named():
    """A direct 3x3 with padding 2: a band from output row 1 starts on padding, which the unit
    refuses; on 250 bytes bands of 2 rows fit, on 200 only bands of one row do. On a build
    narrower than its 10 output columns the unit refuses the layer whatever the band."""
    conv = nets.Layer("c", "conv", (nets.INPUT,), (2, 8, 8), (4, 10, 10), 3, 1, 2)
    got = {}
    for act in (250, 200):
        lp = plan.plan((conv,), dataclasses.replace(F2, max_width=10), "ulx3s-85f", 80.0,
                       plan.Options(act_bytes=act, weight_bytes=4096), "1,0").layers[0]
        got[act] = (lp.tiling.band, lp.refused)
    assert got == {250: (2, None), 200: (1, "a band whose first input row is padding")}
    lp = plan.plan((conv,), F2, "ulx3s-85f", 80.0, plan.Options(act_bytes=250, weight_bytes=4096), "1,0").layers[0]
    assert lp.refused == "10 output rows exceed the build's max_width 8"


# -- properties -----------------------------------------------------------------------------------

@st.composite
def small_net(draw):
    """A chain of 1-3 convolutions (3x3 stride 1, sometimes 1x1 or stride 2), maybe a residual add."""
    b = nets._Builder((draw(st.integers(1, 6)), h := draw(st.integers(4, 10)), h))
    x = nets.INPUT
    for i in range(draw(st.integers(1, 3))):
        k, s = draw(st.sampled_from([(3, 1), (3, 1), (1, 1), (3, 2)]))
        x = b.conv(f"c{i}", x, draw(st.integers(1, 8)), k, s, k // 2)
    if draw(st.booleans()) and b.shape[x] == b.shape[b.layers[0].name]:
        b.add("sum", x, b.layers[0].name)
    return tuple(b.layers)


CFGS = st.builds(AcceleratorConfig, tile=st.sampled_from([2, 4]), unroll=st.integers(1, 3),
                 unroll_in=st.sampled_from([1, 2]), max_channels=st.just(4), max_width=st.just(16))
POOL = st.integers(0, 6000)
MEM = st.sampled_from(["1,0", "2,5", "0.5,20", None])


def _plan(net, cfg, a, w, mem, **opts):
    try:
        return plan.plan(net, cfg, "ulx3s-85f", 60.0, plan.Options(act_bytes=a, weight_bytes=w, **opts), mem)
    except UsageError:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_net(), CFGS, POOL, POOL, MEM, st.sampled_from(plan.WEIGHT_FORMATS), st.integers(1, 3))
def test_bounds_and_scratchpads(net, cfg, a, w, mem, weights, batch):
    p = _plan(net, cfg, a, w, mem, weights=weights, batch=batch)
    assume(p is not None)
    assert p.cycles >= p.bound_cycles
    assert p.bytes_per_image * batch >= p.bound_bytes
    for lp in p.layers:
        assert lp.act_used <= a and lp.w_used <= w
        assert lp.cost.total >= max(lp.bound_compute, lp.bound_memory)
        assert lp.cost.read + lp.cost.written >= lp.bound_bytes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_net(), CFGS, POOL, POOL, st.integers(0, 3000), st.integers(0, 3000), MEM)
def test_bigger_scratchpad_never_slower(net, cfg, a, w, da, dw, mem):
    small = _plan(net, cfg, a, w, mem)
    assume(small is not None)
    big = _plan(net, cfg, a + da, w + dw, mem)
    assert big is not None and big.cycles <= small.cycles


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_net(), CFGS, POOL, POOL, MEM, st.integers(2, 8))
def test_batch_never_slower_per_image(net, cfg, a, w, mem, batch):
    """A batch may always run one image after another, so it is never slower per image."""
    one = _plan(net, cfg, a, w, mem)
    assume(one is not None)
    many = _plan(net, cfg, a, w, mem, batch=batch)
    assert many is not None and many.cycles_per_image <= one.cycles_per_image
    assert many.repeat in (1, batch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_net(), CFGS, st.data(), MEM, st.sampled_from(plan.WEIGHT_FORMATS), st.integers(1, 2))
def test_search_cost_equals_steps(net, cfg, data, mem, weights, batch):
    """The closed-form cost the search ranks tilings by is the cost of the steps it emits."""
    opts = plan.Options(weights=weights, batch=batch)
    bm = memory.board_memory("ulx3s-85f", mem)
    lay = data.draw(st.sampled_from(net))
    ctx = layercost.make_ctx(lay, cfg, bm, 60.0, opts)
    chip = {t: data.draw(st.booleans()) for t in (*lay.inputs, lay.name)}
    t = data.draw(st.sampled_from(list(layercost.tilings(ctx, data.draw(st.booleans())))))
    steps = tuple(layercost.layer_steps(ctx, t, chip))
    assert layercost.fast_cost(ctx, t, chip) == layercost.cost_of(steps, layercost.needs(ctx, t, chip),
                                                                  layercost.overheads(ctx), t.double)


@settings(max_examples=60, deadline=None)
@given(CFGS, st.integers(1, 4), st.integers(1, 9), st.integers(3, 12), st.sampled_from([(3, 1, 1), (3, 1, 0), (1, 1, 0),
                                                                                     (3, 2, 1), (7, 2, 3)]))
def test_one_tile_compute_is_perf(cfg, C, K, H, ksp):
    """A layer planned as one tile costs exactly its one COMPUTE on the core: the unit's setup,
    perf's core cycles (Winograd, or a direct k x k / stride s on the same PE array), the
    feeders' lag."""
    k, s, p = ksp
    cfg = dataclasses.replace(cfg, max_channels=24)     # room for a 7x7 kernel of 4 channels
    assume((H + 2 * p - k) // s + 1 >= 1)
    Ho = (H + 2 * p - k) // s + 1
    lay = nets.Layer("c", "conv", (nets.INPUT,), (C, H, H), (K, Ho, Ho), k, s, p, winograd=(k, s) == (3, 1))
    lp = plan.evaluate(lay, cfg, "ulx3s-85f", 60.0, plan.Tiling("rows", Ho, K, C, "resident"),
                       {nets.INPUT: True, "c": True})
    mode = "winograd" if lay.winograd else "direct"
    core = perf.core_cycles(cfg, mode, C, K, H, H, kernel=k, stride=s, padding=p, max_kernel=max(3, k))
    writes = schedule.writer_beat_cycles(cfg, mode)       # the writer's last beat
    assert lp.cost.compute == cm.setup_cycles(cfg, mode, False) + core + cm.FEED_LAG + writes - 1
    over = layercost.overheads(layercost.make_ctx(lay, cfg, memory.board_memory("ulx3s-85f"), 60.0, plan.Options()))
    assert lp.cost.total == lp.cost.compute + over.param_cycles     # the one exposed transfer


# -- bad input ------------------------------------------------------------------------------------

def test_bad_input():
    with pytest.raises(UsageError, match="--batch"):
        plan.Options(batch=0)
    with pytest.raises(UsageError, match="--weights"):
        plan.Options(weights="U")
    with pytest.raises(UsageError, match="unknown board 'arty'"):
        plan.plan(nets.resnet20(), R20_CFG, "arty", 80.0)
    with pytest.raises(UsageError, match=r"^c: no tiling fits: needs at least \d+ bytes of activation scratchpad"):
        plan.plan((CONV,), F2, "ulx3s-85f", 50.0, plan.Options(act_bytes=10, weight_bytes=10_000))
    with pytest.raises(UsageError, match=r"^c: no tiling fits: needs at least \d+ bytes of weight scratchpad"):
        plan.plan((CONV,), F2, "ulx3s-85f", 50.0, plan.Options(act_bytes=10_000, weight_bytes=10))
    wide = AcceleratorConfig(tile=4, unroll=4, max_channels=64, max_width=16)
    with pytest.raises(UsageError, match="conv1: image width 28 exceeds the line buffer's max_width 16"):
        plan.plan(nets.resnet20(), wide, "ulx3s-85f", 80.0)
    r18 = AcceleratorConfig(tile=4, unroll=4, max_channels=128, max_width=64)
    with pytest.raises(UsageError, match="weights: .* MiB do not fit the 32.0 MiB IS42S16160G-7"):
        plan.plan(nets.resnet18(), r18, "ulx3s-85f", 80.0)
    ice = AcceleratorConfig(tile=2, unroll=1, max_channels=16, max_width=16, bias_bits=16, algo="direct")
    with pytest.raises(UsageError, match="has no external RAM"):
        plan.plan(nets.resnet18(), ice, "icebreaker", 30.0, plan.Options(weights="spatial"))


def test_batch_activations_must_fit_the_sdram(monkeypatch):
    """A batch run layer by layer keeps B images' live activations in SDRAM beside the weights:
    when they do not fit, the batch runs image by image."""
    net, opts = nets.resnet20(), plan.Options(weights="spatial")
    w = sum(layercost.make_ctx(la, R20_CFG, memory.board_memory("ulx3s-85f"), 81.6, opts).wbytes for la in net)
    live = max(plan._live(net, dict.fromkeys(plan._sizes(net), True), 1))
    small = dataclasses.replace(memory.IS42S16160G_7, capacity=w + live + live // 2)
    monkeypatch.setitem(memory.PARTS, "IS42S16160G-7", small)
    assert plan.plan(net, R20_CFG, "ulx3s-85f", 81.6, opts).repeat == 1
    assert plan.plan(net, R20_CFG, "ulx3s-85f", 81.6, dataclasses.replace(opts, batch=2)).repeat == 2
    monkeypatch.setitem(memory.PARTS, "IS42S16160G-7", dataclasses.replace(small, capacity=w + live - 1))
    with pytest.raises(UsageError, match=r"weights and activations of 1 image\(s\)"):
        plan.plan(net, R20_CFG, "ulx3s-85f", 81.6, opts)
