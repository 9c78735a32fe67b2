"""Arithmetic building blocks shared by the rtl components.

Everything here is a helper that adds logic to a module inside a *stall-as-a-whole* pipeline:
each registered stage only updates while ``en`` (:func:`rtl.pipeline.stage_enable`) is high,
so every stage (data and valid bits) freezes on a stall.

The arithmetic is the one of :mod:`wino_gen.golden`: :func:`rq_pipeline` implements
``golden.rq`` (round half up, saturate) exactly, :func:`const_mul` a constant multiplication as
a canonical-signed-digit shift-add network.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned

from wino_gen.limits import SHIFT_BITS, int_range
from wino_gen.schedule import rq_latency, tree_levels


def csd(c: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``c``: ``[(sign, power)]`` with ``c == sum(sign << power)``,
    no two adjacent non-zero digits (the fewest adders for a constant multiplier)."""
    out, p = [], 0
    while c:
        if c & 1:
            d = 2 - (c & 3)          # +1 if c = 1 mod 4, -1 if c = 3 mod 4
            out.append((d, p))
            c -= d
        c >>= 1
        p += 1
    return out


def _tree_sum(terms):
    """Balanced sum of ``(sign, value)`` terms (log depth, not a chain); a pair with one
    negative term becomes a subtraction."""
    items = list(terms)
    while len(items) > 1:
        nxt = []
        for i in range(0, len(items), 2):
            if i + 1 == len(items):
                nxt.append(items[i])
                continue
            (sa, a), (sb, b) = items[i], items[i + 1]
            if sa > 0:
                nxt.append((1, a + b if sb > 0 else a - b))
            elif sb > 0:
                nxt.append((1, b - a))
            else:
                nxt.append((-1, a + b))
        items = nxt
    sign, v = items[0]
    return v if sign > 0 else -v


def const_mul(x, c: int):
    """``x * c`` for a constant integer ``c`` as a sum of shifted copies of ``x`` (CSD), or
    ``None`` when ``c == 0``."""
    terms = [(sign, (x << p) if p else x) for sign, p in csd(int(c))]
    return _tree_sum(terms) if terms else None


def lin_comb(xs, coeffs):
    """``sum(c * x)`` over constant coefficients as one balanced shift-add tree (0 if empty)."""
    terms = []
    for x, c in zip(xs, coeffs, strict=True):
        terms += [(sign, (x << p) if p else x) for sign, p in csd(int(c))]
    return _tree_sum(terms) if terms else Const(0, 1)


def saturate(v, bits: int):
    lo, hi = int_range(bits)
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def adder_tree(m: Module, en, values, width: int, name: str):
    """Pipelined pairwise adder tree: one register level per tree level; returns
    ``(sum_signal, latency)``, the latency checked against ``wino_gen.schedule.tree_levels``.
    ``width`` is the (derived) width of the final sum; partial sums use it too (they are
    bounded by it)."""
    level = list(values)
    count, lat = len(level), 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            s = Signal(signed(width), name=f"{name}_l{lat}_{i // 2}")
            with m.If(en):
                if i + 1 < len(level):
                    m.d.sync += s.eq(level[i] + level[i + 1])
                else:
                    m.d.sync += s.eq(level[i])
            nxt.append(s)
        level = nxt
        lat += 1
    assert lat == tree_levels(count), (lat, count)
    return level[0], lat


def rq_pipeline(m: Module, en, v, in_bits: int, mult, shift, out_bits: int, *,
                relu=None, name: str = "rq"):
    """``golden.rq(v, mult, shift, out_bits)`` in ``wino_gen.schedule.rq_latency`` register
    stages (asserted).

    ``mult`` is an unsigned Value (``fixed`` mode) or ``None`` (``pow2``: mult = 1, no
    multiplier); ``shift`` a signed :data:`SHIFT_BITS` Value. Right shifts round half up via
    ``t = p >> (s-1); (t >> 1) + t[0]`` (equal to ``(p + 2**(s-1)) >> s``); a left shift by
    ``-s`` is clamped to ``out_bits`` places. ``t`` is clamped to ``out_bits + 2`` bits as
    soon as it exists: both roundings are monotonic and a clamped ``t`` still lies outside
    the output range, so every result saturates exactly as before, and the registers behind
    the shifter are narrow (they were most of a lane's flip-flops). ``relu`` (a 1-bit Value)
    clamps the result at 0. The parameters must stay constant while a value is in flight
    (they are layer configuration).

    Stages: ``pow2``: shift + clamp, round + saturate + ReLU; ``fixed``: product first.
    """
    cw = out_bits + 2
    lsh_bits = max(1, (out_bits).bit_length())
    pw = in_bits if mult is None else in_bits + len(mult) + 1
    # a right shift by pw - 1 or more leaves only sign bits: clamping the amount there keeps
    # the shifter log2(pw) levels deep instead of SHIFT_BITS
    rmax = pw - 1
    sh = Signal(signed(SHIFT_BITS), name=f"{name}_sh")
    right = Signal(range(rmax + 1), name=f"{name}_ramt")
    left = Signal(unsigned(lsh_bits), name=f"{name}_lamt")
    m.d.comb += [
        sh.eq(shift),
        right.eq(Mux(sh > rmax, rmax, Mux(sh > 0, sh - 1, 0))),
        left.eq(Mux(sh < -out_bits, out_bits, Mux(sh < 0, -sh, 0))),
    ]
    t = Signal(signed(cw), name=f"{name}_t")
    o = Signal(signed(out_bits), name=f"{name}_o")

    def rounded(t):
        return saturate(Mux(sh > 0, (t >> 1) + t[0], t << left), out_bits)

    def relu_of(s):
        return s if relu is None else Mux(relu & (s < 0), 0, s)

    if mult is None:
        stages = [t.eq(saturate(v >> right, cw)), o.eq(relu_of(rounded(t)))]
    else:
        p = Signal(signed(pw), name=f"{name}_p")
        stages = [p.eq(v * mult), t.eq(saturate(p >> right, cw)), o.eq(relu_of(rounded(t)))]
    assert len(stages) == rq_latency(mult is not None)
    with m.If(en):
        m.d.sync += stages
    return o
