# amaranth: UnusedElaboratable=no
"""``python -m sim MODEL_DIR --system``: the compiled image on the full system from the CLI.
Every stored tensor is compared with the image interpreter's; per layer the measured COMPUTE
cycles are printed beside the plan's and perf's; a mismatch names its layer (exit 1), the
hardware's error status is one line (exit 1), bad flags one line (exit 2)."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

import sim.__main__ as cli
from sim import system
from sim.memory import SDRAM_CLOCK_MHZ
from wino_gen import format as fmt
from wino_gen import isa, network, plan
from wino_gen import memory as wm
from wino_gen.compile import image as im
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import run_cli
from wino_gen.example import _Builder
from wino_gen.format import INPUT

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"
ROW = re.compile(r"  (\S+)\s+(\S+)\s+(compute|memory)\s+(\d+) cycles measured, plan (\d+) \(\S+x\), perf core "
                 r"(\d+); (\d+) B in a (\d+)-cycle window \(plan (\d+), modelled (\d+)\)"
                 r"(, \S+% of the sustained rate)?")
SUMMARY = re.compile(r"sim: system, (\d+) layers, (\d+) image\(s\), (\d+) outputs, 0 mismatches, (\d+) cycles "
                     r"\(plan (\d+), (\d+\.\d+)x\)")


@pytest.fixture(scope="module")
def one_layer(tmp_path_factory):
    """A model dir of one Winograd F2 layer (4 -> 4 channels, 6x6), two export samples."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(0), 2, (4, 6, 6), 1 / 32)
    b.winograd("conv1", INPUT, 4)
    return str(fmt.write_model(tmp_path_factory.mktemp("sys") / "m", b.manifest, b.arrays).path)


