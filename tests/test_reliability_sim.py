"""``python -m sim`` on bad input and on models the format allows (issue 10): every model dir
``check`` passes runs with 0 mismatches; a bad flag, output path or tool is one line, exit 2,
before any layer runs; outputs appear whole, and only after a passing run."""

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.ram import SLICE_BITS, SDPRam
from sim import verilator
from sim.layers import random_direct, random_winograd
from wino_gen import network
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError
from wino_gen.format import INPUT, Layer, Model, write_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "examples" / "tiny"


def run(module, *args, env=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def assert_one_line_error(r, *words):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def last_line(r):
    return r.stdout.strip().splitlines()[-1]


def write_two_convs(path, *, C=4, K=8, HW=6, tile=2, requant="fixed", mult_bits=24, seed=0,
                    bits=(8, 8, 8), granularity="layer", kernel=3, names=("wino", "direct"), **fixed):
    """A model dir whose Winograd and direct layers both read the input, with ``K`` output
    channels beyond the ``C`` input ones and (``fixed``) requant mults up to
    ``2**mult_bits - 1``. ``bits``: act, weight and transform widths; ``kernel``: the direct
    layer's (kh, kw); ``fixed`` sets whole arrays (``wino_y_shift=-16``). References come
    from the golden model, so ``check`` passes by construction."""
    rng = np.random.default_rng(seed)
    n = tile + 2
    widths = dict(zip(("act_bits", "weight_bits", "transform_bits"), bits, strict=True))
    cfg = AcceleratorConfig(tile=tile, requant=requant, mult_bits=mult_bits, max_channels=K,
                            max_width=HW, **widths)
    x, wk = random_winograd(cfg, C, K, HW, HW, rng, relu=False)
    _, dk = random_direct(cfg, C, K, HW, HW, rng, kernel=kernel, stride=2, padding=0)
    i32 = np.int32
    wino = {"U": wk["U"].astype(np.int8), "bias": wk["bias"].astype(i32), "m_align": np.zeros((n, n), i32),
            "y_mult": i32(wk["y"].mult), "y_shift": i32(wk["y"].shift)}
    for p in "vm":
        for f in ("mult", "shift"):
            wino[f"{p}_{f}"] = np.broadcast_to(np.asarray(getattr(wk[p], f)), (n, n)).astype(i32)
    direct = {"W": dk["W"].astype(np.int8), "bias": dk["bias"].astype(i32), "y_mult": i32(dk["y"].mult),
              "y_shift": i32(dk["y"].shift)}
    for key, v in fixed.items():
        layer, field = key.split("_", 1)
        arrays = wino if layer == "wino" else direct
        arrays[field] = np.full_like(arrays[field], v)
    manifest = {"model": "two", "tile": tile, "granularity": granularity, "requant": requant, **widths,
                "input": {"shape": [C, HW, HW]}, "layers": [
                    {"name": names[0], "op": "winograd_conv3x3", "inputs": [INPUT], "padding": 1,
                     "relu": False, "in_shape": [C, HW, HW]},
                    {"name": names[1], "op": "direct_conv", "inputs": [INPUT], "stride": 2,
                     "padding": 0, "relu": True, "in_shape": [C, HW, HW]}]}
    model = Model(Path("."), manifest, [])
    for spec, a in zip(manifest["layers"], (wino, direct), strict=True):
        a["x"] = x.astype(np.int8)
        y = network.run_layer(model, Layer(spec["name"], spec["op"], spec["inputs"], spec, "", a), [x])
        a["y"] = y.astype(np.int8)
        spec["out_shape"] = list(y.shape[1:])
    write_model(path, manifest, dict(zip(names, (wino, direct), strict=True)))
    return wino, direct


def check_and_sim(d, *args):
    r = run("wino_gen", "check", str(d))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("sim", str(d), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 mismatches, " in last_line(r)
    return r


# -- the simulated config is sized from the model ---------------------------------------------

def test_more_output_channels_and_wide_mults_run(tmp_path):
    """conv 4 -> 8 channels and fixed mults >= 2**16: ``check`` passes and ``sim`` agrees."""
    wino, direct = write_two_convs(tmp_path / "two")
    assert min(int(wino["y_mult"]), int(direct["y_mult"]), int(wino["v_mult"].min())) >= 1 << 16
    assert len(np.unique(wino["y"])) > 16      # outputs spread, not all saturated
    r = check_and_sim(tmp_path / "two")
    assert last_line(r).startswith(f"sim: 2 layers, {wino['y'].size + direct['y'].size} outputs, 0 mismatches, ")


@pytest.mark.parametrize("kw", [
    dict(bits=(6, 5, 4), requant="pow2", mult_bits=16),
    dict(wino_y_mult=2**24 - 1, wino_y_shift=-16, direct_y_mult=2**24 - 1, direct_y_shift=-16,
         wino_v_mult=2**24 - 1, wino_v_shift=62, wino_bias=2**31 - 1, direct_bias=-2**31),
    dict(granularity="tap", wino_m_align=16, wino_m_mult=0, direct_y_mult=0),
], ids=["narrow-widths", "extreme-requant", "tap-align-16"])
def test_format_extremes_run(tmp_path, kw):
    """Values at the edges of what docs/format.md allows run bit-exact on the RTL."""
    write_two_convs(tmp_path / "m", **kw)
    check_and_sim(tmp_path / "m")


def test_non_square_direct_kernel_runs(tmp_path):
    """A 5x3 direct kernel needs room for C*5*3 patch elements, not C*3*3."""
    write_two_convs(tmp_path / "m", C=8, K=4, HW=8, kernel=(5, 3))
    check_and_sim(tmp_path / "m")


# -- pysim compiles wide memories --------------------------------------------------------------

def test_wide_ram_simulates():
    """A RAM wider than pysim can compile as one memory (its write enable is one term per bit)
    is built from slices and still reads back what was written."""
    width = 6 * SLICE_BITS + 40
    ram = SDPRam(width, 4)
    words = [(1 << width) - 1, int.from_bytes(np.random.default_rng(0).bytes(width // 8 + 1)) % (1 << width)]
    got = []

    async def bench(ctx):
        for addr, w in enumerate(words):
            ctx.set(ram.we, 1)
            ctx.set(ram.waddr, addr)
            ctx.set(ram.wdata, w)
            await ctx.tick()
        ctx.set(ram.we, 0)
        for addr in range(len(words)):
            ctx.set(ram.re, 1)
            ctx.set(ram.raddr, addr)
            await ctx.tick()
            got.append(ctx.get(ram.rdata))

    sim = Simulator(ram)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words


def test_unroll_in_3_runs_on_pysim():
    r = run("sim", str(TINY), "--unroll-in", "3", "--layer", "conv1", "--samples", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r).startswith("sim: 1 layers, 800 outputs, 0 mismatches, ")


# -- bad input: one line, exit 2, before any layer runs ----------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--samples", "0"], ["--samples", ">= 1"]),
    (["--samples", "-1"], ["--samples", ">= 1"]),
    (["--unroll", "0"], ["--unroll"]),
    (["--unroll-in", "-2"], ["--unroll-in"]),
    (["--unroll", "2.5"], ["--unroll", "integer"]),
    (["--vcd", "no/such/folder/w.vcd"], ["--vcd", "does not exist"]),
    (["--config-out", "no/such/folder/c.json"], ["--config-out", "does not exist"]),
    (["--vcd", "w.vcd", "--backend", "verilator"], ["--vcd", "pysim"]),
])
def test_bad_flags_refused_before_any_run(args, words):
    r = run("sim", *args)
    assert_one_line_error(r, *words)
    assert r.stdout == ""


def test_verilator_missing_is_one_line(tmp_path):
    r = run("sim", "--backend", "verilator", "--layer", "conv1", env={"PATH": str(tmp_path)})
    assert_one_line_error(r, "verilator", "PATH")


def test_unusable_verilator_cache_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for cache in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(verilator.CACHE_ENV, str(cache))
            with pytest.raises(UsageError, match=f"Verilator cache .*{verilator.CACHE_ENV}"):
                verilator.cache_dir()
    assert (tmp_path / "file").read_text() == "not a folder"


# -- outputs: whole, and only after a passing run ----------------------------------------------

def test_config_out_only_after_a_passing_run(tmp_path):
    d = tmp_path / "two"
    write_two_convs(d)
    out = tmp_path / "cfg.json"
    out.write_text("old")
    f = d / "wino.npz"
    arrays = dict(np.load(f))
    arrays["y"][0, 0, 0, 0] ^= 1
    np.savez(f, **arrays)
    r = run("sim", str(d), "--config-out", str(out))
    assert r.returncode == 1 and out.read_text() == "old"
    arrays["y"][0, 0, 0, 0] ^= 1
    np.savez(f, **arrays)
    r = run("sim", str(d), "--config-out", str(out))
    assert r.returncode == 0, r.stderr
    saved = AcceleratorConfig.from_dict(json.loads(out.read_text()))
    assert saved.max_channels >= 8 and saved.mult_bits == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.json", "two"]


def test_vcd_written_whole(tmp_path):
    vcd = tmp_path / "w.vcd"
    r = run("sim", str(TINY), "--layer", "down", "--samples", "1", "--vcd", str(vcd))
    assert r.returncode == 0, r.stderr
    assert vcd.read_text().startswith("$") and [p.name for p in tmp_path.iterdir()] == ["w.vcd"]


# -- the Verilator build: staged in its cache, with a progress line ----------------------------

def fake_verilator(monkeypatch, tmp_path, outcome):
    """``VerilatorBackend`` with ``verilator`` replaced by ``outcome(cwd)``."""
    monkeypatch.setenv(verilator.CACHE_ENV, str(tmp_path / "cache"))
    real_which = verilator.shutil.which
    monkeypatch.setattr(verilator.shutil, "which",
                        lambda name, *a, **kw: "/bin/verilator" if name == "verilator" else real_which(name, *a, **kw))

    def fake_run(cmd, *, cwd, env, stdout):
        assert cmd[0] == "verilator"
        r = outcome(Path(cwd))
        stdout.write(r.stdout + r.stderr)
        return r.returncode
    monkeypatch.setattr(verilator, "run_in_group", fake_run)
    return verilator.VerilatorBackend(show=True)


def test_verilator_build_is_staged_and_shown(monkeypatch, tmp_path, capsys):
    def ok(cwd):
        (cwd / "obj").mkdir()
        (cwd / "obj" / "Vwino_top").write_text("exe")
        return subprocess.CompletedProcess([], 0, "", "")
    be = fake_verilator(monkeypatch, tmp_path, ok)
    exe = be.build(SDPRam(8, 4))
    assert exe.read_text() == "exe" and exe.parent.parent.parent == tmp_path / "cache"
    key = exe.parent.parent.name
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [key, key + ".lock"]
    assert "building Verilator model of SDPRam ... " in capsys.readouterr().err


@pytest.mark.parametrize("failure", ["status", "interrupt"])
def test_failed_verilator_build_leaves_no_model(monkeypatch, tmp_path, failure):
    def bad(cwd):
        (cwd / "obj").mkdir()
        (cwd / "obj" / "partial.o").write_text("")
        if failure == "interrupt":
            raise KeyboardInterrupt
        return subprocess.CompletedProcess([], 1, "out", "boom")
    be = fake_verilator(monkeypatch, tmp_path, bad)
    with pytest.raises(UsageError if failure == "status" else KeyboardInterrupt) as e:
        be.build(SDPRam(8, 4))
    left = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock")
    assert len(list((tmp_path / "cache").glob("*.lock"))) == 1
    if failure == "status":
        assert len(left) == 1 and left[0].endswith(".log") and left[0] in str(e.value)
        assert "boom" in (tmp_path / "cache" / left[0]).read_text()
    else:
        assert left == []


def test_a_second_build_of_the_same_model_waits_for_the_first(monkeypatch, tmp_path):
    """Two test workers (or two runs) wanting one model at once: the second waits on the
    first's lock and then uses its build; Verilator runs once."""
    building, waiting, release, calls = threading.Event(), threading.Event(), threading.Event(), []

    def fake_run(cmd, *, cwd, env, stdout):
        calls.append(cwd)
        building.set()
        assert release.wait(30)
        (Path(cwd) / "obj").mkdir()
        (Path(cwd) / "obj" / "Vwino_top").write_text("exe")
        return 0
    real_flock = verilator.fcntl.flock

    def flock(f, op):
        if op == verilator.fcntl.LOCK_EX:       # the blocking wait, after the try that failed
            waiting.set()
        return real_flock(f, op)
    monkeypatch.setattr(verilator, "run_in_group", fake_run)
    monkeypatch.setattr(verilator.fcntl, "flock", flock)

    def build():
        return verilator.build_cached({"top.v": "module wino_top; endmodule"}, what="a test", cache=tmp_path)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(build)
        assert building.wait(30)
        second = pool.submit(build)
        assert waiting.wait(30)
        release.set()
        exe = first.result()
        assert second.result() == exe and exe.read_text() == "exe"
    key = exe.parent.parent.name
    assert len(calls) == 1 and sorted(p.name for p in tmp_path.iterdir()) == [key, key + ".lock"]


# -- names from the model dir are printed escaped, in sized columns ----------------------------

def test_long_layer_names_keep_columns(tmp_path):
    write_two_convs(tmp_path / "m", names=("w", "a_layer_name_much_longer_than_twelve_characters"))
    r = run("sim", str(tmp_path / "m"), "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:3]
    assert rows[0].index("winograd_conv3x3") == rows[1].index("direct_conv")


def test_names_printed_escaped():
    r = run("sim", str(TINY), "--layer", "conv\x1b[2K\rsim: ok")
    assert_one_line_error(r, "\\x1b[2K\\r")
    assert "\x1b" not in r.stderr and "\r" not in r.stderr
