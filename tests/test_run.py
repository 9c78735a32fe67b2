# amaranth: UnusedElaboratable=no
"""``wino_gen run`` (wino_gen.run) against ``--port golden``, the golden model behind the link
protocol (not the RTL): on examples/tiny every output byte equals ``network.run_model`` (the
model's own samples and random inputs, batches of 1 and 2, cold and warm runs); corrupted,
dropped and lost frames are resent and change nothing; a silent board, a hung run, a bitstream
for another config, a hardware error status, bad flags and files are one line and exit 2;
Ctrl-C is ``interrupted``, 130. The golden board answers every frame byte for byte as the
gateware (rtl.io.hostlink) does, and pyserial's transport carries a whole run over a socket."""

import dataclasses
import functools
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wino_gen import example, isa, link, network, plan
from wino_gen import format as fmt
from wino_gen.compile import compiler
from wino_gen.compile import image as im
from wino_gen.errors import run_cli
from wino_gen.run import board, cli, data, runtime

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "examples" / "tiny"
MEM = 1 << 16                    # the golden board's memory in the tests that build it directly


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """examples/tiny, its config, its export samples and 5 random inputs saved as .npy, random labels."""
    d = tmp_path_factory.mktemp("tiny")
    model = fmt.load_model(TINY)
    cfg = network.config_for(model)
    samples = model.layers[0].arrays["x"].astype(np.int64)
    rand = np.random.default_rng(3).integers(-128, 128, (5, *samples.shape[1:]))
    np.save(d / "samples.npy", samples)
    np.save(d / "rand.npy", rand)
    np.save(d / "labels.npy", np.arange(5) % 10)
    cfg.save(d / "top.json")
    return dict(model=model, cfg=cfg, samples=samples, rand=rand, dir=d)


def _golden_out(model, x):
    return network.run_model(model, x)[model.layers[-1].name].reshape(len(x), -1)


