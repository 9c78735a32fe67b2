"""The host side (wino_gen.flow.host): bit patterns round-trip, beats are refused when their count
is not the schedule's, rtl never imports it, and whoever runs a layer builds the top."""

import ast
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from rtl.top import build_top
from sim.driver import run_layer
from sim.layers import random_direct, random_winograd
from wino_gen import golden
from wino_gen.config import AcceleratorConfig
from wino_gen.flow.host import DirectLayer, WinogradLayer, pack, unpack

ROOT = Path(__file__).resolve().parent.parent


def test_pack_unpack_round_trip_and_range():
    lay = data.StructLayout({"a": data.ArrayLayout(signed(5), 3), "b": unsigned(4),
                             "c": data.ArrayLayout(data.ArrayLayout(signed(3), 2), 2)})
    v = {"a": [-16, 15, -1], "b": 9, "c": [[-4, 3], [0, -1]]}
    assert unpack(lay, pack(lay, v)) == v
    for bad in ({"a": [16, 0, 0]}, {"b": 16}, {"b": -1}, {"c": [[4, 0], [0, 0]]}):
        with pytest.raises(ValueError, match="does not fit"):
            pack(lay, bad)


def test_collect_takes_exactly_the_schedules_beats():
    cfg = AcceleratorConfig(tile=2, unroll=2, max_width=16, max_channels=8)
    x, kw = random_winograd(cfg, 3, 3, 5, 6, np.random.default_rng(0))
    spec = WinogradLayer(cfg, **kw)
    n = spec.geometry(5, 6).n_out
    spec.collect([0] * n, 5, 6)
    for wrong in (n - 1, n + 1):
        with pytest.raises(ValueError):
            spec.collect([0] * wrong, 5, 6)
    dcfg = AcceleratorConfig(tile=2, unroll=2, algo="direct", max_width=16, max_channels=8)
    x, kw = random_direct(dcfg, 3, 3, 5, 6, np.random.default_rng(0))
    dspec = DirectLayer(dcfg, **kw)
    n = dspec.geometry(5, 6).n_out
    with pytest.raises(ValueError):
        dspec.collect([0] * (n + 1), 5, 6)


def test_rtl_does_not_import_the_host_side():
    """rtl holds the hardware and its layouts; the host side encodes layers with them, never the
    other way round (the self-test takes its layer already encoded)."""
    for path in sorted((ROOT / "rtl").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert name != "wino_gen.flow.host" and name.split(".")[0] != "sim", f"{path.name} imports {name}"


def test_run_layer_builds_a_fresh_top_per_sample():
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4)
    x, kw = random_winograd(cfg, 2, 1, 4, 4, np.random.default_rng(1))
    x = np.concatenate([x, x[:, :, ::-1]])      # two samples
    tops = []

    def top():
        tops.append(build_top(cfg))
        return tops[-1]
    r = run_layer(WinogradLayer(cfg, **kw), x, top=top)
    assert len(tops) == 2 and tops[0] is not tops[1]
    np.testing.assert_array_equal(r.y, golden.winograd_conv3x3(x, tile=2, cfg=cfg, **kw))
