"""Issue 10, the integer model and the model dir: rq is exact over the whole allowed range,
``check`` honours every bit width the format allows (and agrees with the RTL), the spec prints
the matrices the code uses, and the reader refuses hostile or misspelled model dirs with one line.
"""

import importlib.util
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wino_gen import __main__ as cli
from wino_gen import format as wformat
from wino_gen import golden, network, winograd
from wino_gen.config import AcceleratorConfig, ConfigError, int_range
from wino_gen.errors import UsageError
from wino_gen.format import FormatError, Layer, Model, is_model_dir, load_model, write_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "examples" / "tiny"
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
MULT = st.integers(0, wformat.MULT_MAX)
SHIFT = st.integers(*wformat.SHIFT_RANGE)


def exact_rq(v: int, mult: int, shift: int, bits: int) -> int:
    """The spec's rq in Python integers (docs/format.md, "Requantization")."""
    p = v * mult
    q = (p + (1 << (shift - 1))) >> shift if shift > 0 else p << -shift
    lo, hi = int_range(bits)
    return max(lo, min(hi, q))


# -- rq over the whole range ----------------------------------------------------------------------

@given(v=INT64, mult=MULT, shift=SHIFT, bits=st.integers(2, 16))
def test_rq_exact_for_every_allowed_value(v, mult, shift, bits):
    assert int(golden.rq(np.array([v]), mult, shift, bits)[0]) == exact_rq(v, mult, shift, bits)


@settings(max_examples=50)
@given(st.lists(st.tuples(INT64, MULT, SHIFT), min_size=1, max_size=20), st.sampled_from([4, 8, 16, 62]))
def test_rq_exact_elementwise_on_arrays(items, bits):
    """Per-element mults and shifts (the per-tap case), extremes mixed with small values."""
    v, mult, shift = (np.array(c, dtype=np.int64) for c in zip(*items, strict=True))
    got = golden.rq(v, mult, shift, bits)
    assert got.dtype == np.int64
    assert got.tolist() == [exact_rq(*t, bits) for t in items]


@settings(max_examples=50)
@given(st.lists(st.tuples(INT64, st.integers(0, 1 << 40), st.integers(-80, 130)), min_size=1, max_size=8),
       st.integers(2, 62))
def test_rq_exact_beyond_the_format_range(items, bits):
    """Wider mults and shifts than a model dir may hold (the Python-integer path) stay exact."""
    v, mult, shift = (np.array(c, dtype=np.int64) for c in zip(*items, strict=True))
    assert golden.rq(v, mult, shift, bits).tolist() == [exact_rq(*t, bits) for t in items]


@pytest.mark.parametrize("v", [(1 << 63) - 1, -(1 << 63), (1 << 31) - 1, -(1 << 31), 1, -1, 0])
@pytest.mark.parametrize("mult", [0, 1, wformat.MULT_MAX])
@pytest.mark.parametrize("shift", [-16, -1, 0, 1, 2, 31, 61, 62])
def test_rq_hand_extremes(v, mult, shift):
    for bits in (4, 8):
        assert int(golden.rq(np.array([v]), mult, shift, bits)[0]) == exact_rq(v, mult, shift, bits)


def test_rq_issue_case_and_fast_path():
    assert golden.rq(np.array([2**31 - 1]), 2**24 - 1, -16).tolist() == [127]
    assert golden.rq(np.array([-(2**31)]), 2**24 - 1, -16).tolist() == [-128]
    # ties round up: -1.5 -> -1, 1.5 -> 2, at the top of the shift range too
    assert golden.rq(np.array([-3 << 61, 3 << 61]), 1, 62).tolist() == [-1, 2]


# -- check honours act_bits / transform_bits / weight_bits -----------------------------------------

def _write(path, manifest_extra, layers, x):
    """A model dir whose reference outputs are what the golden model computes for ``x``."""
    manifest = {"model": "bits", "tile": 2, "granularity": "layer", "requant": "pow2",
                "input": {"shape": list(x.shape[1:])}, "layers": [], **manifest_extra}
    model = Model(Path("."), manifest, [])
    acts, arrays = {"input": x}, {}
    for spec, arr in layers:
        spec = {"inputs": ["input"], **spec}
        src = acts[spec["inputs"][0]]
        spec["in_shape"] = list(src.shape[1:])
        y = network.run_layer(model, Layer(spec["name"], spec["op"], spec["inputs"], spec, "", arr), [src])
        spec["out_shape"] = list(y.shape[1:])
        manifest["layers"].append(spec)
        arrays[spec["name"]] = {**arr, "x": src.astype(np.int8), "y": y.astype(np.int8)}
        acts[spec["name"]] = y
    return write_model(path, manifest, arrays)


