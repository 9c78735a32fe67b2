"""The compute unit's arithmetic on a COMPUTE instruction (``rtl.compute.ComputeUnit``), as pure
Python: which tiles it runs, where in the parameter block it reads, how it divides by the
config's constants, and how many cycles its setup takes. The hardware derives the feeders'
and the core's commands from these; the tests check it against this module and the image
interpreter (``wino_gen.compile.interp``).

What it runs (:func:`why_unsupported`): ``add`` tiles, whole poolings, and convolution tiles
(winograd, direct, linear) that compute their outputs whole (``accumulate`` 0, ``finish`` 1,
so all input channels). The engines pad every side of the band they are given, so a band that
starts inside the image is given to them from earlier rows and their first output rows are
dropped (:func:`engine_band`); that needs the tile's first input row inside the image (``r0 *
stride >= padding``). Everything else (partial sums, a pooling band) is answered with
:data:`UNSUPPORTED`, never computed wrong.
"""

from __future__ import annotations

from .compile.image import DESC_WORDS, SPATIAL_TAP_ARRAYS, TAP_ARRAYS, Desc
from .config import AcceleratorConfig
from .isa import STATUS
from .limits import MAX_PAD, WINDOW_STRIDES
from .schedule import FEED_READ_LATENCY, WEIGHT_WORD_STAGES, writer_beat_cycles

#: DONE status of a COMPUTE the unit cannot run: the interpreter's "unsupported" where its table
#: has one, else the code after docs/image.md's table
UNSUPPORTED = next(k for k, v in STATUS.items() if v == "unsupported")
#: the modes the unit runs
RUNS = ("winograd", "direct", "linear", "add", "maxpool", "avgpool")
#: bytes of a parameter word
WORD = 4
#: registered derivation stages of the feeders' and the core's commands (each a step of small
#: multiplies and divisions by constants)
DERIVE_STAGES = 4
#: cycles of the unit's setup after its parameters are in: taking the instruction, the check,
#: the derivation stages, the command registers, and the answer's cycle once the feeders and
#: the core are idle
SETUP_CYCLES = 4 + DERIVE_STAGES
#: cycles the unit starts its weight reader before the other feeders and the core: a word passes
#: :data:`wino_gen.schedule.WEIGHT_WORD_STAGES` registers more than an activation beat, so that
#: its first word reaches the core with the first activation beat, and the core sees both
#: streams as a host-fed core does, :data:`FEED_LAG` later (whichever of them limits it)
WEIGHT_HEAD_START = WEIGHT_WORD_STAGES
#: cycles the unit's answer comes after the core's own count (``perf.core_cycles`` from its
#: ``start``): the feeders start on the registered command and their first window read
#: takes :data:`wino_gen.schedule.FEED_READ_LATENCY`, so the core's first beat, and with it
#: every later one, comes that much after a host-fed core's
FEED_LAG = 1 + FEED_READ_LATENCY


def word_index(name: str) -> int:
    """The parameter block's word ``name`` (docs/image.md)."""
    return DESC_WORDS.index(name)


def block_arrays(cfg: AcceleratorConfig) -> tuple[str, ...]:
    """The per-tap arrays of a Winograd block in an image for ``cfg`` (docs/image.md): the U
    requant's after the others where the build takes spatial weights."""
    return Desc.tap_arrays(cfg.weights == "spatial")


def tap_word(array: str, tap: int, taps: int) -> int:
    """Word of ``array``'s (``TAP_ARRAYS``, or a spatial block's ``SPATIAL_TAP_ARRAYS`` after
    them) tap ``tap`` in a block of ``taps`` taps."""
    return len(DESC_WORDS) + Desc.tap_arrays(True).index(array) * taps + tap


