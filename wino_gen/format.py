"""The wino-int8 model dir: ``manifest.json`` plus one ``.npz`` per layer (spec: docs/format.md).

One reader, :func:`load_model`, validates everything (version, keys, dtypes, shapes, value
ranges, finite scales) and raises :class:`FormatError` naming the file and the field. It reads
each npz's array headers first and checks keys, dtypes and shapes against the manifest before
any data is decompressed, so a hostile file cannot exhaust memory. One writer,
:func:`write_model`, builds the dir in a temporary folder, validates it with the same reader and
only then moves it into place (replacing only a model dir), so a failed export leaves nothing
half-written.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import golden, limits, safeio
from .config import GRANULARITIES, REQUANT_MODES, TILES
from .errors import UsageError
from .limits import MAX_ALIGN, MAX_KERNEL, SHIFT_RANGE, STORED_BITS, int_range
from .winograd import BALANCES

FORMAT = "wino-int8/1"
#: The version of a model dir whose Winograd layers carry spatial weights (``W`` and the ``u_*``
#: weight-transform requant); :func:`write_model` writes it only for such a dir, so a /1 reader
#: refuses it by its version instead of by an unknown key.
FORMAT_SPATIAL = "wino-int8/2"
FORMATS = (FORMAT, FORMAT_SPATIAL)
MANIFEST = "manifest.json"
INPUT = "input"
MULT_MAX = limits.mult_range("fixed")[1]    # tests/test_reliability_format.py draws mults up to it
MAX_ARRAY_BYTES = 1 << 30    # no npz array may declare more than 1 GiB

OPS = ("winograd_conv3x3", "direct_conv", "add", "maxpool", "avgpool", "linear")
HARDWARE_OPS = ("winograd_conv3x3", "direct_conv")

_TOP_KEYS = ("format", "model", "tile", "granularity", "balance", "requant", "act_bits", "weight_bits",
             "transform_bits", "input", "layers")
_INPUT_KEYS = ("shape", "scale")
_LAYER_KEYS = ("name", "op", "inputs", "file", "in_shape", "out_shape", "scale_in", "scale_out")
# op -> manifest keys (besides _LAYER_KEYS) with their types
_SPEC_KEYS = {
    "winograd_conv3x3": {"padding": int, "relu": bool},
    "direct_conv": {"stride": int, "padding": int, "relu": bool},
    "add": {"relu": bool},
    "maxpool": {"kernel": int, "stride": int, "padding": int},
    "avgpool": {"kernel": int, "stride": int},
    "linear": {"relu": bool},
}
_OPTIONAL_SPEC = {("maxpool", "padding")}
#: op -> the parameters its npz holds besides the activations (``x``, ``y``, and ``x2`` of an add)
PARAM_KEYS = {
    "winograd_conv3x3": ("U", "bias", "v_mult", "v_shift", "m_mult", "m_shift", "m_align", "y_mult", "y_shift"),
    "direct_conv": ("W", "bias", "y_mult", "y_shift"),
    "add": ("a_mult", "b_mult", "shift"),
    "maxpool": (),
    "avgpool": ("mult", "shift"),
    "linear": ("W", "bias", "y_mult", "y_shift"),
}
#: The optional spatial weights of a ``winograd_conv3x3`` (format /2): int8 ``W[K, C, 3, 3]`` and
#: the weight-transform requant; with them ``U`` may be absent (``golden.transform_weights``).
SPATIAL_KEYS = ("W", "u_mult", "u_shift")


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
    def weight_bits(self) -> int:
        return self.manifest.get("weight_bits", 8)

    @property
    def transform_bits(self) -> int:
        """Saturation width of the Winograd-domain values V and M."""
        return self.manifest.get("transform_bits", 8)

    @property
    def samples(self) -> int:
        return len(self.layers[0].arrays["x"])

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


# -- reading: the manifest ----------------------------------------------------------------------

def _err(where: str, fld: str, problem: str) -> FormatError:
    return FormatError(f"{where}: {fld}: {problem}")


def _within(v: int, span: tuple[int, int]) -> bool:
    return span[0] <= v <= span[1]


def _span(span: tuple[int, int]) -> str:
    """``lo..hi``, or ``lo or hi`` for two values: a range as the messages show it."""
    lo, hi = span
    return f"{lo} or {hi}" if hi == lo + 1 else f"{lo}..{hi}"


def _want(where, d, key, typ, fld=None):
    fld = fld or key
    if key not in d:
        raise _err(where, fld, "missing")
    v = d[key]
    ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
    if not ok:
        raise _err(where, fld, f"expected {typ.__name__}, got {v!r}")
    return v


def _known_keys(where: str, prefix: str, d: dict, known) -> None:
    """Refuse a misspelled or foreign key instead of silently using a default for it."""
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise _err(where, prefix + unknown[0], f"unknown key; known: {', '.join(sorted(known))}")


def _scale(where, fld, v):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        raise _err(where, fld, f"scale must be a finite positive number, got {v!r}")


def _shape(where, fld, v, rank):
    if (not isinstance(v, list) or len(v) != rank
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in v)):
        raise _err(where, fld, f"expected a list of {rank} positive integers, got {v!r}")
    return tuple(v)


def _name(fld: str, name: str, names: set) -> None:
    if not name or name == INPUT or name in names or "/" in name or not name.isprintable():
        raise _err(MANIFEST, fld, f"{name!r} must be unique, non-empty, printable, without '/', not {INPUT!r}")


def _validate_manifest(m) -> None:
    if not isinstance(m, dict):
        raise _err(MANIFEST, "(top)", "expected a JSON object")
    if m.get("format") not in FORMATS:
        raise _err(MANIFEST, "format",
                   f"unsupported version {m.get('format')!r}; this reader takes {' or '.join(map(repr, FORMATS))}")
    _known_keys(MANIFEST, "", m, _TOP_KEYS)
    if not _want(MANIFEST, m, "model", str).isprintable():
        raise _err(MANIFEST, "model", f"{m['model']!r} must be printable")
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
        if key in m and (type(m[key]) is not int or not _within(m[key], STORED_BITS)):
            raise _err(MANIFEST, key, f"must be an integer in {_span(STORED_BITS)} (stored as int8), got {m[key]!r}")
    inp = _want(MANIFEST, m, "input", dict)
    _known_keys(MANIFEST, "input.", inp, _INPUT_KEYS)
    _shape(MANIFEST, "input.shape", inp.get("shape"), 3)
    if "scale" in inp:
        _scale(MANIFEST, "input.scale", inp["scale"])
    layers = _want(MANIFEST, m, "layers", list)
    if not layers:
        raise _err(MANIFEST, "layers", "empty")
    names, files = set(), set()
    for i, lay in enumerate(layers):
        _validate_entry(i, lay, names, files)


def _validate_entry(i: int, lay, names: set, files: set) -> None:
    """One entry of ``layers``: its name, op, file, inputs and op keys (not yet its shapes)."""
    if not isinstance(lay, dict):
        raise _err(MANIFEST, f"layers[{i}]", "expected an object")
    name = _want(MANIFEST, lay, "name", str, f"layers[{i}].name")
    _name(f"layers[{i}].name", name, names)
    names.add(name)
    op = _want(MANIFEST, lay, "op", str, f"layers.{name}.op")
    if op not in OPS:
        raise _err(MANIFEST, f"layers.{name}.op", f"{op!r} not in {OPS}")
    _known_keys(MANIFEST, f"layers.{name}.", lay, (*_LAYER_KEYS, *_SPEC_KEYS[op]))
    fname = _want(MANIFEST, lay, "file", str, f"layers.{name}.file")
    if (Path(fname).name != fname or not fname.endswith(".npz") or fname.startswith(".")
            or not fname.isprintable() or fname in files):
        raise _err(MANIFEST, f"layers.{name}.file", f"{fname!r} must be a plain .npz file name, one per layer")
    files.add(fname)
    inputs = _want(MANIFEST, lay, "inputs", list, f"layers.{name}.inputs")
    if not all(isinstance(s, str) for s in inputs):
        raise _err(MANIFEST, f"layers.{name}.inputs", "expected a list of layer names")
    for key, typ in _SPEC_KEYS[op].items():
        if key in lay or (op, key) not in _OPTIONAL_SPEC:
            _want(MANIFEST, lay, key, typ, f"layers.{name}.{key}")
    for key in ("scale_in", "scale_out"):
        if key in lay:
            _scale(MANIFEST, f"layers.{name}.{key}", lay[key])


# -- reading: what each layer's npz must hold ---------------------------------------------------

class _Want(NamedTuple):
    """An npz array's allowed shapes, dtype (``int8`` or ``int32``) and value range."""

    shapes: list[tuple[int, ...]]
    dtype: str
    lo: int | None = None
    hi: int | None = None