def _i32(v):
    return np.asarray(v, dtype=np.int32)


def _neutral(n):
    return {"bias": _i32([0]), "v_mult": _i32(1), "v_shift": _i32(0), "m_mult": _i32(1), "m_shift": _i32(0),
            "m_align": _i32(0), "y_mult": _i32(1), "y_shift": _i32(0)}


def test_transform_bits_saturate_v_and_m(tmp_path, capsys):
    """The issue's hand case: F2, transform_bits 4, d[0,0] = 10, neutral requants: V = M = y = 7."""
    x = np.zeros((1, 1, 4, 4), dtype=np.int64)
    x[0, 0, 0, 0] = 10
    U = np.zeros((1, 1, 4, 4), dtype=np.int8)
    U[0, 0, 0, 0] = 1
    conv = ({"name": "conv", "op": "winograd_conv3x3", "padding": 0, "relu": False}, {"U": U, **_neutral(4)})
    model = _write(tmp_path / "t4", {"transform_bits": 4}, [conv], x)
    assert model.layers[0].arrays["y"][0, 0, 0, 0] == 7
    assert cli.main(["check", str(tmp_path / "t4")]) == 0
    # the same layer claiming the 8-bit answer (10) is a mismatch
    m = load_model(tmp_path / "t4")
    arrays = {"conv": dict(m.layers[0].arrays)}
    arrays["conv"]["y"] = arrays["conv"]["y"].copy()
    arrays["conv"]["y"][0, 0, 0, 0] = 10
    write_model(tmp_path / "t4", m.manifest, arrays)
    assert cli.main(["check", str(tmp_path / "t4")]) == 1
    assert "check: 1 layers, 4 outputs, 1 mismatches" in capsys.readouterr().out


def test_act_bits_saturate_direct_conv(tmp_path):
    """act_bits 7: a direct conv whose sum is 126 gives 63."""
    x = np.full((1, 1, 1, 1), 63, dtype=np.int64)
    W = np.full((1, 1, 1, 1), 2, dtype=np.int8)
    conv = ({"name": "d", "op": "direct_conv", "stride": 1, "padding": 0, "relu": False},
            {"W": W, "bias": _i32([0]), "y_mult": _i32(1), "y_shift": _i32(0)})
    model = _write(tmp_path / "a7", {"act_bits": 7}, [conv], x)
    assert model.layers[0].arrays["y"].ravel().tolist() == [63]
    assert cli.main(["check", str(tmp_path / "a7")]) == 0


def _shift_for(v, bits, extra=0):
    """A pow2 shift that maps most of ``v`` into ``bits`` and saturates its largest values."""
    return max(0, math.ceil(math.log2(max(int(np.abs(v).max()), 1) / (1 << (bits - 1)))) - 1 + extra)


def narrow_model(path, bits, *, requant="pow2", tile=2, C=2, K=3, H=5, seed=0):
    """A Winograd layer and a direct stride-2 layer at act/weight/transform ``bits``; requants
    calibrated so that every width saturates somewhere. ``fixed`` uses mults >= 2**20."""
    rng = np.random.default_rng(seed)
    lo, hi = int_range(bits)
    n = tile + 2
    x = rng.integers(lo, hi + 1, (2, C, H, H))
    U = rng.integers(lo, hi + 1, (K, C, n, n)).astype(np.int8)
    W = rng.integers(lo, hi + 1, (K, K, 3, 3)).astype(np.int8)
    big = 20 if requant == "fixed" else 0
    mult = (1 << 20) + 12345 if requant == "fixed" else 1

    def req(prefix, shift):
        return {f"{prefix}_mult": _i32(mult), f"{prefix}_shift": _i32(shift + big)}

    _, vraw = golden.input_transform(golden.tile_input(x, tile), tile)
    vs = _shift_for(vraw, bits)
    V = golden.rq(vraw, 1, vs, bits)
    P = np.einsum("kcij,nctsij->nktsij", U.astype(np.int64), V)
    ms = _shift_for(P, bits)
    M = golden.rq(P, 1, ms, bits)
    _, Y = golden.output_transform(M, tile)
    conv = ({"name": "conv", "op": "winograd_conv3x3", "padding": 1, "relu": False},
            {"U": U, "bias": _i32(rng.integers(-50, 50, K)), **req("v", vs), **req("m", ms),
             "m_align": _i32(0), **req("y", _shift_for(Y, bits))})
    down = ({"name": "down", "op": "direct_conv", "inputs": ["conv"], "stride": 2, "padding": 1, "relu": True},
            {"W": W, "bias": _i32(rng.integers(-50, 50, K)), **req("y", _shift_for(np.array([4 * hi * hi]), bits))})
    widths = {"act_bits": bits, "weight_bits": bits, "transform_bits": bits, "requant": requant, "tile": tile}
    return _write(path, widths, [conv, down], x)


