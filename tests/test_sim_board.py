# amaranth: UnusedElaboratable=no
"""sim.board's SDRAM path: the board's SDRAM controller on the behavioural chip, in pysim
(sim.sdram_chip.SDRAMChip) and on Verilator (sim/cpp/sdram_chip.h, behind ``--port sim``).

The C++ chip is a port of the Python chip: fed the same random pin samples (legal and illegal
command sequences of every kind, with and without read register stages), it drives the same
word on dq_i at every edge and reports the same violations with the same messages and the same
command counts. The whole board then runs one session (load over the link, a cold and a warm
run) on both backends: the same output bytes (the interpreter's), the same cycle counter, the
same commands on the chip, no violation. A chip that expects one cycle more tRCD than the
controller was built for fails the board with one line naming the first violation, the same on
both backends. The two Verilator board cases are slow (their build is cold: minutes); the chip
comparison and the pysim board are in the default suite."""

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.mem.sdram import A10, MODE, Command, Geometry, PinSignature, Timing
from sim import board as sb
from sim.sdram_chip import SDRAMChip
from wino_gen import format as fmt
from wino_gen import link, network, plan
from wino_gen import memory as wm
from wino_gen.compile import compiler, interp
from wino_gen.errors import UsageError
from wino_gen.example import _Builder
from wino_gen.format import INPUT
from wino_gen.run.runtime import Runtime

PART = wm.IS42S16160G_7
GEO = Geometry.of(PART)
#: the boards' clock in these tests: the 200 us power-up wait is 1000 cycles, a refresh every 39
CLOCK_MHZ = 5.0
#: the host's longest sleep on both boards, in cycles: STATUS polls come often, runs stay short
SLEEP = 200
MAX_DATA = 200
needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")
CXX = shutil.which("c++") or shutil.which("g++")


# -- the C++ chip against the Python chip, pin sample for pin sample ---------------------------

@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """sim/cpp/sdram_replay.cpp built with the system's C++ compiler."""
    if CXX is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path_factory.mktemp("replay") / "sdram_replay"
    subprocess.run([CXX, "-O1", "-std=c++17", "-o", str(exe), str(sb.vs.CPP / "sdram_replay.cpp")], check=True)
    return exe


def _pins(rng, n, t: Timing, power_up: int):
    """``n`` pin samples: the power-up sequence at about the right times, then random commands
    (every kind, random banks, a few rows, mostly a few columns, A10, DQM, data and output enable) at
    random gaps around the part's timings, CKE now and then low: sequences the controller would
    never drive, so that every check fires somewhere, and legal stretches in between."""
    codes = {c.name: c.value for c in Command}
    gap = max(t.rc, t.rfc, t.cas + 2)
    mode = MODE.const({"cas_latency": t.cas}).as_value().value
    plan_ = [(power_up + int(rng.integers(-3, 4)), "PRE", 1 << A10)]
    for _ in range(2):
        plan_.append((plan_[-1][0] + t.rp + int(rng.integers(-1, 3)), "REF", 0))
    plan_.append((plan_[-1][0] + t.rfc + int(rng.integers(-1, 3)), "MRS", mode))
    at = {e: (c, a) for e, c, a in plan_}
    out, edge, nxt = [], 0, plan_[-1][0] + t.mrd
    while len(out) < n:
        cmd, a, ba = "NOP", int(rng.integers(0, 1 << GEO.pin_bits)), int(rng.integers(0, PART.banks))
        if edge in at:
            cmd, a = at[edge]
        elif edge >= nxt:
            cmd = str(rng.choice(["ACT", "READ", "WRITE", "PRE", "REF", "MRS", "BST", "NOP"],
                                 p=[.22, .22, .22, .16, .001, .004, .02, .155]))
            if cmd == "ACT":
                a = int(rng.choice([0, 1, 7, (1 << GEO.row_bits) - 1]))
            elif cmd in ("READ", "WRITE"):
                col = int(rng.integers(0, 8) if rng.random() < 0.9 else rng.integers(0, PART.page_columns))
                a = col | (int(rng.random() < 0.05) << A10)
            elif cmd == "MRS":
                a = mode if rng.random() < 0.5 else int(rng.integers(0, 1 << GEO.pin_bits))
                ba = 0 if rng.random() < 0.7 else ba
            nxt = edge + int(rng.integers(0, gap + 1))
        cke = int(rng.random() > 0.002)
        cs_n = int(cmd == "NOP" and rng.random() < 0.5)
        c = codes[cmd]
        dq_oe = int(cmd == "WRITE" if rng.random() > 0.05 else rng.random() < 0.5)
        out.append((cke, cs_n, c >> 2 & 1, c >> 1 & 1, c & 1, ba, a, int(rng.integers(0, 4)),
                    int(rng.integers(0, 1 << 16)), dq_oe))
        edge += 1
    return out