def _run(capsys, argv, **kw):
    """Exit code, stdout, stderr of ``wino_gen run ARGV``."""
    rc = run_cli(functools.partial(cli.main, **kw) if kw else cli.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _predictions(out):
    return [int(m) for m in re.findall(r"^image \d+: class (\d+)", out, re.M)]


def _planned(c, runs: int) -> float:
    """The plan's cycles per image of ``runs`` runs of the compiled ``c`` on the ULX3S at the
    default clock: the first from instruction 0 (the prologue), the rest from ``main_entry``."""
    first, later = cli.program_plan(c.plan, c.image, "ulx3s-85f", compiler.DEFAULT_CLOCK_MHZ)
    assert 0 < later <= first
    return (first + (runs - 1) * later) / (runs * c.image.batch)


class Boards:
    """A ``golden`` factory that keeps the boards it makes, with ``faults`` and, when given,
    another ``cfg`` than the run's (a bitstream built for another config)."""

    def __init__(self, faults=None, cfg=None, wrap=None):
        self.faults, self.cfg, self.wrap, self.made = faults or board.Faults(), cfg, wrap, []

    def __call__(self, cfg, cycles, *, memory_bytes):
        b = board.GoldenBoard(self.cfg or cfg, cycles, memory_bytes=memory_bytes, faults=self.faults)
        self.made.append(b)
        return self.wrap(b) if self.wrap else b


# -- end to end -----------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, batch", [("samples", 1), ("rand", 1), ("rand", 2)])
def test_run_equals_golden_in_every_byte(tiny, capsys, inputs, batch):
    d, x = tiny["dir"], tiny[inputs]
    boards = Boards()
    argv = ["--port", "golden", TINY, "--images", d / f"{inputs}.npy", "--batch", batch, "--verify",
            "--config", d / "top.json"]
    if inputs == "rand":
        argv += ["--labels", d / "labels.npy"]
    rc, out, err = _run(capsys, argv, golden=boards)
    assert rc == 0 and err == ""
    want = _golden_out(tiny["model"], x)
    assert _predictions(out) == list(want.argmax(1))
    assert f"verify: {want.size} output bytes, 0 mismatches against the golden model" in out
    runs = -(-len(x) // batch)
    assert boards.made[0].starts[1:] == boards.made[0].starts[1:2] * (runs - 1)   # warm runs at main_entry
    assert len(boards.made[0].starts) == runs
    c = compiler.compile_model(tiny["model"], tiny["cfg"], options=plan.Options(batch=batch))
    assert f"cycles: {_planned(c, runs):.0f} per image (the plan: the golden board has no clock); " in out
    assert boards.made[0].cycles == cli.program_plan(c.plan, c.image, "ulx3s-85f", compiler.DEFAULT_CLOCK_MHZ)[1]
    assert "golden (the golden model, not the RTL)" in out and "0 requests resent" in out
    if inputs == "rand":
        right = int(np.count_nonzero(want.argmax(1) == np.arange(5) % 10))
        assert f"accuracy: {right}/5 = " in out


def test_runtime_reads_back_every_output_byte(tiny):
    """The runtime's own API: cold then warm runs on a board whose memory starts as noise."""
    model, cfg = tiny["model"], tiny["cfg"]
    c = compiler.compile_model(model, cfg, trace=True)
    b = board.GoldenBoard(cfg, c.plan.cycles, memory_bytes=MEM, faults=board.Faults(seed=9))
    rt = runtime.Runtime(link.Client(b, name="golden"), c.image)
    assert rt.connect().addr_bits == 16
    rt.load()
    img = c.image
    assert not b.mem[img.act_offset:img.memory_size].any()          # the activation regions zeroed
    x = np.concatenate([tiny["samples"], tiny["rand"]])
    for i, xi in enumerate(x):
        r = rt.run(xi[None])
        assert r.cycles == c.plan.cycles
        assert np.array_equal(r.outputs.reshape(-1), _golden_out(model, xi[None])[0]), i
    assert b.starts == [img.program_offset] + [img.program_offset + img.main_entry * isa.WORD_BYTES] * (len(x) - 1)
    ref = network.run_model(model, x[-1:])
    for t in img.tensors:                # every stored tensor of the last run, byte for byte
        if t.flags & im.STORED:
            got = np.frombuffer(b.mem[t.offset:t.offset + t.size].tobytes(), np.int8)
            assert np.array_equal(got, ref[t.name].reshape(-1)), t.name


def test_a_compiled_image_file_runs_and_another_configs_is_refused(tiny, capsys, tmp_path):
    model, cfg = tiny["model"], tiny["cfg"]
    path = tmp_path / "image.bin"
    c = compiler.compile_model(model, cfg, options=plan.Options(batch=2, act_bytes=1600, weight_bytes=4700))
    path.write_bytes(c.image.to_bytes())
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy", "--image", path,
                                 "--verify"])
    assert rc == 0 and "3 runs of batch 2" in out and ", 0 mismatches" in out
    assert f"cycles: {_planned(c, 3):.0f} per image" in out          # the image's own plan, planned again
    dataclasses.replace(cfg, unroll=cfg.unroll + 1).save(tmp_path / "other.json")
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy", "--image", path,
                                 "--config", tmp_path / "other.json"])
    assert rc == 2 and re.fullmatch(r"error: image: compiled for config sha256 [0-9a-f]{16}\.\.\., --config has "
                                    r"[0-9a-f]{16}\.\.\. \(compile it for this config\)\n", err)


# -- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("every", [2, 3, 7])
def test_corrupted_and_lost_frames_are_resent_and_change_nothing(tiny, capsys, every):
    boards = Boards(board.Faults(every=every, seed=every))
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy", "--verify",
                                 "--timeout", "0.05"], golden=boards)
    assert rc == 0, err
    assert _predictions(out) == list(_golden_out(tiny["model"], tiny["rand"]).argmax(1))
    assert ", 0 mismatches" in out
    b = boards.made[0]
    resent = int(re.search(r"(\d+) requests resent", out).group(1))
    assert resent == b.writes // every > 0                # every fault costs one resend
    assert len(b.starts) == len(tiny["rand"])             # a START whose reply was lost ran once


def test_a_board_that_never_answers_is_one_line_within_the_timeout(tiny, capsys):
    boards = Boards(board.Faults(silent=True))
    t0 = time.monotonic()
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy", "--timeout", "0.2"],
                        golden=boards)
    assert rc == 2 and out == "" and err == "error: board on golden does not answer (3 tries, 0.2 s each)\n"
    assert boards.made[0].waited == pytest.approx(3 * 0.2)     # what a real port would have waited
    assert time.monotonic() - t0 < 10


