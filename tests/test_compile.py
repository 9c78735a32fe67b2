"""wino_gen.isa, wino_gen.compile: the instruction format round-trips and refuses what does not
fit; model dirs compiled to memory images and interpreted with golden alone equal
``network.run_model`` in every stored tensor, for examples/tiny (U weights, and spatial weights
transformed by the interpreter as the engine does) and random small networks (random op
sequences, shapes, scratchpads, queue schedules); bad input is one line."""

import dataclasses
import re
from pathlib import Path

import netgen
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spatial_weights import spatial_tiny

from wino_gen import format as fmt
from wino_gen import isa, layercost, memory, network, plan
from wino_gen.compile import cli, compiler, interp
from wino_gen.compile import image as im
from wino_gen.errors import UsageError, run_cli

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"
DOC = Path(__file__).resolve().parent.parent / "docs" / "image.md"


# -- the instruction format ---------------------------------------------------------------------

@st.composite
def instructions(draw):
    op = draw(st.sampled_from(sorted(isa.CLASSES)))
    allowed = isa.ALLOWED_FLAGS[isa.QUEUES[op]]
    values = {}
    for f in isa.LAYOUTS[op][1:]:
        hi = (1 << f.bits) - 1
        if f.name in isa.FLAGS:
            hi = hi if f.name in allowed else 0
        elif f.name == "mode":
            hi = len(isa.MODES) - 1
        elif f.name == "buffer":
            hi = len(isa.BUFFERS) - 1
        values[f.name] = draw(st.integers(0, hi))
    return isa.CLASSES[op](**values)


@settings(max_examples=300, deadline=None)
@given(instructions())
def test_isa_round_trip(ins):
    data = isa.encode(ins)
    assert len(data) == isa.WORD_BYTES
    assert isa.decode(data) == ins


def test_isa_layouts_are_disjoint_and_fit():
    for op, layout in isa.LAYOUTS.items():
        bits = [set(range(f.offset, f.offset + f.bits)) for f in layout]
        assert sum(map(len, bits)) == len(set().union(*bits)), op
        assert max(f.offset + f.bits for f in layout) <= isa.WORD_BITS
        assert layout[0] == isa.Field("opcode", 4, 0)


def test_isa_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match=r"COMPUTE\.r0"):
        isa.Compute(r0=1 << 13)
    with pytest.raises(ValueError, match=r"LOAD\.ext_addr"):
        isa.Load(ext_addr=-1)
    with pytest.raises(ValueError, match=r"LOAD\.pop_prev"):
        isa.Load(pop_prev=1)
    with pytest.raises(ValueError, match=r"STORE\.push_next"):
        isa.Store(push_next=1)
    with pytest.raises(ValueError, match=r"COMPUTE\.mode"):
        isa.Compute(mode=7)
    with pytest.raises(ValueError, match="unknown opcode"):
        isa.decode(bytes(isa.WORD_BYTES))
    with pytest.raises(ValueError, match="beyond its layout"):
        isa.decode((isa.OPCODES["END"] | 1 << 200).to_bytes(isa.WORD_BYTES, "little"))
    with pytest.raises(ValueError, match="bytes"):
        isa.decode(b"\1")


def doc_tables() -> str:
    """The field tables docs/image.md must print, generated from isa.LAYOUTS."""
    out = []
    for op, layout in isa.LAYOUTS.items():
        out.append(f"{op} (opcode {isa.OPCODES[op]}):\n\n| field | bits | offset |\n|---|---|---|")
        out += [f"| {f.name} | {f.bits} | {f.offset} |" for f in layout]
        out.append("")
    return "\n".join(out)


def test_doc_prints_the_layouts():
    text = DOC.read_text()
    assert doc_tables() in text, "docs/image.md: regenerate the field tables from tests/test_compile.doc_tables()"
    for name in im.DESC_WORDS + im.TAP_ARRAYS + im.SPATIAL_TAP_ARRAYS + ("weight_format",):
        assert f"`{name}`" in text
    for code, meaning in interp.STATUS.items():
        assert f"| {code} | {meaning} |" in text


# -- examples/tiny ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    model = fmt.load_model(TINY)
    return model, network.config_for(model), model.layers[0].arrays["x"]


