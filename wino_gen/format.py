"""The wino-int8 model dir: ``manifest.json`` plus one ``.npz`` per layer (spec: docs/format.md).

One reader, :func:`load_model`, validates everything (version, keys, dtypes, shapes, value
ranges, finite scales) and raises :class:`FormatError` naming the file and the field. One
writer, :func:`write_model`, builds the dir in a temporary folder, validates it with the same
reader and only then moves it into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import GRANULARITIES, REQUANT_MODES, TILES, int_range
from .errors import UsageError
from .winograd import BALANCES

FORMAT = "wino-int8/1"
MANIFEST = "manifest.json"
INPUT = "input"
SHIFT_RANGE = (-16, 62)
MAX_ALIGN = 16

OPS = ("winograd_conv3x3", "direct_conv", "add", "maxpool", "avgpool", "linear")
HARDWARE_OPS = ("winograd_conv3x3", "direct_conv")

# op -> manifest keys (besides name/op/inputs/file/in_shape/out_shape) with their types
_SPEC_KEYS = {
    "winograd_conv3x3": {"padding": int, "relu": bool},
    "direct_conv": {"stride": int, "padding": int, "relu": bool},
    "add": {"relu": bool},
    "maxpool": {"kernel": int, "stride": int, "padding": int},
    "avgpool": {"kernel": int, "stride": int},
    "linear": {"relu": bool},
}
# op -> npz keys besides x and y: name -> (dtype kind, shape rule)
_PARAM_KEYS = {
    "winograd_conv3x3": ("U", "bias", "v_mult", "v_shift", "m_mult", "m_shift", "m_align", "y_mult", "y_shift"),
    "direct_conv": ("W", "bias", "y_mult", "y_shift"),
    "add": ("x2", "a_mult", "b_mult", "shift"),
    "maxpool": (),
    "avgpool": ("mult", "shift"),
    "linear": ("W", "bias", "y_mult", "y_shift"),
}
_INT8 = ("x", "x2", "y", "U", "W")


class FormatError(UsageError):
    """A model dir that does not follow the format; the message names the file and the field."""


@dataclass
class Layer:
    name: str
    op: str
    inputs: list[str]
    spec: dict
    file: str
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["in_shape"])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["out_shape"])


@dataclass
class Model:
    path: Path
    manifest: dict
    layers: list[Layer]

    @property
    def name(self) -> str:
        return self.manifest["model"]

    @property
    def tile(self) -> int:
        return self.manifest["tile"]

    @property
    def granularity(self) -> str:
        return self.manifest["granularity"]

    @property
    def balance(self) -> str:
        """Integer-form balance of the Winograd layers (``wino_gen.winograd.BALANCES``)."""
        return self.manifest.get("balance", "none")

    @property
    def requant(self) -> str:
        return self.manifest["requant"]

    @property
    def act_bits(self) -> int:
        return self.manifest.get("act_bits", 8)

    @property
    def samples(self) -> int:
        return len(self.layers[0].arrays["x"])

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


# -- reading ----------------------------------------------------------------------------------

def _err(where: str, fld: str, problem: str) -> FormatError:
    return FormatError(f"{where}: {fld}: {problem}")


def _want(where, d, key, typ, fld=None):
    fld = fld or key
    if key not in d:
        raise _err(where, fld, "missing")
    v = d[key]
    ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
    if typ is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok:
        raise _err(where, fld, f"expected {typ.__name__}, got {v!r}")
    return v


def _scale(where, fld, v):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        raise _err(where, fld, f"scale must be a finite positive number, got {v!r}")


def _shape(where, fld, v, rank):
    if (not isinstance(v, list) or len(v) != rank
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in v)):
        raise _err(where, fld, f"expected a list of {rank} positive integers, got {v!r}")
    return tuple(v)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise _err(path.name, "file", "missing") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise _err(path.name, "file", f"not a readable npz ({type(e).__name__}: {e})") from None


def _check_array(file, key, a, shape, kind, lo=None, hi=None):
    fld = key
    if kind == "int8" and a.dtype != np.int8:
        raise _err(file, fld, f"dtype must be int8, got {a.dtype}")
    if kind == "int32" and a.dtype != np.int32:
        raise _err(file, fld, f"dtype must be int32, got {a.dtype}")
    if shape is not None and tuple(a.shape) not in (shape if isinstance(shape, list) else [shape]):
        raise _err(file, fld, f"shape must be {shape}, got {tuple(a.shape)}")
    if a.size and lo is not None and (int(a.min()) < lo or int(a.max()) > hi):
        raise _err(file, fld, f"values must lie in [{lo}, {hi}], got [{a.min()}, {a.max()}]")


def _conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def _validate_layer(m: dict, lay: Layer, shapes: dict[str, tuple], n_samples: int | None) -> int:
    """Check one layer's manifest entry against its arrays; returns the sample count."""
    f, a, spec = lay.file, lay.arrays, lay.spec
    act = int_range(m.get("act_bits", 8))
    w8 = int_range(m.get("weight_bits", 8))
    for key in ("x", "y", *_PARAM_KEYS[lay.op]):
        if key not in a:
            raise _err(f, key, "missing")
    n_in = 2 if lay.op == "add" else 1
    if len(lay.inputs) != n_in:
        raise _err(MANIFEST, f"layers.{lay.name}.inputs", f"{lay.op} takes {n_in} input(s), got {lay.inputs}")
    for src in lay.inputs:
        if src not in shapes:
            raise _err(MANIFEST, f"layers.{lay.name}.inputs", f"unknown or later layer {src!r}")
    raw_in = spec.get("in_shape")
    rank_in = len(raw_in) if lay.op == "linear" and isinstance(raw_in, list) and raw_in else 3
    in_shape = _shape(MANIFEST, f"layers.{lay.name}.in_shape", raw_in, rank_in)
    out_shape = _shape(MANIFEST, f"layers.{lay.name}.out_shape", spec.get("out_shape"),
                       1 if lay.op == "linear" else 3)
    for src in lay.inputs:
        if math.prod(shapes[src]) != math.prod(in_shape) or (lay.op != "linear" and shapes[src] != in_shape):
            raise _err(MANIFEST, f"layers.{lay.name}.in_shape",
                       f"{in_shape} does not match the output {shapes[src]} of {src!r}")
    x = a["x"]
    N = x.shape[0] if x.ndim else 0
    if n_samples is not None and N != n_samples:
        raise _err(f, "x", f"holds {N} samples, other layers hold {n_samples}")
    if N < 1:
        raise _err(f, "x", "needs at least one sample")
    _check_array(f, "x", x, (N, *in_shape), "int8", *act)
    _check_array(f, "y", a["y"], (N, *out_shape), "int8", *act)
    scalar = [()]
    shift_lo, shift_hi = SHIFT_RANGE
    mult_hi = 1 if m["requant"] == "pow2" else (1 << 24) - 1
    mult_lo = 1 if m["requant"] == "pow2" else 0
    C = in_shape[0]
    K = out_shape[0]
    if lay.op == "winograd_conv3x3":
        n = m["tile"] + 2
        p = spec["padding"]
        if p not in (0, 1):
            raise _err(MANIFEST, f"layers.{lay.name}.padding", f"must be 0 or 1, got {p}")
        want = (K, in_shape[1] + 2 * p - 2, in_shape[2] + 2 * p - 2)
        if out_shape != want:
            raise _err(MANIFEST, f"layers.{lay.name}.out_shape", f"must be {want}, got {out_shape}")
        _check_array(f, "U", a["U"], (K, C, n, n), "int8", *w8)
        taps = [(), (n, n)]
        for key in ("v_mult", "m_mult"):
            _check_array(f, key, a[key], taps, "int32", mult_lo, mult_hi)
        for key in ("v_shift", "m_shift"):
            _check_array(f, key, a[key], taps, "int32", shift_lo, shift_hi)
        _check_array(f, "m_align", a["m_align"], taps, "int32", 0, MAX_ALIGN)
        if m["granularity"] == "layer":
            for key in ("v_mult", "v_shift", "m_mult", "m_shift", "m_align"):
                if a[key].size and np.any(a[key] != a[key].flat[0]):
                    raise _err(f, key, "granularity 'layer' needs one value for every tap")
            if np.any(a["m_align"] != 0):
                raise _err(f, "m_align", "granularity 'layer' needs m_align = 0")
    elif lay.op in ("direct_conv", "linear"):
        if lay.op == "direct_conv":
            s, p = spec["stride"], spec["padding"]
            if s < 1 or p < 0:
                raise _err(MANIFEST, f"layers.{lay.name}.stride", f"stride >= 1 and padding >= 0, got {s}, {p}")
            W = a["W"]
            if W.ndim != 4:
                raise _err(f, "W", f"must be [K, C, kh, kw], got shape {W.shape}")
            _check_array(f, "W", W, (K, C, W.shape[2], W.shape[3]), "int8", *w8)
            want = (K, _conv_out(in_shape[1], W.shape[2], s, p), _conv_out(in_shape[2], W.shape[3], s, p))
            if out_shape != want:
                raise _err(MANIFEST, f"layers.{lay.name}.out_shape", f"must be {want}, got {out_shape}")
        else:
            _check_array(f, "W", a["W"], (K, math.prod(in_shape)), "int8", *w8)
        _check_array(f, "y_mult", a["y_mult"], scalar, "int32", mult_lo, mult_hi)
        _check_array(f, "y_shift", a["y_shift"], scalar, "int32", shift_lo, shift_hi)
    if lay.op in ("winograd_conv3x3", "direct_conv", "linear"):
        _check_array(f, "bias", a["bias"], (K,), "int32")
    if lay.op == "winograd_conv3x3":
        _check_array(f, "y_mult", a["y_mult"], scalar, "int32", mult_lo, mult_hi)
        _check_array(f, "y_shift", a["y_shift"], scalar, "int32", shift_lo, shift_hi)
    if lay.op == "add":
        if out_shape != in_shape:
            raise _err(MANIFEST, f"layers.{lay.name}.out_shape", f"must equal in_shape {in_shape}")
        _check_array(f, "x2", a["x2"], (N, *in_shape), "int8", *act)
        for key in ("a_mult", "b_mult"):
            _check_array(f, key, a[key], scalar, "int32", 0, (1 << 16) - 1)
        _check_array(f, "shift", a["shift"], scalar, "int32", 0, 31)
    if lay.op in ("maxpool", "avgpool"):
        k, s = spec["kernel"], spec["stride"]
        p = spec.get("padding", 0)
        if k < 1 or s < 1 or p < 0:
            raise _err(MANIFEST, f"layers.{lay.name}.kernel", f"kernel, stride >= 1, padding >= 0; got {k}, {s}, {p}")
        want = (C, _conv_out(in_shape[1], k, s, p), _conv_out(in_shape[2], k, s, p))
        if out_shape != want:
            raise _err(MANIFEST, f"layers.{lay.name}.out_shape", f"must be {want}, got {out_shape}")
        if lay.op == "avgpool":
            _check_array(f, "mult", a["mult"], scalar, "int32", 0, (1 << 16) - 1)
            _check_array(f, "shift", a["shift"], scalar, "int32", 0, 31)
    shapes[lay.name] = out_shape
    return N