@pytest.mark.parametrize("requant", ["pow2", "fixed"])
@pytest.mark.parametrize("bits", [4, 5, 6, 7])
def test_narrow_model_dirs_check_clean(tmp_path, bits, requant):
    model = narrow_model(tmp_path / "m", bits, requant=requant, seed=bits)
    lo, hi = int_range(bits)
    for layer in model.layers:
        assert lo <= layer.arrays["y"].min() and layer.arrays["y"].max() <= hi
    conv = model.layers[0]
    y = conv.arrays["y"]
    assert np.count_nonzero((y == hi) | (y == lo)), "the Winograd layer never saturates"
    eight = dict(model.manifest, act_bits=8, transform_bits=8)
    assert not np.array_equal(network.run_layer(Model(model.path, eight, []), conv, [conv.arrays["x"]]), y), \
        "the widths make no difference: the test would not catch them being ignored"
    assert cli.main(["check", str(tmp_path / "m")]) == 0


@pytest.mark.parametrize("bits,requant", [(5, "fixed"), (4, "pow2")])
def test_narrow_model_sim_agrees_with_check(tmp_path, bits, requant):
    """The RTL (pysim) follows the same widths as ``check``; ``fixed`` with mults >= 2**20."""
    narrow_model(tmp_path / "m", bits, requant=requant, seed=1, H=4)
    r = subprocess.run([sys.executable, "-m", "sim", str(tmp_path / "m"), "--samples", "1"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("sim: 2 layers, ")
    assert " 0 mismatches" in r.stdout.strip().splitlines()[-1]


# -- the spec prints the matrices of the code ---------------------------------------------------------

def _tables():
    spec = importlib.util.spec_from_file_location("make_format_tables", ROOT / "docs" / "make_format_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_format_md_matrices_are_generated_from_the_code():
    mod = _tables()
    text = (ROOT / "docs" / "format.md").read_text(encoding="utf-8")
    assert mod.current(text) == mod.section(), "docs/format.md is stale: run python docs/make_format_tables.py"
    for m in winograd.POINTS:
        for balance in winograd.BALANCES:
            f = winograd.integer_forms(m, balance)
            assert f"F({m}x{m}, 3x3), balance `{balance}`" in text
            assert "\n".join(mod._matrix(f"Bᵀ ({f.n} x {f.n})", f.BT)) in text


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("balance", winograd.BALANCES)
def test_printed_forms_compute_the_correlation_exactly(m, balance):
    """What docs/format.md promises: Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is PyTorch's 3x3 correlation."""
    rng = np.random.default_rng(m)
    f = winograd.integer_forms(m, balance)
    d = rng.integers(-128, 128, (f.n, f.n)).astype(object)
    g = rng.integers(-128, 128, (3, 3)).astype(object)
    G = f.G
    Y = f.AT.astype(object) @ ((G @ g @ G.T) * (f.BT.astype(object) @ d @ f.BT.T.astype(object))) @ f.AT.T
    want = np.array([[sum(d[i + a, j + b] * g[a, b] for a in range(3) for b in range(3)) for j in range(m)]
                     for i in range(m)], dtype=object)
    assert all(Fraction(a) == b for a, b in zip(Y.ravel(), want.ravel(), strict=True))


# -- the reader refuses hostile and misspelled model dirs ---------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    d = tmp_path / "tiny"
    shutil.copytree(TINY, d)
    return d


def edit_manifest(d, fn):
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def rewrite(d, name, **changes):
    p = d / f"{name}.npz"
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    a.update(changes)
    np.savez(p, **a)


def add_member(path, name, data: bytes, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "a", compression=compress) as z:
        z.writestr(name, data)


def npy_header(shape, descr="|i1") -> bytes:
    import io
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False, "shape": shape})
    return b.getvalue()


def without_member(path, key):
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
        for info in src.infolist():
            if info.filename != f"{key}.npy":
                dst.writestr(info, src.read(info))
    tmp.replace(path)


@pytest.mark.parametrize("corrupt,msg", [
    (lambda d: (d / "manifest.json").write_text("[" * 100_000 + "]" * 100_000), "manifest.json: file: JSON nested"),
    (lambda d: (d / "manifest.json").write_text('{"tile": 1' + "0" * 5000 + "}"),
     "manifest.json: file: not valid JSON"),
    (lambda d: ((d / "manifest.json").unlink(), (d / "manifest.json").mkdir()), "is a directory"),
    (lambda d: edit_manifest(d, lambda m: m.update(balanse="smooth")), "manifest.json: balanse: unknown key; known:"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][3].update(strid=2)),
     "manifest.json: layers.down.strid: unknown key; known:"),
    (lambda d: edit_manifest(d, lambda m: m["input"].update(shpe=[1])), "manifest.json: input.shpe: unknown key"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][0].update(name="conv1\nfake ok")),
     "layers[0].name: 'conv1\\nfake ok' must be unique, non-empty, printable"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][0].update(name="\x1b[2Kconv1")),
     "must be unique, non-empty, printable"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][1].update(file="conv1.npz")),
     "layers.conv2.file: 'conv1.npz' must be"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][3].update(stride=99)), "layers.down.stride: stride 1..16"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][3].update(padding=3)), "padding 0..kernel-1 (2)"),
    (lambda d: edit_manifest(d, lambda m: m["layers"][5].update(padding=9)), "layers.pool.padding: unknown key"),
    (lambda d: edit_manifest(d, lambda m: m.update(act_bits=True)), "act_bits: must be an integer in 4..8"),
    (lambda d: rewrite(d, "down", W=np.zeros((16, 8, 0, 0), np.int8)),
     "down.npz: W: must be [K, C, kh, kw] with kernel"),
    (lambda d: rewrite(d, "conv1", junk=np.zeros(3)), "conv1.npz: junk.npy: unknown or repeated key"),
    (lambda d: (without_member(d / "conv1.npz", "x"), add_member(d / "conv1.npz", "x.npy", npy_header((10**6, 10**6)))),
     "conv1.npz: x: declares 1000000000000 bytes, more than the format's"),
    (lambda d: (without_member(d / "conv1.npz", "x"), add_member(d / "conv1.npz", "x.npy", npy_header((2, 4, 10, 10)))),
     "conv1.npz: x: holds 0 data bytes, its header declares 800"),
    (lambda d: (without_member(d / "conv1.npz", "bias"), add_member(d / "conv1.npz", "bias.npy", b"\x93NUMPY\x03\x00")),
     "conv1.npz: bias: npy version (3, 0) is not supported"),
])
def test_bad_model_dir_is_one_line(tiny, capsys, corrupt, msg):
    corrupt(tiny)
    with pytest.raises(FormatError) as e:
        load_model(tiny)
    assert msg in str(e.value) and "\n" not in str(e.value) and "Error" not in str(e.value)
    assert cli.main(["check", str(tiny)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and msg in err


def test_unknown_key_is_refused_without_decompressing(tiny, monkeypatch):
    """A large compressed extra key: refused from the zip directory, its data never opened."""
    add_member(tiny / "conv2.npz", "junk.npy", npy_header((64 << 20,)) + bytes(64 << 20), zipfile.ZIP_DEFLATED)
    opened = []
    real = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(getattr(name, "filename", name)), real(self, name, *a, **k))[1])
    with pytest.raises(FormatError, match="conv2.npz: junk.npy: unknown or repeated key"):
        load_model(tiny)
    assert "junk.npy" not in opened