def _check(img, cfg, model, x, schedule=None, machine=None):
    ref = network.run_model(model, x)
    got = interp.run(im.Image.from_bytes(img.to_bytes()), cfg, x, schedule, machine)
    assert got, "nothing stored"
    for name, v in got.items():
        assert np.array_equal(v.reshape(ref[name].shape), ref[name]), name
    return got


@pytest.mark.parametrize("opts", [dict(), dict(batch=2), dict(act_bytes=1600, weight_bytes=4700),
                                  dict(act_bytes=1600, weight_bytes=4700, batch=2),
                                  dict(act_bytes=2400, weight_bytes=2400, partial_sums=True),
                                  dict(act_bytes=4000, weight_bytes=1200, partial_sums=True)])
def test_tiny_equals_golden(tiny, opts):
    model, cfg, x = tiny
    c = compiler.compile_model(model, cfg, options=plan.Options(**opts), trace=True)
    names = {la.name for la in model.layers}
    for seed in (None, 1, 2):
        got = _check(c.image, cfg, model, x, seed)
        assert names <= set(got)
    assert c.step_bytes <= c.plan_bytes          # the plan counts clipped halo rows, the program does not
    assert c.image.memory_size <= memory.board_memory("ulx3s-85f").external.capacity


def test_tiny_without_trace_stores_the_plan_and_the_output(tiny):
    model, cfg, x = tiny
    c = compiler.compile_model(model, cfg, options=plan.Options(act_bytes=1600, weight_bytes=4700))
    got = _check(c.image, cfg, model, x)
    external = {lp.layer.name for lp in c.plan.layers if lp.placement[lp.layer.name] == "external"}
    assert set(got) == external | {"fc"}


def test_warm_run_keeps_resident_weights(tiny):
    """The second run starts at main_entry: the prologue's resident weights stay loaded."""
    model, cfg, x = tiny
    img = compiler.compile_model(model, cfg, trace=True).image
    assert img.main_entry > 0
    m = interp.Machine(img, cfg)
    _check(img, cfg, model, x, machine=m)      # two samples, batch 1: a cold run then a warm one
    _check(img, cfg, model, x[::-1], 5, machine=m)


# -- spatial weights ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spatial(tmp_path_factory):
    """examples/tiny with spatial weights (tests/test_spatial_weights.spatial_tiny) and a
    ``weights='spatial'`` config for it."""
    model = fmt.load_model(spatial_tiny(tmp_path_factory.mktemp("spatial") / "tiny_w"))
    return model, network.config_for(model, weights="spatial"), model.layers[0].arrays["x"]


@pytest.mark.parametrize("opts", [dict(), dict(act_bytes=1600, weight_bytes=4700, batch=2)])
def test_spatial_weights_equal_golden(spatial, tiny, opts):
    """The image holds W (9 bytes per kernel, in the plan's blocks) and u_mult/u_shift; the
    interpreter transforms W as the engine does and equals ``wino_gen check``'s golden run."""
    model, cfg, x = spatial
    c = compiler.compile_model(model, cfg, options=plan.Options(weights="spatial", **opts), trace=True)
    assert c.image.weight_format == im.WEIGHTS_SPATIAL
    for seed in (None, 3):
        assert {la.name for la in model.layers} <= set(_check(c.image, cfg, model, x, seed))
    kernels = sum(la.in_shape[0] * la.out_shape[0] for la in model.layers if la.op == "winograd_conv3x3")
    u_image = compiler.compile_model(tiny[0], tiny[1]).image
    assert len(c.image.weights) < len(u_image.weights) and kernels * 9 <= len(c.image.weights)
    desc = im.Desc.from_bytes(c.image.params, spatial=True)      # the first block: conv1
    np.testing.assert_array_equal(desc.taps["u_shift"], model.layers[0].arrays["u_shift"].ravel())


def test_spatial_image_detects_a_changed_kernel(spatial):
    model, cfg, x = spatial
    img = compiler.compile_model(model, cfg, trace=True).image
    w = bytearray(img.weights)
    w[0] ^= 0x40
    got = interp.run(im.Image.from_bytes(dataclasses.replace(img, weights=bytes(w)).to_bytes()), cfg, x)
    assert not np.array_equal(got["conv1"], network.run_model(model, x)["conv1"])