def test_a_run_that_never_ends_times_out_with_one_line(tiny, capsys):
    t0 = time.monotonic()
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy",
                                 "--run-timeout", "0.3"], golden=Boards(board.Faults(hang=True)))
    assert rc == 2 and re.fullmatch(r"error: board on golden: the run did not finish within 0\.3 s \(still running "
                                    r"after \d+ STATUS polls, \d+ cycles\)\n", err)
    assert 0.3 <= time.monotonic() - t0 < 10


def test_a_bitstream_for_another_config_is_refused(tiny, capsys):
    other = dataclasses.replace(tiny["cfg"], unroll=tiny["cfg"].unroll + 1)
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy"],
                        golden=Boards(cfg=other))
    have, want = im.config_sha256(other).hex()[:16], im.config_sha256(tiny["cfg"]).hex()[:16]
    assert rc == 2 and err == (f"error: board on golden: bitstream built for config sha256 {have}..., the image for "
                               f"{want}... (rebuild the bitstream or recompile)\n")


def test_a_hardware_error_status_names_the_instruction(tiny, capsys, tmp_path):
    """An image whose STORE writes into the weights: the machine stops with status 2 there."""
    model, cfg = tiny["model"], tiny["cfg"]
    img = compiler.compile_model(model, cfg).image
    i = next(i for i, s in enumerate(img.program) if s.OP == "STORE")
    prog = list(img.program)
    prog[i] = dataclasses.replace(prog[i], ext_addr=img.weights_offset)
    (tmp_path / "bad.bin").write_bytes(dataclasses.replace(img, program=tuple(prog)).to_bytes())
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy", "--image",
                                 tmp_path / "bad.bin"])
    assert rc == 2 and err == (f"error: board on golden: error status 2 (memory outside its regions) at instruction "
                               f"{i} (STORE)\n")
    j = next(j for j, s in enumerate(img.program) if s.OP == "COMPUTE")
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy"],
                        golden=Boards(board.Faults(error=(3, j))))
    assert rc == 2 and err == f"error: board on golden: error status 3 (deadlock) at instruction {j} (COMPUTE)\n"
    status = link.Status(False, True, 9, len(img.program) + 4, 0)
    assert runtime.describe_error(img, status) == (f"error status 9 (unknown error code) at instruction "
                                                   f"{len(img.program) + 4} (beyond the program's {len(img.program)} "
                                                   f"instructions)")


class _Interrupting:
    """A transport that the user interrupts on its ``after``-th read."""

    def __init__(self, inner, after):
        self.inner, self.after, self.reads, self.closed = inner, after, 0, False

    def write(self, data):
        self.inner.write(data)

    def read(self, n, timeout):
        self.reads += 1
        if self.reads == self.after:
            raise KeyboardInterrupt
        return self.inner.read(n, timeout)

    def close(self):
        self.closed = True


def test_ctrl_c_is_interrupted_130_and_closes_the_port(tiny, capsys):
    made = []
    boards = Boards(wrap=lambda b: made.append(_Interrupting(b, 40)) or made[-1])
    rc, out, err = _run(capsys, ["--port", "golden", TINY, "--images", tiny["dir"] / "rand.npy"], golden=boards)
    assert rc == 130 and err == "interrupted\n" and out == ""
    assert made[0].closed


