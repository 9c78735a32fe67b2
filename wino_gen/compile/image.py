"""The memory image (spec in docs/image.md): what external memory holds when the accelerator
starts. The file is the memory from address 0: a header, the program, the layer parameter
blocks, the weights; the activation regions follow it and are not stored (the loader zeroes
them; the host writes the input slot and reads the output slot and every stored tensor).

All integers are little-endian. One parser, :meth:`Image.from_bytes`, checks every offset and
size before it is used and raises a one-line :class:`UsageError` naming the field.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from .. import isa
from ..config import AcceleratorConfig
from ..errors import UsageError

MAGIC = b"WINOIMG\0"
#: 2: every transfer starts on a word of the memory port the header names (``port_bytes``)
VERSION = 2
HEADER_BYTES = 256
ALIGN = 64                     # every region and tensor starts on a multiple of this
NAME_BYTES = 96
TENSOR_RECORD = 128

# header: (name, struct code) in file order, from offset 0
HEADER_FIELDS = (("magic", "8s"), ("version", "I"), ("isa_version", "I"), ("config_sha256", "32s"),
                 ("batch", "I"), ("n_tensors", "I"), ("n_layers", "I"), ("main_entry", "I"),
                 ("program_offset", "Q"), ("program_count", "Q"), ("params_offset", "Q"), ("params_size", "Q"),
                 ("weights_offset", "Q"), ("weights_size", "Q"), ("act_offset", "Q"), ("act_size", "Q"),
                 ("memory_size", "Q"), ("tensors_offset", "Q"), ("act_scratch", "I"), ("wgt_scratch", "I"),
                 ("param_scratch", "I"), ("input_tensor", "I"), ("output_tensor", "I"), ("weight_format", "I"),
                 ("port_bytes", "I"))
HEADER_FMT = "<" + "".join(code for _, code in HEADER_FIELDS)
_TENSOR_FMT = "<QIIIIII"          # offset, C, H, W, batch, flags, name length
STORED, INPUT_SLOT, OUTPUT_SLOT = 1, 2, 4    # tensor flags

#: layer parameter block: int32 words, then per-tap arrays (Winograd) and the bias
DESC_WORDS = ("layer", "mode", "C", "H", "W", "K", "Ho", "Wo", "kernel", "stride", "padding", "relu",
              "in_cstride", "in2_cstride", "out_cstride", "acc_addr", "taps", "mult", "shift", "mult2")
TAP_ARRAYS = ("v_mult", "v_shift", "m_mult", "m_shift", "m_align")
#: ... and, in an image of spatial weights (header ``weight_format`` = :data:`WEIGHTS_SPATIAL`), the U
#: requant that turns a Winograd layer's int8 3x3 kernels into U (``golden.transform_weights``)
SPATIAL_TAP_ARRAYS = ("u_mult", "u_shift")
#: header ``weight_format``: the Winograd layers' weight blobs hold U (0, what every older image has in
#: this formerly zero header word) or spatial int8 kernels W (1)
WEIGHTS_U, WEIGHTS_SPATIAL = 0, 1


def config_sha256(cfg: AcceleratorConfig) -> bytes:
    """The hash an image is compiled for: sha256 of the config's JSON (``to_json``)."""
    return hashlib.sha256(cfg.to_json().encode()).digest()


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class Tensor:
    """An activation region: ``batch`` images of (C, H, W) int8, channel-major, at ``offset``."""

    name: str
    offset: int
    shape: tuple[int, int, int]
    batch: int
    flags: int

    @property
    def size(self) -> int:
        return self.batch * int(np.prod(self.shape))


