"""The instruction format of the system sequencer (pure Python, spec in docs/image.md): defined
once, as data, so that the compiler encodes from it, the interpreter and the RTL decode from it.

Every instruction is :data:`WORD_BITS` bits, stored little-endian in :data:`WORD_BYTES` bytes.
Bits 0-3 hold the opcode and bits 4-7 the dependency flags (decoupled access/execute as in
VTA: the LOAD, COMPUTE and STORE queues run their own instructions in order and hand tokens
to their neighbours: ``pop_prev``/``push_prev`` face the previous queue, ``pop_next``/
``push_next`` the next one, in the order LOAD -> COMPUTE -> STORE). The rest is per opcode,
in :data:`LAYOUTS`: ``(name, bits, offset)`` for each field. Unused bits are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

VERSION = 1
WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8


class Field(NamedTuple):
    name: str
    bits: int
    offset: int


#: opcode numbers
OPCODES = {"LOAD": 1, "STORE": 2, "COMPUTE": 3, "SYNC": 4, "END": 5}
#: COMPUTE ``mode`` numbers
MODES = ("winograd", "direct", "linear", "add", "maxpool", "avgpool")
#: LOAD/STORE ``buffer`` numbers: the activation and weight scratchpads, the parameter memory
BUFFERS = ("act", "wgt", "param")
#: the queue each opcode runs in (END runs in none: it ends dispatch)
QUEUES = {"LOAD": "load", "STORE": "store", "COMPUTE": "compute", "SYNC": "compute", "END": None}
#: the queues in token order: LOAD hands to COMPUTE, COMPUTE to STORE
QUEUE_ORDER = ("load", "compute", "store")
#: token counters: (from queue, to queue)
CHANNELS = (("load", "compute"), ("compute", "load"), ("compute", "store"), ("store", "compute"))
#: error status -> meaning (0: ran to END), the same for the interpreter and the hardware
STATUS = {0: "ok", 1: "bad instruction", 2: "memory outside its regions", 3: "deadlock", 4: "overflow",
          5: "tokens left at END", 6: "unsupported"}
#: dependency flags each queue may carry: LOAD has no previous queue, STORE no next one
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
ALLOWED_FLAGS = {"load": ("pop_next", "push_next"), "compute": FLAGS, "store": ("pop_prev", "push_prev"), None: ()}


def _layout(*fields: tuple[str, int]) -> tuple[Field, ...]:
    """Fields packed one after another from bit 0: opcode, the four flags, then ``fields``."""
    out, offset = [], 0
    for name, bits in (("opcode", 4), *((f, 1) for f in FLAGS), *fields):
        out.append(Field(name, bits, offset))
        offset += bits
    if offset > WORD_BITS:
        raise AssertionError(f"layout of {offset} bits exceeds {WORD_BITS}")
    return tuple(out)


_TRANSFER = (("buffer", 2), ("ext_addr", 32), ("ext_stride", 32), ("count", 20), ("burst", 24),
             ("sp_addr", 24), ("sp_stride", 24))
LAYOUTS: dict[str, tuple[Field, ...]] = {
    "LOAD": _layout(*_TRANSFER),
    "STORE": _layout(*_TRANSFER),
    "COMPUTE": _layout(("mode", 3), ("accumulate", 1), ("finish", 1), ("layer", 12), ("r0", 13), ("r1", 13),
                       ("k0", 14), ("k1", 14), ("c0", 20), ("c1", 20), ("in_addr", 24), ("in2_addr", 24),
                       ("w_addr", 24), ("out_addr", 24)),
    "SYNC": _layout(),
    "END": _layout(),
}


@dataclass(frozen=True)
class _Instr:
    pop_prev: int = 0
    pop_next: int = 0
    push_prev: int = 0
    push_next: int = 0

    OP = ""

    def __post_init__(self):
        for f in LAYOUTS[self.OP][1:]:
            v = getattr(self, f.name)
            if isinstance(v, bool):
                object.__setattr__(self, f.name, int(v))
                v = int(v)
            if not isinstance(v, int) or not 0 <= v < 1 << f.bits:
                raise ValueError(f"{self.OP}.{f.name}: {v!r} does not fit {f.bits} bits (0..{(1 << f.bits) - 1})")
        allowed = ALLOWED_FLAGS[QUEUES[self.OP]]
        for name in FLAGS:
            if getattr(self, name) and name not in allowed:
                raise ValueError(f"{self.OP}.{name}: the {QUEUES[self.OP]} queue has no such neighbour")
        self._check()

    def _check(self) -> None:
        """Ranges beyond the field widths (a mode or buffer number that names nothing)."""

    @property
    def queue(self) -> str | None:
        return QUEUES[self.OP]


@dataclass(frozen=True)
class Load(_Instr):
    """Copy ``count`` bursts of ``burst`` bytes from external memory (``ext_addr``, bursts
    ``ext_stride`` apart) into scratchpad ``buffer`` (``sp_addr``, bursts ``sp_stride`` apart)."""

    buffer: int = 0
    ext_addr: int = 0
    ext_stride: int = 0
    count: int = 0
    burst: int = 0
    sp_addr: int = 0
    sp_stride: int = 0

    OP = "LOAD"

    def _check(self) -> None:
        if self.buffer >= len(BUFFERS):
            raise ValueError(f"{self.OP}.buffer: {self.buffer} names no buffer ({len(BUFFERS)} buffers)")


@dataclass(frozen=True)
class Store(Load):
    """The same 2-D block copied the other way, scratchpad -> external memory."""

    OP = "STORE"


@dataclass(frozen=True)
class Compute(_Instr):
    """One tile of layer ``layer``: output rows [r0, r1), output channels [k0, k1), input
    channels [c0, c1); ``accumulate`` adds the partial sums held at the layer's accumulator,
    ``finish`` requantizes and writes the output (else the partial sums are kept)."""

    mode: int = 0
    accumulate: int = 0
    finish: int = 0
    layer: int = 0
    r0: int = 0
    r1: int = 0
    k0: int = 0
    k1: int = 0
    c0: int = 0
    c1: int = 0
    in_addr: int = 0
    in2_addr: int = 0
    w_addr: int = 0
    out_addr: int = 0

    OP = "COMPUTE"

    def _check(self) -> None:
        if self.mode >= len(MODES):
            raise ValueError(f"{self.OP}.mode: {self.mode} names no mode ({len(MODES)} modes)")


@dataclass(frozen=True)
class Sync(_Instr):
    """Tokens only: a COMPUTE-queue instruction that does no work (it relays a STORE's token
    to the LOAD queue, or a LOAD's to the STORE queue)."""

    OP = "SYNC"


@dataclass(frozen=True)
class End(_Instr):
    """The end of the program: the sequencer stops once every queue has drained."""

    OP = "END"


CLASSES = {cls.OP: cls for cls in (Load, Store, Compute, Sync, End)}
_BY_CODE = {code: CLASSES[op] for op, code in OPCODES.items()}


def encode(instr: _Instr) -> bytes:
    """The instruction as :data:`WORD_BYTES` little-endian bytes."""
    word = 0
    for f in LAYOUTS[instr.OP]:
        v = OPCODES[instr.OP] if f.name == "opcode" else getattr(instr, f.name)
        word |= v << f.offset
    return word.to_bytes(WORD_BYTES, "little")


def decode(data: bytes) -> _Instr:
    """The instruction in ``data``; ValueError for a wrong length, an unknown opcode, bits set
    outside its layout or a field out of range."""
    if len(data) != WORD_BYTES:
        raise ValueError(f"instruction: {len(data)} bytes, expected {WORD_BYTES}")
    word = int.from_bytes(data, "little")
    code = word & 0xF
    if code not in _BY_CODE:
        raise ValueError(f"instruction: unknown opcode {code}")
    cls = _BY_CODE[code]
    values, used = {}, 0
    for f in LAYOUTS[cls.OP][1:]:
        values[f.name] = (word >> f.offset) & ((1 << f.bits) - 1)
        used = f.offset + f.bits
    if word >> max(used, 4):
        raise ValueError(f"instruction: {cls.OP} has bits set beyond its layout (bit {used} on)")
    return cls(**values)