def _validate_manifest(m) -> None:
    if not isinstance(m, dict):
        raise _err(MANIFEST, "(top)", "expected a JSON object")
    if m.get("format") != FORMAT:
        raise _err(MANIFEST, "format", f"unsupported version {m.get('format')!r}; this reader takes {FORMAT!r}")
    _want(MANIFEST, m, "model", str)
    tile = _want(MANIFEST, m, "tile", int)
    if tile not in TILES:
        raise _err(MANIFEST, "tile", f"{tile} not in {TILES}")
    if _want(MANIFEST, m, "granularity", str) not in GRANULARITIES:
        raise _err(MANIFEST, "granularity", f"{m['granularity']!r} not in {GRANULARITIES}")
    if m.get("balance", "none") not in BALANCES:
        raise _err(MANIFEST, "balance", f"{m['balance']!r} not in {BALANCES}")
    if _want(MANIFEST, m, "requant", str) not in REQUANT_MODES:
        raise _err(MANIFEST, "requant", f"{m['requant']!r} not in {REQUANT_MODES}")
    for key in ("act_bits", "weight_bits", "transform_bits"):
        if key in m and (not isinstance(m[key], int) or not 4 <= m[key] <= 8):
            raise _err(MANIFEST, key, f"must be an integer in 4..8 (stored as int8), got {m[key]!r}")
    inp = _want(MANIFEST, m, "input", dict)
    _shape(MANIFEST, "input.shape", inp.get("shape"), 3)
    if "scale" in inp:
        _scale(MANIFEST, "input.scale", inp["scale"])
    layers = _want(MANIFEST, m, "layers", list)
    if not layers:
        raise _err(MANIFEST, "layers", "empty")
    names = set()
    for i, lay in enumerate(layers):
        if not isinstance(lay, dict):
            raise _err(MANIFEST, f"layers[{i}]", "expected an object")
        name = _want(MANIFEST, lay, "name", str, f"layers[{i}].name")
        if not name or name == INPUT or name in names or "/" in name:
            raise _err(MANIFEST, f"layers[{i}].name", f"{name!r} must be unique, non-empty, not {INPUT!r}")
        names.add(name)
        op = _want(MANIFEST, lay, "op", str, f"layers.{name}.op")
        if op not in OPS:
            raise _err(MANIFEST, f"layers.{name}.op", f"{op!r} not in {OPS}")
        fname = _want(MANIFEST, lay, "file", str, f"layers.{name}.file")
        if Path(fname).name != fname or not fname.endswith(".npz"):
            raise _err(MANIFEST, f"layers.{name}.file", f"{fname!r} must be a plain .npz file name")
        inputs = _want(MANIFEST, lay, "inputs", list, f"layers.{name}.inputs")
        if not all(isinstance(s, str) for s in inputs):
            raise _err(MANIFEST, f"layers.{name}.inputs", "expected a list of layer names")
        for key, typ in _SPEC_KEYS[op].items():
            if key == "padding" and op == "maxpool" and key not in lay:
                continue
            _want(MANIFEST, lay, key, typ, f"layers.{name}.{key}")
        for key in ("scale_in", "scale_out"):
            if key in lay:
                _scale(MANIFEST, f"layers.{name}.{key}", lay[key])


