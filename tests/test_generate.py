"""The generator CLI (``python -m wino_gen``) and ``python -m wino_gen report``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wino_gen.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--tile", "2", "--unroll", "2", "--max-width", "16", "--max-channels", "16"]


def wino(*args):
    return subprocess.run([sys.executable, "-m", "wino_gen", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_verilog_on_stdout_config_out(tmp_path):
    cfg_path = tmp_path / "top.json"
    r = wino(*SMALL, "--granularity", "tap", "--requant", "fixed", "--config-out", str(cfg_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.lstrip().startswith(("/*", "(*", "module"))
    assert "module wino_top(" in r.stdout and "endmodule" in r.stdout.rstrip()[-20:]
    assert "wino_gen:" in r.stderr and "wino_gen:" not in r.stdout
    cfg = AcceleratorConfig.load(cfg_path)
    assert (cfg.tile, cfg.unroll, cfg.granularity, cfg.requant) == (2, 2, "tap", "fixed")


def test_rtlil_and_config_roundtrip(tmp_path):
    base = tmp_path / "base.json"
    AcceleratorConfig(tile=2, unroll=1, max_width=8, max_channels=4, algo="direct").save(base)
    r = wino("--config", str(base), "--unroll", "2", "--rtlil", "--config-out", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    assert "module \\wino_top" in r.stdout
    cfg = AcceleratorConfig.load(tmp_path / "o.json")
    assert (cfg.algo, cfg.unroll, cfg.max_width) == ("direct", 2, 8)


@pytest.mark.parametrize("args", [["--tile", "5"], ["--unroll", "0"], ["--unroll", "x"],
                                  ["--algo", "fft"], ["--bogus"], ["--act-bits", "20"],
                                  ["--max-channels", "10", "--unroll-in", "4"],
                                  ["--config", "/nonexistent.json"]])
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