def _cli(capsys, *argv):
    rc = run_cli(cli.main, [*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err


def test_one_layer_two_images_with_stalls(capsys, tmp_path, one_layer):
    """Two images through a stalling 2-byte/cycle memory of latency 4: no mismatch; the layer's
    line (engine, bound, cycles beside the plan's, bytes and window), the run's cycles beside the
    plan's, the last line the summary; ``--json`` holds the same numbers."""
    report = tmp_path / "r.json"
    rc, out, err = _cli(capsys, one_layer, "--system", "--unroll", "2", "--images", "2", "--memory", "2,4",
                        "--stall", "0.2", "--stall-seed", "7", "--json", str(report))
    assert rc == 0, err
    *counts, ratio = SUMMARY.fullmatch(out[-1]).groups()
    layers, images, outputs, cycles, planned = map(int, counts)
    assert (layers, images, outputs) == (1, 2, 2 * 4 * 6 * 6)
    assert planned > 0 and float(ratio) == round(cycles / planned, 4)
    row = ROW.fullmatch(out[-4])
    assert row, out[-4]
    name, engine, bound, *numbers = row.groups()[:10]
    measured, plan_c, core, moved, window, total, modelled = map(int, numbers)
    assert (name, engine) == ("conv1", "winograd") and bound in ("compute", "memory")
    assert measured >= core > 0 and plan_c > 0 and moved > 0 and window >= measured and total > 0
    assert plan_c <= modelled < cycles
    assert re.fullmatch(r"  windows: measured \(the sequencer's trace\), modelled: .*; sustained rate "
                        r"(\d+\.\d+) B/cycle .*", out[-3])
    per_image = re.fullmatch(r"sim: system, (\d+) cycles/image, (\d+\.\d+) ms/image at (\d+) MHz .*; 2 run\(s\) "
                             r"of batch 1\)", out[-2])
    assert int(per_image.group(1)) == round(cycles / 2)
    got = json.loads(report.read_text())
    (r,) = got["layers"]
    assert (r["engine"], r["bound"], r["measured"], r["plan"], r["perf_core"], r["bytes"], r["window"],
            r["plan_total"], r["plan_window"]) == \
        (engine, bound, measured, plan_c, core, moved, window, total, modelled)
    assert r["utilization"] == pytest.approx(moved / window / got["sustained_bytes_per_cycle"], rel=1e-3)
    assert (got["cycles"], got["plan_cycles"], got["images"], got["mismatches"], got["core"], got["batch"],
            got["runs"]) == (cycles, planned, 2, 0, "dual", 1, 2)


def _check_times(img, run: system.SystemRun) -> None:
    """A run's measured times: every instruction but END issued and retired within the run, each
    queue in program order, one at a time; a COMPUTE handed to the unit after it issued and
    answered, ``computes`` cycles later, in the cycle it retired."""
    assert set(run.times) == set(range(len(img.program) - 1)) and img.program[-1].OP == "END"
    last = {}
    for i, (issue, retire) in run.times.items():
        assert 0 <= issue < retire < run.status[2], (i, issue, retire)
        q = isa.QUEUES[img.program[i].OP]
        assert issue > last.get(q, -1), (i, q)
        last[q] = retire
        if i in run.computes:
            assert retire - run.computes[i][0] > issue


def test_batch_two_measured_windows(capsys, monkeypatch, tmp_path, one_layer):
    """``--batch 2 --images 1``: the image compiled for batches of two, one run with the input
    padded by a zero image (the runtime's rule), one image compared, the cycles per image over
    both slots; the run's measured times are consistent (:func:`_check_times`) and the JSON's
    window is :func:`sim.__main__.layer_windows` on them."""
    runs, real = [], system.run_images

    def spy(img, *a, **k):
        out = real(img, *a, **k)
        runs.extend((img, r) for r in out)
        return out
    monkeypatch.setattr(system, "run_images", spy)
    report = tmp_path / "r.json"
    rc, out, err = _cli(capsys, one_layer, "--system", "--unroll", "2", "--batch", "2", "--memory", "2,4",
                        "--json", str(report))
    assert rc == 0, err
    (img, run), = runs
    assert img.batch == 2 and img.slot(im.INPUT_SLOT).size == 2 * 4 * 6 * 6
    layers, images, outputs, cycles, _ = map(int, SUMMARY.fullmatch(out[-1]).groups()[:5])
    assert (layers, images, outputs, cycles) == (1, 1, 4 * 6 * 6, run.status[2])
    assert re.fullmatch(rf"sim: system, {round(cycles / 2)} cycles/image, .*; 1 run\(s\) of batch 2\)", out[-2])
    _check_times(img, run)
    got = json.loads(report.read_text())
    (r,) = got["layers"]
    (k, (moved, window)), = cli.layer_windows(img, run.times).items()
    assert (got["batch"], got["runs"], r["bytes"], r["window"]) == (2, 1, moved, window)


def test_tampered_reference_names_the_layer(capsys, monkeypatch, one_layer):
    """One byte of the interpreter's conv1 output flipped: exit 1, the last line names conv1 and
    the first mismatching index."""
    real = cli.reference

    def tampered(img, cfg, x):
        want = real(img, cfg, x)
        want["conv1"] = want["conv1"].copy()
        want["conv1"][0, 1, 2, 3] ^= 1
        return want
    monkeypatch.setattr(cli, "reference", tampered)
    rc, out, err = _cli(capsys, one_layer, "--system", "--unroll", "2")
    assert rc == 1
    assert out[-1].startswith("sim: system, failed: layer conv1: 1 mismatches, first at (0, 1, 2, 3)"), out[-1]
    assert "layer conv1" in err


def test_hardware_error_status_is_one_line(capsys, monkeypatch, one_layer):
    """A COMPUTE naming another layer than the parameter memory's: the sequencer stops with
    'bad instruction' at it; one line with its index and opcode, exit 1."""
    real = cli.compile_for
    at = {}

    def edited(model, cfg, args, word):
        c = real(model, cfg, args, word)
        prog = list(c.image.program)
        at["i"] = i = next(k for k, ins in enumerate(prog) if ins.OP == "COMPUTE")
        prog[i] = dataclasses.replace(prog[i], layer=1)
        return dataclasses.replace(c, image=dataclasses.replace(c.image, program=tuple(prog)))
    monkeypatch.setattr(cli, "compile_for", edited)
    rc, out, err = _cli(capsys, one_layer, "--system", "--unroll", "2")
    assert rc == 1
    assert out[-1] == f"sim: system, failed: image 0: the system stopped: bad instruction at instruction {at['i']} " \
                      f"(COMPUTE)"
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,message", [
    (["--system", "--weights", "spatial"], "holds no spatial weights W"),
    (["--system", "--direct-only", "--weights", "spatial"], "no Winograd mode"),
    (["--system", "--layer", "conv1"], "--layer: not with --system"),
    (["--system", "--memory", "fast"], "--memory"),
    (["--system", "--board", "nope"], "board"),
    (["--system", "--images", "0"], "--images"),
    (["--system", "--images", "3"], "holds 2 export samples"),
    (["--images", "1"], "--images needs --system"),
    (["--memory", "ideal,1"], "--memory needs --system"),
    (["--direct-only"], "--direct-only needs --system"),
    (["--no-trace"], "--no-trace needs --system"),
    (["--json", "r.json"], "--json needs --system"),
    (["--batch", "2"], "--batch needs --system"),
    (["--system", "--batch", "0"], "--batch"),
    (["--system", "--json", "/nonexistent/r.json"], "--json"),
    (["--system", "--direct-only"], "needs a Winograd engine"),
    (["--config", "top.json"], "--config needs --system"),
    (["--system", "--config", "top.json", "--unroll", "8"], "--unroll: not with --config"),
    (["--system", "--config", "/nonexistent/top.json"], "No such file"),
])
def test_bad_flags_exit_2(capsys, one_layer, argv, message):
    rc, out, err = _cli(capsys, one_layer, *argv)
    assert rc == 2 and not out
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and message in err, err


