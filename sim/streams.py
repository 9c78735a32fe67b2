"""pysim helpers: pack/unpack ``data`` layouts as integers, and stream put/get with random
stalls (valid/ready back-pressure), for the rtl tests and the simulation driver."""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data


def _width(shape) -> int:
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def pack(shape, value) -> int:
    """Integer bit pattern of ``value`` (nested lists / dicts / ints) in ``shape``."""
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        out = 0
        for i, v in enumerate(value):
            out |= pack(shape.elem_shape, v) << (i * w)
        return out
    if isinstance(shape, data.StructLayout):
        out = 0
        for name, field in shape:
            if name in value:
                out |= pack(field.shape, value[name]) << field.offset
        return out
    s = Shape.cast(shape)
    v = int(value)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{v} does not fit {s}")
    return v & ((1 << s.width) - 1) if s.width else 0


def unpack(shape, bits: int):
    """Inverse of :func:`pack` (signed shapes give negative ints)."""
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        return [unpack(shape.elem_shape, (bits >> (i * w)) & ((1 << w) - 1))
                for i in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: unpack(f.shape, (bits >> f.offset) & ((1 << _width(f.shape)) - 1))
                for name, f in shape}
    s = Shape.cast(shape)
    bits &= (1 << s.width) - 1
    if s.signed and s.width and bits >> (s.width - 1):
        bits -= 1 << s.width
    return bits


def payload_shape(stream_if):
    return stream_if.payload.shape()


async def put(ctx, stream_if, items, *, rng=None, stall=0.0, packed=False):
    """Send ``items`` on ``stream_if`` (a stream interface we drive), idling a random number of
    cycles before a beat with probability ``stall``."""
    shape = payload_shape(stream_if)
    for it in items:
        if rng is not None and stall and rng.random() < stall:
            ctx.set(stream_if.valid, 0)
            await ctx.tick().repeat(int(rng.integers(1, 4)))
        ctx.set(stream_if.payload.as_value(), it if packed else pack(shape, it))
        ctx.set(stream_if.valid, 1)
        await ctx.tick().until(stream_if.ready)
    ctx.set(stream_if.valid, 0)


async def get(ctx, stream_if, count, *, rng=None, stall=0.0, raw=False, on_beat=None):
    """Receive ``count`` beats from ``stream_if``; returns the unpacked payloads (or raw ints)."""
    shape = payload_shape(stream_if)
    out = []
    for _ in range(count):
        if rng is not None and stall and rng.random() < stall:
            ctx.set(stream_if.ready, 0)
            await ctx.tick().repeat(int(rng.integers(1, 4)))
        ctx.set(stream_if.ready, 1)
        (v,) = await ctx.tick().sample(stream_if.payload.as_value()).until(stream_if.valid)
        v = int(v)
        out.append(v if raw else unpack(shape, v))
        if on_beat is not None:
            on_beat(len(out))
    ctx.set(stream_if.ready, 0)
    return out