class _Header(NamedTuple):
    """An npy member's declared shape and dtype, read without its data."""

    member: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype


def _conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def _layer_wants(m: dict, lay: Layer, hdr: dict[str, _Header], shapes: dict[str, tuple],
                 n_samples: int | None) -> dict[str, _Want]:
    """Check one layer's manifest entry (inputs, shapes, op keys) and derive what its npz must
    hold, from the manifest and the declared shapes of ``x`` and ``W`` only."""
    f, spec, name = lay.file, lay.spec, lay.name
    act, w8 = int_range(m.get("act_bits", 8)), int_range(m.get("weight_bits", 8))
    n_in = 2 if lay.op == "add" else 1
    if len(lay.inputs) != n_in:
        raise _err(MANIFEST, f"layers.{name}.inputs", f"{lay.op} takes {n_in} input(s), got {lay.inputs}")
    for src in lay.inputs:
        if src not in shapes:
            raise _err(MANIFEST, f"layers.{name}.inputs", f"unknown or later layer {src!r}")
    raw_in = spec.get("in_shape")
    rank_in = len(raw_in) if lay.op == "linear" and isinstance(raw_in, list) and raw_in else 3
    in_shape = _shape(MANIFEST, f"layers.{name}.in_shape", raw_in, rank_in)
    out_shape = _shape(MANIFEST, f"layers.{name}.out_shape", spec.get("out_shape"), 1 if lay.op == "linear" else 3)
    for src in lay.inputs:
        if math.prod(shapes[src]) != math.prod(in_shape) or (lay.op != "linear" and shapes[src] != in_shape):
            raise _err(MANIFEST, f"layers.{name}.in_shape",
                       f"{in_shape} does not match the output {shapes[src]} of {src!r}")
    xs = hdr["x"].shape
    N = xs[0] if xs else 0
    if n_samples is not None and N != n_samples:
        raise _err(f, "x", f"holds {N} samples, other layers hold {n_samples}")
    if N < 1:
        raise _err(f, "x", "needs at least one sample")
    want = {"x": _Want([(N, *in_shape)], "int8", *act), "y": _Want([(N, *out_shape)], "int8", *act)}
    if lay.op == "add":
        if out_shape != in_shape:
            raise _err(MANIFEST, f"layers.{name}.out_shape", f"must equal in_shape {in_shape}")
        want["x2"] = _Want([(N, *in_shape)], "int8", *act)
        mult = _Want([()], "int32", *limits.ADD_MULT_RANGE)
        want.update(a_mult=mult, b_mult=mult, shift=_Want([()], "int32", *limits.ADD_SHIFT_RANGE))
    elif lay.op in ("maxpool", "avgpool"):
        _pool_shape(lay, in_shape, out_shape)
        if lay.op == "avgpool":
            want.update(mult=_Want([()], "int32", *limits.AVGPOOL_MULT_RANGE),
                        shift=_Want([()], "int32", *limits.AVGPOOL_SHIFT_RANGE))
    else:
        want.update(_weight_wants(m, lay, hdr, in_shape, out_shape, w8))
    shapes[name] = out_shape
    return want


