"""Fuzz the CLI contract: a mutated model dir or config JSON gives exit 0, 1 (a real mismatch)
or 2 with exactly one ``error:`` line on stderr, never a traceback, and leaves every file as
it was. Runs the CLIs in-process through the same ``run_cli`` that ``python -m`` uses."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wino_gen.__main__ import main as wino_main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tiny"
DTYPES = ("int8", "int16", "int32", "int64", "uint8", "float32", "float64", "bool")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=6)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = wino_main(argv)
    return rc, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_contract(rc: int, err: str, allowed=(0, 1, 2)) -> None:
    assert rc in allowed, (rc, err)
    assert "Traceback" not in err
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny") / "tiny"
    shutil.copytree(EXAMPLE, d)
    return d


# -- mutations of a model dir -----------------------------------------------------------------

def _set_path(obj, path, value, delete=False):
    for key in path[:-1]:
        obj = obj[key]
    if delete:
        if isinstance(obj, dict):
            obj.pop(path[-1], None)
        else:
            del obj[path[-1]]
    else:
        obj[path[-1]] = value


@st.composite
def manifest_mutation(draw, manifest: dict):
    layers = manifest["layers"]
    where = draw(st.sampled_from(["top", "layer", "input"]))
    if where == "top":
        base, prefix = manifest, []
    elif where == "input":
        base, prefix = manifest["input"], ["input"]
    else:
        i = draw(st.integers(0, len(layers) - 1))
        base, prefix = layers[i], ["layers", i]
    key = draw(st.sampled_from(sorted(base)) | st.text(min_size=1, max_size=6))
    action = draw(st.sampled_from(["set", "delete"]))
    return prefix + [key], draw(json_values) if action == "set" else None, action == "delete"


@st.composite
def npz_mutation(draw, names: list[str]):
    return (draw(st.sampled_from(names)),
            draw(st.sampled_from(["truncate", "flip", "replace", "drop", "extra", "remove"])),
            draw(st.integers(0, 1 << 20)), draw(st.sampled_from(DTYPES)),
            draw(st.lists(st.integers(0, 5), max_size=5)), draw(st.integers(-(1 << 40), 1 << 40)))


def apply_npz(path: Path, how, pos, dtype, shape, value) -> None:
    raw = path.read_bytes()
    if how == "remove":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(raw[: pos % max(len(raw), 1)])
    elif how == "flip":
        b = bytearray(raw)
        b[pos % len(b)] ^= 1 << (pos % 8)
        path.write_bytes(bytes(b))
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        keys = sorted(arrays)
        key = keys[pos % len(keys)]
        if how == "drop":
            del arrays[key]
        else:
            a = np.full(shape, value % (1 << 7) if dtype in ("int8", "uint8") else value).astype(dtype)
            arrays[key if how == "replace" else f"extra{pos % 3}"] = a
        with zipfile.ZipFile(path, "w") as zf:
            for k, a in arrays.items():
                with zf.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, a, allow_pickle=False)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_check_on_mutated_model_dir(pristine, tmp_path, data):
    d = tmp_path / "m"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(pristine, d)
    manifest = json.loads((d / "manifest.json").read_text())
    if data.draw(st.booleans(), label="mutate manifest"):
        path, value, delete = data.draw(manifest_mutation(manifest), label="manifest")
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set_path(manifest, path, value, delete)
        (d / "manifest.json").write_text(json.dumps(manifest))
    else:
        names = sorted(p.name for p in d.glob("*.npz"))
        name, *how = data.draw(npz_mutation(names), label="npz")
        apply_npz(d / name, *how)
    before = snapshot(d)
    rc, _, err = run(["check", str(d)])
    assert_contract(rc, err)
    assert snapshot(d) == before


def test_check_pristine_passes(pristine):
    rc, out, err = run(["check", str(pristine)])
    assert (rc, err) == (0, "")
    assert "0 mismatches" in out.splitlines()[-1]


# -- mutations of a config JSON ---------------------------------------------------------------

CONFIG = {"wino_config": 1, "tile": 4, "unroll": 4, "unroll_in": 1, "act_bits": 8, "weight_bits": 8,
          "transform_bits": 8, "bias_bits": 32, "granularity": "layer", "balance": "none",
          "requant": "pow2", "mult_bits": 16, "max_tap_shift": 8, "algo": "winograd",
          "max_width": 64, "max_channels": 64}


# the config's JSON is what is fuzzed: a board the default config does not fit keeps each
# report from planning a whole network
FAST_REPORT = ["--board", "icebreaker", "--model", "resnet20"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(CONFIG)) | st.text(min_size=1, max_size=6), value=json_values,
       delete=st.booleans(), raw=st.none() | st.binary(max_size=40))
def test_report_on_mutated_config(tmp_path, key, value, delete, raw):
    cfg = dict(CONFIG)
    if delete:
        cfg.pop(key, None)
    else:
        cfg[key] = value
    f = tmp_path / "c.json"
    f.write_bytes(raw if raw is not None else json.dumps(cfg).encode())
    before = snapshot(tmp_path)
    rc, _, err = run(["report", "--config", str(f), "--json", *FAST_REPORT])
    assert_contract(rc, err, allowed=(0, 2))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("text", ["[" * 100_000, "{\"tile\": " + "9" * 5000 + "}", "\"x\"", "{}"])
def test_report_on_hostile_config(tmp_path, text):
    f = tmp_path / "c.json"
    f.write_text(text)
    rc, _, err = run(["report", "--config", str(f), *FAST_REPORT])
    assert_contract(rc, err, allowed=(0, 2))
