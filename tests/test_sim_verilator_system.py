# amaranth: UnusedElaboratable=no
"""sim.verilator_system: the full system on Verilator is the pysim run cycle for cycle. A small
model dir is compiled once, run on both backends behind the ideal, a ``2,5`` and the ULX3S
SDRAM timing, with and without stalls: the same status triple, the same per-COMPUTE cycles,
the same issue and retire cycle of every instruction (the sequencer's trace, from which the
per-layer windows are cut), every byte of memory after the run the same (so every stored tensor), one build for all of
them (the image, the inputs, the timing and the stalls are run-time inputs of one harness).
"""

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import sim.__main__ as cli
from sim import system
from wino_gen import format as fmt
from wino_gen import isa, network
from wino_gen.compile import compiler, interp
from wino_gen.errors import run_cli
from wino_gen.example import _Builder
from wino_gen.format import INPUT

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"
W = 2          # one port width for every case: one build
BAD_INSTRUCTION = next(k for k, v in isa.STATUS.items() if v == "bad instruction")
needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A Winograd F2 layer (2 -> 2 channels, 4x4) and a residual add, two export samples,
    compiled for the ULX3S as ``python -m sim --system --unroll 2`` compiles it."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(1), 2, (2, 4, 4), 1 / 32)
    b.winograd("conv1", INPUT, 2)
    b.add("res", "conv1", INPUT)
    model = fmt.write_model(tmp_path_factory.mktemp("vsys") / "m", b.manifest, b.arrays)
    cfg = network.config_for(model, unroll=2)
    args = cli.parser().parse_args([str(model.path), "--system", "--memory", "sdram-ulx3s"])
    c = cli.compile_for(model, cfg, args, W)
    return model, cfg, c


def _same(a: system.SystemRun, b: system.SystemRun):
    assert a.status == b.status
    assert a.computes == b.computes
    assert a.times == b.times
    np.testing.assert_array_equal(a.mem, b.mem)
    assert a.got.keys() == b.got.keys()


# each case costs a pysim run per image (~15-30 s): the default suite takes one per timing,
# with and without stalls, two images once; nox -s slow the rest of the matrix
CASES = [("ideal", 0.0, 1), ("2,5", 0.25, 1), ("sdram-ulx3s", 0.25, 2),
         *[pytest.param(*c, marks=pytest.mark.slow) for c in [("ideal", 0.25, 2), ("2,5", 0.0, 2),
                                                               ("sdram-ulx3s", 0.0, 2)]]]


@needs_verilator
@pytest.mark.parametrize("memory,stall,images", CASES)
def test_verilator_equals_pysim(small, memory, stall, images):
    """``images`` batches of the model in one harness run (the system reset and the sequencer
    restarted between them) equal as many pysim runs; the stored tensors equal the interpreter's."""
    model, cfg, c = small
    img, xs = c.image, model.layers[0].arrays["x"]
    batches = [xs[lo:lo + img.batch] for lo in range(0, images * img.batch, img.batch)]
    seeds = [7 + k for k in range(len(batches))]
    kw = dict(seeds=seeds, word_bytes=W, memory=memory, stall=stall, max_pool=system.max_pool_for(model))
    ver = system.run_images(img, cfg, batches, backend="verilator", **kw)
    assert len(ver) == images
    for x, sd, v in zip(batches, seeds, ver, strict=True):
        p = system.run_image(img, cfg, x, word_bytes=W, memory=memory, stall=stall, seed=sd,
                             max_pool=kw["max_pool"])
        _same(v, p)
        assert v.status[0] == 0 and v.computes
        assert set(v.times) == set(range(len(img.program) - 1)) and all(r is not None for _, r in v.times.values())
        want = interp.run(img, cfg, x)
        assert v.got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(v.got[name], want[name], err_msg=name)


@needs_verilator
def test_error_status(small):
    """A COMPUTE naming another layer (the same build: the program is a run-time input): the
    sequencer stops with 'bad instruction' at it, nothing stored (tests/test_rtl_system.py's
    pysim case)."""
    model, cfg, c = small
    prog = list(c.image.program)
    i = next(k for k, ins in enumerate(prog) if ins.OP == "COMPUTE")
    prog[i] = dataclasses.replace(prog[i], layer=1)
    img = dataclasses.replace(c.image, program=tuple(prog))
    x = model.layers[0].arrays["x"][:img.batch]
    v = system.run_image(img, cfg, x, word_bytes=W, memory="2,5", stall=0.25, seed=3,
                         max_pool=system.max_pool_for(model), backend="verilator")
    assert v.status[:2] == (BAD_INSTRUCTION, i) and v.status[2] > 0 and not v.got
    assert v.times[i][1] is None          # issued, answered with the error, never retired


@needs_verilator
def test_cycle_limit(small):
    """A limit the run cannot meet: AssertionError, as on pysim."""
    model, cfg, c = small
    x = model.layers[0].arrays["x"][:c.image.batch]
    with pytest.raises(AssertionError, match="not done after 50 cycles"):
        system.run_image(c.image, cfg, x, word_bytes=W, limit=50, backend="verilator")


SUMMARY = re.compile(r"sim: system, (\d+) layers, (\d+) image\(s\), (\d+) outputs, 0 mismatches, (\d+) cycles "
                     r"\(plan (\d+), \d+\.\d+x\)")


def _cli(capsys, *argv):
    rc = run_cli(cli.main, [*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err


@needs_verilator
def test_cli_on_verilator(capsys, small):
    """``python -m sim DIR --system --backend verilator --memory sdram-ulx3s``: both images, no
    mismatch, the run's cycles the pysim runs' (the same build as the tests above)."""
    model, cfg, c = small
    rc, out, err = _cli(capsys, str(model.path), "--system", "--backend", "verilator", "--unroll", "2",
                        "--memory", "sdram-ulx3s", "--images", "2")
    assert rc == 0, err
    layers, images, _, cycles, _ = map(int, SUMMARY.fullmatch(out[-1]).groups())
    xs = model.layers[0].arrays["x"]
    runs = system.run_images(c.image, cfg, [xs[:1], xs[1:2]], seeds=[0, 1], word_bytes=W, memory="sdram-ulx3s",
                             max_pool=system.max_pool_for(model))
    assert (layers, images, cycles) == (2, 2, sum(r.status[2] for r in runs))


def test_no_verilator_is_one_line(capsys, monkeypatch, small):
    """No verilator on PATH: one line naming it, exit 2, before anything runs."""
    model, *_ = small
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    rc, out, err = _cli(capsys, str(model.path), "--system", "--backend", "verilator")
    assert rc == 2 and not out
    assert len(err.strip().splitlines()) == 1 and "verilator is not on PATH" in err, err


@needs_verilator
@pytest.mark.slow
def test_examples_tiny_verilator_equals_pysim():
    """examples/tiny from the ULX3S SDRAM, with stalls: Verilator is the pysim run."""
    model = fmt.load_model(TINY)
    cfg = network.config_for(model)
    c = compiler.compile_model(model, cfg, board="ulx3s-85f", trace=True)
    x = model.layers[0].arrays["x"][:c.image.batch]
    kw = dict(word_bytes=2, memory="sdram-ulx3s", stall=0.1, seed=5, max_pool=system.max_pool_for(model),
              limit=2_000_000)
    v = system.run_image(c.image, cfg, x, backend="verilator", **kw)
    _same(v, system.run_image(c.image, cfg, x, **kw))
    want = interp.run(c.image, cfg, x)
    for name in want:
        np.testing.assert_array_equal(v.got[name], want[name], err_msg=name)