def _weight_wants(m, lay: Layer, hdr, in_shape, out_shape, w8) -> dict[str, _Want]:
    """Weights, bias and requant parameters of a winograd_conv3x3, direct_conv or linear layer."""
    name, spec = lay.name, lay.spec
    C, K = in_shape[0], out_shape[0]
    shift = _Want([()], "int32", *SHIFT_RANGE)
    mult = _Want([()], "int32", *limits.mult_range(m["requant"]))
    want = {"bias": _Want([(K,)], "int32"), "y_mult": mult, "y_shift": shift}
    if lay.op == "winograd_conv3x3":
        n, p = m["tile"] + 2, spec["padding"]
        if not _within(p, limits.WINOGRAD_PADDING):
            raise _err(MANIFEST, f"layers.{name}.padding", f"must be {_span(limits.WINOGRAD_PADDING)}, got {p}")
        _out_shape(name, out_shape, (K, in_shape[1] + 2 * p - 2, in_shape[2] + 2 * p - 2))
        taps = [(), (n, n)]
        if "U" in hdr or "W" not in hdr:
            want["U"] = _Want([(K, C, n, n)], "int8", *w8)
        if "W" in hdr:
            want["W"] = _Want([(K, C, 3, 3)], "int8", *w8)
            want["u_mult"] = mult._replace(shapes=[(), (n, n)])
            want["u_shift"] = shift._replace(shapes=[(), (n, n)])
        for key in ("v", "m"):
            want[f"{key}_mult"] = mult._replace(shapes=taps)
            want[f"{key}_shift"] = shift._replace(shapes=taps)
        want["m_align"] = _Want(taps, "int32", 0, MAX_ALIGN)
    elif lay.op == "direct_conv":
        s, p = spec["stride"], spec["padding"]
        ws = hdr["W"].shape if "W" in hdr else ()
        if len(ws) != 4 or not all(1 <= k <= MAX_KERNEL for k in ws[2:]):
            raise _err(lay.file, "W", f"must be [K, C, kh, kw] with kernel sides 1..{MAX_KERNEL}, got shape {ws}")
        kh, kw = ws[2:]
        pads = limits.direct_padding_range(min(kh, kw))
        if not 1 <= s <= MAX_KERNEL or not _within(p, pads):
            raise _err(MANIFEST, f"layers.{name}.stride",
                       f"stride 1..{MAX_KERNEL} and padding 0..kernel-1 ({pads[1]}), got {s}, {p}")
        _out_shape(name, out_shape, (K, _conv_out(in_shape[1], kh, s, p), _conv_out(in_shape[2], kw, s, p)))
        want["W"] = _Want([(K, C, kh, kw)], "int8", *w8)
    else:
        want["W"] = _Want([(K, math.prod(in_shape))], "int8", *w8)
    return want