@pytest.mark.parametrize("args, msg", [
    ([], "one of the arguments --images --data is required"),
    (["--images", "rand.npy", "--data", "fashion-mnist"], "not allowed with argument"),
    (["--data", "fashion-mnist", "--labels", "labels.npy"], "--labels goes with --images"),
    (["--images", "rand.npy", "--limit", "3"], "--limit goes with --data"),
    (["--images", "nope.npy"], "--images nope.npy: no such file"),
    (["--images", "labels.npy"], "shape [5], expected [N, 4, 10, 10]"),
    (["--images", "big.npy"], "outside the 8-bit input range"),
    (["--images", "floats.npy"], "dtype float64, expected integers"),
    (["--images", "junk.npy"], "not a readable .npy array"),
    (["--images", "rand.npy", "--labels", "short.npy"], "--labels short.npy: shape [2], expected [5]"),
    (["--images", "rand.npy", "--port", "/dev/wino-no-such-port"], "--port /dev/wino-no-such-port: cannot open it"),
    (["--images", "rand.npy", "--board", "icebreaker"], "no external RAM"),
    (["--images", "rand.npy", "--board", "nope"], "unknown board 'nope'"),
    (["--images", "rand.npy", "--image", "junk.npy"], "magic: not a wino memory image"),
    (["--images", "rand.npy", "--image", "missing.bin"], "--image missing.bin: No such file"),
    (["--images", "rand.npy", "--config", "missing.json"], "missing.json"),
    (["--images", "rand.npy", "--timeout", "0"], "--timeout"),
    (["--images", "rand.npy", "--image", "x.bin", "--weight-bytes", "4096"], "go with compiling MODEL_DIR"),
    (["--images", "rand.npy", "--baud", "nan"], "--baud"),
    (["--data", "fashion-mnist"], "1x28x28, the model 'tiny' takes 4x10x10"),
    (["--images", "rand.npy", "--sim-memory", "ideal"], "--sim-memory goes with --port sim"),
    (["--images", "rand.npy", "--port", "sim", "--sim-memory", "fast"], "--sim-memory fast: expected sdram"),
])
def test_bad_flags_and_files_are_one_line(tiny, capsys, monkeypatch, args, msg):
    d = tiny["dir"]
    monkeypatch.chdir(d)
    np.save(d / "big.npy", np.full((1, 4, 10, 10), 300))
    np.save(d / "floats.npy", np.zeros((1, 4, 10, 10)))
    np.save(d / "short.npy", np.zeros(2, np.int64))
    (d / "junk.npy").write_bytes(b"\x93NUMPY junk" * 30)
    argv = ["--port", "golden", *args] if "--port" not in args else list(args)
    rc, out, err = _run(capsys, [TINY, *argv])
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ") and msg in err, err


def test_help_says_golden_is_not_the_rtl():
    out = subprocess.run([sys.executable, "-m", "wino_gen", "run", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    text = " ".join(out.split())
    assert "'golden': the golden model, not the RTL" in text
    assert "--port sim is the RTL" in text


def test_port_sim_without_verilator_is_one_line_before_compiling(tiny, capsys, monkeypatch):
    monkeypatch.setattr(board.shutil, "which", lambda name: None)
    monkeypatch.setattr(cli, "compile_model", lambda *a, **k: pytest.fail("compiled before refusing"))
    rc, out, err = _run(capsys, [TINY, "--port", "sim", "--images", tiny["dir"] / "rand.npy"])
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("error: --port sim: verilator is not on PATH"), err


def test_a_plan_the_board_would_stop_on_is_refused_but_on_golden(tiny, capsys, monkeypatch, tmp_path):
    """A config narrower than a layer (half tiny's channels): the planner prices it on the build
    it needs, the board's compute unit would answer unsupported, so a board port is refused in
    one line before anything opens; the golden model runs it."""
    monkeypatch.setattr(board.shutil, "which", lambda name: "/usr/bin/" + name)
    cfg = tiny["cfg"]
    dataclasses.replace(cfg, max_channels=cfg.max_channels // 2).save(tmp_path / "narrow.json")
    argv = [TINY, "--config", tmp_path / "narrow.json", "--images", tiny["dir"] / "rand.npy"]
    rc, out, err = _run(capsys, [*argv, "--port", "sim"])
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert re.fullmatch(r"error: \S+: \d+ \w+ channels exceed the build's max_channels \d+: the board's compute "
                        r"unit does not run it \(it would stop with status unsupported\); --port golden runs it\n", err)
    rc, out, err = _run(capsys, [*argv, "--port", "golden"])
    assert rc == 0, err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("verilator") is None, reason="needs verilator")
def test_port_sim_runs_the_rtl_board_equal_to_golden(tmp_path, capsys):
    """``--port sim``: a one-layer model dir through the RTL board on Verilator (the SDRAM's
    timing), cold and warm runs, every output byte equal to the integer model's (--verify)."""
    b = example._Builder(2, "layer", "pow2", np.random.default_rng(0), 2, (4, 6, 6), 1 / 32)
    b.winograd("conv1", fmt.INPUT, 4)
    model = fmt.write_model(tmp_path / "m", b.manifest, b.arrays)
    network.config_for(model, unroll=2).save(tmp_path / "top.json")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).integers(-128, 128, (3, 4, 6, 6)))
    rc, out, err = _run(capsys, [model.path, "--port", "sim", "--images", tmp_path / "x.npy", "--config",
                                 tmp_path / "top.json", "--verify", "--no-progress"])
    assert rc == 0, err
    assert "on sim (the RTL board on Verilator): 3 images" in out and "the board's cycle counter" in out, out
    assert "verify: 432 output bytes, 0 mismatches" in out, out