def test_huge_declared_shape_matching_the_manifest_is_refused_before_allocation(tiny):
    edit_manifest(tiny, lambda m: m.update(layers=[dict(m["layers"][5], inputs=["input"],
                                                        in_shape=[16, 100000, 100000], out_shape=[16, 1, 1],
                                                        kernel=100000, stride=100000)],
                                           input={"shape": [16, 100000, 100000]}))
    without_member(tiny / "pool.npz", "x")
    add_member(tiny / "pool.npz", "x.npy", npy_header((2, 16, 100000, 100000)))
    with pytest.raises(FormatError, match="pool.npz: x: declares 320000000000 bytes"):
        load_model(tiny)


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_symlinked_layer_file_is_refused(tiny, tmp_path, target):
    real = tmp_path / "elsewhere.npz" if target == "outside" else tiny / "copy.npz"
    shutil.move(tiny / "fc.npz", real)
    (tiny / "fc.npz").symlink_to(real)
    with pytest.raises(FormatError, match="fc.npz: file: must be a regular file in the model dir, not a symlink"):
        load_model(tiny)


def test_long_names_keep_the_columns(tiny, capsys):
    long = "a_rather_long_layer_name_from_a_real_network.block3.conv2"
    edit_manifest(tiny, lambda m: m["layers"][0].update(name=long))
    edit_manifest(tiny, lambda m: m["layers"][2].update(inputs=["conv2", long]))
    edit_manifest(tiny, lambda m: m["layers"][1].update(inputs=[long]))
    assert cli.main(["check", str(tiny)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert len({row.index(" outputs") for row in rows}) == 1
    assert rows[0].split()[0] == long


def test_model_name_must_be_printable(tiny):
    edit_manifest(tiny, lambda m: m.update(model="tiny\x1b[2K"))
    with pytest.raises(FormatError, match="model: .* must be printable"):
        load_model(tiny)


# -- the writer replaces only a model dir and honours the umask ----------------------------------------

def _tiny_parts():
    m = load_model(TINY)
    return m.manifest, {layer.name: dict(layer.arrays) for layer in m.layers}


def test_write_model_replaces_only_a_model_dir(tmp_path):
    manifest, arrays = _tiny_parts()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(UsageError, match="--export .*other: exists and is not a model dir"):
        write_model(other, manifest, arrays, flag="--export")
    assert (other / "keep.txt").read_text() == "precious"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        write_model(f, manifest, arrays)
    out = tmp_path / "model"
    write_model(out, manifest, arrays)
    assert is_model_dir(out)
    write_model(out, manifest, arrays)                # a model dir is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "model", "other"]
    (out / "notes.txt").write_text("mine")            # ...but not one holding other files
    assert not is_model_dir(out)
    with pytest.raises(UsageError, match="not a model dir"):
        write_model(out, manifest, arrays)


def test_is_model_dir(tmp_path):
    assert not is_model_dir(tmp_path / "absent")
    web = tmp_path / "web"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "a web app"}')
    assert not is_model_dir(web)
    assert is_model_dir(TINY)


def test_written_model_dir_honours_the_umask(tmp_path):
    manifest, arrays = _tiny_parts()
    old = os.umask(0o022)
    try:
        write_model(tmp_path / "m", manifest, arrays)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()} == {0o644}


