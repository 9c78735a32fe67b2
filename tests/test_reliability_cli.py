"""The generator, report and build CLIs on bad input (issue 10): output paths checked before
work and written whole or not at all, numbers refused with their range, a mistyped subcommand
named, --model configs that run the model, and builds that leave nothing half-written and no
tool running after a Ctrl-C or a SIGKILL. The build flow runs against fake tools (fast)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from wino_gen import boards, procs
from wino_gen.__main__ import main as cli
from wino_gen.config import AcceleratorConfig
from wino_gen.example import make_tiny
from wino_gen.flow import build
from wino_gen.format import load_model
from wino_gen.network import run_layer, stored_inputs

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
SMALL = ["--tile", "2", "--unroll", "1", "--max-width", "16", "--max-channels", "16"]


def wino(*args, **kw):
    return subprocess.run([sys.executable, "-m", "wino_gen", *args], capture_output=True, text=True,
                          cwd=ROOT, **kw)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# -- generate ---------------------------------------------------------------------------------

def test_failed_stdout_write_leaves_no_config(tmp_path):
    """``> /dev/full``: exit 2, one line, and no --config-out of a design that was not written."""
    cfg = tmp_path / "c.json"
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "wino_gen", *SMALL, "--config-out", str(cfg)],
                           stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert one_error_line(r.stderr) == "error: standard output: No space left on device"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["missing/c.json", "."])
def test_config_out_checked_before_elaboration(tmp_path, target, monkeypatch, capsys):
    from wino_gen.flow import generate
    monkeypatch.setattr(generate, "generate", lambda *a, **k: pytest.fail("elaborated first"))
    assert cli([*SMALL, "--config-out", str(tmp_path / target)]) == 2
    assert "--config-out" in one_error_line(capsys.readouterr().err)


def test_unknown_subcommand(capsys):
    assert cli(["chek", "DIR"]) == 2
    assert one_error_line(capsys.readouterr().err) == \
        "error: unknown subcommand 'chek'; subcommands: check, report, build, compile, run"


# -- report -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mhz", ["nan", "inf", "-inf", "0", "-1", "x"])
def test_report_mhz_refused(mhz, capsys):
    assert cli(["report", "--mhz", mhz]) == 2
    assert "--mhz" in one_error_line(capsys.readouterr().err)


def test_report_help_is_whole(capsys):
    with pytest.raises(SystemExit):
        cli(["report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "what the generated accelerator is and what it should do." in out
    assert "whether that estimate fits the board." in out


def test_report_says_when_the_board_cannot_hold_it(capsys):
    assert cli(["report", "--tile", "4", "--unroll", "16", "--board", "ulx3s-85f"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("DOES NOT FIT the ulx3s-85f") and "LUT: needs ~" in last
    assert "in LUTs, as they need 576 DSP blocks and it has 156" in last
    assert cli(["report", "--tile", "4", "--unroll", "4", "--max-channels", "128",
                "--max-width", "64", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert fit == {"fits": True, "dsp_mapping": "DSP", "dsp_needed": 144, "over": []}


# -- --model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smooth_model(tmp_path_factory) -> Path:
    """A model as train writes it by default (balance smooth), with tap scales, fixed requant."""
    path = tmp_path_factory.mktemp("m") / "smooth"
    make_tiny(path, tile=4, granularity="tap", requant="fixed", balance="smooth")
    return path


def report_config(capsys, *args) -> AcceleratorConfig:
    assert cli(["report", "--json", *args]) == 0, capsys.readouterr().err
    return AcceleratorConfig.from_dict(json.loads(capsys.readouterr().out)["config"])


def test_model_config_runs_the_model(smooth_model, capsys):
    """Hardware made with --model matches a model trained with train's defaults, and the golden
    model with that config's widths reproduces every conv layer's stored output."""
    cfg = report_config(capsys, "--model", str(smooth_model), "--unroll", "2")
    assert (cfg.tile, cfg.balance, cfg.granularity, cfg.requant, cfg.unroll) == (4, "smooth", "tap", "fixed", 2)
    model = load_model(smooth_model)
    for layer in model.layers:
        if layer.op in ("winograd_conv3x3", "direct_conv"):
            assert cfg.max_channels >= max(layer.in_shape[0], layer.out_shape[0])
            assert cfg.max_width >= max(layer.in_shape[1:])
            bias = layer.arrays["bias"]
            assert -(1 << (cfg.bias_bits - 1)) <= bias.min() and bias.max() < 1 << (cfg.bias_bits - 1)
            got = run_layer(model, layer, stored_inputs(layer), cfg)
            np.testing.assert_array_equal(got, layer.arrays["y"], err_msg=layer.name)


def test_model_flags_may_widen(smooth_model, capsys):
    base = report_config(capsys, "--model", str(smooth_model))
    wide = report_config(capsys, "--model", str(smooth_model), "--max-channels", "64", "--tile", "4",
                         "--balance", "smooth", "--bias-bits", "32")
    assert (wide.max_channels, wide.bias_bits) == (64, 32)
    assert base.unroll == AcceleratorConfig().unroll and wide.max_width == base.max_width


@pytest.mark.parametrize("args,msg", [
    (["--tile", "2"], "--tile 2 contradicts the model"),
    (["--balance", "none"], "--balance none contradicts the model"),
    (["--requant", "pow2"], "--requant pow2 contradicts the model"),
    (["--max-channels", "4"], "--max-channels 4 is below what the model"),
])
def test_model_contradiction_is_one_line(smooth_model, args, msg, capsys):
    for sub in (["report"], [], ["build", "--board", "ulx3s-85f", "--check-only"]):
        assert cli([*sub, "--model", str(smooth_model), *args]) == 2
        assert msg in one_error_line(capsys.readouterr().err)


def test_model_config_file_contradiction(smooth_model, tmp_path, capsys):
    AcceleratorConfig(tile=4, granularity="tap", requant="fixed").save(tmp_path / "c.json")  # balance none
    assert cli(["report", "--model", str(smooth_model), "--config", str(tmp_path / "c.json")]) == 2
    assert "balance none contradicts the model" in one_error_line(capsys.readouterr().err)


def test_build_check_only_with_model_needs_no_out(smooth_model, capsys):
    assert cli(["build", "--board", "ulx3s-85f", "--model", str(smooth_model), "--unroll", "1",
                "--check-only"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["board_defaults_applied"] == {}


# -- build: bad input before any work ---------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["--target-mhz", "0"], "--target-mhz: must be > 0"),
    (["--target-mhz", "-5"], "--target-mhz: must be > 0"),
    (["--target-mhz", "nan"], "--target-mhz: must be finite"),
    (["--corrupt", "-1"], "--corrupt: must be >= 0"),
    (["--corrupt", "999999"], "--corrupt 999999: out of range; allowed: 0..8"),
    (["--channels", "0"], "--channels: must be >= 1"),
    (["--seed", "-1"], "--seed: must be >= 0"),
])
def test_build_numbers_refused_before_work(args, msg, tmp_path, fake_tools, capsys):
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--out", str(tmp_path / "o"), *args]) == 2
    assert msg in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == [] and not list(fake_tools.iterdir())


def test_build_out_refused(tmp_path, fake_tools, capsys):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cases = [(tmp_path / "file", "exists and is not a folder"),
             (tmp_path / "other", "exists and is not a build folder"),
             (tmp_path / "file" / "x", "is not writable")]
    if os.geteuid() != 0:          # root writes anywhere
        cases.append((ro / "x", "is not writable"))
    try:
        for out, msg in cases:
            assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--out", str(out)]) == 2
            assert msg in one_error_line(capsys.readouterr().err)
    finally:
        ro.chmod(0o755)
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "other" / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other", "ro"] and not list(ro.iterdir())


# -- build: fake tools ------------------------------------------------------------------------

FAKE = """\
#!{python}
import os, shutil, subprocess, sys, time
name, args, pids = os.path.basename(sys.argv[0]), sys.argv[1:], os.environ["FAKE_PIDS"]
def note(key, pid):
    with open(os.path.join(pids, key + ".tmp"), "w") as f:
        f.write(str(pid))
    os.replace(os.path.join(pids, key + ".tmp"), os.path.join(pids, key))