def _pool_shape(lay: Layer, in_shape, out_shape) -> None:
    k, s, p = lay.spec["kernel"], lay.spec["stride"], lay.spec.get("padding", 0)
    if k < 1 or s < 1 or not _within(p, limits.pool_padding_range(k)):
        raise _err(MANIFEST, f"layers.{lay.name}.kernel",
                   f"kernel, stride >= 1 and padding 0..kernel/2; got {k}, {s}, {p}")
    _out_shape(lay.name, out_shape, (in_shape[0], _conv_out(in_shape[1], k, s, p), _conv_out(in_shape[2], k, s, p)))


def _out_shape(name: str, got, want) -> None:
    if tuple(got) != tuple(want):
        raise _err(MANIFEST, f"layers.{name}.out_shape", f"must be {tuple(want)}, got {tuple(got)}")


# -- reading: the npz files ---------------------------------------------------------------------

def _npz_headers(root: Path, lay: Layer, fmt: str) -> dict[str, _Header]:
    """The npy headers of a layer's npz, read without decompressing any data; refuses a file
    that is a symlink or lies outside the model dir, and keys the layer does not take (the
    spatial weights only in a ``fmt`` /2 dir)."""
    path, f = root / lay.file, lay.file
    if path.is_symlink() or (path.exists() and path.resolve().parent != root.resolve()):
        raise _err(f, "file", "must be a regular file in the model dir, not a symlink")
    known = ("x", "y", *(("x2",) if lay.op == "add" else ()), *PARAM_KEYS[lay.op])
    optional = ("U", *SPATIAL_KEYS) if lay.op == "winograd_conv3x3" and fmt == FORMAT_SPATIAL else ()
    known = (*known, *(k for k in optional if k not in known))
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                key = info.filename.removesuffix(".npy")
                if lay.op == "winograd_conv3x3" and key in SPATIAL_KEYS and key not in known:
                    raise _err(f, info.filename, f"spatial weights need \"format\": {FORMAT_SPATIAL!r}")
                if key not in known or not info.filename.endswith(".npy") or key in out:
                    raise _err(f, info.filename, f"unknown or repeated key; a {lay.op} layer takes {', '.join(known)}")
                out[key] = _read_header(z, info, f, key)
    except FormatError:
        raise
    except FileNotFoundError:
        raise _err(f, "file", "missing") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, zlib.error) as e:
        raise _err(f, "file", f"not a readable npz ({type(e).__name__}: {e})") from None
    for key in known:
        if key not in out and key not in optional:
            raise _err(f, key, "missing")
    if optional:
        _spatial_keys(f, out)
    return out


