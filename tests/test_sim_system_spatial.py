# amaranth: UnusedElaboratable=no
"""The whole system (rtl.system) with spatial weights: model dirs whose Winograd layers hold int8
3x3 kernels ``W`` and their U requant are compiled for a ``weights='spatial'`` build (9 bytes a
kernel in the image, the U requant in the parameter block) and run in pysim behind a memory of
random latency with stalls: every stored tensor equals the image interpreter's (which transforms
the kernels as ``golden.transform_weights``), and every COMPUTE's cycles equal the plan's price
of it (``plan.compute_costs``: the unit's setup with the U requant's parameter words, the spatial
core's exact cycles, the feeders' lag). An image for U weights or for another config is refused
before anything runs; ``python -m sim --system --weights spatial`` runs such a model dir."""

import dataclasses
import json

import numpy as np
import pytest
from test_spatial_weights import spatialize

import sim.__main__ as cli
from sim import system
from wino_gen import format as fmt
from wino_gen import network, plan
from wino_gen.compile import cli as compile_cli
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im
from wino_gen.errors import UsageError, run_cli
from wino_gen.example import _Builder
from wino_gen.format import INPUT

STALL = 0.2


def _net(tmp_path, name, *, tile, granularity, requant, size, seed):
    """A Winograd layer, a direct 3x3 stride-2 layer (K not a multiple of the unroll), a second
    Winograd layer, with spatial weights."""
    b = _Builder(tile, granularity, requant, np.random.default_rng(seed), 1, (3, size, size), 1 / 32)
    b.winograd("conv1", INPUT, 4)
    b.direct("down", "conv1", 5, stride=2)
    b.winograd("conv2", "down", 3)
    src = fmt.write_model(tmp_path / f"{name}_u", b.manifest, b.arrays)
    return spatialize(src, tmp_path / name, seed, extremes=True)


@pytest.fixture(scope="module")
def f4(tmp_path_factory):
    """F4, per-layer pow2 requant, 8x8 input, with its spatial config (unroll 2, a kernel word's
    kernels a cycle into the transform)."""
    model = _net(tmp_path_factory.mktemp("sp4"), "f4", tile=4, granularity="layer", requant="pow2", size=8, seed=1)
    return model, network.config_for(model, unroll=2, weights="spatial", weight_lanes=2)


def _compile(model, cfg, W: int, memory: str):
    return compiler.compile_model(model, cfg, options=plan.Options(weights=cfg.weights, port_bytes=W),
                                  memory_spec=memory, trace=True, port_bytes=W)


def _run_checked(model, cfg, *, W, memory, seed):
    """Compile for ``cfg``, run on the system with stalls; every stored tensor the interpreter's,
    every COMPUTE the plan's price, each layer's sum the plan's compute. Returns the rows
    (layer, measured, plan)."""
    c = _compile(model, cfg, W, memory)
    img = c.image
    assert img.weight_format == im.WEIGHTS_SPATIAL
    x = model.layers[0].arrays["x"][:img.batch]
    want = interp.run(img, cfg, x)
    run = system.run_image(img, cfg, x, word_bytes=W, memory=memory, stall=STALL, seed=seed,
                           max_pool=system.max_pool_for(model))
    end = next(i for i, ins in enumerate(img.program) if ins.OP == "END")
    assert run.status[:2] == (0, end), system.status_line(img, run.status)
    assert set(run.got) == set(want) == {lp.layer.name for lp in c.plan.layers}
    assert system.first_mismatch(c, want, run.got) is None
    costs = plan.compute_costs(c.plan, img.program)
    assert set(run.computes) == set(costs)
    per_layer = {}
    for i, (cycles, _) in sorted(run.computes.items()):
        assert cycles == costs[i], (i, img.program[i], cycles, costs[i])
        per_layer[img.program[i].layer] = per_layer.get(img.program[i].layer, 0) + cycles
    rows = [(lp.layer.name, per_layer[k], lp.cost.compute) for k, lp in enumerate(c.plan.layers)]
    for name, got, planned in rows:
        assert got == planned, name
        print(f"{name}: measured {got} cycles, plan {planned}")
    return rows


