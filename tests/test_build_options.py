"""The structural build options: a frozen, validated object that the tops take as a
constructor argument and pass on to their blocks (no platform attributes), the options each
flow picks, and the ``options.json`` a build writes beside its config."""

import json
from dataclasses import FrozenInstanceError

import pytest
from amaranth.hdl import Fragment, Instance, MemoryInstance

from rtl.ram import MODULE
from rtl.top import build_top
from wino_gen import boards
from wino_gen.config import AcceleratorConfig
from wino_gen.errors import UsageError
from wino_gen.flow import build
from wino_gen.flow.generate import export_options
from wino_gen.options import BuildOptions

CFG = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16)


def _walk(frag, path=()):
    """``(path of submodule names, fragment)`` of every fragment below ``frag``."""
    for sub, name, *_ in frag.subfragments:
        here = (*path, name)
        yield here, sub
        if not isinstance(sub, Instance):
            yield from _walk(sub, here)


def _structure(cfg, options):
    """Submodule paths, instance types, and the count of Amaranth memories."""
    frag = Fragment.get(build_top(cfg, options), None)
    parts = list(_walk(frag))
    paths = {"/".join(str(n) for n in p) for p, _ in parts}
    kinds = [sub.type for _, sub in parts if isinstance(sub, Instance)]
    kinds += ["memory"] * sum(isinstance(sub, MemoryInstance) for _, sub in parts)
    return paths, kinds


def test_defaults_and_validation():
    o = BuildOptions()
    assert (o.skid, o.ice40_mac16, o.blackbox_ram) == (True, False, False)
    with pytest.raises(FrozenInstanceError):
        o.skid = False
    for bad in (1, 0, "yes", None):
        with pytest.raises(UsageError, match="skid: expected true or false"):
            BuildOptions(skid=bad)


def test_dict_round_trip():
    o = BuildOptions(skid=False, ice40_mac16=True)
    assert BuildOptions.from_dict(json.loads(o.to_json())) == o
    assert BuildOptions.from_dict({}) == BuildOptions()
    with pytest.raises(UsageError, match="unknown wino_skid"):
        BuildOptions.from_dict({"wino_skid": False})
    with pytest.raises(UsageError, match="expected an object"):
        BuildOptions.from_dict([True])


def test_skid_option_places_the_skid_buffer():
    with_skid, _ = _structure(CFG, BuildOptions())
    without, _ = _structure(CFG, BuildOptions(skid=False))
    assert "skid" in with_skid and "skid" not in without


@pytest.mark.parametrize("algo", ["winograd", "direct"])
def test_mac16_option_reaches_the_pe_array(algo):
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16, algo=algo)
    _, kinds = _structure(cfg, BuildOptions(ice40_mac16=True))
    assert kinds.count("SB_MAC16") == cfg.multipliers // 2
    assert "SB_MAC16" not in _structure(cfg, BuildOptions())[1]


@pytest.mark.parametrize("algo", ["winograd", "direct"])
def test_blackbox_ram_option_reaches_every_ram(algo):
    cfg = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16, algo=algo)
    _, kinds = _structure(cfg, BuildOptions(blackbox_ram=True))
    rams = 1 + (cfg.n ** 2 if algo == "winograd" else 0)        # weight buffer, line-buffer banks
    assert kinds.count(MODULE) == rams and "memory" not in kinds
    _, kinds = _structure(cfg, BuildOptions())
    assert MODULE not in kinds and kinds.count("memory") == rams


def test_generate_exports_blackbox_rams_in_verilog_only():
    assert export_options(rtlil=False) == BuildOptions(blackbox_ram=True)
    assert export_options(rtlil=True) == BuildOptions()


def test_board_builds_pick_their_structure():
    ulx, ice = boards.get_board("ulx3s-85f"), boards.get_board("icebreaker")
    assert build.build_options(CFG, ulx, use_dsp=True) == BuildOptions()
    assert build.build_options(CFG, ice, use_dsp=True) == BuildOptions(skid=False, ice40_mac16=True)
    assert build.build_options(CFG, ice, use_dsp=False) == BuildOptions(skid=False)
    wide = AcceleratorConfig(tile=2, unroll=1, max_width=16, max_channels=16, weight_bits=9)
    assert build.build_options(wide, ice, use_dsp=True) == BuildOptions(skid=False)


def _plan(board, **kw):
    return build.plan_build(CFG, boards.get_board(board), board_defaults={}, dsp="auto", target_mhz=None,
                            channels=2, size=4, seed=1, corrupt=None, force=False, **kw)


def test_plan_synthesis_options_follow_the_mac16_choice():
    ice = _plan("icebreaker")
    assert ice.options.ice40_mac16 and ice.synth_opts == ice.board.nodsp_synth_opts
    ulx = _plan("ulx3s-85f")
    assert not ulx.options.ice40_mac16 and ulx.synth_opts == ulx.board.dsp_synth_opts


def test_plan_refuses_corrupt_out_of_range():
    with pytest.raises(UsageError, match="--corrupt 10000: out of range"):
        build.plan_build(CFG, boards.get_board("ulx3s-85f"), board_defaults={}, dsp="auto", target_mhz=None,
                         channels=2, size=4, seed=1, corrupt=10000, force=False)


def test_elaborate_writes_options_beside_the_config(tmp_path):
    """The build folder records the structure next to the config, without running the tools."""
    plan = _plan("icebreaker")
    bdir, script = build.elaborate(plan, tmp_path)
    assert AcceleratorConfig.load(tmp_path / "config.json") == CFG
    assert BuildOptions.from_dict(json.loads((tmp_path / "options.json").read_text())) == plan.options
    assert (bdir / "top.il").is_file() and "NEXTPNR_ICE40" in script