def _spatial_keys(f: str, hdr: dict) -> None:
    """A /2 Winograd layer holds ``U``, or ``W`` with its ``u_mult``/``u_shift``, or both."""
    has = [k for k in SPATIAL_KEYS if k in hdr]
    if has and len(has) < len(SPATIAL_KEYS):
        missing = next(k for k in SPATIAL_KEYS if k not in hdr)
        raise _err(f, missing, f"missing ({', '.join(SPATIAL_KEYS)} come together)")
    if not has and "U" not in hdr:
        raise _err(f, "U", f"missing (a winograd_conv3x3 holds U, or {', '.join(SPATIAL_KEYS)}, or both)")


def _read_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, f: str, key: str) -> _Header:
    with z.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise _err(f, key, f"npy version {version} is not supported (1.0 or 2.0)")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp)
        offset = fp.tell()
    if dtype.hasobject or any(s < 0 for s in shape):
        raise _err(f, key, f"dtype {dtype} / shape {shape} cannot be stored")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise _err(f, key, f"declares {nbytes} bytes, more than the format's {MAX_ARRAY_BYTES} per array")
    if info.file_size != offset + nbytes:
        raise _err(f, key, f"holds {info.file_size - offset} data bytes, its header declares {nbytes}")
    return _Header(info, tuple(shape), dtype)


def _check_header(f: str, key: str, h: _Header, want: _Want) -> None:
    if h.dtype != np.dtype(want.dtype):
        raise _err(f, key, f"dtype must be {want.dtype}, got {h.dtype}")
    if h.shape not in want.shapes:
        shown = want.shapes if len(want.shapes) > 1 else want.shapes[0]
        raise _err(f, key, f"shape must be {shown}, got {h.shape}")


def _read_arrays(root: Path, f: str, hdr: dict[str, _Header]) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(root / f) as z:
            out = {}
            for key, h in hdr.items():
                with z.open(h.member) as fp:
                    out[key] = np.lib.format.read_array(fp, allow_pickle=False)
            return out
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as e:
        raise _err(f, "file", f"not a readable npz ({type(e).__name__}: {e})") from None


def _check_values(m: dict, f: str, arrays: dict[str, np.ndarray], wants: dict[str, _Want]) -> None:
    for key, w in wants.items():
        a = arrays[key]
        if a.size and w.lo is not None and (int(a.min()) < w.lo or int(a.max()) > w.hi):
            raise _err(f, key, f"values must lie in [{w.lo}, {w.hi}], got [{a.min()}, {a.max()}]")
    if "m_align" in arrays and m["granularity"] == "layer":
        for key in ("v_mult", "v_shift", "m_mult", "m_shift", "m_align"):
            a = arrays[key]
            if a.size and np.any(a != a.flat[0]):
                raise _err(f, key, "granularity 'layer' needs one value for every tap")
        if np.any(arrays["m_align"] != 0):
            raise _err(f, "m_align", "granularity 'layer' needs m_align = 0")
    if "u_mult" in arrays and "U" in arrays:
        _check_transform(m, f, arrays)


def _check_transform(m: dict, f: str, arrays: dict[str, np.ndarray]) -> None:
    """A stored ``U`` must be golden's transform of the stored ``W``."""
    u = golden.Requant(arrays["u_mult"].astype(np.int64), arrays["u_shift"].astype(np.int64))
    want = golden.transform_weights(arrays["W"], u, m["tile"], m.get("weight_bits", 8))
    bad = np.argwhere(want != arrays["U"])
    if len(bad):
        k, c, i, j = map(int, bad[0])
        raise _err(f, "U", f"differs from the transform of W in {len(bad)} values, first at [{k}, {c}, {i}, {j}]: "
                           f"stored {int(arrays['U'][k, c, i, j])}, transform {int(want[k, c, i, j])}")


