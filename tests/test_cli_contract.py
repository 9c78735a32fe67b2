"""The shared CLI contract (wino_gen.errors, wino_gen.safeio, wino_gen.progress): one line and
exit 2 on bad input, exit 130 on Ctrl-C, no partial files, only same-kind folders replaced."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wino_gen import progress, safeio
from wino_gen.errors import UsageError, number, run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_run_cli_usage_error_is_one_line(capsys):
    def main(argv):
        raise UsageError("bad thing:\n  on two lines")
    assert run_cli(main, []) == 2
    assert capsys.readouterr().err == "error: bad thing: on two lines\n"


def test_run_cli_interrupt_is_130(capsys):
    def main(argv):
        raise KeyboardInterrupt
    assert run_cli(main, []) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_run_cli_failed_stdout_is_one_line(monkeypatch, capsys):
    class Full(io.StringIO):
        def write(self, s):
            raise OSError(28, "No space left on device")
    monkeypatch.setattr(sys, "stdout", Full())

    def main(argv):
        print("x" * 100)
        return 0
    assert run_cli(main, []) == 2
    assert capsys.readouterr().err == "error: standard output: No space left on device\n"


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "0", "x"])
def test_number_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        number(float, lo=0, lo_open=True)(text)


def test_a_flag_prefix_is_not_a_flag(tmp_path):
    """``--config`` is not taken for ``--config-out`` (argparse's prefix match), which would
    overwrite the config the user meant to read: one line, exit 2, the file untouched."""
    from wino_gen.errors import ArgumentParser

    p = ArgumentParser(prog="t")
    p.add_argument("--config-out")
    with pytest.raises(UsageError, match="unrecognized arguments: --config"):
        p.parse_args(["--config", "x.json"])
    cfg = tmp_path / "top.json"
    cfg.write_text("{}")
    r = subprocess.run([sys.executable, "-m", "sim", str(ROOT / "examples" / "tiny"), "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--config" in r.stderr
    assert cfg.read_text() == "{}"


def test_number_accepts_bounds():
    assert number(int, lo=1, hi=3)("3") == 3
    assert number(float, lo=0)("0") == 0.0


def test_read_json_limits(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    digits = tmp_path / "digits.json"
    digits.write_text("9" * 5000)
    for path in (deep, digits, tmp_path, tmp_path / "missing.json"):
        with pytest.raises(UsageError):
            safeio.read_json(path, "config")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 40 + "]" * 40)
    with pytest.raises(UsageError, match="deeper"):
        safeio.read_json(nested, "config")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    f = tmp_path / "out.txt"
    f.write_text("old")

    class Boom(Exception):
        pass
    with pytest.raises(Boom), safeio.atomic_file(f) as tmp:
        tmp.write_text("half")
        raise Boom
    assert f.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    safeio.atomic_write(f, "new")
    assert f.read_text() == "new" and f.stat().st_mode & 0o777 == 0o644 & ~_umask()


def test_atomic_write_unwritable_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot write"):
        safeio.atomic_write(tmp_path / "missing" / "x", "data", "--out")


def _is_marked(p: Path) -> bool:
    return (p / "MARK").exists()


def test_staged_dir_replaces_only_its_kind(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious").write_text("keep")
    with pytest.raises(UsageError, match="refusing"):
        with safeio.staged_dir(other, "--out", _is_marked, "marked dir"):
            pass
    assert (other / "precious").read_text() == "keep"
    target = tmp_path / "t"
    for text in ("one", "two"):
        with safeio.staged_dir(target, "--out", _is_marked, "marked dir") as tmp:
            (tmp / "MARK").write_text(text)
    assert (target / "MARK").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "t"]


def test_staged_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with safeio.staged_dir(tmp_path / "t", "--out", _is_marked, "marked dir") as tmp:
            (tmp / "MARK").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_printable_escapes_control_characters():
    assert safeio.printable("a\nb\x1b[31mok") == "a\\nb\\x1b[31mok"
    assert safeio.printable("conv1") == "conv1"


def test_progress_is_quiet_off_a_terminal(capsys):
    assert not progress.wanted(False)       # pytest captures stderr: not a TTY
    with progress.step("work", show=False):
        pass
    assert list(progress.bar([1, 2], "x", show=False)) == [1, 2]
    assert capsys.readouterr().err == ""


def test_progress_step_line(capsys):
    with progress.step("building", show=True, tick=0.01):
        time.sleep(0.03)
    err = capsys.readouterr().err
    assert err.startswith("\rbuilding ... ") and err.endswith(", done\n")


def test_ctrl_c_on_sim_is_one_line_and_130():
    """A real SIGINT in the middle of a pysim run: one line, exit 130, no traceback."""
    # SIGINT as a terminal delivers it: a suite started in the background of a shell without job
    # control inherits it ignored, and Python then never raises KeyboardInterrupt
    p = subprocess.Popen([sys.executable, "-m", "sim", str(ROOT / "examples" / "tiny")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().startswith("sim: model tiny")     # running: the first layer is next
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """SIGTERM runs the same clean-up as Ctrl-C: a staged folder is removed, exit 143."""
    script = (
        "import sys, time\n"
        "from wino_gen import safeio\n"
        "from wino_gen.errors import run_cli\n"
        "def main(argv):\n"
        f"    with safeio.staged_dir({str(tmp_path / 'out')!r}, '--out', lambda p: True, 'dir') as tmp:\n"
        "        (tmp / 'half').write_text('x')\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "sys.exit(run_cli(main))\n")
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.terminate()
    _, err = p.communicate(timeout=30)
    assert (p.returncode, err) == (143, "terminated\n")
    assert list(tmp_path.iterdir()) == []
