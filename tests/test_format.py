"""The model dir: the shipped example checks clean, corruption is named, bad input exits 2."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wino_gen import limits
from wino_gen.example import make_tiny
from wino_gen.format import FormatError, load_model, write_model

TINY = Path(__file__).parent.parent / "examples" / "tiny"


def wino(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wino_gen", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture
def tiny(tmp_path):
    d = tmp_path / "tiny"
    shutil.copytree(TINY, d)
    return d


def rewrite(d, name, **changes):
    p = d / f"{name}.npz"
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            del a[k]
        else:
            a[k] = v
    np.savez(p, **a)


def test_example_checks_clean():
    r = wino("check", TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last == "check: 7 layers, 6452 outputs, 0 mismatches"


def test_example_is_reproducible(tmp_path):
    """examples/make_tiny.py regenerates exactly the shipped files."""
    r = subprocess.run([sys.executable, str(TINY.parent / "make_tiny.py"), tmp_path / "t"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    a, b = load_model(TINY), load_model(tmp_path / "t")
    assert a.manifest == b.manifest
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.arrays.keys() == lb.arrays.keys()
        for k in la.arrays:
            assert np.array_equal(la.arrays[k], lb.arrays[k]), (la.name, k)


def test_one_flipped_output_byte_is_named(tiny):
    y = np.load(tiny / "conv2.npz")["y"].copy()
    y.flat[17] ^= 1
    rewrite(tiny, "conv2", y=y)
    r = wino("check", tiny)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert any(line.split()[0] == "conv2" and "MISMATCH" in line for line in lines[1:-1])
    assert lines[-1] == "check: 7 layers, 6452 outputs, 2 mismatches"  # conv2.y and res.x


@pytest.mark.parametrize("corrupt,msg", [
    (lambda d: (d / "conv1.npz").write_bytes((d / "conv1.npz").read_bytes()[:300]),
     "conv1.npz: file: not a readable npz"),
    (lambda d: rewrite(d, "conv3", bias=None), "conv3.npz: bias: missing"),
    (lambda d: rewrite(d, "down", W=np.zeros((16, 8, 3, 3), np.float32)), "down.npz: W: dtype must be int8"),
    (lambda d: rewrite(d, "conv1", U=np.zeros((8, 4, 5, 5), np.int8)), "conv1.npz: U: shape must be (8, 4, 6, 6)"),
    (lambda d: rewrite(d, "conv1", v_shift=np.full((6, 6), 99, np.int32)), "conv1.npz: v_shift: values must lie"),
    (lambda d: rewrite(d, "conv1", m_align=np.eye(6, dtype=np.int32)), "conv1.npz: m_align: granularity 'layer'"),
    (lambda d: edit_manifest(d, lambda m: m["input"].update(scale=float("nan"))), "input.scale: scale must be"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][1].update(scale_out=float("nan"))),
     "layers.conv2.scale_out: scale must be"),
    (lambda d: edit_manifest(d, lambda m: m.update(format="wino-int8/9")), "format: unsupported version"),
    (lambda d: edit_manifest(d, lambda m: m.update(tile=3)), "tile: 3 not in"),
    (lambda d: edit_manifest(d, lambda m: m.update(balance="even")), "balance: 'even' not in"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][2].update(inputs=["conv2", "nope"])),
     "layers.res.inputs: unknown or later layer 'nope'"),
    (lambda d: (d / "manifest.json").write_text("{"), "manifest.json: file: not valid JSON"),
    (lambda d: (d / "fc.npz").unlink(), "fc.npz: file: missing"),
])
def test_bad_model_dir_exits_2_with_one_line(tiny, corrupt, msg):
    corrupt(tiny)
    with pytest.raises(FormatError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_model(tiny)
    r = wino("check", tiny)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and msg in r.stderr and "Traceback" not in r.stderr


def edit_manifest(d, fn):
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def test_cli_usage_errors():
    r = wino("check")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "model_dir" in r.stderr
    r = wino("check", "/nonexistent/dir")
    assert r.returncode == 2 and "not a model dir" in r.stderr
    r = wino("--help")
    assert r.returncode == 0 and "check MODEL_DIR" in r.stdout


def test_write_model_is_atomic(tmp_path):
    m = load_model(TINY)
    arrays = {layer.name: dict(layer.arrays) for layer in m.layers}
    arrays["conv3"]["bias"] = arrays["conv3"]["bias"].astype(np.int64)  # invalid dtype
    with pytest.raises(FormatError, match="conv3.npz: bias: dtype must be int32"):
        write_model(tmp_path / "out", m.manifest, arrays)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("granularity,requant,balance", [("layer", "pow2", "none"), ("tap", "fixed", "none"),
                                                         ("tap", "pow2", "none"), ("layer", "fixed", "smooth")])
def test_variants_check_clean(tmp_path, tile, granularity, requant, balance):
    make_tiny(tmp_path / "t", tile=tile, granularity=granularity, requant=requant, seed=tile, balance=balance)
    r = wino("check", tmp_path / "t")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("layer,key,span", [
    ("res", "a_mult", limits.ADD_MULT_RANGE), ("res", "shift", limits.ADD_SHIFT_RANGE),
    ("pool", "mult", limits.AVGPOOL_MULT_RANGE), ("pool", "shift", limits.AVGPOOL_SHIFT_RANGE),
    ("conv1", "y_shift", limits.SHIFT_RANGE), ("fc", "y_mult", limits.mult_range("pow2"))])
def test_value_ranges_are_the_limits(tiny, layer, key, span):
    """A scalar parameter loads at both ends of its range in wino_gen.limits, not one beyond."""
    for v in span:
        rewrite(tiny, layer, **{key: np.int32(v)})
        load_model(tiny)
    for v in (span[0] - 1, span[1] + 1):
        rewrite(tiny, layer, **{key: np.int32(v)})
        with pytest.raises(FormatError, match=rf"{layer}.npz: {key}: values must lie in \[{span[0]}, {span[1]}\]"):
            load_model(tiny)


def test_manifest_ranges_are_the_limits(tiny):
    hi = limits.STORED_BITS[1] + 1
    edit_manifest(tiny, lambda m: m.update(act_bits=hi))
    with pytest.raises(FormatError, match=f"act_bits: must be an integer in {limits.STORED_BITS[0]}..{hi - 1} "):
        load_model(tiny)
    edit_manifest(tiny, lambda m: m.update(act_bits=8))
    edit_manifest(tiny, lambda m: m["layers"][0].update(padding=limits.WINOGRAD_PADDING[1] + 1))
    with pytest.raises(FormatError, match="layers.conv1.padding: must be 0 or 1, got 2"):
        load_model(tiny)