# -- the golden board speaks the gateware's protocol ----------------------------------------------

def _frames():
    """Requests good, corrupted, malformed and truncated, as tests/test_rtl_hostlink sends them."""
    w = functools.partial(link.encode_request, "WRITE_MEM")
    bad_crc = bytearray(w(2, addr=40, data=b"spoiled"))
    bad_crc[8] ^= 4
    return [w(1, addr=33, data=b"hello, board"), link.encode_request("READ_MEM", 2, addr=30, count=20), bytes(bad_crc),
            link.encode_frame(link.OPCODES["STATUS"], 3, b"\0"), link.encode_frame(0x42, 4),
            link.encode_frame(link.OPCODES["WRITE_MEM"], 5, bytes(4 + 49)),
            link.encode_request("READ_MEM", 6, addr=0, count=0), w(7, addr=1, data=b"cut short")[:-3],
            w(8, addr=509, data=b"abcd"), link.encode_request("READ_MEM", 9, addr=0xFFFFFFFF, count=48),
            b"\x00\x11" + link.encode_request("STATUS", 10), link.encode_request("START", 11, entry=0x40),
            link.encode_request("STATUS", 12)[:4], link.encode_request("START", 11, entry=0x40),
            link.encode_request("READ_MEM", 13, addr=500, count=12), link.encode_request("VERSION", 14)]


def test_golden_board_answers_every_frame_as_the_gateware_does(tiny):
    rtl_board = pytest.importorskip("test_rtl_hostlink")
    hw = rtl_board.Board(word_bytes=2, max_data=48, stall=0.3, seed=5)
    gb = board.GoldenBoard(tiny["cfg"], 0, memory_bytes=rtl_board.MEM_BYTES, max_data=48)
    gb.mem[:] = hw.mem
    for frame in _frames():
        want, got = [], []
        for b, out, wait in ((hw, want, 3 * rtl_board.GAP * rtl_board.CYCLE_S), (gb, got, link.GAP_S)):
            b.write(frame)
            out.append(b.read(link.MAX_FRAME_BYTES, wait))
        if frame[1] == link.OPCODES["VERSION"]:    # the same fields, each board's own sha
            v_hw, v_gb = (link.BoardVersion.from_bytes(link.decode_reply(r[0]).payload) for r in (want, got))
            assert dataclasses.replace(v_gb, config_sha256=v_hw.config_sha256) == v_hw
        else:
            assert got == want, frame.hex()
    assert np.array_equal(gb.mem, hw.mem) and hw.starts == [0x40] and gb.starts == [0x40]


def test_golden_board_matches_the_documented_examples(tiny):
    gb = board.GoldenBoard(tiny["cfg"], 0, memory_bytes=MEM)
    for request, reply in (("a5 04 01 00 00 79 01", None),
                           ("a5 01 02 06 00  00 01 00 00  68 69  1d 8d", "a5 80 02 00 00 37 98"),
                           ("a5 02 03 06 00  01 01 00 00  01 00  4e fc", "a5 80 03 01 00  69  62 bf"),
                           ("a5 02 03 06 00  01 01 00 00  01 00  4e fd", "a5 81 03 00 00 76 1c")):
        gb.write(bytes.fromhex(request))
        answer = gb.read(link.MAX_FRAME_BYTES, 0.1)
        if reply is not None:
            assert answer == bytes.fromhex(reply)


def test_golden_board_refuses_a_start_it_cannot_run(tiny):
    """Noise in memory, or an entry that is not an instruction: status 1 at the entry."""
    c = link.Client(board.GoldenBoard(tiny["cfg"], 5, memory_bytes=MEM), name="golden")
    c.start(0)
    s = c.status()
    assert (s.done, s.error, s.error_instr) == (True, 1, 0)
    img = compiler.compile_model(tiny["model"], tiny["cfg"]).image
    c.write_mem(0, img.to_bytes())
    c.start(img.program_offset + 3 * isa.WORD_BYTES)
    assert (c.status().error, c.status().error_instr) == (1, 3)
    c.start(img.program_offset)
    assert c.status() == link.Status(False, True, 0, 0, 5)


