"""Pipeline and stream helpers shared by the rtl blocks.

The data path stalls *as a whole*: a block that owns a pipeline clocks every register (data
and valid bits alike) with one enable, :func:`stage_enable`, so a word in flight freezes while
the output is not taken. :func:`delay` is the delay line that carries valid bits and tags
alongside the data stages; :func:`beat_layout` is the one payload shape of the Winograd
domain (line buffer -> input transform -> V requant -> PE array), so those blocks connect
with ``wiring.connect``.
"""

from __future__ import annotations

from amaranth.hdl import Signal, signed
from amaranth.lib import data


def stage_enable(m, o, i=None) -> Signal:
    """The clock enable of a stall-as-a-whole pipeline with output stream ``o``:
    ``~o.valid | o.ready`` (an empty or a draining output lets every stage move). With an
    input stream ``i``, its ``ready`` is the same enable."""
    en = Signal()
    m.d.comb += en.eq(~o.valid | o.ready)
    if i is not None:
        m.d.comb += i.ready.eq(en)
    return en


def delay(m, en, sig, stages: int, name: str, *, first: int = 0):
    """``sig`` through ``stages`` registers clocked while ``en``; register ``s`` is named
    ``f"{name}{first + s}"``. Returns the last one (``sig`` itself for 0 stages)."""
    for s in range(stages):
        r = Signal.like(sig, name=f"{name}{first + s}")
        with m.If(en):
            m.d.sync += r.eq(sig)
        sig = r
    return sig


def payload_layout(fields: dict, tag_shape=None) -> data.StructLayout:
    """A stream payload: ``fields``, then ``tag`` (a shape the block carries alongside its
    data unchanged) when given."""
    if tag_shape is not None:
        fields = {**fields, "tag": tag_shape}
    return data.StructLayout(fields)


def beat_layout(bits: int, groups: int, lanes: int, tag_shape=None) -> data.StructLayout:
    """``data[group][lane]`` of ``bits`` signed values, and ``tag``: in the Winograd domain one
    PE-array step, ``unroll_in`` channels (groups) of n² taps (lanes) — the line buffer's tile,
    its transform, the requantized V — with the step's tag."""
    return payload_layout({"data": data.ArrayLayout(data.ArrayLayout(signed(bits), lanes), groups)},
                          tag_shape)