@dataclass(frozen=True)
class Desc:
    """A layer's parameter block, as COMPUTE reads it from the parameter memory."""

    words: dict
    taps: dict = field(default_factory=dict)      # tap arrays -> int64 arrays of ``taps`` values
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @staticmethod
    def tap_arrays(spatial: bool) -> tuple[str, ...]:
        """The per-tap arrays of a Winograd block: :data:`TAP_ARRAYS`, then in a spatial-weight
        image :data:`SPATIAL_TAP_ARRAYS`."""
        return TAP_ARRAYS + (SPATIAL_TAP_ARRAYS if spatial else ())

    def to_bytes(self) -> bytes:
        body = [self.words[k] for k in DESC_WORDS]
        spatial = all(k in self.taps for k in SPATIAL_TAP_ARRAYS)
        for k in self.tap_arrays(spatial) if self.words["taps"] else ():
            body += [int(v) for v in np.ravel(self.taps[k])]
        body += [int(v) for v in self.bias]
        return struct.pack(f"<{len(body)}i", *body)

    @classmethod
    def from_bytes(cls, data: bytes, spatial: bool = False) -> Desc:
        """Raises ValueError on a block too short for what its words declare; ``spatial``: the
        block is from a spatial-weight image (it holds :data:`SPATIAL_TAP_ARRAYS`)."""
        n = len(DESC_WORDS)
        if len(data) < 4 * n or len(data) % 4:
            raise ValueError("parameter block shorter than its header")
        vals = struct.unpack(f"<{len(data) // 4}i", data)
        words = dict(zip(DESC_WORDS, vals[:n], strict=True))
        taps, pos = {}, n
        t = words["taps"]
        if t < 0 or words["K"] < 0:
            raise ValueError("parameter block: negative taps or K")
        for k in cls.tap_arrays(spatial) if t else ():
            taps[k] = np.asarray(vals[pos:pos + t], np.int64)
            pos += t
        has_bias = isa.MODES[words["mode"]] in ("winograd", "direct", "linear") if 0 <= words["mode"] < len(
            isa.MODES) else False
        nb = words["K"] if has_bias else 0
        if len(vals) < pos + nb:
            raise ValueError("parameter block shorter than its arrays")
        return cls(words, taps, np.asarray(vals[pos:pos + nb], np.int64))


@dataclass(frozen=True)
class Image:
    config_sha256: bytes
    batch: int
    program: tuple
    main_entry: int
    params: bytes
    weights: bytes
    tensors: tuple[Tensor, ...]
    act_offset: int
    act_size: int
    act_scratch: int
    wgt_scratch: int
    param_scratch: int
    n_layers: int
    weight_format: int = WEIGHTS_U
    port_bytes: int = 1            # the memory port's word every transfer row starts on

    # -- layout ------------------------------------------------------------------------------
    @property
    def tensors_offset(self) -> int:
        return HEADER_BYTES

    @property
    def program_offset(self) -> int:
        return align(HEADER_BYTES + TENSOR_RECORD * len(self.tensors))

    @property
    def params_offset(self) -> int:
        return align(self.program_offset + isa.WORD_BYTES * len(self.program))

    @property
    def weights_offset(self) -> int:
        return align(self.params_offset + len(self.params))

    @property
    def file_size(self) -> int:
        return self.act_offset

    @property
    def memory_size(self) -> int:
        return self.act_offset + self.act_size

    def slot(self, flag: int) -> Tensor:
        return next(t for t in self.tensors if t.flags & flag)

    def regions(self) -> dict[str, tuple[int, int]]:
        """Half-open address ranges: what LOADs may read (``read``) and STOREs write (``write``)."""
        return {"params": (self.params_offset, self.params_offset + len(self.params)),
                "weights": (self.weights_offset, self.weights_offset + len(self.weights)),
                "act": (self.act_offset, self.act_offset + self.act_size)}

    # -- bytes -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        inp = next(i for i, t in enumerate(self.tensors) if t.flags & INPUT_SLOT)
        out = next(i for i, t in enumerate(self.tensors) if t.flags & OUTPUT_SLOT)
        vals = dict(magic=MAGIC, version=VERSION, isa_version=isa.VERSION, config_sha256=self.config_sha256,
                    batch=self.batch, n_tensors=len(self.tensors), n_layers=self.n_layers,
                    main_entry=self.main_entry, program_offset=self.program_offset,
                    program_count=len(self.program), params_offset=self.params_offset,
                    params_size=len(self.params), weights_offset=self.weights_offset,
                    weights_size=len(self.weights), act_offset=self.act_offset, act_size=self.act_size,
                    memory_size=self.memory_size, tensors_offset=self.tensors_offset,
                    act_scratch=self.act_scratch, wgt_scratch=self.wgt_scratch,
                    param_scratch=self.param_scratch, input_tensor=inp, output_tensor=out,
                    weight_format=self.weight_format, port_bytes=self.port_bytes)
        buf = bytearray(self.file_size)
        buf[:struct.calcsize(HEADER_FMT)] = struct.pack(HEADER_FMT, *(vals[k] for k, _ in HEADER_FIELDS))
        for i, t in enumerate(self.tensors):
            name = t.name.encode()
            at = HEADER_BYTES + i * TENSOR_RECORD
            buf[at:at + TENSOR_RECORD] = (struct.pack(_TENSOR_FMT, t.offset, *t.shape, t.batch, t.flags, len(name))
                                          + name).ljust(TENSOR_RECORD, b"\0")
        p = self.program_offset
        for instr in self.program:
            buf[p:p + isa.WORD_BYTES] = isa.encode(instr)
            p += isa.WORD_BYTES
        buf[self.params_offset:self.params_offset + len(self.params)] = self.params
        buf[self.weights_offset:self.weights_offset + len(self.weights)] = self.weights
        return bytes(buf)

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "image") -> Image:
        """Parse and check an image file; one-line UsageError naming the field on any problem.
        Instructions are decoded here, so an undecodable word is refused before anything runs."""
        hsize = struct.calcsize(HEADER_FMT)
        if len(data) < HEADER_BYTES:
            raise UsageError(f"{what}: {len(data)} bytes, shorter than the {HEADER_BYTES}-byte header")
        h = dict(zip((k for k, _ in HEADER_FIELDS), struct.unpack(HEADER_FMT, data[:hsize]), strict=True))
        if h["magic"] != MAGIC:
            raise UsageError(f"{what}: magic: not a wino memory image")
        if h["version"] != VERSION or h["isa_version"] != isa.VERSION:
            raise UsageError(f"{what}: version: image format {h['version']} / ISA {h['isa_version']}; this reader "
                             f"takes {VERSION} / {isa.VERSION}")
        n = len(data)
        if h["n_tensors"] < 2 or HEADER_BYTES + h["n_tensors"] * TENSOR_RECORD > n:
            raise UsageError(f"{what}: n_tensors: {h['n_tensors']} records do not fit the file")
        tensors = tuple(_tensor(data, HEADER_BYTES + i * TENSOR_RECORD, what, i) for i in range(h["n_tensors"]))
        img = _assemble(h, data, tensors, what)
        for k in ("program_offset", "params_offset", "weights_offset", "memory_size", "tensors_offset"):
            if h[k] != getattr(img, k):
                raise UsageError(f"{what}: {k}: {h[k]} does not follow the layout (expected {getattr(img, k)})")
        if img.file_size != n:
            raise UsageError(f"{what}: act_offset: {img.file_size} differs from the file size {n}")
        return img