@pytest.fixture(scope="module")
def direct_net(tmp_path_factory):
    """A model dir of two direct 3x3 layers (stride 1, then 2), 4 -> 4 channels, 6x6, two samples
    (tile 2: the direct engine of a 2x2-tile build, 16 multipliers per output channel)."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(1), 2, (4, 6, 6), 1 / 32)
    b.direct("conv1", INPUT, 4, 1)
    b.direct("down", "conv1", 4, 2)
    return str(fmt.write_model(tmp_path_factory.mktemp("dsys") / "m", b.manifest, b.arrays).path)


def test_direct_only_system(capsys, tmp_path, direct_net):
    """``--direct-only``: one config with algo=direct for the compiler, the plan and the core;
    a direct network runs on it with no mismatch, every layer on the direct engine; with
    ``--no-trace`` only the network output is stored and compared."""
    report = tmp_path / "r.json"
    rc, out, err = _cli(capsys, direct_net, "--system", "--direct-only", "--unroll", "2", "--json", str(report))
    assert rc == 0, err
    assert "direct-only core" in out[0]
    layers, images, outputs = map(int, SUMMARY.fullmatch(out[-1]).groups()[:3])
    assert (layers, images, outputs) == (2, 1, 4 * 6 * 6 + 4 * 3 * 3)
    assert [ROW.fullmatch(line).group(2) for line in out[1:3]] == ["direct", "direct"]
    got = json.loads(report.read_text())
    assert (got["core"], got["config"]["algo"], got["trace"]) == ("direct-only", "direct", True)
    rc, out, err = _cli(capsys, direct_net, "--system", "--direct-only", "--unroll", "2", "--no-trace")
    assert rc == 0, err
    assert SUMMARY.fullmatch(out[-1]).groups()[:3] == ("2", "1", str(4 * 3 * 3))
    # --config: the file's build (its algo standing for --direct-only), the same run
    AcceleratorConfig.from_dict(got["config"]).save(tmp_path / "top.json")
    rc, again, err = _cli(capsys, direct_net, "--system", "--config", str(tmp_path / "top.json"), "--no-trace")
    assert rc == 0, err
    assert "direct-only core" in again[0] and again[-1] == out[-1]


def test_a_config_narrower_than_a_layer_is_refused(capsys, tmp_path, direct_net):
    """``--config`` with a window generator narrower than a layer: the planner prices the layer
    on the wider build it needs, the compute unit would stop on it (``commands.beyond_build``),
    so the run is refused in one line, exit 2, before the system is built."""
    cfg = network.config_for(fmt.load_model(direct_net), unroll=2, algo="direct", max_width=4)
    cfg.save(tmp_path / "top.json")
    rc, out, err = _cli(capsys, direct_net, "--system", "--config", str(tmp_path / "top.json"))
    assert rc == 2 and not out and len(err.strip().splitlines()) == 1
    assert "conv1: 6 input rows exceed the build's max_width 4: the system's compute unit does not run it" in err


def test_sustained_rate_is_the_timings_own():
    """An ideal memory sustains a port word a cycle, a B,L memory B bytes; the SDRAM model less
    than its peak less its refresh share (wino_gen.memory's: the row opens at page ends cost
    more), and more than 95% of it."""
    assert cli.sustained_rate("ideal", 4) == 4
    assert cli.sustained_rate("2,4", 4) == pytest.approx(2, rel=1e-3)
    part = wm.board_memory("ulx3s-85f").external
    rate = cli.sustained_rate("sdram-ulx3s", part.word_bytes)
    assert 0.95 * part.peak_bytes_per_cycle < rate < part.peak_bytes_per_cycle * (1 - part.refresh_fraction(
        SDRAM_CLOCK_MHZ))


@pytest.fixture(scope="module")
def tiny_compiled():
    """examples/tiny compiled as ``--system --memory sdram-ulx3s`` compiles it (every output stored)."""
    model = fmt.load_model(TINY)
    args = cli.parser().parse_args([str(TINY), "--system", "--memory", "sdram-ulx3s"])
    return cli.compile_for(model, network.config_for(model, unroll=2), args, 2)


def test_segments_follow_the_layers(tiny_compiled):
    """One run per layer, in order; every STORE in a layer's run writes that layer's output."""
    c = tiny_compiled
    img, segs = c.image, cli.segments(c.image)
    assert [k for k, _ in segs] == list(range(len(c.plan.layers)))
    for k, idx in segs:
        written = {img.tensors[system.stored_tensor(img, img.program[i])].name for i in idx
                   if img.program[i].OP == "STORE"}
        assert written == {c.plan.layers[k].layer.name}


def test_windows_tile_the_run(tiny_compiled):
    """On the plan's COMPUTE cycles the layers' windows add up to the span from the first
    parameter LOAD to the last COMPUTE, each at least its COMPUTEs' cycles; their bytes and the
    prologue's are every transfer's."""
    c = tiny_compiled
    img = c.image
    costs = plan.compute_costs(c.plan, img.program)
    _, times = cli.program_model(c, costs.__getitem__, "sdram-ulx3s")
    windows, segs = cli.layer_windows(img, times), cli.segments(img)
    last = max(times[i][1] for i in costs)
    assert sum(w for _, w in windows.values()) == last - times[segs[0][1][0]][0]
    for k, idx in segs:
        assert windows[k][1] >= sum(costs[i] for i in idx if i in costs)
    moved = [ins.count * ins.burst for ins in img.program if ins.OP in ("LOAD", "STORE")]
    prologue = [ins.count * ins.burst for ins in img.program[:segs[0][1][0]] if ins.OP == "LOAD"]
    assert sum(b for b, _ in windows.values()) + sum(prologue) == sum(moved)


def test_segments_refuse_a_foreign_compute(tiny_compiled):
    """A COMPUTE of another layer inside a layer's run: the rule the windows rest on fails loudly."""
    img = tiny_compiled.image
    i = next(k for k, ins in enumerate(img.program) if ins.OP == "COMPUTE" and ins.layer == 0)
    prog = list(img.program)
    prog[i] = dataclasses.replace(prog[i], layer=1)
    with pytest.raises(ValueError, match=f"instruction {i}: a COMPUTE of layer 1 in the run of layer 0"):
        cli.segments(dataclasses.replace(img, program=tuple(prog)))


@pytest.mark.slow
def test_examples_tiny_system(capsys):
    """examples/tiny, every layer, on the system from an SDRAM-timed memory."""
    rc, out, err = _cli(capsys, str(TINY), "--system", "--memory", "sdram-ulx3s")
    assert rc == 0, err
    layers, images = map(int, SUMMARY.fullmatch(out[-1]).groups()[:2])
    assert (layers, images) == (7, 1)
