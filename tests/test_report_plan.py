"""``python -m wino_gen report``'s memory-aware plan (issue 12): the network ``--model`` names,
the per-layer table and the end-to-end figures beside the compute-only ones (labelled), the
Winograd vs direct line, the roofline PNG written whole, and bad input as one line, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from wino_gen import boards, nets, plan
from wino_gen.__main__ import main as cli
from wino_gen.example import make_tiny

R20 = ["--model", "resnet20", "--tile", "4", "--unroll", "4", "--max-channels", "64", "--max-width", "32",
       "--mhz", "81.6"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def report_json(capsys, *args) -> dict:
    assert cli(["report", "--json", *args]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def r20():
    """ResNet-20 on the ULX3S-85F, 144-multiplier F4: the default weights and U weights."""
    from wino_gen.flow import report
    args = report.parser().parse_args(R20[2:])
    cfg = report.make_config(report.given_settings(args))
    return {w: report.build_report(cfg, "ulx3s-85f", 81.6, "resnet20", nets.resnet20(),
                                   argparse.Namespace(**{**vars(args), "weights": w}))
            for w in (None, "winograd")}


def test_resnet20_plan_finds_the_issue_regimes(r20):
    """The planner alone picks spatial weights (on chip, compute-bound, faster than direct);
    asked for U weights it is memory-bound and slower than direct, as the issue expects."""
    best, u = r20[None], r20["winograd"]
    p = best["plan"]
    assert p["weights"] == "spatial" and p["limited_by"] == "compute" and best["winograd_vs_direct"] > 1.5
    assert set(best["other_weights"]) == {"winograd"}
    assert best["other_weights"]["winograd"]["ms_per_image"] > p["ms_per_image"]
    assert u["plan"]["limited_by"] == "memory" and u["winograd_vs_direct"] < 1
    assert u["plan"]["bytes_per_image"] > 0.5e6 > 0.1e6 > p["bytes_per_image"]
    assert [r["name"] for r in p["layers"]] == [la.name for la in nets.resnet20()]
    for r in p["layers"]:
        assert r["cycles"] >= max(r["compute_cycles"], r["memory_cycles"], r["bound_compute_cycles"])
        assert r["bound"] in ("compute", "memory") and (r["utilization"] is None) == (r["engine"] == "eltwise")
    assert p["cycles_per_image"] >= p["bound_cycles_per_image"] and p["ratio_to_bound"] >= 1
    assert p["ms_per_image"] == pytest.approx(p["cycles_per_image"] / 81.6e3)
    assert best["compute_only"]["label"].startswith("compute-only (ideal host")
    assert len(best["compute_only"]["layers"]) == sum(la.has_weights for la in nets.resnet20())


def test_report_text(r20):
    from wino_gen.flow import report
    text = report.format_report(r20[None])
    assert "memory-aware plan (wino_gen.plan): resnet20 on ulx3s-85f at 81.6 MHz, batch 1, spatial weights" in text
    assert "IS42S16160G-7 (32 MiB), 2 B/cycle peak" in text
    assert "Winograd vs direct: " in text and "end to end: " in text and "plan / bound" in text
    assert "end to end, compute-only: " in text and "compute-only (ideal host" in text
    assert text.splitlines()[-1].startswith("fits the ulx3s-85f")


def test_default_network_is_resnet18_and_model_dir_is_planned(capsys, tmp_path):
    """Without --model the report plans ResNet-18 (the compute-only table is today's); a model
    dir is planned with its real layers and sizes the config."""
    cfg = ["--tile", "2", "--unroll", "4", "--max-channels", "64", "--max-width", "64"]
    rep = report_json(capsys, *cfg, "--weights", "spatial", "--batch", "2")
    assert rep["network"] == "resnet18" and rep["plan"]["network"] == "resnet18" and rep["plan"]["batch"] == 2
    assert len(rep["compute_only"]["layers"]) == 11
    assert rep["plan"]["weights"] == "spatial" and rep["other_weights"] == {}
    make_tiny(tmp_path / "m", tile=4)
    rep = report_json(capsys, "--model", str(tmp_path / "m"), "--unroll", "2")
    assert rep["config"]["tile"] == 4 and rep["config"]["unroll"] == 2
    assert [r["op"] for r in rep["plan"]["layers"]] == ["conv", "conv", "add", "conv", "conv", "avgpool", "linear"]


def test_config_that_does_not_fit_gets_no_plan(capsys):
    assert cli(["report", "--tile", "4", "--unroll", "16"]) == 0
    out = capsys.readouterr().out
    assert "memory-aware plan of resnet18 on ulx3s-85f: none, the engine does not fit the board" in out
    assert out.splitlines()[-1].startswith("DOES NOT FIT the ulx3s-85f")


def test_plot_is_a_png_written_whole(capsys, tmp_path):
    out = tmp_path / "roof.png"
    assert cli(["report", *R20, "--plot", str(out)]) == 0, capsys.readouterr().err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["roof.png"]


@pytest.mark.parametrize("target", ["missing/roof.png", "."])
def test_plot_path_checked_before_work(capsys, tmp_path, monkeypatch, target):
    monkeypatch.setattr(plan, "plan", lambda *a, **k: pytest.fail("planned first"))
    assert cli(["report", *R20, "--plot", str(tmp_path / target)]) == 2
    assert "--plot" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("args,msg", [
    (["--batch", "0"], "--batch: must be >= 1"),
    (["--batch", "x"], "--batch"),
    (["--memory", "2"], "--memory: expected BYTES_PER_CYCLE,LATENCY"),
    (["--weights", "U"], "--weights"),
    (["--model", "resnet50"], "resnet50"),
    (["--mhz", "200"], "IS42S16160G-7: clock 200.0 MHz is outside 0..143.0 MHz"),
])
def test_bad_input_is_one_line(capsys, args, msg):
    assert cli(["report", *R20, *args]) == 2
    assert msg in one_error_line(capsys.readouterr().err)


def test_weights_that_do_not_fit_the_sdram(capsys):
    """ResNet-18's F4 U weights exceed the 32 MB SDRAM: asked for, one line; by default the
    report takes spatial weights and names why U was not taken."""
    f4 = ["--tile", "4", "--unroll", "4", "--max-channels", "128", "--max-width", "64"]
    assert cli(["report", *f4, "--weights", "winograd"]) == 2
    assert "weights: 38.1 MiB do not fit the 32.0 MiB IS42S16160G-7" in one_error_line(capsys.readouterr().err)
    rep = report_json(capsys, *f4)
    assert rep["plan"]["weights"] == "spatial" and "do not fit" in rep["other_weights"]["winograd"]


def test_board_without_memory(capsys, monkeypatch):
    bare = dataclasses.replace(boards.BOARDS["ulx3s-85f"], name="bare", external_ram="", weight_store="")
    monkeypatch.setitem(boards.BOARDS, "bare", bare)
    assert cli(["report", *R20, "--board", "bare"]) == 2
    assert one_error_line(capsys.readouterr().err).startswith("error: --board: bare has no memory model")


def test_model_dir_that_cannot_run_on_the_board(capsys, tmp_path):
    """The iCEBreaker has no external RAM: a model whose live activations exceed its on-chip
    RAM cannot run there: one line naming the layer and the limit."""
    make_tiny(tmp_path / "wide", tile=2, channels=4, size=112)
    assert cli(["report", "--board", "icebreaker", "--model", str(tmp_path / "wide"), "--unroll", "1",
                "--mhz", "30"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "res: 150528 bytes of activations must stay on chip (icebreaker has no external RAM)" in err