def read(path, flag: str, what: str | None = None) -> Image:
    """The image in the file ``path`` (:meth:`Image.from_bytes`, its errors naming ``what``,
    by default ``flag`` and the path); an unreadable file is one UsageError naming ``flag``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 31)
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror or e}") from None
    return Image.from_bytes(raw, what or f"{flag} {path}")


def _tensor(data: bytes, at: int, what: str, i: int) -> Tensor:
    off, C, H, W, batch, flags, nlen = struct.unpack_from(_TENSOR_FMT, data, at)
    start = at + struct.calcsize(_TENSOR_FMT)
    if nlen > NAME_BYTES or min(C, H, W, batch) < 1:
        raise UsageError(f"{what}: tensors[{i}]: bad record (name length {nlen}, shape {C}x{H}x{W}, batch {batch})")
    try:
        name = data[start:start + nlen].decode()
    except UnicodeDecodeError:
        raise UsageError(f"{what}: tensors[{i}].name: not UTF-8") from None
    return Tensor(name, off, (C, H, W), batch, flags)


def _assemble(h: dict, data: bytes, tensors, what: str) -> Image:
    """The Image a checked header describes, its sections sliced out of ``data``."""
    n = len(data)
    for off, size, name in ((h["program_offset"], h["program_count"] * isa.WORD_BYTES, "program"),
                            (h["params_offset"], h["params_size"], "params"),
                            (h["weights_offset"], h["weights_size"], "weights")):
        if off + size > n:
            raise UsageError(f"{what}: {name}: {size} bytes at {off} run past the end of the file ({n} bytes)")
    program = []
    for i in range(h["program_count"]):
        at = h["program_offset"] + i * isa.WORD_BYTES
        try:
            program.append(isa.decode(data[at:at + isa.WORD_BYTES]))
        except ValueError as e:
            raise UsageError(f"{what}: program[{i}]: {e}") from None
    if not h["main_entry"] <= len(program):
        raise UsageError(f"{what}: main_entry: {h['main_entry']} beyond the {len(program)} instructions")
    flags = [t.flags for t in tensors]
    if h["input_tensor"] >= len(tensors) or h["output_tensor"] >= len(tensors) or not (
            flags[h["input_tensor"]] & INPUT_SLOT and flags[h["output_tensor"]] & OUTPUT_SLOT):
        raise UsageError(f"{what}: input_tensor/output_tensor: not the tensors flagged as slots")
    if h["weight_format"] not in (WEIGHTS_U, WEIGHTS_SPATIAL):
        raise UsageError(f"{what}: weight_format: {h['weight_format']} is neither {WEIGHTS_U} (U) nor "
                         f"{WEIGHTS_SPATIAL} (spatial)")
    w = h["port_bytes"]
    if not 1 <= w <= ALIGN or w & (w - 1):
        raise UsageError(f"{what}: port_bytes: {w} is not a power of two in 1..{ALIGN}")
    img = Image(h["config_sha256"], h["batch"], tuple(program), h["main_entry"],
                data[h["params_offset"]:h["params_offset"] + h["params_size"]],
                data[h["weights_offset"]:h["weights_offset"] + h["weights_size"]], tensors,
                h["act_offset"], h["act_size"], h["act_scratch"], h["wgt_scratch"], h["param_scratch"],
                h["n_layers"], h["weight_format"], w)
    lo, hi = img.regions()["act"]
    for t in tensors:
        if t.offset < lo or t.offset + t.size > hi:
            raise UsageError(f"{what}: tensor {t.name!r}: region {t.offset}..{t.offset + t.size} lies outside the "
                             f"activation regions {lo}..{hi}")
    return img


def misaligned(instr, word: int) -> str | None:
    """Why a LOAD/STORE does not start every row on a ``word``-byte memory port word (None when
    it does): ``ext_addr`` and ``sp_addr``, and when it moves several rows ``ext_stride`` and
    ``sp_stride``, are multiples of the word (a row's length need not be: the DMA masks the
    last word). The rule of the hardware's LOAD/STORE executors (``rtl.ctrl.transfer``): the
    compiler keeps it, the interpreter stops with "bad instruction" where it is broken."""
    if instr.count == 0 or instr.burst == 0:
        return None
    fields = ("ext_addr", "sp_addr") + (("ext_stride", "sp_stride") if instr.count > 1 else ())
    odd = [f"{f} {getattr(instr, f)}" for f in fields if getattr(instr, f) % word]
    return f"{', '.join(odd)} not a multiple of the {word}-byte port word" if odd else None


def check_transfer(img: Image, instr) -> str | None:
    """Why a LOAD/STORE falls outside its regions (None when it does not): a LOAD reads the
    parameter blocks, the weights or the activation regions, a STORE writes only activation
    regions; the scratchpad side stays inside its buffer. The compiler refuses a program with
    such an instruction, the interpreter stops with an error status."""
    if instr.count == 0 or instr.burst == 0:
        return None
    first, last = instr.ext_addr, instr.ext_addr + (instr.count - 1) * instr.ext_stride + instr.burst
    regions = img.regions()
    allowed = ("act",) if instr.OP == "STORE" else ("params", "weights", "act")
    if not any(regions[r][0] <= first and last <= regions[r][1] for r in allowed):
        return f"external {first}..{last} outside the {'/'.join(allowed)} region(s)"
    size = {"act": img.act_scratch, "wgt": img.wgt_scratch, "param": img.param_scratch}[isa.BUFFERS[instr.buffer]]
    end = instr.sp_addr + (instr.count - 1) * instr.sp_stride + instr.burst
    if end > size:
        return f"scratchpad {isa.BUFFERS[instr.buffer]} {instr.sp_addr}..{end} beyond its {size} bytes"
    if instr.OP == "STORE" and instr.buffer != isa.BUFFERS.index("act"):
        return "a STORE reads only the activation scratchpad"
    return None