def tap_reads(cfg: AcceleratorConfig) -> list[tuple[str, int]]:
    """The ``(array, tap)`` words of a Winograd block the build uses, in address order: V and M
    requant per tap (``tap`` granularity) or tap 0 (``layer``: one value, repeated), their
    mults only for ``fixed`` requant, the M alignment shifts where the build has them, and on a
    spatial-weight build the U requant (per tap in every granularity: the transform's factors
    are), its mults only for ``fixed``."""
    S = cfg.n ** 2
    n_p = S if cfg.granularity == "tap" else 1
    fixed = cfg.requant == "fixed"
    used = {"v_shift", "m_shift"} | ({"v_mult", "m_mult"} if fixed else set())
    out = [(a, t) for a in TAP_ARRAYS if a in used for t in range(n_p)]
    if cfg.tap_shift:
        out += [("m_align", t) for t in range(S)]
    if cfg.weights == "spatial":
        out += [(a, t) for a in SPATIAL_TAP_ARRAYS if fixed or a == "u_shift" for t in range(S)]
    return out


def param_words(cfg: AcceleratorConfig, mode: str) -> int:
    """Words the unit reads from a block: the header, and what the build uses of a Winograd
    layer's tap arrays (:func:`tap_reads`)."""
    return len(DESC_WORDS) + (len(tap_reads(cfg)) if mode == "winograd" else 0)


def bias_byte(cfg: AcceleratorConfig, mode: str, k0: int) -> int:
    """Byte address (in the parameter memory) of output channel ``k0``'s bias in a ``mode``
    layer's block of an image for ``cfg``: after the header and a Winograd block's tap arrays."""
    taps = cfg.n ** 2 * len(block_arrays(cfg)) if mode == "winograd" else 0
    return WORD * (len(DESC_WORDS) + taps + k0)


def param_bytes(cfg: AcceleratorConfig, mode: str, K: int) -> int:
    """Bytes of a layer's parameter block (what its parameter LOAD moves): the header, a
    Winograd layer's tap arrays, the bias of a layer with weights."""
    return bias_byte(cfg, mode, K if mode in ("winograd", "direct", "linear") else 0)


