"""Requantizer: ``golden.rq`` on a vector of lanes, pipelined, with a stream handshake."""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.limits import SHIFT_BITS
from wino_gen.schedule import rq_latency

from .arith import rq_pipeline
from .pipeline import beat_layout, delay, stage_enable


def requant_params_layout(n_params: int, mult_bits: int | None) -> data.StructLayout:
    """``mult`` (``fixed`` only) and ``shift`` arrays of ``n_params`` (1 = per layer,
    n² = per tap)."""
    fields = {"shift": data.ArrayLayout(signed(SHIFT_BITS), n_params)}
    if mult_bits is not None:
        fields["mult"] = data.ArrayLayout(unsigned(mult_bits), n_params)
    return data.StructLayout(fields)


def lane_rq(m, en, vals, in_bits, params, n_params, mult_bits, out_bits, *, relu=None, name="rq"):
    """Apply :func:`rq_pipeline` to every lane of ``vals``; lane ``i`` uses parameter
    ``i % n_params``. Returns the list of output signals (``rq_latency`` stages)."""
    outs = []
    for i, v in enumerate(vals):
        p = i % n_params
        mult = params.mult[p] if mult_bits is not None else None
        outs.append(rq_pipeline(m, en, v, in_bits, mult, params.shift[p], out_bits,
                                relu=relu, name=f"{name}{i}"))
    return outs


class Requantizer(wiring.Component):
    """``o.payload.data[g][i] = rq(i.payload.data[g][i], mult[i % P], shift[i % P], out_bits)``.

    Parameters: ``groups`` x ``lanes`` values of ``in_bits`` signed in, ``out_bits`` signed
    out (:func:`rtl.pipeline.beat_layout`), ``n_params`` parameter sets per group (1 or the
    tap count), ``mult_bits`` (``None`` for ``pow2``: shifts only), ``tag`` an optional payload
    shape carried alongside unchanged. Latency ``wino_gen.schedule.rq_latency``; the whole
    pipeline stalls when the output is not taken.
    """

    def __init__(self, *, lanes: int, in_bits: int, out_bits: int, groups: int = 1, n_params: int = 1,
                 mult_bits: int | None = None, tag_shape=None):
        if lanes < 1 or n_params < 1 or lanes % n_params:
            raise ValueError(f"lanes ({lanes}) must be a positive multiple of n_params ({n_params})")
        if groups < 1:
            raise ValueError(f"groups ({groups}) must be positive")
        if in_bits < 2 or out_bits < 2:
            raise ValueError("in_bits and out_bits must be >= 2")
        self.lanes, self.groups, self.in_bits, self.out_bits = lanes, groups, in_bits, out_bits
        self.n_params, self.mult_bits = n_params, mult_bits
        self.tag_shape = tag_shape
        super().__init__({
            "params": In(requant_params_layout(n_params, mult_bits)),
            "i": In(stream.Signature(beat_layout(in_bits, groups, lanes, tag_shape))),
            "o": Out(stream.Signature(beat_layout(out_bits, groups, lanes, tag_shape))),
        })

    def elaborate(self, platform):
        m = Module()
        en = stage_enable(m, self.o, self.i)
        vals = [v for group in self.i.payload.data for v in group]
        outs = lane_rq(m, en, vals, self.in_bits, self.params, self.n_params, self.mult_bits, self.out_bits)
        stages = rq_latency(self.mult_bits is not None)
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, stages, "valid"))
        if self.tag_shape is not None:
            m.d.comb += self.o.payload.tag.eq(delay(m, en, self.i.payload.tag, stages, "tag"))
        for i, o in enumerate(outs):
            m.d.comb += self.o.payload.data[i // self.lanes][i % self.lanes].eq(o)
        return m