@pytest.mark.parametrize("clock_mhz, read_delay, seed", [(100.0, 0, 0), (143.0, 2, 1), (25.0, 1, 2)])
def test_the_cpp_chip_is_the_python_chip(replay, tmp_path, clock_mhz, read_delay, seed):
    chip = SDRAMChip(PinSignature(GEO, PART.width_bits).create(), PART, clock_mhz=clock_mhz, power_up_us=1.0,
                     read_delay=read_delay, refresh_slack=0)
    pins = _pins(np.random.default_rng(seed), 12000, chip.t, chip.power_up)
    want = [chip.step(*p) for p in pins]
    params = tmp_path / "params.txt"
    params.write_text("\n".join(sb.chip_params(chip)) + "\n")
    r = subprocess.run([str(replay), str(params)], input="".join(" ".join(map(str, p)) + "\n" for p in pins),
                       capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert [int(v) for v in lines[:len(pins)]] == want
    count, kept = map(int, lines[len(pins)].split())
    got = lines[len(pins) + 1:len(pins) + 1 + kept]
    assert count == kept == len(chip.violations) and got == chip.violations
    assert dict(kv.split("=") for kv in lines[-1].split()) == {k: str(v) for k, v in chip.commands.items()}
    rules = {m.split(": ")[1].split(" ")[0] for m in chip.violations}
    timed = {f"t{k.upper()}" for k, v in dataclasses.asdict(chip.t).items() if v > 1 and k not in ("cas", "refi")}
    assert timed | {"ACTIVATE", "READ", "WRITE", "bus", "refresh", "CKE"} <= rules, rules     # every check fired
    assert len(set(want)) > 10                       # written data came back, not only FLOAT


# -- the whole board on both backends -----------------------------------------------------------

@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    """A one-layer model dir (Winograd F2, 4 -> 4 channels, 4x4), its config and image (as
    tests/test_rtl_board.py makes it), and two inputs."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(0), 2, (4, 4, 4), 1 / 32)
    b.winograd("conv1", INPUT, 4)
    model = fmt.write_model(tmp_path_factory.mktemp("m") / "m", b.manifest, b.arrays)
    cfg = network.config_for(model, unroll=2)
    img = compiler.compile_model(model, cfg, options=plan.Options(weights=cfg.weights)).image
    x = np.random.default_rng(1).integers(-128, 128, (2, *model.manifest["input"]["shape"]))
    return model, cfg, img, x


def _pysim(cfg, img, chip_timing=None):
    board = sb.build(img, cfg, word_bytes=2, max_data=MAX_DATA, memory=sb.SDRAM, clock_mhz=CLOCK_MHZ)
    return sb.PysimBoard(board, seed=3, sleep_cycles=SLEEP, chip_timing=chip_timing)


def _verilator(cfg, img, chip_timing=None):
    return sb.VerilatorBoard(img, cfg, clock_mhz=CLOCK_MHZ, memory=sb.SDRAM, seed=3, max_data=MAX_DATA,
                             sleep_cycles=SLEEP, chip_timing=chip_timing)


def _session(board, img, x):
    """Load over the link, run each input (the first cold, the rest warm): outputs, the
    cycle counter of each run, the board's cycles, the chip's report."""
    try:
        client = link.Client(board, name=board.name, timeout=0.05)
        rt = Runtime(client, img, run_timeout=0.5, now=board.now, sleep=board.sleep)
        rt.connect()
        rt.load()
        runs = [rt.run(x[i:i + 1]) for i in range(len(x))]
        return np.concatenate([r.outputs for r in runs]), [r.cycles for r in runs], board.cycle, board.chip_report()
    finally:
        board.close()


@pytest.fixture(scope="module")
def on_pysim(layer):
    """The session on the pysim board (the power-up wait, the load, two runs)."""
    _, cfg, img, x = layer
    return _session(_pysim(cfg, img), img, x)


def test_the_pysim_sdram_board_runs_the_image(layer, on_pysim):
    """Outputs equal to the interpreter's, the warm run shorter, refreshes and every word of
    the load written through the controller, no violation."""
    model, cfg, img, x = layer
    outs, cycles, _, chip = on_pysim
    np.testing.assert_array_equal(outs, interp.run(img, cfg, x)[model.layers[-1].name])
    assert chip.count == 0, chip.first
    assert cycles[0] > cycles[1] > 0
    assert chip.commands["REF"] > 2 and chip.commands["WRITE"] >= img.memory_size // 2


@pytest.mark.slow
@needs_verilator
def test_pysim_and_verilator_boards_agree(layer, on_pysim):
    """The same session on Verilator: the same outputs, the same cycle counter for the cold
    and the warm run, the same board cycles and chip commands, no violation."""
    _, cfg, img, x = layer
    v = _session(_verilator(cfg, img), img, x)
    np.testing.assert_array_equal(v[0], on_pysim[0])
    assert v[1:] == on_pysim[1:]
    print(f"board runs on the SDRAM at {CLOCK_MHZ} MHz: {v[1]} cycles (cold, warm), {v[2]} board cycles, "
          f"commands {v[3].commands}")


@pytest.mark.slow
@needs_verilator
def test_a_chip_expecting_a_longer_trcd_fails_the_board(layer):
    """The chip checks one cycle more tRCD than the controller waits: the first WRITE of the
    load is flagged, and the transport raises one line naming it, the same on both backends."""
    _, cfg, img, x = layer
    t = Timing.of(PART, CLOCK_MHZ)
    late = dataclasses.replace(t, rcd=t.rcd + 1)
    lines = []
    for make in (_verilator, _pysim):
        with pytest.raises(UsageError, match=r"the simulated SDRAM saw \d+ protocol or timing violations?; "
                                             r"the first: edge \d+: tRCD: WRITE bank \d ACTIVATE 1 cycles after, "
                                             r"needs 2") as e:
            _session(make(cfg, img, late), img, x)
        lines.append(str(e.value).split("; the first: ")[1])
        assert "\n" not in str(e.value)
    assert lines[0] == lines[1]
    print(e.value)


@pytest.mark.slow
@needs_verilator
def test_the_port_boards_agree(layer):
    """``memory="port"`` (the faster choice): the pysim and the Verilator board on a ``2,3``
    port model, stalls on the port and on the link's bytes, give the same outputs (the
    interpreter's) and the same cycles (its own build: slow)."""
    model, cfg, img, x = layer
    board = sb.build(img, cfg, word_bytes=2, max_data=MAX_DATA)
    p = _session(sb.PysimBoard(board, memory="2,3", stall=0.2, seed=4, sleep_cycles=SLEEP), img, x)
    v = _session(sb.VerilatorBoard(img, cfg, clock_mhz=1e-6 / sb.CYCLE_S, memory="2,3", stall=0.2, seed=4,
                                   max_data=MAX_DATA, sleep_cycles=SLEEP), img, x)
    np.testing.assert_array_equal(p[0], interp.run(img, cfg, x)[model.layers[-1].name])
    np.testing.assert_array_equal(v[0], p[0])
    assert v[1:3] == p[1:3] and v[3].count == p[3].count == 0


def test_bad_board_parameters_are_refused(layer):
    _, cfg, img, _ = layer
    board = sb.build(img, cfg, word_bytes=2, memory=sb.SDRAM, clock_mhz=CLOCK_MHZ)
    with pytest.raises(ValueError, match="sleep_cycles"):
        sb.PysimBoard(board, sleep_cycles=0)
    with pytest.raises(ValueError, match="host 'bytes'"):
        sb.BoardPorts(object())
    ports = sb.BoardPorts(board)
    assert {"sd_dq_o", "sd_dq_oe", "sd_dq_i", "sd_cs_n"} <= set(ports.signature.members)
    assert "cmd_valid" not in ports.signature.members
    Fragment.get(ports, None)
