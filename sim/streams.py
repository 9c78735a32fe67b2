"""pysim helpers: stream put/get with random stalls (valid/ready back-pressure), for the rtl
tests and the simulation driver (payloads packed by :func:`rtl.host.pack`)."""

from __future__ import annotations

from rtl.host import pack, unpack


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