note(name, os.getpid())
if os.environ.get("FAKE_HANG") == name:        # a tool with a child of its own, both stuck
    note(name + ".child", subprocess.Popen(["sleep", "120"]).pid)
    time.sleep(120)
if os.environ.get("FAKE_FAIL") == name:
    print("fake " + name + " failed")
    sys.exit(3)
if name == "yosys":
    open("top.rpt", "w").write("2.51. Printing statistics.\\n\\n=== top ===\\n       16   MULT18X18D\\n")
elif name == "nextpnr-ecp5":
    shutil.copyfile({report!r}, args[args.index("--report") + 1])
    open(args[args.index("--log") + 1], "w").write("fake timing\\n")
elif name == "ecppack":
    open(args[args.index("--bit") + 1], "wb").write(b"\\0" * 64)
"""


@pytest.fixture
def fake_tools(tmp_path_factory, monkeypatch) -> Path:
    """yosys, nextpnr-ecp5 and ecppack stand-ins (the build script takes them from YOSYS etc.);
    each writes its pid into the returned folder when it starts."""
    bindir, pids = tmp_path_factory.mktemp("bin"), tmp_path_factory.mktemp("pids")
    text = FAKE.format(python=sys.executable, report=str(DATA / "nextpnr_report_ecp5.json"))
    for var, tool in build.TOOLS["ecp5"].items():
        (bindir / tool).write_text(text)
        (bindir / tool).chmod(0o755)
        monkeypatch.setenv(var, str(bindir / tool))
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    monkeypatch.delenv("FAKE_HANG", raising=False)
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_script_steps_one_per_tool():
    script = textwrap.dedent("""\
        #!/bin/sh
        set -e
        : ${YOSYS:=yosys}
        "$YOSYS" -q -l top.rpt top.ys
        "$NEXTPNR_ECP5" --quiet --json top.json
        "$ECPPACK" --input top.config --bit top.bit
        """)
    steps = build.script_steps(script, "ecp5")
    assert [t for t, _ in steps] == ["yosys", "nextpnr-ecp5", "ecppack"]
    assert all(s.startswith("#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n") for _, s in steps)
    assert steps[1][1].endswith('"$NEXTPNR_ECP5" --quiet --json top.json\n')
    odd = script + "echo done\n"           # another shape: runs whole, as one step
    assert build.script_steps(odd, "ecp5") == [("yosys + nextpnr-ecp5 + ecppack", odd)]


def test_build_with_fake_tools(tmp_path, fake_tools, capsys):
    """A whole build (real elaboration, fake tools): progress names each tool, the folder is
    complete, and a second build replaces it (it is a build folder)."""
    out = tmp_path / "ulx3s"
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)
    rep = build.run_build(cfg, boards.get_board("ulx3s-85f"), out, show=True)
    err = capsys.readouterr().err
    for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
        assert re.search(rf"\rbuild: {tool} \.\.\. \d+ s, done\n", err), err
    assert rep["yosys_cells"] == {"MULT18X18D": 16}
    assert {"top.bit", "config.json", "build.log", "yosys.log", "nextpnr.log", "report.json", "build"} \
        <= {p.name for p in out.iterdir()}
    assert json.loads((out / "report.json").read_text())["config"] == cfg.to_dict()
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--unroll", "2", "--out", str(out)]) == 0
    assert AcceleratorConfig.load(out / "config.json").unroll == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ulx3s"]


def test_failed_tool_keeps_its_log(tmp_path, fake_tools, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FAIL", "nextpnr-ecp5")
    out = tmp_path / "o"
    assert cli(["build", "--board", "ulx3s-85f", *SMALL, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"error: ulx3s-85f: nextpnr-ecp5 failed (exit 3); see {out / 'build.log'}" in err
    assert "fake nextpnr-ecp5 failed" in (out / "build.log").read_text()
    assert build.is_build_dir(out) and not (out / "report.json").exists()
    assert not (fake_tools / "ecppack").exists()


def _start_hanging_build(out: Path) -> subprocess.Popen:
    """The build, with SIGINT as a terminal delivers it (a suite started in the background of a
    shell without job control inherits it ignored)."""
    return subprocess.Popen([sys.executable, "-m", "wino_gen", "build", "--board", "ulx3s-85f", *SMALL,
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "FAKE_HANG": "yosys"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_stopped_build_leaves_out_and_no_tools(tmp_path, fake_tools, sig):
    """Ctrl-C (SIGINT) or SIGKILL while yosys runs: the earlier build folder is untouched and
    neither the tool nor its child survives; Ctrl-C is one line, exit 130, nothing left over."""
    out = tmp_path / "o"
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)
    build.run_build(cfg, boards.get_board("ulx3s-85f"), out)
    before = snapshot(out)
    for p in fake_tools.iterdir():
        p.unlink()
    proc = _start_hanging_build(out)
    try:
        assert wait_for(lambda: (fake_tools / "yosys.child").exists(), 120), proc.stderr.read()
        tool, child = (int((fake_tools / k).read_text()) for k in ("yosys", "yosys.child"))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert wait_for(lambda: not alive(tool) and not alive(child), 10)
    assert snapshot(out) == before
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
        assert "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    else:
        assert proc.returncode == -signal.SIGKILL


def test_run_in_group_ends_grandchildren_on_interrupt(tmp_path, monkeypatch):
    """The Ctrl-C path in-process: an exception while the tool runs ends its whole group."""
    pidfile = tmp_path / "pid"
    calls = []

    def interrupt(self, timeout=None):
        if not calls:
            calls.append(1)
            assert wait_for(pidfile.exists, 10)
            raise KeyboardInterrupt
        return real_wait(self, timeout)
    real_wait = subprocess.Popen.wait
    monkeypatch.setattr(subprocess.Popen, "wait", interrupt)
    with open(tmp_path / "log", "w") as log, pytest.raises(KeyboardInterrupt):
        procs.run_in_group(["sh", "-c", f"sleep 120 & echo $! > {pidfile}; wait"], cwd=tmp_path,
                           env=dict(os.environ), stdout=log)
    assert wait_for(lambda: not alive(int(pidfile.read_text())), 10)


def test_build_direct_engine_is_one_line(tmp_path, capsys):
    """The self-test top runs a Winograd layer: a direct build is refused before any tool."""
    assert cli(["build", "--board", "ulx3s-85f", "--algo", "direct", "--tile", "2", "--unroll", "1",
                "--out", str(tmp_path / "b")]) == 2
    assert "--algo direct" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
