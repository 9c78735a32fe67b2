"""Requantizer: ``golden.rq`` on a vector of lanes, pipelined, with a stream handshake."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned  # noqa: F401
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import SHIFT_BITS, rq_latency, rq_pipeline


def requant_params_layout(n_params: int, mult_bits: int | None) -> data.StructLayout:
    """``mult`` (``fixed`` only) and ``shift`` arrays of ``n_params`` (1 = per layer,
    n² = per tap)."""
    fields = {"shift": data.ArrayLayout(signed(SHIFT_BITS), n_params)}
    if mult_bits is not None:
        fields["mult"] = data.ArrayLayout(unsigned(mult_bits), n_params)
    return data.StructLayout(fields)


def lane_rq(m, en, vals, in_bits, params, n_params, mult_bits, out_bits, *, relu=None, name="rq"):
    """Apply :func:`rq_pipeline` to every lane of ``vals``; lane ``i`` uses parameter
    ``i % n_params``. Returns the list of output signals (latency :func:`rq_latency`)."""
    outs = []
    for i, v in enumerate(vals):
        p = i % n_params
        mult = params.mult[p] if mult_bits is not None else None
        outs.append(rq_pipeline(m, en, v, in_bits, mult, params.shift[p], out_bits,
                                relu=relu, name=f"{name}{i}"))
    return outs


class Requantizer(wiring.Component):
    """``o.payload.data[i] = rq(i.payload.data[i], mult[i % P], shift[i % P], out_bits)``.

    Parameters: ``lanes`` values of ``in_bits`` signed in, ``out_bits`` signed out, ``n_params``
    parameter sets (1 or the tap count), ``mult_bits`` (``None`` for ``pow2``: shifts only),
    ``tag`` an optional payload shape carried alongside unchanged. Latency
    :func:`rq_latency`; the whole pipeline stalls when the output is not taken.
    """

    def __init__(self, *, lanes: int, in_bits: int, out_bits: int, n_params: int = 1,
                 mult_bits: int | None = None, tag_shape=None):
        if lanes < 1 or n_params < 1 or lanes % n_params:
            raise ValueError(f"lanes ({lanes}) must be a positive multiple of n_params ({n_params})")
        if in_bits < 2 or out_bits < 2:
            raise ValueError("in_bits and out_bits must be >= 2")
        self.lanes, self.in_bits, self.out_bits = lanes, in_bits, out_bits
        self.n_params, self.mult_bits = n_params, mult_bits
        self.tag_shape = tag_shape
        fi = {"data": data.ArrayLayout(signed(in_bits), lanes)}
        fo = {"data": data.ArrayLayout(signed(out_bits), lanes)}
        if tag_shape is not None:
            fi["tag"] = fo["tag"] = tag_shape
        super().__init__({
            "params": In(requant_params_layout(n_params, mult_bits)),
            "i": In(stream.Signature(data.StructLayout(fi))),
            "o": Out(stream.Signature(data.StructLayout(fo))),
        })

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        outs = lane_rq(m, en, list(self.i.payload.data), self.in_bits, self.params, self.n_params,
                       self.mult_bits, self.out_bits)
        valid = self.i.valid
        tag = self.i.payload.tag if self.tag_shape is not None else None
        for s in range(rq_latency(self.mult_bits is not None)):
            v = Signal(name=f"valid{s}")
            with m.If(en):
                m.d.sync += v.eq(valid)
            valid = v
            if tag is not None:
                t = Signal(self.tag_shape, name=f"tag{s}")
                with m.If(en):
                    m.d.sync += t.eq(tag)
                tag = t
        m.d.comb += self.o.valid.eq(valid)
        if tag is not None:
            m.d.comb += self.o.payload.tag.eq(tag)
        for i, o in enumerate(outs):
            m.d.comb += self.o.payload.data[i].eq(o)
        return m
