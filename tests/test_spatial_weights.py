"""Spatial int8 weights transformed on chip: golden's integer G', the U requant against exact
fractions, and the model-dir format /2 that carries W instead of (or beside) U."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wino_gen import format as wformat
from wino_gen import golden, network, winograd
from wino_gen.golden import Requant

ROOT = Path(__file__).resolve().parents[1]
TILES = (2, 4, 6)
BALANCES = ("none", "smooth")


def _exact_U(W, s_ratio, tile, balance):
    """``floor(G_int (W * s) G_intᵀ [i, j] + 1/2)`` saturated, in exact rationals, for one
    kernel ``W[3, 3]`` and per-tap rational ratios ``s[i][j]`` (= s_w / s_u)."""
    G = winograd.integer_forms(tile, balance).G
    n = tile + 2
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            v = sum(G[i, a] * int(W[a, b]) * G[j, b] for a in range(3) for b in range(3)) * s_ratio[i][j]
            out[i, j] = min(max(math.floor(v + Fraction(1, 2)), -128), 127)
    return out


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("balance", BALANCES)
def test_spatial_forms_are_the_smallest_integer_rows(tile, balance):
    Gp, d = golden.spatial_forms(tile, balance)
    G = winograd.integer_forms(tile, balance).G
    for i in range(tile + 2):
        assert all(Fraction(int(Gp[i, k])) == G[i, k] * int(d[i]) for k in range(3))
        assert math.gcd(*map(int, Gp[i])) == 1 and d[i] > 0
    np.testing.assert_array_equal(Gp, golden.spatial_forms(tile, "none")[0])   # one G' per tile


@pytest.mark.parametrize("tile", TILES)
def test_spatial_transform_exact_and_widths_tight(tile):
    rng = np.random.default_rng(tile)
    W = rng.integers(-128, 128, (5, 3, 3, 3))
    T = golden.spatial_transform(W, tile)
    Gp, _ = golden.spatial_forms(tile)
    for k, c in ((0, 0), (4, 2)):
        want = [[sum(int(Gp[i, a]) * int(W[k, c, a, b]) * int(Gp[j, b]) for a in range(3) for b in range(3))
                 for j in range(tile + 2)] for i in range(tile + 2)]
        np.testing.assert_array_equal(T[k, c], want)
    s1_bits, full_bits = golden.spatial_widths(tile)
    # the worst case is reached: every weight -128 times the sign of its coefficient
    i = int(np.argmax(np.abs(Gp).sum(1)))
    worst = -128 * np.outer(np.sign(Gp[i]), np.sign(Gp[i]))
    t = int(golden.spatial_transform(worst, tile)[i, i])
    assert t == -128 * int(np.abs(Gp[i]).sum()) ** 2
    lo, hi = golden.int_range(full_bits)
    assert lo <= -abs(t) and abs(t) <= hi and not (golden.int_range(full_bits - 1)[1] >= abs(t))
    assert full_bits == 14 if tile > 2 else full_bits == 12
    assert s1_bits == golden.signed_bits(-128 * int(np.abs(Gp).sum(1).max()), 128 * int(np.abs(Gp).sum(1).max()))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("balance", BALANCES)
def test_pow2_tap_scales_give_the_exact_U(tile, balance):
    """With per-tap scales s_w / (d_i d_j 2**k) (and at F2 any pow2 s_w / s_u) the U requant
    is a shift and U equals the exact rational quantization of G_int (s_w W) G_intᵀ."""
    rng = np.random.default_rng(7)
    W = np.concatenate([rng.integers(-128, 128, (6, 1, 3, 3)),
                        np.full((1, 1, 3, 3), -128), np.full((1, 1, 3, 3), 127)])
    s_w = 2.0 ** -7
    s_u = golden.pow2_tap_scales(s_w, 0.011, tile, balance)
    u = golden.quantize_ratio(golden.weight_ratio(s_w, s_u, tile, balance), "pow2")
    np.testing.assert_array_equal(golden.ratio_of(u), golden.weight_ratio(s_w, s_u, tile, balance))
    U = golden.transform_weights(W, u, tile)
    ratio = [[Fraction(float(x)) for x in row] for row in s_w / s_u]
    for k in range(len(W)):
        np.testing.assert_array_equal(U[k, 0], _exact_U(W[k, 0], ratio, tile, balance))


def test_pow2_layer_scale_is_exact_only_at_f2():
    """One layer scale: the odd parts of d_i d_j (3 and 9 at F4) cannot be a shift."""
    for tile, exact in ((2, True), (4, False), (6, False)):
        r = golden.weight_ratio(2.0 ** -7, 2.0 ** -4, tile)
        assert np.all(np.log2(r) == np.rint(np.log2(r))) == exact


def test_fixed_mult_differs_only_at_ties():
    """A 16-bit mult for the 1/9 of F4's layer scale: U equals the exact rounding except where
    the exact value is a tie (x.5), and there by one."""
    tile, s_w, s_u = 4, 2.0 ** -7, 2.0 ** -5
    W = np.random.default_rng(3).integers(-128, 128, (64, 1, 3, 3))
    u = golden.quantize_ratio(golden.weight_ratio(s_w, s_u, tile), "fixed")
    U = golden.transform_weights(W, u, tile)
    G = winograd.integer_forms(tile).G
    ratio = Fraction(s_w) / Fraction(s_u)
    for k in range(len(W)):
        want = _exact_U(W[k, 0], [[ratio] * 6] * 6, tile, "none")
        for i, j in zip(*np.nonzero(U[k, 0] != want), strict=True):
            v = sum(G[i, a] * int(W[k, 0, a, b]) * G[j, b] for a in range(3) for b in range(3)) * ratio
            assert (v + Fraction(1, 2)).denominator == 1 and abs(int(U[k, 0, i, j]) - int(want[i, j])) == 1


# -- the model dir ------------------------------------------------------------------------------

def _spatial_dir(tmp_path, *, keep_u: bool, tile=4, tamper=False):
    """A one-layer model dir whose Winograd layer carries W (and U when ``keep_u``)."""
    rng = np.random.default_rng(1)
    C, K, H = 3, 4, 6
    W = rng.integers(-128, 128, (K, C, 3, 3))
    s_w = 2.0 ** -7
    s_u = golden.pow2_tap_scales(s_w, 0.02, tile)
    u = golden.quantize_ratio(golden.weight_ratio(s_w, s_u, tile), "pow2")
    U = golden.transform_weights(W, u, tile)
    x = rng.integers(-128, 128, (2, C, H, H))
    v, m, y = Requant(1, 2), Requant(1, 7), Requant(1, 3)
    out = golden.winograd_conv3x3(x, U, np.zeros(K), tile=tile, v=v, m=m, y=y, relu=True)
    arrays = {"W": W.astype(np.int8), "u_mult": u.mult.astype(np.int32), "u_shift": u.shift.astype(np.int32),
              "bias": np.zeros(K, np.int32), "x": x.astype(np.int8), "y": out.astype(np.int8),
              **{f"{p}_{f}": np.int32(getattr(r, f)) for p, r in (("v", v), ("m", m), ("y", y))
                 for f in ("mult", "shift")}, "m_align": np.int32(0)}
    if keep_u:
        arrays["U"] = (U + (np.arange(U.size).reshape(U.shape) == 5) if tamper else U).astype(np.int8)
    manifest = {"model": "spatial", "tile": tile, "granularity": "layer", "requant": "pow2",
                "input": {"shape": [C, H, H]},
                "layers": [{"name": "conv", "op": "winograd_conv3x3", "inputs": ["input"], "in_shape": [C, H, H],
                            "out_shape": [K, H, H], "padding": 1, "relu": True}]}
    return wformat.write_model(tmp_path / "m", manifest, {"conv": arrays}), U


@pytest.mark.parametrize("keep_u", [False, True])
def test_model_dir_with_spatial_weights_checks(tmp_path, keep_u):
    model, U = _spatial_dir(tmp_path, keep_u=keep_u)
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["format"] == wformat.FORMAT_SPATIAL
    layer = model.layers[0]
    assert ("U" in layer.arrays) == keep_u
    np.testing.assert_array_equal(network.winograd_weights(model, layer), U)
    r = subprocess.run([sys.executable, "-m", "wino_gen", "check", str(tmp_path / "m")], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 mismatches" in r.stdout


def test_stored_U_must_equal_the_transform(tmp_path):
    with pytest.raises(wformat.FormatError, match=r"conv.npz: U: differs from the transform of W in 1 values"):
        _spatial_dir(tmp_path, keep_u=True, tamper=True)


def _rewrite(path: Path, name: str, drop=(), **extra):
    with np.load(path / name) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update(extra)
    np.savez(path / name, **arrays)


def test_spatial_keys_come_together_and_need_version_2(tmp_path):
    _spatial_dir(tmp_path, keep_u=False)
    root = tmp_path / "m"
    _rewrite(root, "conv.npz", drop=("u_shift",))
    with pytest.raises(wformat.FormatError, match=r"conv.npz: u_shift: missing \(W, u_mult, u_shift come together\)"):
        wformat.load_model(root)
    _rewrite(root, "conv.npz", drop=("W", "u_mult"))
    with pytest.raises(wformat.FormatError, match=r"conv.npz: U: missing"):
        wformat.load_model(root)
    m = json.loads((root / "manifest.json").read_text())
    m["format"] = wformat.FORMAT
    (root / "manifest.json").write_text(json.dumps(m))
    _rewrite(root, "conv.npz", W=np.zeros((4, 3, 3, 3), np.int8))
    with pytest.raises(wformat.FormatError, match=r"conv.npz: W.npy: spatial weights need \"format\": 'wino-int8/2'"):
        wformat.load_model(root)


def test_spatial_value_ranges(tmp_path):
    _spatial_dir(tmp_path, keep_u=False)
    root = tmp_path / "m"
    _rewrite(root, "conv.npz", u_mult=np.full((6, 6), 3, np.int32))
    with pytest.raises(wformat.FormatError, match=r"conv.npz: u_mult: values must lie in \[1, 1\]"):
        wformat.load_model(root)
    _rewrite(root, "conv.npz", u_mult=np.int32(1), W=np.zeros((4, 3, 5, 5), np.int8))
    with pytest.raises(wformat.FormatError, match=r"conv.npz: W: shape must be \(4, 3, 3, 3\)"):
        wformat.load_model(root)


def test_old_model_dirs_load_unchanged():
    model = wformat.load_model(ROOT / "examples" / "tiny")
    assert model.manifest["format"] == wformat.FORMAT
    for layer in model.layers:
        if layer.op == "winograd_conv3x3":
            assert network.winograd_weights(model, layer) is layer.arrays["U"]


# -- examples/tiny with spatial weights on the engine -------------------------------------------

def spatialize(src, path: Path, seed: int, *, extremes: bool = False):
    """``src`` (a model) with every Winograd layer's U replaced by random int8 kernels ``W``
    (``extremes``: +127 and -128 among them) and a per-tap U requant (``src``'s requant mode;
    ``fixed``: 8-bit mults) that takes each tap's peak to the int8 range; the reference inputs
    and outputs golden's run of the changed network (a wino-int8/2 model dir at ``path``)."""
    rng = np.random.default_rng(seed)
    manifest = {k: v for k, v in src.manifest.items() if k != "format"}
    manifest["layers"] = [{k: v for k, v in lay.items() if k != "file"} for lay in manifest["layers"]]
    arrays = {}
    for layer in src.layers:
        a = dict(layer.arrays)
        if layer.op == "winograd_conv3x3":
            W = rng.integers(-128, 128, (*a["U"].shape[:2], 3, 3))
            if extremes:
                W.flat[0], W.flat[-1] = 127, -128
            peak = np.maximum(np.abs(golden.spatial_transform(W, src.tile)).max(axis=(0, 1)), 1)
            u = golden.quantize_ratio(127.0 / peak, src.requant, mult_bits=8)
            del a["U"]
            a.update(W=W.astype(np.int8), u_mult=u.mult.astype(np.int32), u_shift=u.shift.astype(np.int32))
        arrays[layer.name] = a
    model = wformat.write_model(path, manifest, arrays)
    acts = network.run_model(model, model.layers[0].arrays["x"])
    for layer in model.layers:
        arrays[layer.name]["y"] = acts[layer.name].astype(np.int8)
        if "x" in arrays[layer.name]:
            arrays[layer.name]["x"] = acts[layer.inputs[0]].astype(np.int8)
        if "x2" in arrays[layer.name]:
            arrays[layer.name]["x2"] = acts[layer.inputs[1]].astype(np.int8)
    return wformat.write_model(path, manifest, arrays)


