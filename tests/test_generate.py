"""The generator CLI (``python -m wino_gen``: the core, ``--direct-only``, ``--engine``) and
``python -m wino_gen report``."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wino_gen.config import AcceleratorConfig
from wino_gen.flow.generate import Design, generate

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--tile", "2", "--unroll", "1", "--max-width", "8", "--max-channels", "4"]


def wino(*args):
    return subprocess.run([sys.executable, "-m", "wino_gen", *args], capture_output=True,
                          text=True, cwd=ROOT)


def _ports(text, kind):
    """``{port: width}`` of the top module ``wino_top`` in Verilog or RTLIL text."""
    if kind == "verilog":
        body = text[text.index("module wino_top("):]
        body = body[:body.index("endmodule")]
        found = re.findall(r"^  (?:input|output) (?:\[(\d+):0\] )?(\w+);", body, re.M)
        return {name: int(hi) + 1 if hi else 1 for hi, name in found}
    body = text[text.index("module \\wino_top\n"):]
    body = body[:body.index("\nend\n")]
    found = re.findall(r"^  wire (?:width (\d+) )?(?:input|output) \d+ +\\(\w+)$", body, re.M)
    return {name: int(w) if w else 1 for w, name in found}


def _core_ports(cfg, *, direct_only):
    """The core's ports and their widths, from its layouts."""
    from amaranth.hdl import Shape

    from rtl.core import core_layer_layout, core_out_layout
    from rtl.pe import weight_stream_layout
    from rtl.tilebuf import input_beat_layout
    from wino_gen.flow.generate import DEFAULT_MAX_KERNEL
    x = Shape.cast(input_beat_layout(cfg)).width
    return {"layer": Shape.cast(core_layer_layout(cfg, DEFAULT_MAX_KERNEL, direct_only=direct_only)).width,
            "start": 1, "busy": 1, "clk": 1, "rst": 1,
            **{f"{s}__{f}": 1 for s in ("x", "x2", "w", "o") for f in ("valid", "ready")},
            "x__payload": x, "x2__payload": x, "w__payload": Shape.cast(weight_stream_layout(cfg)).width,
            "o__payload": Shape.cast(core_out_layout(cfg)).width}


def test_core_verilog_on_stdout_config_out(tmp_path):
    """The default design is the core: its command and streams are the module's ports, its
    Winograd front is in it."""
    cfg_path = tmp_path / "top.json"
    r = wino(*SMALL, "--granularity", "tap", "--requant", "fixed", "--config-out", str(cfg_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.lstrip().startswith(("/*", "(*", "module"))
    assert "module wino_top(" in r.stdout and "endmodule" in r.stdout.rstrip()[-20:]
    assert "wino_gen: core (rtl.core" in r.stderr and "wino_gen:" not in r.stdout
    cfg = AcceleratorConfig.load(cfg_path)
    assert (cfg.tile, cfg.unroll, cfg.granularity, cfg.requant) == (2, 1, "tap", "fixed")
    assert _ports(r.stdout, "verilog") == _core_ports(cfg, direct_only=False)
    assert "module \\wino_top.tbuf " in r.stdout and "module \\wino_top.gen " in r.stdout


def test_direct_only_rtlil_and_config_roundtrip(tmp_path):
    """``--direct-only`` from a saved direct config: the core without Winograd mode (its
    command has no Winograd field, no tile buffer), the config written back as used."""
    base = tmp_path / "base.json"
    AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4, algo="direct").save(base)
    r = wino("--config", str(base), "--unroll", "2", "--direct-only", "--rtlil", "--config-out",
             str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    assert "direct-only core" in r.stderr
    cfg = AcceleratorConfig.load(tmp_path / "o.json")
    assert (cfg.algo, cfg.unroll, cfg.max_width) == ("direct", 2, 8)
    assert _ports(r.stdout, "rtlil") == _core_ports(cfg, direct_only=True)
    assert "module \\wino_top.gen\n" in r.stdout and "wino_top.tbuf" not in r.stdout


def test_engine_flag_emits_the_standalone_engine():
    """``--engine``: ``rtl.top``'s engine, its own ports (the Winograd engine's command word,
    no second operand stream)."""
    from amaranth.hdl import Shape

    from rtl.top import winograd_layer_layout
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4)
    ports = _ports(generate(cfg, rtlil=True, design=Design(engine=True)), "rtlil")
    assert ports["layer"] == Shape.cast(winograd_layer_layout(cfg)).width
    assert "x2__payload" not in ports and "o__payload" in ports


@pytest.mark.parametrize("args", [["--tile", "5"], ["--unroll", "0"], ["--unroll", "x"],
                                  ["--algo", "fft"], ["--bogus"], ["--act-bits", "20"],
                                  ["--max-channels", "10", "--unroll-in", "4"],
                                  ["--config", "/nonexistent.json"],
                                  ["--algo", "direct"], ["--weights", "spatial"],
                                  ["--engine", "--direct-only"], ["--engine", "--max-kernel", "3"],
                                  ["--max-kernel", "0"], ["--max-kernel", "16"], ["--max-pool", "1"],
                                  ["--max-width", "8", "--max-kernel", "9"],
                                  ["--max-width", "8", "--max-pool", "9"]])
def test_bad_input(args):
    r = wino(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_report_text_and_json():
    r = wino("report", "--tile", "4", "--unroll", "16")
    assert r.returncode == 0, r.stderr
    assert "multipliers: 576" in r.stdout
    assert "accumulator 25" in r.stdout
    assert "end to end, compute-only:" in r.stdout and "layer4.3x3" in r.stdout and "BRAM" in r.stdout
    assert "compute-only (ideal host" in r.stdout and "memory-aware plan of resnet18" in r.stdout
    r = wino("report", "--tile", "2", "--unroll", "4", "--json")
    rep = json.loads(r.stdout)
    assert rep["multipliers"] == 64 and len(rep["compute_only"]["layers"]) == 11
    assert rep["compute_only"]["utilization_56x56x64"]["steady_utilization"] >= 0.9
    assert rep["plan"] is None and not rep["fit"]["fits"]     # 512 channels: the BRAM does not fit
    assert wino("report", "--mhz", "-1").returncode == 2
