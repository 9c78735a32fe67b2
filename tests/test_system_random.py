# amaranth: UnusedElaboratable=no
"""Random small networks end to end: a random op sequence (tests/netgen.py: Winograd 3x3, direct
1x1 and 3x3 at stride 1 or 2, an add of two branches, max and average pools, a global average
pool, a linear classifier) on random small shapes, channel counts that are rarely multiples of
the unroll, compiled for a memory port of 8, 16 or 32 bits on scratchpads small enough that the
plan cuts layers into row bands; the image interpreted (equal to ``network.run_model``, i.e.
``wino_gen check``) and run on the whole system in pysim (``sim.system.run_image``) behind a
``B,L`` memory with random latency and port stalls: every stored tensor equal, 0 mismatches.

The compute unit answers "unsupported" to partial sums (a plan that splits input channels), to
a pooling band and to a band whose first input row is padding (``commands.why_unsupported``):
the planner takes such a band only where nothing the unit runs fits (``LayerPlan.refused``),
the generator keeps direct paddings at 0 or 1, and a scratchpad whose plan still needs one (a
pool too large for one band) is skipped for the next larger one.
"""

import netgen
import numpy as np
import pytest

from sim import system
from wino_gen import commands as cm
from wino_gen import format as fmt
from wino_gen import isa, network, plan
from wino_gen.compile import compiler, interp
from wino_gen.errors import UsageError

STALL = 0.2
OPS = ("wino", "wino", "direct", "add", "maxpool", "avgpool", "gap", "linear")
#: activation scratchpads tried, smallest first (the first whose plan the unit runs is taken)
ACT_POOLS = (96, 128, 160, 200, 256, 320, 400, 512, 800, 1600, None)
WEIGHT_BYTES = 4096
#: networks drawn from one seed before the test gives up on finding one the unit runs
def _unsupported(c) -> list[str]:
    """Why the compute unit would refuse COMPUTEs of the compiled program (empty: it runs all)."""
    out = []
    for ins in c.image.program:
        if ins.OP != "COMPUTE":
            continue
        lay = c.plan.layers[ins.layer].layer
        why = cm.why_unsupported(isa.MODES[ins.mode], accumulate=ins.accumulate, finish=ins.finish, r0=ins.r0,
                                 r1=ins.r1, c0=ins.c0, c1=ins.c1, C=lay.in_shape[0], Ho=lay.out_shape[1],
                                 stride=lay.stride, padding=lay.padding)
        if why:
            out.append(why)
    return out


def _banded(c) -> bool:
    return any(ins.r1 - ins.r0 < c.plan.layers[ins.layer].layer.out_shape[1] for ins in c.image.program
               if ins.OP == "COMPUTE")


