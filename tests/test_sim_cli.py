"""``python -m sim``: examples/tiny passes bit-exact; a flipped reference byte fails, naming
the layer; bad input exits 2."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "examples" / "tiny"


def run_sim(*args):
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_tiny_layer_passes():
    r = run_sim(str(TINY), "--layer", "conv1", "--samples", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("sim: 1 layers, 800 outputs, 0 mismatches, ")
    assert int(last.split()[-2]) > 0


def test_balanced_model_passes(tmp_path):
    """A model with ``balance: smooth`` in its manifest: sim builds the balanced datapath."""
    from wino_gen.example import make_tiny

    make_tiny(tmp_path / "t", tile=4, balance="smooth", seed=4)
    r = run_sim(str(tmp_path / "t"), "--layer", "conv1", "--layer", "conv3", "--samples", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 mismatches, " in r.stdout.strip().splitlines()[-1]


def test_flipped_reference_byte_fails(tmp_path):
    bad = tmp_path / "tiny"
    shutil.copytree(TINY, bad)
    f = bad / "conv1.npz"
    arrays = dict(np.load(f))
    arrays["y"] = arrays["y"].copy()
    arrays["y"][0, 1, 2, 3] ^= 1
    np.savez(f, **arrays)
    r = run_sim(str(bad), "--layer", "conv1", "--layer", "down", "--samples", "1")
    assert r.returncode == 1
    assert "conv1" in r.stderr and "mismatch" in r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("sim: 2 layers, ") and " 1 mismatches, " in last


def test_bad_input_exits_2(tmp_path):
    r = run_sim(str(tmp_path / "nope"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stdout == ""
    r = run_sim("--unroll", "0")
    assert r.returncode == 2


@pytest.mark.slow
def test_tiny_full(tmp_path):
    vcd = tmp_path / "w.vcd"
    r = run_sim(str(TINY), "--vcd", str(vcd))
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 mismatches, " in r.stdout.strip().splitlines()[-1]
    assert vcd.stat().st_size > 1000


def test_stalls_change_cycles_not_outputs():
    r = run_sim("--layer", "down", "--stall", "0.3", "--stall-seed", "7")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("down")][0]
    cycles, perf = (int(v) for v in re.findall(r"(\d+) cycles \(perf (\d+)\)", line)[0])
    assert "0 mismatches" in line and cycles > perf


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_bad_stall_is_one_line(value):
    r = run_sim("--layer", "down", "--stall", value)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--stall" in r.stderr