def test_f4_spatial_network_on_the_system(f4):
    """F4, kernels of a word a cycle into the transform, a 2-byte port of latency 5 with stalls."""
    model, cfg = f4
    rows = _run_checked(model, cfg, W=2, memory="2,5", seed=3)
    assert [r[0] for r in rows] == ["conv1", "down", "conv2"]


def test_f2_tap_fixed_one_lane(tmp_path):
    """F2, per-tap fixed requant (the U requant's mults read too), two input channels a step, one
    kernel a cycle into the transform (a word takes four beats), a 4-byte port of latency 3."""
    model = _net(tmp_path, "f2", tile=2, granularity="tap", requant="fixed", size=6, seed=2)
    cfg = network.config_for(model, unroll=2, unroll_in=2, weights="spatial", weight_lanes=1)
    _run_checked(model, cfg, W=4, memory="4,3", seed=5)


def test_compiled_image_file_runs(tmp_path, f4):
    """``python -m wino_gen compile DIR --config CFG --weights spatial -o image.bin`` (the board's
    2-byte port, the inference's own stores): the file runs on the system with stalls, its
    stored tensors the interpreter's."""
    model, cfg = f4
    cfg.save(tmp_path / "top.json")
    path = tmp_path / "image.bin"
    assert run_cli(compile_cli.main, [str(model.path), "--config", str(tmp_path / "top.json"), "--weights",
                                      "spatial", "-o", str(path)]) == 0
    img = im.read(path, "image")
    x = model.layers[0].arrays["x"][:img.batch]
    want = interp.run(img, cfg, x)
    run = system.run_image(img, cfg, x, word_bytes=img.port_bytes, memory="2,4", stall=STALL, seed=7)
    assert run.status[0] == 0, system.status_line(img, run.status)
    assert set(run.got) == set(want) and want
    for name in want:
        np.testing.assert_array_equal(run.got[name], want[name], err_msg=name)


def test_images_for_other_builds_are_refused(f4):
    """A spatial image on a U build and a U image on a spatial build (weight_format), and a
    spatial image on a spatial build of another config (its hash): one line, before a run."""
    model, cfg = f4
    img = _compile(model, cfg, 1, "1,0").image
    x = model.layers[0].arrays["x"][:1]
    ucfg = dataclasses.replace(cfg, weights="winograd", weight_lanes=1)
    uimg = dataclasses.replace(img, weight_format=im.WEIGHTS_U, config_sha256=im.config_sha256(ucfg))
    cases = [(img, ucfg, r"image: weight_format 1 \(spatial weights\), the system's core takes winograd weights"),
             (uimg, cfg, r"image: weight_format 0 \(winograd weights\), the system's core takes spatial weights"),
             (img, dataclasses.replace(cfg, weight_lanes=1),
              r"image: compiled for config sha256 [0-9a-f]{16}\.\.\., the system is built for [0-9a-f]{16}\.\.\.")]
    for image, build, message in cases:
        with pytest.raises(UsageError, match=f"^{message}") as e:
            system.run_image(image, build, x)
        assert "\n" not in str(e.value)


def test_cli_system_spatial(capsys, tmp_path, f4):
    """``python -m sim DIR --system --weights spatial``: the spatial build (its config in the
    JSON), 0 mismatches, every layer's measured COMPUTE cycles the plan's."""
    model, cfg = f4
    report = tmp_path / "r.json"
    rc = run_cli(cli.main, [str(model.path), "--system", "--weights", "spatial", "--weight-lanes", "2", "--unroll",
                            "2", "--memory", "2,4", "--stall", "0.2", "--json", str(report), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert "spatial weights (2 kernels a cycle)" in lines[0]
    assert lines[-1].startswith("sim: system, 3 layers, 1 image(s), ")
    got = json.loads(report.read_text())
    assert (got["config"], got["core"], got["mismatches"]) == (cfg.to_dict(), "dual-spatial", 0)
    assert [(r["layer"], r["measured"]) for r in got["layers"]] == [(r["layer"], r["plan"]) for r in got["layers"]]