def _network(path, pick):
    """A random network (tests/netgen.py) and a config for it: unroll 1..4, unroll_in 1..2, room
    for every layer's width and channels (a classifier's inputs among them)."""
    man, arrays = netgen.random_network(pick, OPS, tiles=(2, 4), grans=("layer",), modes=("pow2",), max_ops=3,
                                        max_k=5, max_pad=1, channels=(1, 5), size=(3, 7), samples=1)
    model = fmt.write_model(path, man, arrays)
    unroll, unroll_in = pick.int(1, 4), pick.int(1, 2)
    cfg = network.config_for(model, unroll=unroll, unroll_in=unroll_in)
    # config_for sizes the buffers for the convolutions: the unit refuses larger adds and pools
    dims = [d for la in model.layers for d in (*la.in_shape[1:], *la.out_shape[1:])]
    chans = [int(np.prod(la.in_shape)) if la.op == "linear" else max(la.in_shape[0], la.out_shape[0])
             for la in model.layers]
    return model, network.config_for(model, unroll=unroll, unroll_in=unroll_in,
                                     max_width=max(cfg.max_width, *dims),
                                     max_channels=-(-max(cfg.max_channels, *chans) // unroll_in) * unroll_in)


def _compile(model, cfg, port: int):
    """The image on the smallest activation scratchpad of :data:`ACT_POOLS` whose plan the unit
    runs whole (no partial sums, no pooling band), or why there is none."""
    why = "every plan has partial sums or a pooling band"
    for act in ACT_POOLS:
        try:
            c = compiler.compile_model(model, cfg, options=plan.Options(act_bytes=act, weight_bytes=WEIGHT_BYTES),
                                       memory_spec="2,4", trace=True, port_bytes=port)
        except UsageError as e:         # a scratchpad too small for the planner
            assert "outside its regions" not in str(e)
            why = str(e)
            continue
        if not _unsupported(c):
            return c
    return why


def _case(tmp_path, seed: int, port: int):
    """The network drawn from ``seed``, its config and its compiled image."""
    model, cfg = _network(tmp_path / f"m{seed}", netgen.Seeded(seed))
    c = _compile(model, cfg, port)
    assert not isinstance(c, str), f"seed {seed}: {[la.op for la in model.layers]}: {c}"
    return model, cfg, c


def _run(tmp_path, seed: int, port: int, memory: str):
    model, cfg, c = _case(tmp_path, seed, port)
    img = c.image
    x = model.layers[0].arrays["x"][:img.batch]
    want = interp.run(img, cfg, x, schedule=seed)
    ref = network.run_model(model, x)
    for name, v in want.items():
        np.testing.assert_array_equal(v.reshape(ref[name].shape), ref[name], err_msg=f"interpreter: {name}")
    r = system.run_image(img, cfg, x, word_bytes=port, memory=memory, stall=STALL, seed=seed,
                         max_pool=system.max_pool_for(model), limit=2_000_000)
    end = next(i for i, ins in enumerate(img.program) if ins.OP == "END")
    assert r.status[:2] == (0, end), system.status_line(img, r.status)
    assert set(r.got) == set(want)
    bad = system.first_mismatch(c, want, r.got)
    assert bad is None, f"{bad[0]}: {bad[1]} mismatches, first at {bad[2]}: got {bad[3]}, want {bad[4]}"
    ops = [la.op for la in model.layers]
    print(f"seed {seed}, {8 * port}-bit port, memory {memory}: {ops}, unroll {cfg.unroll}x{cfg.unroll_in}, "
          f"act scratchpad {img.act_scratch}, {len(img.program)} instructions, banded {_banded(c)}, "
          f"{r.status[2]} cycles (plan {c.plan.cycles}), 0 mismatches")
    return c


@pytest.mark.parametrize("seed,port,memory,bands", [
    (22, 4, "3,2", True),       # a banded Winograd layer, an add of it and the input, linear
    (7, 1, "1,7", True),        # a banded direct layer, linear
    (24, 2, "2,5", True),       # a banded add whose STOREs start inside a word (re-read first), max pool
    pytest.param(19, 2, "2,5", False, marks=pytest.mark.slow),   # Winograd, a 1x1 branch added to a
    pytest.param(18, 4, "4,1", False, marks=pytest.mark.slow),   # direct layer, direct, linear; Winograd,
    pytest.param(37, 2, "1,3", False, marks=pytest.mark.slow),   # global pool, linear; max pool, Winograd,
])                                                               # direct stride 2, linear
def test_random_network_on_the_system(tmp_path, seed, port, memory, bands):
    """A few networks, ports of 8/16/32 bits: the system equals the interpreter and golden on
    every stored tensor (``bands``: the seed's plan cuts a layer into row bands)."""
    c = _run(tmp_path, seed, port, memory)
    assert _banded(c) == bands


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 44))
def test_random_networks_sweep(tmp_path, seed):
    rng = np.random.default_rng(seed)
    port = int(rng.choice([1, 2, 4]))
    _run(tmp_path, seed, port, f"{int(rng.integers(1, 5))},{int(rng.integers(0, 9))}")
