"""Winograd transform units: the input transform ``Bᵀ d B`` and the output stage
(M requant, tap alignment, ``Aᵀ M A``, bias, y requant, ReLU), each a constant shift-add
network generated from the integer matrices of :func:`wino_gen.winograd.integer_forms`."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.config import AcceleratorConfig
from wino_gen.schedule import latencies
from wino_gen.winograd import integer_forms

from .arith import lin_comb, rq_pipeline
from .pipeline import beat_layout, delay, payload_layout, stage_enable
from .requant import lane_rq, requant_params_layout


class InputTransform(wiring.Component):
    """``V_raw = Bᵀ d B`` on ``unroll_in`` tiles of n x n activations per beat.

    Two register stages (``Bᵀ d`` at ``widths.in_stage1``, then ``· B`` at
    ``widths.in_full``: ``schedule.latencies(cfg).input_transform``); payload
    ``data[c][i*n + j]`` (:func:`rtl.pipeline.beat_layout`); ``tag`` travels alongside.
    """

    def __init__(self, cfg: AcceleratorConfig, tag_shape=None):
        if cfg.algo != "winograd":
            raise ValueError("InputTransform needs algo='winograd'")
        self.cfg = cfg
        self.tag_shape = tag_shape
        S, ui = cfg.n * cfg.n, cfg.unroll_in
        super().__init__({
            "i": In(stream.Signature(beat_layout(cfg.act_bits, ui, S, tag_shape))),
            "o": Out(stream.Signature(beat_layout(cfg.widths.in_full, ui, S, tag_shape))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, n = self.cfg, self.cfg.n
        BT = integer_forms(cfg.tile, cfg.balance).BT
        w = cfg.widths
        en = stage_enable(m, self.o, self.i)
        for c in range(cfg.unroll_in):
            d = self.i.payload.data[c]
            s1 = [[Signal(signed(w.in_stage1), name=f"bd{c}_{i}_{j}") for j in range(n)]
                  for i in range(n)]
            with m.If(en):
                for i in range(n):
                    for j in range(n):
                        m.d.sync += s1[i][j].eq(lin_comb([d[k * n + j] for k in range(n)], BT[i]))
            with m.If(en):
                for i in range(n):
                    for j in range(n):
                        m.d.sync += self.o.payload.data[c][i * n + j].eq(
                            lin_comb([s1[i][l] for l in range(n)], BT[j]))
        stages = 2      # Bᵀ d, then · B
        assert stages == latencies(cfg).input_transform
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, stages, "valid_d"))
        if self.tag_shape is not None:
            m.d.comb += self.o.payload.tag.eq(delay(m, en, self.i.payload.tag, stages, "tag_d"))
        return m


def output_params_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """Layer parameters of the output stage: M requant (per tap in ``tap`` mode), tap
    alignment shifts (``tap`` mode), y requant (one per layer) and ReLU."""
    S = cfg.n * cfg.n
    n_p = S if cfg.granularity == "tap" else 1
    mb = cfg.mult_bits if cfg.requant == "fixed" else None
    fields = {
        "m": requant_params_layout(n_p, mb),
        "y": requant_params_layout(1, mb),
        "relu": unsigned(1),
    }
    if cfg.tap_shift:
        fields["align"] = data.ArrayLayout(unsigned(cfg.tap_shift.bit_length()), S)
    return data.StructLayout(fields)


class OutputStage(wiring.Component):
    """One output channel of one tile per beat: ``P[n*n]`` (accumulator width) and its bias
    in; ``y[m*m]`` (activation width) out, exactly ``golden.winograd_conv3x3``'s tail:
    ``M = rq(P, m)``, ``Ma = M << align``, ``Y = Aᵀ Ma A``, ``y = rq(Y + bias, y)``, ReLU;
    ``schedule.latencies(cfg).output_stage`` stages.
    """

    def __init__(self, cfg: AcceleratorConfig, tag_shape=None):
        if cfg.algo != "winograd":
            raise ValueError("OutputStage needs algo='winograd'")
        self.cfg = cfg
        self.tag_shape = tag_shape
        n, mt, w = cfg.n, cfg.tile, cfg.widths
        super().__init__({
            "params": In(output_params_layout(cfg)),
            "i": In(stream.Signature(payload_layout({
                "data": data.ArrayLayout(signed(w.accumulator), n * n),
                "bias": signed(cfg.bias_bits)}, tag_shape))),
            "o": Out(stream.Signature(payload_layout({
                "data": data.ArrayLayout(signed(cfg.act_bits), mt * mt)}, tag_shape))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, n, mt, w = self.cfg, self.cfg.n, self.cfg.tile, self.cfg.widths
        AT = integer_forms(cfg.tile, cfg.balance).AT
        S = n * n
        n_p = S if cfg.granularity == "tap" else 1
        mb = cfg.mult_bits if cfg.requant == "fixed" else None
        lat = latencies(cfg)
        en = stage_enable(m, self.o, self.i)
        p = self.params
        # M requant
        M = lane_rq(m, en, list(self.i.payload.data), w.accumulator, p.m, n_p, mb,
                    cfg.transform_bits, name="mrq")
        bias = delay(m, en, self.i.payload.bias, lat.rq, "bias_d")
        # alignment + first pass (Aᵀ Ma), registered
        if cfg.tap_shift:
            Ma = []
            for s in range(S):
                a = Signal(signed(cfg.transform_bits + cfg.tap_shift), name=f"ma{s}")
                m.d.comb += a.eq(M[s] << p.align[s])
                Ma.append(a)
        else:
            Ma = M
        s1 = [[Signal(signed(w.out_stage1), name=f"am{i}_{j}") for j in range(n)] for i in range(mt)]
        with m.If(en):
            for i in range(mt):
                for j in range(n):
                    m.d.sync += s1[i][j].eq(lin_comb([Ma[k * n + j] for k in range(n)], AT[i]))
        bias = delay(m, en, bias, 1, "bias_s1_d")
        # second pass (· A), registered
        Y = [[Signal(signed(w.out_full), name=f"y{i}_{j}") for j in range(mt)] for i in range(mt)]
        with m.If(en):
            for i in range(mt):
                for j in range(mt):
                    m.d.sync += Y[i][j].eq(lin_comb([s1[i][l] for l in range(n)], AT[j]))
        bias = delay(m, en, bias, 1, "bias_s2_d")
        # bias add, registered
        Yb = []
        for i in range(mt):
            for j in range(mt):
                s = Signal(signed(w.out_sum), name=f"yb{i}_{j}")
                with m.If(en):
                    m.d.sync += s.eq(Y[i][j] + bias)
                Yb.append(s)
        ymult = p.y.mult[0] if mb is not None else None
        outs = [rq_pipeline(m, en, v, w.out_sum, ymult, p.y.shift[0], cfg.act_bits,
                            relu=p.relu, name=f"yrq{k}") for k, v in enumerate(Yb)]
        for k, o in enumerate(outs):
            m.d.comb += self.o.payload.data[k].eq(o)
        stages = lat.rq + 3 + lat.rq     # M requant, Aᵀ Ma, · A, bias add, y requant
        assert stages == lat.output_stage
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, stages, "valid_d"))
        if self.tag_shape is not None:
            m.d.comb += self.o.payload.tag.eq(delay(m, en, self.i.payload.tag, stages, "tag_d"))
        return m