def test_write_model_refuses_unsafe_file_names_before_writing(tmp_path):
    manifest, arrays = _tiny_parts()
    manifest = dict(manifest, layers=[dict(manifest["layers"][0], file="../escape.npz"), *manifest["layers"][1:]])
    with pytest.raises(FormatError, match="must be a plain .npz file name"):
        write_model(tmp_path / "m", manifest, arrays)
    assert list(tmp_path.iterdir()) == []


# -- the config JSON ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,msg", [
    ('{"wino_config": 99}', "wino_config: version 99 is not supported"),
    ('{"wino_config": true}', "wino_config: version True is not supported"),
    ("[" * 100_000, "config JSON: JSON nested too deeply"),
    ('{"tile": 1' + "0" * 5000 + "}", "config JSON: not valid JSON"),
    ("[1]", "config JSON: expected an object"),
])
def test_config_json_refusals(text, msg):
    with pytest.raises(ConfigError) as e:
        AcceleratorConfig.from_json(text)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_config_load_and_save(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        AcceleratorConfig.load(tmp_path)
    cfg = AcceleratorConfig(tile=2)
    cfg.save(tmp_path / "c.json")
    assert AcceleratorConfig.load(tmp_path / "c.json") == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]
    with pytest.raises(UsageError, match="--config-out: cannot write"):
        cfg.save(tmp_path / "missing" / "c.json", "--config-out")


def test_compressed_and_fortran_order_npz_are_read(tiny):
    """The header-first reader takes what numpy writes: savez_compressed, Fortran order."""
    with np.load(tiny / "conv2.npz") as z:
        a = {k: z[k] for k in z.files}
    np.savez_compressed(tiny / "conv2.npz", **{**a, "U": np.asfortranarray(a["U"])})
    assert np.array_equal(load_model(tiny).layer("conv2").arrays["U"], a["U"])