def load_model(path: str | Path) -> Model:
    """Read and validate a model dir; raises :class:`FormatError` on any problem."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError(f"{path}: not a model dir (no such directory)")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise _err(MANIFEST, "file", f"missing in {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _err(MANIFEST, "file", f"not valid JSON ({e})") from None
    _validate_manifest(manifest)
    shapes = {INPUT: tuple(manifest["input"]["shape"])}
    layers, n_samples = [], None
    for lay in manifest["layers"]:
        arrays = _load_npz(path / lay["file"])
        layer = Layer(lay["name"], lay["op"], list(lay["inputs"]), lay, lay["file"], arrays)
        n_samples = _validate_layer(manifest, layer, shapes, n_samples)
        layers.append(layer)
    return Model(path, manifest, layers)


# -- writing ----------------------------------------------------------------------------------

def write_model(path: str | Path, manifest: dict, arrays: dict[str, dict[str, np.ndarray]]) -> Model:
    """Write a model dir atomically: build it next to ``path``, validate, then move it in.

    ``manifest`` may omit ``format`` and each layer's ``file`` (defaults: this version and
    ``<name>.npz``); ``arrays`` maps layer names to their npz contents.
    """
    path = Path(path)
    manifest = {"format": FORMAT, **manifest}
    manifest["layers"] = [{"file": f"{lay['name']}.npz", **lay} for lay in manifest["layers"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for lay in manifest["layers"]:
            np.savez(tmp / lay["file"], **arrays[lay["name"]])
        model = load_model(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.path = path
    return model