def test_spatial_weights_need_a_spatial_build_and_W(spatial, tiny):
    model, cfg, _ = spatial
    with pytest.raises(UsageError, match="--weights winograd: the config's engine takes spatial weights"):
        compiler.compile_model(model, cfg, options=plan.Options(weights="winograd"))
    with pytest.raises(UsageError, match="--weights spatial: the config's engine takes winograd weights"):
        compiler.compile_model(tiny[0], tiny[1], options=plan.Options(weights="spatial"))
    with pytest.raises(UsageError, match="conv1: the config's engine takes spatial weights"):
        compiler.compile_model(tiny[0], dataclasses.replace(tiny[1], weights="spatial"))


def test_cli_compile_spatial(tmp_path, capsys, spatial):
    model, cfg, _ = spatial
    cfg.save(tmp_path / "top.json")
    args = [str(model.path), "--config", str(tmp_path / "top.json"), "--board", "ulx3s-85f", "-o",
            str(tmp_path / "image.bin"), "--trace", "--run"]
    assert run_cli(cli.main, [*args, "--weights", "spatial"]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    assert run_cli(cli.main, [*args, "--weights", "winograd"]) == 2
    assert "--weights winograd" in capsys.readouterr().err


# -- random small networks ----------------------------------------------------------------------

@st.composite
def networks(draw):
    """A random model dir (tests/netgen.py) and the build, scratchpads and queue seed to run it on."""
    man, arrays = netgen.random_network(netgen.Drawn(draw), ("wino", "wino", "direct", "add", "maxpool", "avgpool",
                                                             "linear"))
    unroll, unroll_in = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    pools = draw(st.integers(0, 6))
    return man, arrays, unroll, unroll_in, pools, draw(st.integers(0, 99))


POOLS = [(96, 64), (160, 128), (256, 256), (400, 400), (600, 300), (1200, 800), (2400, 2400), (20000, 30000),
         (None, None)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(networks(), st.integers(1, 2), st.sampled_from((1, 2, 4)))
def test_random_networks_equal_golden(tmp_path, net, batch, port):
    """... on a memory port of 1, 2 or 4 bytes: every transfer row starts on a port word, and
    the realigned transfers (rows that start early, the bytes a STORE rewrites) change nothing."""
    man, arrays, unroll, unroll_in, first_pool, seed = net
    model = fmt.write_model(tmp_path / f"m{seed}", man, arrays)
    model = fmt.load_model(tmp_path / f"m{seed}")
    cfg = network.config_for(model, unroll=unroll, unroll_in=unroll_in)
    for a, w in POOLS[first_pool:]:
        try:
            c = compiler.compile_model(model, cfg, options=plan.Options(batch=batch, act_bytes=a, weight_bytes=w),
                                       memory_spec="2,4", trace=True, port_bytes=port)
            break
        except UsageError as e:       # the planner's refusal of a scratchpad too small, never the compiler's
            assert "\n" not in str(e) and "outside its regions" not in str(e)
            why = str(e)
    else:
        raise AssertionError(f"no scratchpad compiles: {why}")
    assert c.image.port_bytes == port
    assert not [im.misaligned(ins, port) for ins in c.image.program if ins.OP in ("LOAD", "STORE")
                if im.misaligned(ins, port)]
    x = model.layers[0].arrays["x"]
    got = _check(c.image, cfg, model, x, seed)
    assert {la.name for la in model.layers} <= set(got)


# -- the memory port's word -----------------------------------------------------------------------

def test_realign_rows():
    """A block whose external rows start off the word: each row starts early by its offset in
    the word, rows with the same offset go together (a stride of 25 on a 4-byte word: 4 blocks
    of stride 100), rows back to back on both sides become one."""
    blocks = compiler.realign(e=27, es=25, count=6, burst=10, s=3, ss=17, w=4)
    assert [(b.ext, b.es, b.count, b.burst, b.sp, b.ss, b.head) for b in blocks] == [
        (24, 100, 2, 13, 0, 68, 3), (52, 100, 2, 10, 20, 68, 0), (76, 100, 1, 11, 36, 68, 1),
        (100, 100, 1, 12, 52, 68, 2)]
    rows = {(b.ext + b.head + i * b.es, b.sp + b.head + i * b.ss) for b in blocks for i in range(b.count)}
    assert rows == {(27 + 25 * j, 3 + 17 * j) for j in range(6)}
    assert [(b.count, b.burst) for b in compiler.realign(e=8, es=12, count=3, burst=12, s=4, ss=12, w=4)] == [(1, 36)]
    with pytest.raises(AssertionError, match="congruent"):
        compiler.realign(e=1, es=4, count=2, burst=4, s=0, ss=4, w=4)


@pytest.mark.parametrize("port", [2, 4])
def test_odd_planes_on_a_wide_port(tmp_path, port):
    """5x5 planes (25 bytes: no stride of a channel is a port word) cut into row bands and
    channel blocks: the program's rows all start on words, the STOREs that start early keep the
    bytes before them (the interpreter equals golden on every tensor), the compiler's own layout
    runs on a port of the word it names and refuses to run on a wider one."""
    man, arrays = netgen.random_network(netgen.Seeded(6), ("wino", "direct"), tiles=(2,), grans=("layer",),
                                        modes=("pow2",), max_ops=2, max_k=6, max_pad=1, channels=(5, 5), size=(5, 5))
    model = fmt.write_model(tmp_path / "m", man, arrays)
    cfg = network.config_for(model, unroll=2)
    c = compiler.compile_model(model, cfg, options=plan.Options(act_bytes=160, weight_bytes=400), trace=True,
                               port_bytes=port)
    prog = c.image.program
    assert [la.out_shape for la in model.layers] == [(6, 5, 5)]
    assert min(ins.r1 - ins.r0 for ins in prog if ins.OP == "COMPUTE") < 5       # banded
    heads = [i for i, ins in enumerate(prog) if ins.OP == "LOAD" and ins.ext_addr >= c.image.act_offset
             and prog[i + 1].OP in ("SYNC", "STORE")]
    assert heads, "no STORE started early"
    for seed in (None, 1, 2):
        _check(c.image, cfg, model, model.layers[0].arrays["x"], seed)
    wider = dataclasses.replace(c.image, port_bytes=2 * port)
    with pytest.raises(interp.Fault, match="error status 1 .* not a multiple of the"):
        interp.run(wider, cfg, model.layers[0].arrays["x"])


def test_image_names_its_port_word(tiny):
    """Image format 2: header word 168 (``port_bytes``) is the word every transfer row starts
    on; word 164 (``weight_format``) stays 0 for U weights; a word that is not a power of two up
    to the 64-byte alignment is refused, as is an image of format 1."""
    model, cfg, _ = tiny
    data = compiler.compile_model(model, cfg, port_bytes=4).image.to_bytes()
    assert im.VERSION == 2 and data[164:168] == bytes(4) and data[168:172] == (4).to_bytes(4, "little")
    assert im.Image.from_bytes(data).port_bytes == 4
    assert compiler.compile_model(model, cfg).image.port_bytes == memory.board_memory("ulx3s-85f").external.word_bytes
    for bad in (3, 128):
        with pytest.raises(UsageError, match="port_bytes"):
            im.Image.from_bytes(data[:168] + bad.to_bytes(4, "little") + data[172:])
    with pytest.raises(UsageError, match="version: image format 1"):
        im.Image.from_bytes(data[:8] + (1).to_bytes(4, "little") + data[12:])
    with pytest.raises(UsageError, match="--port-bits: 24"):
        compiler.compile_model(model, cfg, port_bytes=3)


@pytest.mark.parametrize("how", ["argument", "options", "default"])
def test_plan_and_image_name_one_port(tiny, how):
    """The port word the image is compiled for is the one the plan prices its transfers on,
    however it is given: ``port_bytes``, ``Options.port_bytes``, or the board's memory by
    default (a ``--memory`` study memory, which has no word of its own, keeps the board's)."""
    model, cfg, _ = tiny
    opts, kw = {"argument": ({}, {"port_bytes": 1}), "options": ({"port_bytes": 1}, {}), "default": ({}, {})}[how]
    c = compiler.compile_model(model, cfg, options=plan.Options(**opts), memory_spec="4,0", **kw)
    want = 2 if how == "default" else 1
    assert c.image.port_bytes == c.plan.options.port_bytes == want
    # a transfer of n bytes takes at least one cycle per port word: the plan's limit is the image's
    xs = [x for lp in c.plan.layers for s in lp.steps for x in s.loads + s.stores]
    assert xs and all(x.cycles >= layercost.XFER_ISSUE + layercost.XFER_ANSWER + -(-x.bytes // want) for x in xs)
    with pytest.raises(UsageError, match="--port-bits 16: the plan is made for a 8-bit port"):
        compiler.compile_model(model, cfg, options=plan.Options(port_bytes=1), port_bytes=2)


# -- bad input ------------------------------------------------------------------------------------

def test_hash_mismatch_is_refused(tiny):
    model, cfg, x = tiny
    img = compiler.compile_model(model, cfg).image
    with pytest.raises(UsageError, match="compiled for config sha256"):
        interp.run(img, dataclasses.replace(cfg, unroll=cfg.unroll + 1), x)


def test_ops_the_build_lacks(tiny):
    model, cfg, _ = tiny
    with pytest.raises(UsageError, match="conv1: winograd_conv3x3 needs a Winograd engine"):
        compiler.compile_model(model, dataclasses.replace(cfg, algo="direct"))
    with pytest.raises(UsageError, match="F4 .* on an F2"):
        compiler.compile_model(model, dataclasses.replace(cfg, tile=2))
    with pytest.raises(UsageError, match="act_bits"):
        compiler.compile_model(model, dataclasses.replace(cfg, act_bits=9))
    with pytest.raises(UsageError, match="no external RAM"):
        compiler.compile_model(model, cfg, board="icebreaker")


def test_model_that_does_not_fit_the_memory(tiny, monkeypatch):
    model, cfg, _ = tiny
    small = dataclasses.replace(memory.IS42S16160G_7, capacity=20000)
    real = memory.board_memory

    def fake(board, spec=None):
        bm = real(board, spec)
        return dataclasses.replace(bm, external=small, weight_store=small)

    monkeypatch.setattr(memory, "board_memory", fake)
    with pytest.raises(UsageError, match="needs .* MiB of external memory|do not fit"):
        compiler.compile_model(model, cfg)


def _tampered(img, index, ins):
    prog = list(img.program)
    prog[index] = ins
    return dataclasses.replace(img, program=tuple(prog))


def test_memory_outside_the_regions_is_an_error_status(tiny):
    model, cfg, x = tiny
    img = compiler.compile_model(model, cfg).image
    i = next(i for i, s in enumerate(img.program) if s.OP == "STORE")
    into_weights = dataclasses.replace(img.program[i], ext_addr=img.weights_offset)
    assert "outside the act region" in im.check_transfer(img, into_weights)
    with pytest.raises(interp.Fault, match="error status 2") as e:
        interp.run(_tampered(img, i, into_weights), cfg, x)
    assert e.value.status == 2
    j = next(i for i, s in enumerate(img.program) if s.OP == "LOAD" and s.buffer == 0)
    past = dataclasses.replace(img.program[j], ext_addr=img.memory_size - 1)
    with pytest.raises(interp.Fault, match="error status 2"):
        interp.run(_tampered(img, j, past), cfg, x)
    big = dataclasses.replace(img.program[j], sp_addr=img.act_scratch - 1)
    with pytest.raises(interp.Fault, match="scratchpad act"):
        interp.run(_tampered(img, j, big), cfg, x)


def test_missing_token_is_a_deadlock(tiny):
    model, cfg, x = tiny
    img = compiler.compile_model(model, cfg).image
    i = next(i for i, s in enumerate(img.program) if s.OP == "LOAD" and s.push_next)
    with pytest.raises(interp.Fault, match="error status 3"):
        interp.run(_tampered(img, i, dataclasses.replace(img.program[i], push_next=0)), cfg, x)


def test_corrupt_images_are_one_line(tiny):
    model, cfg, _ = tiny
    data = compiler.compile_model(model, cfg).image.to_bytes()
    for bad, msg in ((data[:100], "header"), (b"X" + data[1:], "magic"), (data[:-1], "file size|past the end"),
                     (data[:8] + b"\x09" + data[9:], "version")):
        with pytest.raises(UsageError, match=msg) as e:
            im.Image.from_bytes(bad)
        assert "\n" not in str(e.value)
    img = im.Image.from_bytes(data)
    word = bytearray(data)
    word[img.program_offset] = 0xF
    with pytest.raises(UsageError, match=r"program\[0\]: instruction: unknown opcode"):
        im.Image.from_bytes(bytes(word))


# -- the command line ---------------------------------------------------------------------------

def test_cli_compile_and_run(tmp_path, capsys, tiny):
    model, cfg, _ = tiny
    cfg.save(tmp_path / "top.json")
    image = tmp_path / "image.bin"
    assert run_cli(cli.main, [str(TINY), "--config", str(tmp_path / "top.json"), "-o", str(image), "--trace",
                              "--act-bytes", "1600", "--weight-bytes", "4700", "--run", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"interpret: 2 samples, batch 1, token counters up to \d+: 0 mismatches", out)
    assert out.count(" ok") == len(model.layers)
    assert run_cli(cli.main, [str(TINY), "--config", str(tmp_path / "top.json"), "--run", str(image)]) == 0
    dataclasses.replace(cfg, unroll=cfg.unroll + 1).save(tmp_path / "other.json")
    capsys.readouterr()
    assert run_cli(cli.main, [str(TINY), "--config", str(tmp_path / "other.json"), "--run", str(image)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: image: compiled for config sha256 \S+ --config has \S+ \(compile it for this "
                        r"config\)\n", err)


def test_cli_port_bits(tmp_path, capsys, tiny):
    """``--port-bits`` names the port the image is aligned to (default: the board's 16-bit SDRAM)."""
    model, cfg, _ = tiny
    cfg.save(tmp_path / "top.json")
    base = [str(TINY), "--config", str(tmp_path / "top.json"), "-o", str(tmp_path / "image.bin"), "--act-bytes",
            "1600", "--weight-bytes", "4700", "--trace"]
    for bits, want in ((None, 16), (32, 32), (8, 8)):
        assert run_cli(cli.main, base + (["--port-bits", str(bits)] if bits else []) + ["--run"]) == 0
        out = capsys.readouterr().out
        assert f"({want}-bit port)" in out and "0 mismatches" in out
        assert im.Image.from_bytes((tmp_path / "image.bin").read_bytes()).port_bytes == want // 8
    assert run_cli(cli.main, base + ["--port-bits", "12"]) == 2
    assert "--port-bits: 12" in capsys.readouterr().err


@pytest.mark.parametrize("args, msg", [
    ([], "give -o IMAGE"),
    (["--run", "nope.bin"], "nope.bin"),
    (["-o", "x.bin", "--board", "icebreaker"], "no external RAM"),
    (["-o", "x.bin", "--batch", "0"], "--batch"),
    (["-o", "missing/x.bin"], "does not exist"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, tiny, monkeypatch, args, msg):
    monkeypatch.chdir(tmp_path)
    tiny[1].save(tmp_path / "top.json")
    assert run_cli(cli.main, [str(TINY), "--config", "top.json", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err and err.startswith("error: ")
    assert not (tmp_path / "x.bin").exists()


def test_mismatch_exits_1_naming_the_layer(tmp_path, capsys, tiny):
    """An image whose weights were changed after compiling: the interpreter shows where."""
    model, cfg, _ = tiny
    img = compiler.compile_model(model, cfg, trace=True).image
    w = bytearray(img.weights)
    w[:64] = bytes(64)
    (tmp_path / "bad.bin").write_bytes(dataclasses.replace(img, weights=bytes(w)).to_bytes())
    cfg.save(tmp_path / "top.json")
    assert run_cli(cli.main, [str(TINY), "--config", str(tmp_path / "top.json"), "--run",
                              str(tmp_path / "bad.bin")]) == 1
    assert "first mismatch in layer conv1" in capsys.readouterr().out
