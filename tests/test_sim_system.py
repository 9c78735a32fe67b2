# amaranth: UnusedElaboratable=no
"""``python -m sim MODEL_DIR --system``: the compiled image on the full system from the CLI.
Every stored tensor is compared with the image interpreter's; per layer the measured COMPUTE
cycles are printed beside the plan's and perf's; a mismatch names its layer (exit 1), the
hardware's error status is one line (exit 1), bad flags one line (exit 2)."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import sim.__main__ as cli
from wino_gen import format as fmt
from wino_gen.errors import run_cli
from wino_gen.example import _Builder
from wino_gen.format import INPUT

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"
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


def test_one_layer_two_images_with_stalls(capsys, one_layer):
    """Two images through a stalling 2-byte/cycle memory of latency 4: no mismatch; the layer's
    line and the run's cycles beside the plan's, the last line the summary."""
    rc, out, err = _cli(capsys, one_layer, "--system", "--unroll", "2", "--images", "2", "--memory", "2,4",
                        "--stall", "0.2", "--stall-seed", "7")
    assert rc == 0, err
    *counts, ratio = SUMMARY.fullmatch(out[-1]).groups()
    layers, images, outputs, cycles, planned = map(int, counts)
    assert (layers, images, outputs) == (1, 2, 2 * 4 * 6 * 6)
    assert planned > 0 and float(ratio) == round(cycles / planned, 4)
    row = re.fullmatch(r"\s*conv1\s+(\d+) cycles measured, plan (\d+) \(\S+x\), perf core (\d+)", out[-2])
    measured, plan_c, core = map(int, row.groups())
    assert measured >= core > 0 and plan_c > 0


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
    (["--system", "--weights", "spatial"], "not built yet"),
    (["--system", "--layer", "conv1"], "--layer: not with --system"),
    (["--system", "--memory", "fast"], "--memory"),
    (["--system", "--board", "nope"], "board"),
    (["--system", "--images", "0"], "--images"),
    (["--system", "--images", "3"], "holds 2 export samples"),
    (["--images", "1"], "--images needs --system"),
    (["--memory", "ideal,1"], "--memory needs --system"),
])
def test_bad_flags_exit_2(capsys, one_layer, argv, message):
    rc, out, err = _cli(capsys, one_layer, *argv)
    assert rc == 2 and not out
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and message in err, err


@pytest.mark.slow
def test_examples_tiny_system(capsys):
    """examples/tiny, every layer, on the system from an SDRAM-timed memory."""
    rc, out, err = _cli(capsys, str(TINY), "--system", "--memory", "sdram-ulx3s")
    assert rc == 0, err
    layers, images = map(int, SUMMARY.fullmatch(out[-1]).groups()[:2])
    assert (layers, images) == (7, 1)
