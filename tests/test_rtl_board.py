# amaranth: UnusedElaboratable=no
"""rtl.board: the board's system top (host link, launcher, system, one memory port) in pysim,
driven by the unchanged host code: wino_gen.link's Client and wino_gen.run.runtime's Runtime
talk to sim.board.PysimBoard as to any transport. A one-layer model dir is compiled, its image
written over the link into a noisy memory model, run cold (from the first instruction) and warm
(from main_entry), and the output slot read back equals the image interpreter's in every byte;
STATUS names a hardware error with the program's own instruction index; the whole path also
runs bit by bit through the UARTs."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.board import BoardSystem, Launcher, header_span
from rtl.mem.port import PortSignature
from sim import board as sb
from sim import system as ss
from wino_gen import format as fmt
from wino_gen import isa, link, network, plan
from wino_gen.compile import compiler, interp
from wino_gen.compile import image as im
from wino_gen.errors import UsageError
from wino_gen.example import _Builder
from wino_gen.format import INPUT
from wino_gen.run.runtime import Runtime


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    """A one-layer model dir (Winograd F2, 4 -> 4 channels, 4x4, batch 1), its config, image."""
    b = _Builder(2, "layer", "pow2", np.random.default_rng(0), 2, (4, 4, 4), 1 / 32)
    b.winograd("conv1", INPUT, 4)
    model = fmt.write_model(tmp_path_factory.mktemp("m") / "m", b.manifest, b.arrays)
    cfg = network.config_for(model, unroll=2)
    img = compiler.compile_model(model, cfg, options=plan.Options(weights=cfg.weights)).image
    return model, cfg, img


def _session(img, cfg, *, word_bytes=2, host="bytes", memory="2,3", stall=0.2, seed=0, max_data=200, timeout=0.05):
    board = sb.PysimBoard(sb.build(img, cfg, word_bytes=word_bytes, host=host, max_data=max_data),
                          memory=memory, stall=stall, seed=seed)
    client = link.Client(board, name="pysim", timeout=timeout)
    rt = Runtime(client, img, run_timeout=0.5, now=board.now, sleep=board.sleep)
    return board, client, rt


@pytest.fixture(scope="module")
def loaded(layer):
    """The layer's image loaded over the link into a board (a 16-bit port, memory latency 3,
    stalls on every stream) and run once from instruction 0, so that a warm run (from
    main_entry: the weights already on chip) is valid in any test and in any order; shared by
    the tests below: each leaves it as it found it."""
    model, cfg, img = layer
    board, client, rt = _session(img, cfg)
    v = rt.connect()
    assert v.config_sha256 == im.config_sha256(cfg) and 1 << v.addr_bits == len(board.mem)
    rt.load()
    rt.run(_inputs(model, 1, seed=9))
    return board, client, rt


def _inputs(model, n, seed=1):
    shape = tuple(model.manifest["input"]["shape"])
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape))


def _end(img):
    return next(i for i, ins in enumerate(img.program) if ins.OP == "END")


def test_runs_cold_then_warm_equal_to_the_interpreter(layer, loaded):
    """Two inputs through the link: the first run from instruction 0 (the prologue loads the
    weights), the next from main_entry; every output byte equals the interpreter's (and the
    integer model's), the cycles are the system's counter."""
    model, cfg, img = layer
    _, client, rt = loaded
    rt._warm = False
    x = _inputs(model, 2)
    want = interp.run(img, cfg, x)[model.layers[-1].name]
    got = [rt.run(x[i:i + 1]) for i in range(len(x))]
    np.testing.assert_array_equal(np.concatenate([r.outputs for r in got]), want)
    np.testing.assert_array_equal(want, network.run_model(model, x)[model.layers[-1].name].reshape(want.shape))
    assert got[0].cycles > got[1].cycles > 0, [r.cycles for r in got]      # the warm run loads no weights
    s = client.status()
    assert (s.done, s.running, s.error, s.error_instr) == (True, False, 0, _end(img))
    print(f"board runs: {[r.cycles for r in got]} cycles (cold, warm); {client.retries} requests resent")


def test_an_error_names_the_programs_instruction(layer, loaded):
    """The last STORE rewritten over the link to write into the parameters: the warm run stops
    with the interpreter's status at that STORE's index in the program (the sequencer counts
    from main_entry; the launcher adds it back); put back, the next run is right again."""
    model, cfg, img = layer
    _, client, rt = loaded
    k = max(i for i, ins in enumerate(img.program) if ins.OP == "STORE")
    assert k >= img.main_entry > 0
    bad = dataclasses.replace(img.program[k], ext_addr=img.params_offset)
    prog = list(img.program)
    prog[k] = bad
    with pytest.raises(interp.Fault) as e:
        interp.run(dataclasses.replace(img, program=tuple(prog)), cfg, _inputs(model, 1))
    addr = img.program_offset + isa.WORD_BYTES * k
    client.write_mem(addr, isa.encode(bad))
    rt._warm = True
    try:
        with pytest.raises(UsageError, match=rf"error status {e.value.status} .* at instruction {k} \(STORE\)"):
            rt.run(_inputs(model, 1))
    finally:
        client.write_mem(addr, isa.encode(img.program[k]))
    x = _inputs(model, 1, seed=5)
    np.testing.assert_array_equal(rt.run(x).outputs, interp.run(img, cfg, x)[model.layers[-1].name])


def test_a_start_outside_the_program_is_a_bad_instruction(layer, loaded):
    """An entry inside an instruction, past the program's end, or before it: status 1 at the
    index the golden board names, nothing run."""
    _, _, img = layer
    _, client, _ = loaded
    for entry, index in ((img.program_offset + 4, 0), (img.program_offset + isa.WORD_BYTES * len(img.program),
                                                        len(img.program)), (0, 0)):
        client.start(entry)
        s = client.status()
        while s.running:
            s = client.status()
        assert (s.done, s.error, s.error_instr) == (True, 1, index), (entry, s)


@pytest.mark.slow
def test_through_the_uart_pins(layer):
    """The whole session bit by bit through the board's UART (4 cycles a bit) and a host-side
    UART pair: load, one run, output equal to the interpreter's."""
    model, cfg, img = layer
    _, _, rt = _session(img, cfg, host="uart", stall=0.1, max_data=link.MAX_DATA, timeout=1.0)
    rt.connect()
    rt.load()
    x = _inputs(model, 1, seed=3)
    np.testing.assert_array_equal(rt.run(x).outputs, interp.run(img, cfg, x)[model.layers[-1].name])


