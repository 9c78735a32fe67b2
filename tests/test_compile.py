"""wino_gen.isa, wino_gen.compile: the instruction format round-trips and refuses what does not
fit; model dirs compiled to memory images and interpreted with golden alone equal
``network.run_model`` in every stored tensor, for examples/tiny (U weights, and spatial weights
transformed by the interpreter as the engine does) and random small networks (random op
sequences, shapes, scratchpads, queue schedules); bad input is one line."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spatial_weights import spatial_tiny

from wino_gen import format as fmt
from wino_gen import isa, memory, network, plan
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
                                  dict(act_bytes=2400, weight_bytes=2400), dict(act_bytes=4000, weight_bytes=1200)])
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


def test_u_images_keep_the_old_layout(tiny):
    """A U-weight image's header word 164 (``weight_format``) is 0, which every image before
    spatial weights had there, and its parameter blocks hold no u arrays: old images read the
    same (the image format stays 1)."""
    model, cfg, _ = tiny
    data = compiler.compile_model(model, cfg).image.to_bytes()
    assert im.VERSION == 1 and data[164:168] == bytes(4)
    assert im.Image.from_bytes(data).weight_format == im.WEIGHTS_U


# -- random small networks ----------------------------------------------------------------------

def _i32(v):
    return np.asarray(v, dtype=np.int32)


@st.composite
def networks(draw):
    """A random model dir (manifest, arrays) of the ops the format allows, on small shapes."""
    tile = draw(st.sampled_from((2, 4)))
    gran = draw(st.sampled_from(("layer", "tap")))
    mode = draw(st.sampled_from(("pow2", "fixed")))
    n = tile + 2
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    C0, H0 = draw(st.integers(1, 4)), draw(st.integers(3, 9))
    shape = {fmt.INPUT: (C0, H0, draw(st.integers(3, 9)))}
    man = {"model": "rand", "tile": tile, "granularity": gran, "requant": mode, "act_bits": 8,
           "weight_bits": 8, "transform_bits": 8, "input": {"shape": list(shape[fmt.INPUT])}, "layers": []}
    arrays, acts = {}, {fmt.INPUT: rng.integers(-128, 128, (2, *shape[fmt.INPUT]))}
    model = fmt.Model(Path("."), man, [])

    def req(shift):
        size = np.shape(shift) if gran == "tap" else ()
        mult = np.broadcast_to(rng.integers(1 << 14, 1 << 15, size) if mode == "fixed" else 1, np.shape(shift))
        return _i32(mult), _i32(np.asarray(shift) + (15 if mode == "fixed" else 0))

    def taps(lo, hi):
        return rng.integers(lo, hi + 1, (n, n)) if gran == "tap" else np.full((n, n), rng.integers(lo, hi + 1))

    cur = fmt.INPUT
    ops = draw(st.lists(st.sampled_from(("wino", "wino", "direct", "add", "maxpool", "avgpool")), min_size=1,
                        max_size=4)) + draw(st.sampled_from(([], ["linear"])))
    for i, op in enumerate(ops):
        C, H, W = shape[cur]
        name = f"l{i}"
        spec = {"name": name, "inputs": [cur]}
        if op == "wino" and min(H, W) >= 3:
            K, p = draw(st.integers(1, 6)), draw(st.integers(0, 1))
            vm, vs = req(taps(0, 3))
            mm, ms = req(taps(5, 8))
            ym, ys = req(np.asarray(draw(st.integers(0, 3))))
            a = {"U": rng.integers(-128, 128, (K, C, n, n)).astype(np.int8), "bias": _i32(rng.integers(-500, 500, K)),
                 "v_mult": vm, "v_shift": vs, "m_mult": mm, "m_shift": ms,
                 "m_align": _i32(taps(0, 2) if gran == "tap" else np.zeros((n, n))), "y_mult": ym, "y_shift": ys}
            spec.update(op="winograd_conv3x3", padding=p, relu=draw(st.booleans()))
        elif op == "direct":
            k = draw(st.sampled_from([k for k in (1, 3) if k <= min(H, W)]))
            s, p = draw(st.integers(1, 2)), draw(st.integers(0, k - 1))
            K = draw(st.integers(1, 6))
            ym, ys = req(np.asarray(draw(st.integers(6, 10))))
            a = {"W": rng.integers(-128, 128, (K, C, k, k)).astype(np.int8), "bias": _i32(rng.integers(-999, 999, K)),
                 "y_mult": ym, "y_shift": ys}
            spec.update(op="direct_conv", stride=s, padding=p, relu=draw(st.booleans()))
        elif op == "add":
            same = [t for t in shape if shape[t] == shape[cur]]
            spec["inputs"] = [cur, draw(st.sampled_from(same))]
            a = {"a_mult": _i32(rng.integers(0, 1 << 15)), "b_mult": _i32(rng.integers(0, 1 << 15)),
                 "shift": _i32(15)}
            spec.update(op="add", relu=draw(st.booleans()))
        elif op == "maxpool" and min(H, W) >= 2:
            k = draw(st.integers(2, min(3, H, W)))
            spec.update(op="maxpool", kernel=k, stride=draw(st.integers(1, 2)), padding=draw(st.integers(0, k // 2)))
            a = {}
        elif op == "avgpool" and min(H, W) >= 2:
            k = draw(st.integers(2, min(H, W)))
            spec.update(op="avgpool", kernel=k, stride=draw(st.integers(1, k)))
            a = {"mult": _i32(rng.integers(1, 1 << 16)), "shift": _i32(16)}
        elif op == "linear":
            K = draw(st.integers(1, 5))
            a = {"W": rng.integers(-128, 128, (K, C * H * W)).astype(np.int8), "bias": _i32(rng.integers(-99, 99, K)),
                 "y_mult": req(np.asarray(9))[0], "y_shift": req(np.asarray(9))[1]}
            spec.update(op="linear", relu=False)
        else:
            continue
        lay = fmt.Layer(name, spec["op"], spec["inputs"], spec, f"{name}.npz", a)
        y = network.run_layer(model, lay, [acts[s] for s in spec["inputs"]])
        a = {**a, "x": acts[spec["inputs"][0]].astype(np.int8), "y": y.astype(np.int8)}
        if spec["op"] == "add":
            a["x2"] = acts[spec["inputs"][1]].astype(np.int8)
        spec.update(in_shape=list(shape[cur]), out_shape=list(y.shape[1:]))
        man["layers"].append(spec)
        arrays[name], acts[name] = a, y
        shape[name] = tuple(y.shape[1:]) if y.ndim == 4 else (y.shape[1], 1, 1)
        cur = name
        if spec["op"] == "linear":
            break
    unroll, unroll_in = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    pools = draw(st.integers(0, 6))
    return man, arrays, unroll, unroll_in, pools, draw(st.integers(0, 99))


POOLS = [(96, 64), (160, 128), (256, 256), (400, 400), (600, 300), (1200, 800), (2400, 2400), (20000, 30000),
         (None, None)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(networks(), st.integers(1, 2))
def test_random_networks_equal_golden(tmp_path, net, batch):
    man, arrays, unroll, unroll_in, first_pool, seed = net
    model = fmt.write_model(tmp_path / f"m{seed}", man, arrays)
    model = fmt.load_model(tmp_path / f"m{seed}")
    cfg = network.config_for(model, unroll=unroll, unroll_in=unroll_in)
    for a, w in POOLS[first_pool:]:
        try:
            c = compiler.compile_model(model, cfg, options=plan.Options(batch=batch, act_bytes=a, weight_bytes=w),
                                       memory_spec="2,4", trace=True)
            break
        except UsageError as e:       # the planner's refusal of a scratchpad too small, never the compiler's
            assert "\n" not in str(e) and "outside its regions" not in str(e)
    x = model.layers[0].arrays["x"]
    got = _check(c.image, cfg, model, x, seed)
    assert {la.name for la in model.layers} <= set(got)


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