def spatial_tiny(path: Path, seed: int = 0) -> Path:
    """examples/tiny (pow2) with spatial weights (:func:`spatialize`)."""
    spatialize(wformat.load_model(ROOT / "examples" / "tiny"), path, seed)
    return path


def test_sim_runs_spatial_weights_on_the_engine(tmp_path):
    """``python -m sim DIR --weights spatial``: W and u_mult/u_shift go to the engine, which
    transforms them; every output byte matches and every Winograd layer's cycles equal perf's."""
    d = spatial_tiny(tmp_path / "tiny_w")
    r = subprocess.run([sys.executable, "-m", "sim", str(d), "--weights", "spatial", "--weight-lanes", "2",
                        "--samples", "1", "--layer", "conv1", "--layer", "conv3"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spatial weights" in r.stdout and ", 0 mismatches," in r.stdout
    rows = [line for line in r.stdout.splitlines() if "winograd_conv3x3" in line]
    assert len(rows) == 2
    for line in rows:
        cycles, pred = (int(v) for v in re.search(r"(\d+) cycles \(perf (\d+)\)", line).groups())
        assert cycles == pred, line


def test_sim_refuses_spatial_weights_without_W():
    r = subprocess.run([sys.executable, "-m", "sim", str(ROOT / "examples" / "tiny"), "--weights", "spatial"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "holds no spatial weights W" in r.stderr
