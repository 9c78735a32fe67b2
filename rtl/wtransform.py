"""The weight-transform unit: int8 spatial 3x3 kernels in, the PE array's Winograd weight words
out, exactly ``golden.transform_weights``: ``T = G' W G'ᵀ`` as a constant shift-add network
(``golden.spatial_forms``; the same CSD trees as the input transform's ``Bᵀ d B``), then the
per-tap U requant ``rq(T, u_mult, u_shift)`` of :func:`rtl.arith.rq_pipeline`.

:class:`WeightTransform` takes ``lanes`` kernels per beat; :class:`WeightPacker` collects the
``unroll * unroll_in`` kernels of one weight word (``rtl.pe.weight_stream_layout``, kernel
``(k, c)`` at ``data[k][c]``, arriving in ``wino_gen.schedule.word_kernels`` order) and its
biases; :class:`SpatialWeights` is the two in a row, the block that sits in front of
``PEArray.w`` in ``rtl.top.WinogradAccel`` when ``cfg.weights == "spatial"`` and, in Winograd
mode, in ``rtl.core.Core``. The core's ``w`` has one layout in every mode (the weight word), so
there the kernels come as words too, ``W[a][b]`` in taps ``a*3 + b`` of ``data[k][c]``, and
:class:`KernelSplitter` turns each into the transform's ``lanes``-kernel beats without a
register: the core's weight path has the engine's latency and rate.

Rate: a word takes ``unroll * unroll_in / lanes`` beats. The PE array reads a word once per tile
of a tile row, so the next block's ``n_cg`` words load without a stall while ``tw * n_cg``
steps run when ``lanes >= unroll * unroll_in / tw`` (``wino_gen.schedule.steady_lanes``): one
kernel per cycle keeps up with ``unroll`` 16 only from ``tw >= 16`` (a 64-wide image at F4); a
7x7 layer at F4 (``tw`` 2) needs 8 lanes. Latency and the stalls where it cannot keep up are
``wino_gen.schedule.weight_path_latency`` and ``wino_gen.perf``'s weight model; the resource
estimate is ``wino_gen.perf.weight_transform_resources`` (the core's adds the splitter:
``wino_gen.perf.estimate_resources`` with ``max_kernel``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wino_gen.config import AcceleratorConfig
from wino_gen.golden import spatial_forms, spatial_widths
from wino_gen.schedule import rq_latency, weight_transform_latency, word_kernels

from .arith import lin_comb
from .pe import weight_stream_layout
from .pipeline import beat_layout, delay, stage_enable
from .requant import lane_rq, requant_params_layout

TAPS_IN = 9     # a 3x3 kernel, row-major: W[a, b] at a*3 + b


def _mult_bits(cfg: AcceleratorConfig) -> int | None:
    return cfg.mult_bits if cfg.requant == "fixed" else None


def wt_params_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """The U requant: ``u_mult`` (``fixed`` only) and ``u_shift`` per tap, in every
    granularity (the factors ``d[i] d[j]`` are per tap)."""
    return requant_params_layout(cfg.n * cfg.n, _mult_bits(cfg))


def kernel_layout(cfg: AcceleratorConfig, lanes: int) -> data.StructLayout:
    """An input beat: ``lanes`` kernels ``data[lane][a*3 + b]`` and, as its tag, each kernel's
    output-channel bias (the packer keeps it for the weight word)."""
    return beat_layout(cfg.weight_bits, lanes, TAPS_IN, data.ArrayLayout(signed(cfg.bias_bits), lanes))


def _check(cfg: AcceleratorConfig, lanes: int) -> None:
    if cfg.algo != "winograd":
        raise ValueError("cfg: the weight transform needs algo='winograd'")
    if lanes < 1 or (cfg.unroll * cfg.unroll_in) % lanes:
        raise ValueError(f"lanes ({lanes}) must divide unroll * unroll_in ({cfg.unroll * cfg.unroll_in})")


class WeightTransform(wiring.Component):
    """``lanes`` kernels per beat in (:func:`kernel_layout`), their U (``weight_bits``, n² taps
    each, ``beat_layout``) out with the tag unchanged. Stages: ``G' W`` (width
    ``golden.spatial_widths()[0]``), ``· G'ᵀ`` (``[1]``), the U requant
    (``wino_gen.schedule.weight_transform_latency``, asserted)."""

    def __init__(self, cfg: AcceleratorConfig, lanes: int = 1):
        _check(cfg, lanes)
        self.cfg, self.lanes = cfg, lanes
        tag = data.ArrayLayout(signed(cfg.bias_bits), lanes)
        super().__init__({
            "params": In(wt_params_layout(cfg)),
            "i": In(stream.Signature(kernel_layout(cfg, lanes))),
            "o": Out(stream.Signature(beat_layout(cfg.weight_bits, lanes, cfg.n * cfg.n, tag))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, n = self.cfg, self.cfg.n
        Gp, _ = spatial_forms(cfg.tile, cfg.balance)
        w1, w2 = spatial_widths(cfg.tile, cfg.weight_bits)
        en = stage_enable(m, self.o, self.i)
        for c in range(self.lanes):
            k = self.i.payload.data[c]
            s1 = [[Signal(signed(w1), name=f"gw{c}_{i}_{b}") for b in range(3)] for i in range(n)]
            T = [Signal(signed(w2), name=f"t{c}_{i}_{j}") for i in range(n) for j in range(n)]
            with m.If(en):
                for i in range(n):
                    for b in range(3):
                        m.d.sync += s1[i][b].eq(lin_comb([k[a * 3 + b] for a in range(3)], Gp[i]))
                for i in range(n):
                    for j in range(n):
                        m.d.sync += T[i * n + j].eq(lin_comb(s1[i], Gp[j]))
            U = lane_rq(m, en, T, w2, self.params, n * n, _mult_bits(cfg), cfg.weight_bits, name=f"urq{c}_")
            for s, u in enumerate(U):
                m.d.comb += self.o.payload.data[c][s].eq(u)
        stages = 2 + rq_latency(cfg.requant == "fixed")     # the two passes, then lane_rq's
        assert stages == weight_transform_latency(cfg)
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, stages, "valid_d"))
        m.d.comb += self.o.payload.tag.eq(delay(m, en, self.i.payload.tag, stages, "tag_d"))
        return m


class WeightPacker(wiring.Component):
    """Collects ``unroll * unroll_in / lanes`` U beats into one weight word
    (``rtl.pe.weight_stream_layout``): beat order is kernel order ``(k, c)`` k-major, bias
    ``k`` from the kernels of channel ``k`` (the host sends it with each). A shift register
    (no index mux); it accepts the next word's first beat while the full one is taken, so
    a word leaves every ``unroll * unroll_in / lanes`` cycles."""

    def __init__(self, cfg: AcceleratorConfig, lanes: int = 1):
        _check(cfg, lanes)
        self.cfg, self.lanes = cfg, lanes
        S = cfg.n * cfg.n
        super().__init__({
            "i": In(stream.Signature(beat_layout(cfg.weight_bits, lanes, S,
                                                 data.ArrayLayout(signed(cfg.bias_bits), lanes)))),
            "o": Out(stream.Signature(weight_stream_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, L = self.cfg, self.lanes
        ui, kernels = cfg.unroll_in, cfg.unroll * cfg.unroll_in
        beats = kernels // L
        slots = [Signal.like(self.i.payload.data[0], name=f"slot{j}") for j in range(kernels)]
        biases = [Signal(signed(cfg.bias_bits), name=f"bslot{j}") for j in range(kernels)]
        count = Signal(range(max(beats, 2)))
        full = Signal()
        take = Signal()
        m.d.comb += [
            self.o.valid.eq(full),
            self.i.ready.eq(~full | self.o.ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        for k in range(cfg.unroll):
            m.d.comb += self.o.payload.bias[k].eq(biases[k * ui])
            for c in range(ui):
                m.d.comb += self.o.payload.data[k][c].eq(slots[k * ui + c])
        with m.If(take):
            for j in range(kernels - L):
                m.d.sync += [slots[j].eq(slots[j + L]), biases[j].eq(biases[j + L])]
            for c in range(L):
                m.d.sync += [slots[kernels - L + c].eq(self.i.payload.data[c]),
                             biases[kernels - L + c].eq(self.i.payload.tag[c])]
            m.d.sync += count.eq(0 if beats == 1 else count + 1)
            with m.If(count == beats - 1):
                m.d.sync += [count.eq(0), full.eq(1)]
            with m.Elif(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        return m


class KernelSplitter(wiring.Component):
    """One weight word of spatial kernels (``rtl.pe.weight_stream_layout``: kernel ``(k, c)``'s
    ``W[a][b]`` at ``data[k][c][a*3 + b]``, taps 9 .. n²-1 ignored) in, ``unroll * unroll_in /
    lanes`` beats of :func:`kernel_layout` out, in ``wino_gen.schedule.word_kernels`` order
    (the order :class:`WeightPacker` expects), each kernel tagged with its channel's
    ``bias[k]``: the compute core's words, whose one ``w`` layout serves every mode, turned
    into the transform's input. Combinational: beat ``j`` is the word's kernels ``j * lanes
    ..`` selected by a beat counter, and the word is taken with its last beat, so the word
    stays on ``i`` (the stream contract holds it) while its beats leave, one a cycle; the
    weight path's cycles are the engine's (``wino_gen.schedule.weight_path_latency``)."""

    def __init__(self, cfg: AcceleratorConfig, lanes: int = 1):
        _check(cfg, lanes)
        self.cfg, self.lanes = cfg, lanes
        super().__init__({
            "i": In(stream.Signature(weight_stream_layout(cfg))),
            "o": Out(stream.Signature(kernel_layout(cfg, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        L, i, o = self.lanes, self.i, self.o
        kern = word_kernels(self.cfg)
        beats = len(kern) // L
        beat = Signal(range(max(beats, 2)))
        last = Signal()
        m.d.comb += [last.eq(beat == beats - 1), o.valid.eq(i.valid), i.ready.eq(o.ready & last)]
        with m.If(o.valid & o.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(last):
                m.d.sync += beat.eq(0)
        with m.Switch(beat):
            for j in range(beats):
                with m.Case(j):
                    for lane, (k, c) in enumerate(kern[j * L:(j + 1) * L]):
                        m.d.comb += o.payload.tag[lane].eq(i.payload.bias[k])
                        for t in range(TAPS_IN):
                            m.d.comb += o.payload.data[lane][t].eq(i.payload.data[k][c][t])
        return m


class SpatialWeights(wiring.Component):
    """Spatial kernels (:func:`kernel_layout`) in, weight words for ``PEArray.w`` out:
    :class:`WeightTransform` then :class:`WeightPacker`."""

    def __init__(self, cfg: AcceleratorConfig, lanes: int = 1):
        _check(cfg, lanes)
        self.cfg, self.lanes = cfg, lanes
        super().__init__({
            "params": In(wt_params_layout(cfg)),
            "i": In(stream.Signature(kernel_layout(cfg, lanes))),
            "o": Out(stream.Signature(weight_stream_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.xf = xf = WeightTransform(self.cfg, self.lanes)
        m.submodules.pack = pk = WeightPacker(self.cfg, self.lanes)
        m.d.comb += xf.params.eq(self.params)
        wiring.connect(m, wiring.flipped(self.i), xf.i)
        wiring.connect(m, xf.o, pk.i)
        wiring.connect(m, pk.o, wiring.flipped(self.o))
        return m
