"""Run a memory image with :mod:`wino_gen.golden` alone: a model of external memory, the three
scratchpads (activations, weights, parameters) and the LOAD/COMPUTE/STORE queues with their
tokens. Each COMPUTE hands the tile it names to the golden op (channel sums, accumulation,
output requant; in a spatial-weight image the weight transform ``golden.transform_weights``
first, as the engine's weight-transform unit does), so the image is checked against
``wino_gen check`` without any RTL.

The queues run decoupled: ``schedule=None`` takes the ready instruction that comes first in
the program; an integer seeds a random choice among the ready queues, so that a missing token
shows as a wrong result or a deadlock. A fault stops the machine with an error status
(:data:`STATUS`) instead of touching memory outside the instruction's regions.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from .. import golden, isa
from ..config import AcceleratorConfig
from ..errors import UsageError
from ..isa import CHANNELS, STATUS
from ..limits import int_range
from . import image as im

_NEIGHBOUR = {("load", "next"): "compute", ("compute", "prev"): "load", ("compute", "next"): "store",
              ("store", "prev"): "compute"}


class Fault(Exception):
    """The machine stopped: ``status`` (:data:`STATUS`), the instruction index, why."""

    def __init__(self, status: int, index: int, why: str):
        super().__init__(f"error status {status} ({STATUS[status]}) at instruction {index}: {why}")
        self.status, self.index = status, index


def check_config(img: im.Image, cfg: AcceleratorConfig) -> None:
    """An image runs only on the build it was compiled for."""
    if img.config_sha256 != im.config_sha256(cfg):
        raise UsageError(f"image: compiled for config sha256 {img.config_sha256.hex()[:16]}..., --config has "
                         f"{im.config_sha256(cfg).hex()[:16]}... (compile it for this config)")


class Machine:
    """External memory holding the image, the scratchpads, and the sequencer's queues."""

    def __init__(self, img: im.Image, cfg: AcceleratorConfig):
        check_config(img, cfg)
        self.img, self.cfg = img, cfg
        self.ext = np.zeros(img.memory_size, np.uint8)
        self.ext[:img.file_size] = np.frombuffer(img.to_bytes(), np.uint8)
        self.sp = {"act": np.zeros(img.act_scratch, np.uint8), "wgt": np.zeros(img.wgt_scratch, np.uint8),
                   "param": np.zeros(img.param_scratch, np.uint8)}
        self.regions = img.regions()
        self.started = False
        self.max_tokens = 0          # the deepest any token counter got: the FIFO depth the RTL needs

    # -- host side --------------------------------------------------------------------------
    def write_input(self, x: np.ndarray) -> None:
        t = self.img.slot(im.INPUT_SLOT)
        x = np.asarray(x).reshape(t.batch, *t.shape)
        self.ext[t.offset:t.offset + t.size] = x.astype(np.int8).view(np.uint8).ravel()

    def read(self, t: im.Tensor) -> np.ndarray:
        return self.ext[t.offset:t.offset + t.size].view(np.int8).astype(np.int64).reshape(t.batch, *t.shape)

    def run(self, schedule: int | None = None) -> None:
        """Run the program (after the first run from ``main_entry``: resident weights stay)."""
        entry = self.img.main_entry if self.started else 0
        self.started = True
        queues = {"load": deque(), "compute": deque(), "store": deque()}
        end = None
        for i in range(entry, len(self.img.program)):
            ins = self.img.program[i]
            if ins.OP == "END":
                end = i
                break
            queues[ins.queue].append(i)
        if end is None:
            raise Fault(1, len(self.img.program), "no END")
        tokens = dict.fromkeys(CHANNELS, 0)
        rng = random.Random(schedule) if schedule is not None else None
        while any(queues.values()):
            ready = [q for q, dq in queues.items() if dq and self._can_pop(self.img.program[dq[0]], q, tokens)]
            if not ready:
                heads = {q: dq[0] for q, dq in queues.items() if dq}
                raise Fault(3, min(heads.values()), f"every queue waits for a token (heads {heads})")
            q = rng.choice(ready) if rng else min(ready, key=lambda k: queues[k][0])
            i = queues[q].popleft()
            ins = self.img.program[i]
            self._tokens(ins, q, tokens, pop=True)
            self._execute(i, ins)
            self._tokens(ins, q, tokens, pop=False)
            self.max_tokens = max(self.max_tokens, *tokens.values())
        if any(tokens.values()):
            raise Fault(5, end, f"tokens {tokens}")

    @staticmethod
    def _can_pop(ins, q: str, tokens: dict) -> bool:
        return all(tokens[(_NEIGHBOUR[(q, side)], q)] > 0 for side in ("prev", "next") if getattr(ins, f"pop_{side}"))

    @staticmethod
    def _tokens(ins, q: str, tokens: dict, pop: bool) -> None:
        for side in ("prev", "next"):
            if pop and getattr(ins, f"pop_{side}"):
                tokens[(_NEIGHBOUR[(q, side)], q)] -= 1
            if not pop and getattr(ins, f"push_{side}"):
                tokens[(q, _NEIGHBOUR[(q, side)])] += 1

    # -- instructions ------------------------------------------------------------------------
    def _execute(self, i: int, ins) -> None:
        try:
            if ins.OP in ("LOAD", "STORE"):
                self._transfer(i, ins)
            elif ins.OP == "COMPUTE":
                self._compute(i, ins)
        except golden.OverflowInPath as e:
            raise Fault(4, i, str(e)) from None

    def _transfer(self, i: int, ins) -> None:
        why = im.check_transfer(self.img, ins)
        if why:
            raise Fault(2, i, f"{ins.OP}: {why}")
        odd = im.misaligned(ins, self.img.port_bytes)
        if odd:
            raise Fault(1, i, f"{ins.OP}: {odd}")
        if ins.count == 0 or ins.burst == 0:
            return
        rows, cols = np.arange(ins.count)[:, None], np.arange(ins.burst)[None, :]
        e = ins.ext_addr + rows * ins.ext_stride + cols
        s = ins.sp_addr + rows * ins.sp_stride + cols
        sp = self.sp[isa.BUFFERS[ins.buffer]]
        if ins.OP == "LOAD":
            sp[s] = self.ext[e]
        else:
            self.ext[e] = sp[s]

    def _block(self, i: int, mem: str, addr: int, shape, strides, dtype=np.int8) -> np.ndarray:
        """A strided view of a scratchpad (int8, or int32 partial sums); Fault beyond its end."""
        buf = self.sp[mem]
        item = np.dtype(dtype).itemsize
        last = addr + sum((n - 1) * st for n, st in zip(shape, strides, strict=True)) + item
        if any(n == 0 for n in shape):
            return np.zeros(shape, np.int64)
        if addr < 0 or last > buf.size:
            raise Fault(2, i, f"COMPUTE reads {mem} scratchpad {addr}..{last}, beyond its {buf.size} bytes")
        idx = addr + sum(np.arange(n).reshape([-1 if d == k else 1 for d in range(len(shape))]) * st
                         for k, (n, st) in enumerate(zip(shape, strides, strict=True)))
        raw = buf[idx[..., None] + np.arange(item)]
        return raw.view(dtype)[..., 0].astype(np.int64) if item > 1 else raw[..., 0].view(np.int8).astype(np.int64)

    def _put(self, i: int, mem: str, addr: int, values: np.ndarray, strides, dtype=np.int8) -> None:
        buf = self.sp[mem]
        item = np.dtype(dtype).itemsize
        lo, hi = int_range(8 * item)
        if values.size and (values.min() < lo or values.max() > hi):
            raise Fault(4, i, f"value range [{values.min()}, {values.max()}] exceeds {8 * item} bits")
        shape = values.shape
        last = addr + sum((n - 1) * st for n, st in zip(shape, strides, strict=True)) + item
        if addr < 0 or last > buf.size:
            raise Fault(2, i, f"COMPUTE writes {mem} scratchpad {addr}..{last}, beyond its {buf.size} bytes")
        idx = addr + sum(np.arange(n).reshape([-1 if d == k else 1 for d in range(len(shape))]) * st
                         for k, (n, st) in enumerate(zip(shape, strides, strict=True)))
        buf[idx[..., None] + np.arange(item)] = np.ascontiguousarray(values, dtype).view(np.uint8).reshape(*shape, item)

    def _desc(self, i: int, ins) -> im.Desc:
        try:
            d = im.Desc.from_bytes(self.sp["param"].tobytes(), self.img.weight_format == im.WEIGHTS_SPATIAL)
        except ValueError as e:
            raise Fault(1, i, f"COMPUTE: {e}") from None
        if d.words["layer"] != ins.layer or d.words["mode"] != ins.mode:
            raise Fault(1, i, f"COMPUTE names layer {ins.layer} mode {isa.MODES[ins.mode]}, the parameter memory "
                              f"holds layer {d.words['layer']}")
        return d

    def _compute(self, i: int, ins) -> None:
        d = self._desc(i, ins)
        w = d.words
        mode = isa.MODES[ins.mode]
        C, H, W, K, Ho, Wo = (w[k] for k in ("C", "H", "W", "K", "Ho", "Wo"))
        k, s = w["kernel"], w["stride"]
        r0, r1, k0, k1, c0, c1 = ins.r0, ins.r1, ins.k0, ins.k1, ins.c0, ins.c1
        if not (0 <= r0 < r1 <= Ho and 0 <= k0 < k1 <= K and 0 <= c0 < c1 <= C):
            raise Fault(1, i, f"COMPUTE tile rows {r0}..{r1}, k {k0}..{k1}, c {c0}..{c1} outside layer {ins.layer}")
        ho, kc, cc = r1 - r0, k1 - k0, c1 - c0
        if mode == "add":
            x1 = self._block(i, "act", ins.in_addr, (C, ho, W), (w["in_cstride"], W, 1))
            x2 = self._block(i, "act", ins.in2_addr, (C, ho, W), (w["in2_cstride"], W, 1))
            out = golden.add(x1, x2, a_mult=w["mult"], b_mult=w["mult2"], shift=w["shift"], relu=bool(w["relu"]),
                             bits=self.cfg.act_bits)
            return self._write(i, ins, d, out)
        band = self._band(i, ins, d, cc if mode in ("winograd", "direct", "linear") else C)
        if mode == "maxpool":
            return self._write(i, ins, d, golden.maxpool(band, kernel=k, stride=s, bits=self.cfg.act_bits)[0])
        if mode == "avgpool":
            return self._write(i, ins, d, golden.avgpool(band, kernel=k, stride=s, mult=w["mult"], shift=w["shift"],
                                                         bits=self.cfg.act_bits)[0])
        spatial = mode == "winograd" and self.img.weight_format == im.WEIGHTS_SPATIAL
        taps = 9 if spatial else w["taps"] or (k * k if mode == "direct" else 1)
        wt = self._block(i, "wgt", ins.w_addr, (kc, cc, taps), (cc * taps, taps, 1))
        if mode == "winograd":
            n, t = self.cfg.n, d.taps
            if spatial:         # the weight-transform unit: U = rq(G' W G'ᵀ, u) per tap
                wt = golden.transform_weights(wt.reshape(kc, cc, 3, 3), _req(t["u_mult"], t["u_shift"], n),
                                              self.cfg.tile, self.cfg.weight_bits)
            part = golden.winograd_channel_sum(band, wt.reshape(kc, cc, n, n), tile=self.cfg.tile,
                                               v=_req(t["v_mult"], t["v_shift"], n), padding=0,
                                               balance=self.cfg.balance, transform_bits=self.cfg.transform_bits)
        elif mode == "direct":
            part = golden.direct_accumulate(band, wt.reshape(kc, cc, k, k), stride=s, padding=0)
        else:
            part = golden.linear_accumulate(band.reshape(1, cc), wt.reshape(kc, cc))
        acc_shape = part.shape[1:]
        acc_strides = tuple(int(np.prod(acc_shape[j + 1:])) * 4 for j in range(len(acc_shape)))
        if ins.accumulate:
            part = part + self._block(i, "act", w["acc_addr"], acc_shape, acc_strides, np.int32)[None]
        if not ins.finish:
            return self._put(i, "act", w["acc_addr"], part[0], acc_strides, np.int32)
        bias = d.bias[k0:k1]
        y, relu, bits = golden.Requant(w["mult"], w["shift"]), bool(w["relu"]), self.cfg.act_bits
        if mode == "winograd":
            n, t = self.cfg.n, d.taps
            yb = golden.winograd_output_sum(part, bias, tile=self.cfg.tile, m=_req(t["m_mult"], t["m_shift"], n),
                                            m_align=t["m_align"].reshape(n, n), balance=self.cfg.balance,
                                            transform_bits=self.cfg.transform_bits)
            out = golden.untile_output(golden.output_requant(yb, 0, y, relu, bits), ho, Wo)   # the bias is in yb
        elif mode == "direct":
            out = golden.output_requant(part, bias, y, relu, bits)
        else:
            out = golden.output_requant(part, bias, y, relu, bits).reshape(1, kc, 1, 1)
        self._write(i, ins, d, out[0])

    def _band(self, i: int, ins, d: im.Desc, nch: int) -> np.ndarray:
        """The input rows the tile reads, as one image padded the way the engine pads (zeros
        for convolutions, the smallest value for max pooling): ``[1, nch, rows, W + 2p]``."""
        w = d.words
        H, W, k, s, p = w["H"], w["W"], w["kernel"], w["stride"], w["padding"]
        top, bot = ins.r0 * s - p, (ins.r1 - 1) * s - p + k
        a, b = max(0, top), min(H, bot)
        x = self._block(i, "act", ins.in_addr, (nch, b - a, W), (w["in_cstride"], W, 1))
        # maxpool's padding is golden.maxpool's: the smallest value of the activation width
        fill = int_range(self.cfg.act_bits)[0] if isa.MODES[ins.mode] == "maxpool" else 0
        band = np.full((1, nch, bot - top, W + 2 * p), fill, np.int64)
        band[0, :, a - top:b - top, p:p + W] = x
        return band

    def _write(self, i: int, ins, d: im.Desc, out: np.ndarray) -> None:
        w = d.words
        self._put(i, "act", ins.out_addr, out, (w["out_cstride"], w["Wo"], 1))


def _req(mult: np.ndarray, shift: np.ndarray, n: int) -> golden.Requant:
    return golden.Requant(mult.reshape(n, n), shift.reshape(n, n))


def run(img: im.Image, cfg: AcceleratorConfig, x: np.ndarray, schedule: int | None = None,
        machine: Machine | None = None) -> dict[str, np.ndarray]:
    """Run ``x`` (N images) through ``img`` batch by batch; every tensor the program stores,
    by name, as ``[N, C, H, W]``. Raises :class:`Fault` when the machine stops."""
    m = machine or Machine(img, cfg)
    B, N = img.batch, len(x)
    out: dict[str, list] = {t.name: [] for t in img.tensors if t.flags & im.STORED}
    shape = img.slot(im.INPUT_SLOT).shape
    for lo in range(0, N, B):
        chunk = np.zeros((B, *shape), np.int64)
        chunk[:min(B, N - lo)] = np.asarray(x[lo:lo + B]).reshape(-1, *shape)
        m.write_input(chunk)
        m.run(schedule)
        for t in img.tensors:
            if t.flags & im.STORED:
                out[t.name].append(m.read(t))
    return {k: np.concatenate(v)[:N] for k, v in out.items()}