def _load_layer(root: Path, m: dict, lay: Layer, shapes: dict[str, tuple], n_samples: int | None) -> int:
    """Validate one layer from its npz headers, then load its arrays into ``lay`` and check
    their values; returns the sample count."""
    hdr = _npz_headers(root, lay, m["format"])
    wants = _layer_wants(m, lay, hdr, shapes, n_samples)
    for key, w in wants.items():
        _check_header(lay.file, key, hdr[key], w)
    lay.arrays = _read_arrays(root, lay.file, hdr)
    _check_values(m, lay.file, lay.arrays, wants)
    return lay.arrays["x"].shape[0]


def load_model(path: str | Path) -> Model:
    """Read and validate a model dir; raises :class:`FormatError` on any problem."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError(f"{path}: not a model dir (no such directory)")
    if (path / MANIFEST).is_symlink():
        raise _err(MANIFEST, "file", "must be a regular file in the model dir, not a symlink")
    if not (path / MANIFEST).exists():
        raise _err(MANIFEST, "file", f"missing in {path}")
    try:
        manifest = safeio.read_json(path / MANIFEST, f"{MANIFEST}: file")
    except UsageError as e:
        raise FormatError(str(e)) from None
    _validate_manifest(manifest)
    shapes = {INPUT: tuple(manifest["input"]["shape"])}
    layers, n_samples = [], None
    for lay in manifest["layers"]:
        layer = Layer(lay["name"], lay["op"], list(lay["inputs"]), lay, lay["file"], {})
        n_samples = _load_layer(path, manifest, layer, shapes, n_samples)
        layers.append(layer)
    return Model(path, manifest, layers)


def is_model_dir(path: str | Path) -> bool:
    """True for a folder that holds a wino-int8 ``manifest.json`` and nothing but regular
    ``.npz`` files beside it: the only kind of folder :func:`write_model` may replace."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        m = safeio.read_json(path / MANIFEST, MANIFEST)
    except UsageError:
        return False
    if not isinstance(m, dict) or not str(m.get("format", "")).startswith("wino-int8/"):
        return False
    return all(p.name == MANIFEST or (p.suffix == ".npz" and p.is_file() and not p.is_symlink())
               for p in path.iterdir())


# -- writing ----------------------------------------------------------------------------------

def write_model(path: str | Path, manifest: dict, arrays: dict[str, dict[str, np.ndarray]],
                flag: str = "model dir") -> Model:
    """Write a model dir atomically: build it next to ``path``, validate, then move it in.

    ``path`` must be absent, empty or a model dir (:func:`is_model_dir`); anything else is
    refused with a :class:`~wino_gen.errors.UsageError` naming ``flag``. ``manifest`` may omit
    ``format`` and each layer's ``file`` (defaults: :data:`FORMAT`, or :data:`FORMAT_SPATIAL`
    when a Winograd layer's arrays hold ``W``, and ``<name>.npz``);
    ``arrays`` maps layer names to their npz contents.
    """
    path = Path(path)
    spatial = any(lay.get("op") == "winograd_conv3x3" and "W" in arrays.get(lay.get("name"), {})
                  for lay in manifest.get("layers", []) if isinstance(lay, dict))
    manifest = {"format": FORMAT_SPATIAL if spatial else FORMAT, **manifest}
    manifest["layers"] = [{"file": f"{lay['name']}.npz", **lay} for lay in manifest["layers"]]
    text = json.dumps(manifest, indent=2) + "\n"
    _validate_manifest(json.loads(text))      # file names are safe before anything is written
    with safeio.staged_dir(path, flag, is_kind=is_model_dir, kind="model dir") as tmp:
        (tmp / MANIFEST).write_text(text)
        for lay in manifest["layers"]:
            np.savez(tmp / lay["file"], **arrays[lay["name"]])
        model = load_model(tmp)
    model.path = path
    return model