@pytest.mark.parametrize("kw, match", [(dict(memory_bytes=1000), "power of two"), (dict(max_data=0), "max_data"),
                                       (dict(cycles=-1), "cycles")])
def test_golden_board_refuses_bad_parameters(tiny, kw, match):
    with pytest.raises(ValueError, match=match):
        board.GoldenBoard(tiny["cfg"], **{"cycles": 0, "memory_bytes": MEM, **kw})


@pytest.mark.parametrize("kw, match", [(dict(every=1), "every 1"), (dict(every=-2), "every -2"),
                                       (dict(error=(0, 1)), "nonzero status")])
def test_faults_refuse_what_no_resend_survives(kw, match):
    with pytest.raises(ValueError, match=match):
        board.Faults(**kw)


# -- a serial port: pyserial over a socket ---------------------------------------------------------

def _serve(b):
    """Serve board ``b`` on a local TCP port as a serial adapter would: bytes in, replies out,
    the line's silence passing in real time. Returns the port number."""
    srv = socket.create_server(("127.0.0.1", 0))

    def loop():
        conn, _ = srv.accept()
        conn.settimeout(0.005)
        with conn, srv:
            while True:
                try:
                    got = conn.recv(1 << 16)
                except TimeoutError:
                    got = None
                if got == b"":
                    return
                if got:
                    b.write(got)
                out = b.read(1 << 20, 0.0 if got else 0.005)
                if out:
                    conn.sendall(out)

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def test_serial_transport_runs_the_model_through_pyserial(tiny, capsys):
    pytest.importorskip("serial")
    model, cfg = tiny["model"], tiny["cfg"]
    c = compiler.compile_model(model, cfg)
    port = _serve(board.GoldenBoard(cfg, c.plan.cycles, memory_bytes=1 << 25, faults=board.Faults(every=5)))
    rc, out, err = _run(capsys, [TINY, "--port", f"socket://127.0.0.1:{port}", "--images", tiny["dir"] / "rand.npy",
                                 "--verify", "--timeout", "0.3"])
    assert rc == 0, err
    assert _predictions(out) == list(_golden_out(model, tiny["rand"]).argmax(1)) and ", 0 mismatches" in out
    planned = _planned(c, len(tiny["rand"]))
    assert f"{c.plan.cycles} per image (the board's cycle counter; plan {planned:.0f}, " \
           f"{c.plan.cycles / planned:.4f}x)" in out


# -- Fashion-MNIST ---------------------------------------------------------------------------------

@pytest.mark.skipif(not data.FASHION_DIR.is_dir(), reason="Fashion-MNIST is not installed (dataset-fashion-mnist)")
def test_fashion_mnist_runs_and_quantizes_as_training_does(tmp_path, capsys):
    model = example.make_tiny(tmp_path / "fm", channels=2, size=28)      # a 1x28x28 classifier of 10 classes
    rc, out, err = _run(capsys, ["--port", "golden", tmp_path / "fm", "--data", "fashion-mnist", "--limit", "20",
                                 "--verify"])
    assert rc == 0, err
    x, labels = data.fashion_inputs(model, limit=20)
    want = _golden_out(model, x).argmax(1)
    assert _predictions(out) == list(want) and ", 0 mismatches" in out
    right = int(np.count_nonzero(want == labels))
    assert f"accuracy: {right}/20 = {100 * right / 20:.1f}%" in out
    tdata = pytest.importorskip("train.data")
    export = pytest.importorskip("train.export")
    xt, yt = tdata.fashion_mnist(train=False, limit=20).tensors
    assert np.array_equal(export.quantize_input(xt, model.manifest["input"]["scale"]), x)
    assert np.array_equal(yt.numpy(), labels)


# -- layering --------------------------------------------------------------------------------------

def test_the_runtime_imports_no_hardware_training_or_serial():
    code = ("import sys, wino_gen.run.cli, wino_gen.run.board, wino_gen.run.runtime, wino_gen.run.data\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('amaranth', 'rtl', 'sim', 'train', 'torch', 'serial')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"