def test_version_and_status_through_the_uart_pins(layer):
    """The UART host in one short case: VERSION and STATUS bit by bit."""
    _, cfg, img = layer
    _, client, _ = _session(img, cfg, host="uart", stall=0.1, timeout=1.0)
    assert client.version().config_sha256 == im.config_sha256(cfg)
    s = client.status()
    assert not s.running and not s.done


def test_header_span_reads_the_images_fields(layer):
    _, _, img = layer
    data = img.to_bytes()
    got = {n: int.from_bytes(data[o:o + size], "little") for n, (o, size) in header_span().items()}
    assert got == dict(program_offset=img.program_offset, program_count=len(img.program),
                       params_offset=img.params_offset, act_offset=img.act_offset, act_size=img.act_size,
                       memory_size=img.memory_size)


@pytest.fixture(scope="module")
def a_system(layer):
    """A System for the constructor checks, elaborated afterwards (so that Amaranth does not
    warn of its parts as unused)."""
    _, cfg, img = layer
    sysm = ss.build(img, cfg, 4096, 1)
    yield sysm
    Fragment.get(sysm, None)


@pytest.mark.parametrize("kw, match", [
    (dict(host="spi"), "host"), (dict(memory="flash"), "memory"), (dict(divisor=2), "divisor"),
    (dict(memory="sdram"), "clock_mhz"), (dict(memory="sdram", clock_mhz=50), "8 bits wide"),
])
def test_bad_parameters_are_refused(a_system, kw, match):
    with pytest.raises(ValueError, match=match):
        BoardSystem(a_system, config_sha256=bytes(32), gap_cycles=10, **kw)
    with pytest.raises(ValueError, match="System"):
        BoardSystem(object(), config_sha256=bytes(32), gap_cycles=10)
    port = PortSignature(data_width=8, addr_width=8, max_burst=4)
    with pytest.raises(ValueError, match="max_instrs"):
        Launcher(port, a_system.seq.start_layout, 8, max_instrs=0)


def test_the_sdram_option_puts_the_controller_in_front(layer):
    """``memory="sdram"``: the controller on a 16-bit system port, the chip's pins as the
    board's ports instead of the memory port (elaborated; the controller itself is checked
    against the behavioural chip in tests/test_rtl_sdram.py)."""
    _, cfg, img = layer
    b = BoardSystem(ss.build(img, cfg, 1 << 12, 2), config_sha256=bytes(32), gap_cycles=10, memory="sdram",
                    clock_mhz=50)
    assert "pins" in b.signature.members and "mem" not in b.signature.members
    assert b.sdram.port_sig == b.port_sig
    Fragment.get(b, None)