def reciprocal(d: int, bits: int) -> tuple[int, int]:
    """``(mult, shift)`` with ``x // d == (x * mult) >> shift`` for every ``0 <= x < 2**bits``:
    ``shift = bits + ceil(log2 d)``, ``mult = ceil(2**shift / d)`` (the error ``x * (mult*d -
    2**shift) / (d * 2**shift)`` stays below ``1/d``)."""
    if d < 1 or bits < 1:
        raise ValueError(f"d {d}, bits {bits}: must be positive")
    shift = bits + (d - 1).bit_length()
    return -(-(1 << shift) // d), shift


def why_unsupported(mode: str, *, accumulate: int, finish: int, r0: int, r1: int, c0: int, c1: int, C: int,
                    Ho: int, stride: int, padding: int) -> str | None:
    """Why the unit answers :data:`UNSUPPORTED` to a well-formed COMPUTE, or None when it runs it."""
    if mode not in RUNS:
        return f"mode {mode}: not on the compute unit yet"
    if accumulate or not finish or (c0, c1) != (0, C):
        return "partial sums (accumulate / finish 0 / an input-channel split)"
    if 0 < r0 * stride < padding:
        return "a band whose first input row is padding"
    if mode in ("maxpool", "avgpool") and (r0, r1) != (0, Ho):
        return "a pooling band"
    return None


def beyond_build(cfg: AcceleratorConfig, mode: str, *, C: int, K: int, H: int, W: int, Ho: int, Wo: int,
                 kernel: int, stride: int, padding: int, max_kernel: int, max_pool: int) -> str | None:
    """Why the unit answers :data:`UNSUPPORTED` to a layer beyond its build, whatever the tile, or
    None: the layer's rows, columns (in and out) past ``max_width``, its channels past
    ``max_channels`` (the whole layer's: the window generator and tile buffer hold whole rows of
    every channel, so a band or an output-channel block does not lift them), a kernel, stride or
    padding the mode's datapath does not take (a direct kernel past the build's ``max_kernel``,
    a pooling window past ``max_pool``)."""
    for what, v in (("input rows", H), ("input columns", W), ("output rows", Ho), ("output columns", Wo)):
        if v > cfg.max_width:
            return f"{v} {what} exceed the build's max_width {cfg.max_width}"
    for what, v in (("input channels", C), ("output channels", K)):
        if v > cfg.max_channels:
            return f"{v} {what} exceed the build's max_channels {cfg.max_channels}"
    k, s, p = kernel, stride, padding
    if mode in ("maxpool", "avgpool"):
        ok, limit = 1 <= k <= max_pool and 1 <= s <= max_pool and p < k, f"max_pool {max_pool}"
    elif mode == "winograd":
        ok, limit = k == 3 and s == 1 and p <= MAX_PAD, f"3x3 stride 1, padding <= {MAX_PAD}"
    elif mode in ("direct", "linear"):
        ok, limit = 1 <= k <= max_kernel and s in WINDOW_STRIDES and p < k, \
            f"max_kernel {max_kernel}, strides {'/'.join(map(str, WINDOW_STRIDES))}"
    else:
        ok, limit = True, ""
    return None if ok else f"kernel {k}, stride {s}, padding {p}: beyond the build's {mode} mode ({limit})"


def engine_band(mode: str, *, H: int, kernel: int, stride: int, padding: int, r0: int, r1: int,
                tile: int) -> tuple[int, int, int]:
    """The image rows ``[a_e, b)`` the unit gives the engine for output rows ``[r0, r1)`` (``a_e``
    may lie before the loaded band, even before row 0: those rows only feed dropped outputs),
    and the engine's output rows it drops on top. From row 0 nothing is dropped; a later
    Winograd band starts ``tile`` rows early, so that its tiles fall where the interpreter's
    (from ``r0``) do, and drops that tile row; a later direct band starts ``q`` output rows
    early, ``q = ceil(padding / stride)``, so that no kept row reads the engine's top padding."""
    s, k = (1, 3) if mode == "winograd" else (stride, kernel)
    b = min(H, (r1 - 1) * s - padding + k)
    if r0 == 0:
        return 0, b, 0
    if mode == "winograd":
        return r0 - tile, b, tile
    q = -(-padding // s)
    return (r0 - q) * s, b, q


def drops_tail(mode: str, *, H: int, kernel: int, stride: int, padding: int, r0: int, r1: int, tile: int) -> bool:
    """The engine's last output rows on a direct band are not kept (a band that ends inside the
    image: the engine pads below it as at the image's edge, and the unit drops those rows before
    the writer), so the command's last beat costs the writer nothing. Other modes: False (a
    Winograd band's cropped rows still pass the writer; element-wise bands are their rows)."""
    if mode not in ("direct", "linear"):
        return False
    a_e, b, q = engine_band(mode, H=H, kernel=kernel, stride=stride, padding=padding, r0=r0, r1=r1, tile=tile)
    return (b - a_e + 2 * padding - kernel) // stride + 1 > q + r1 - r0


def setup_cycles(cfg: AcceleratorConfig, mode: str, cached: bool) -> int:
    """Cycles a COMPUTE spends outside the feeders and the core: the parameter reads (one word
    a cycle, one cycle of read latency; none when the block is cached) and the setup."""
    return (0 if cached else param_words(cfg, mode) + 1) + SETUP_CYCLES


def compute_cycles(cfg: AcceleratorConfig, mode: str, cached: bool, core: int, *, tail: bool = True) -> int:
    """Cycles of one COMPUTE from its hand-over to the unit's answer, with ``core`` the core's
    cycles of the command (``perf.core_cycles`` / ``perf.core_eltwise_cycles`` on the band
    :func:`engine_band` gives it): the setup, the core, the feeders' lag, and the output
    writer's writes of the last beat after the cycle it takes it
    (:func:`wino_gen.schedule.writer_beat_cycles`); ``tail`` False: the last beats are dropped
    (:func:`drops_tail`), none is written after the core's last (the last kept one's writes,
    at least a paced pixel earlier, are done by then)."""
    last = writer_beat_cycles(cfg, writer_mode(mode)) - 1 if tail else -1
    return setup_cycles(cfg, mode, cached) + core + FEED_LAG + last


def writer_mode(mode: str) -> str:
    """The output writer's kind of beat for an instruction mode."""
    return mode if mode == "winograd" else "direct" if mode in ("direct", "linear") else "eltwise"
