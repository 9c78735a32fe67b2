"""The accelerator's schedule, defined once: tile and buffer geometry, per-block latencies and
the loop nests and beat orders of both engines, the element-wise / pooling units and the window
generator (pure Python, no amaranth).

``rtl/`` takes its depths and latencies from here (and asserts, while it elaborates, the stage
counts its own structure decides), ``wino_gen.perf`` sums it, and the host encoder
(``wino_gen.flow.host``), the self-test and the simulator iterate it instead of re-deriving it.

Winograd engine, one layer: for tile row ``ty``, output-channel block ``kb``, tile column
``tx``, channel group ``cg`` one PE-array step (``rtl.tilebuf.LayerController``). The host
streams ``x`` row by row (image row, channel group, n-column beat), ``w`` one block of
``n_cg`` words per (tile row, block), and takes ``o`` one m x m beat per (tile row, block,
tile column, channel of the block). Direct engine: for block ``kb``, output pixel ``pix``,
patch chunk ``chunk`` one step, one ``x`` beat per step, ``o`` one beat per (block, pixel).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

from .limits import MAX_PAD, WINDOW_KERNEL_RANGE, WINDOW_STRIDES, int_range, pool_padding_range

if TYPE_CHECKING:
    from .config import AcceleratorConfig


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def ceil_log2(n: int) -> int:
    """``amaranth.utils.ceil_log2`` (bits to count ``n`` values), here without amaranth."""
    if n < 0:
        raise ValueError(f"{n} is negative")
    return (n - 1).bit_length() if n else 0


def tree_levels(count: int) -> int:
    """Register levels of ``rtl.arith.adder_tree`` over ``count`` values (pairwise, one level
    per halving): ``ceil(log2(count))``, 0 for one value."""
    return ceil_log2(count)


def rq_latency(fixed: bool) -> int:
    """Register stages of ``rtl.arith.rq_pipeline``: (multiply,) shift + clamp, round +
    saturate."""
    return 3 if fixed else 2


# -- buffers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PEGeometry:
    """The PE array and its double-buffered weight buffer (``rtl.pe``)."""

    taps: int          # S = n²: multipliers per (output, input) channel pair
    lanes: int         # L = unroll_in * S: input values per step
    depth: int         # weight words per bank: channel groups (Winograd) or patch chunks (direct)
    acc_lanes: int     # accumulators per output channel: S (Winograd, one per tap) or 1
    tree_inputs: int   # products an adder tree sums: unroll_in (Winograd) or unroll_in * S
    addr_bits: int     # step tag's weight-word field
    word_bits: int     # one weight word: unroll x L weights

    @property
    def banks(self) -> int:
        """Two banks: the next output-channel block loads while the current one is read."""
        return 2


def pe_geometry(cfg: AcceleratorConfig) -> PEGeometry:
    """The PE array a config builds. Direct: one step is a
    chunk of L patch elements of a 3x3 window, so the bank holds ``max_channels * 9 / L``."""
    S = cfg.n * cfg.n
    L = cfg.unroll_in * S
    wino = cfg.algo == "winograd"
    # at least ``unroll`` words: a direct pixel takes at least that many chunks in the core
    # (:func:`window_geometry`'s ``min_steps``), and the dual array's bank holds them too
    depth = max(cfg.max_channels // cfg.unroll_in if wino else _ceil(cfg.max_channels * 9, L), cfg.unroll)
    return PEGeometry(taps=S, lanes=L, depth=depth, acc_lanes=S if wino else 1,
                      tree_inputs=cfg.unroll_in if wino else L, addr_bits=max(1, ceil_log2(depth)),
                      word_bits=cfg.unroll * L * cfg.weight_bits)


@dataclass(frozen=True)
class LineBuffer:
    """The Winograd engine's banked line buffer (``rtl.tilebuf``): n x n banks, padded
    row ``ys`` in row bank ``ys mod n``, slot ``(ys // n) mod 2``; a word is addressed by the
    fields ``{xd (column word), sub (slot), cg (channel group)}``."""

    banks: int         # n * n block RAMs
    cg_max: int        # channel groups (the PE array's weight-bank depth)
    xb_max: int        # column words: the widest padded row, MAX_PAD on each side, n spare
    coord_bits: int    # image coordinates and tile counts
    cg_field: int      # address bits of ``cg`` (a power of two: no multiplier in the address)
    cg_bits: int       # counts up to cg_max
    xb_bits: int       # counts up to xb_max
    depth: int         # words per bank: xb_max * 2 * 2**cg_field
    word_bits: int     # unroll_in activations
    n_kb_bits: int     # the config port's output-channel block count


def line_buffer(cfg: AcceleratorConfig) -> LineBuffer:
    """The line buffer a Winograd config builds (``rtl.tilebuf``'s banks and ``shape_layout``)."""
    if cfg.algo != "winograd":
        raise ValueError("only the Winograd engine has a line buffer")
    n = cfg.n
    cg_max = pe_geometry(cfg).depth
    xb_max = _ceil(cfg.max_width + 2 * MAX_PAD + n, n)
    cg_field = ceil_log2(cg_max)
    cg_bits = max(1, ceil_log2(cg_max + 1))
    return LineBuffer(banks=n * n, cg_max=cg_max, xb_max=xb_max,
                      coord_bits=ceil_log2(cfg.max_width + 2 * MAX_PAD + 2 * n + 1), cg_field=cg_field,
                      cg_bits=cg_bits, xb_bits=max(1, ceil_log2(xb_max + 1)),
                      depth=xb_max * 2 * (1 << cg_field), word_bits=cfg.unroll_in * cfg.act_bits,
                      n_kb_bits=cg_bits + ceil_log2(cfg.unroll_in) + 1)


class Memory(NamedTuple):
    """One kind of RAM: ``count`` instances of ``depth`` words of ``width`` bits."""

    name: str
    count: int
    depth: int
    width: int


def memories(cfg: AcceleratorConfig) -> tuple[Memory, ...]:
    """Every memory of the generated design (``wino_gen.perf`` counts their block RAMs): the weight buffer's
    two banks in one RAM, and (Winograd) the line buffer's n² banks."""
    pe = pe_geometry(cfg)
    mems = [Memory("weights", 1, pe.banks * pe.depth, pe.word_bits)]
    if cfg.algo == "winograd":
        lb = line_buffer(cfg)
        mems.append(Memory("line buffer", lb.banks, lb.depth, lb.word_bits))
    return tuple(mems)


# -- latencies --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latencies:
    """Register stages of each block as ``rtl/`` builds them, and the pipeline totals."""

    start: int            # the first beat is taken the cycle after ``start``
    tile_buffer: int      # RAM read, two read-data registers, rotated + masked tile
    skid: int             # the skid buffer behind the tile buffer passes words straight through
    input_transform: int  # Bᵀ d, then · B
    rq: int               # a requantizer (V; also each of the output stage's two)
    pe_tree: int          # adder tree levels
    pe: int               # step, operand and two product registers, then the tree
    serializer: int       # its buffer is a register
    serializer_period: int  # cycles per PE output: unroll beats and the registered ready
    output_stage: int     # M requant, Aᵀ M, · A, bias add, y requant
    direct_output: int    # bias add, y requant

    @property
    def winograd(self) -> int:
        """Cycles from a step command to its output beat (the last step of a tile)."""
        return (self.tile_buffer + self.skid + self.input_transform + self.rq + self.pe
                + self.serializer + self.output_stage)

    @property
    def direct(self) -> int:
        """Cycles from a direct step into the PE array to its output beat."""
        return self.pe + self.direct_output


def latencies(cfg: AcceleratorConfig) -> Latencies:
    """The latencies a config builds (``rtl.tilebuf.TileBuffer``, ``rtl.transform``,
    ``rtl.arith.rq_pipeline``, ``rtl.pe.PEArray``, ``rtl.top.DirectAccel``'s output delay)."""
    rq = rq_latency(cfg.requant == "fixed")
    levels = tree_levels(pe_geometry(cfg).tree_inputs)
    return Latencies(start=1, tile_buffer=4, skid=0, input_transform=2, rq=rq, pe_tree=levels,
                     pe=4 + levels, serializer=1, serializer_period=cfg.unroll + 1,
                     output_stage=rq + 3 + rq, direct_output=1 + rq)


def paced(lat: Latencies, cfg: AcceleratorConfig, beat_cycles: int) -> Latencies:
    """``lat`` with its serializer handing over a beat every ``beat_cycles`` cycles (``rtl.pe.
    Serializer``'s ``gap`` of ``beat_cycles - 1``, also after a tile's last beat): a tile
    every ``unroll * beat_cycles + 1``."""
    if beat_cycles < 1:
        raise ValueError(f"beat_cycles {beat_cycles}: must be positive")
    return replace(lat, serializer_period=cfg.unroll * beat_cycles + 1)


# -- Winograd engine --------------------------------------------------------------------------

@dataclass(frozen=True)
class WinogradGeometry:
    """One 3x3 stride-1 layer on the Winograd engine. Padded coordinates: padded row ``ys``
    holds image row ``ys - pad``; tile (ty, tx) covers padded rows ``ty*m .. ty*m + n - 1``
    and the same columns; everything outside the image is zero."""

    C: int
    K: int
    H: int
    W: int
    pad: int
    m: int
    n: int
    unroll: int
    unroll_in: int
    Ho: int
    Wo: int
    th: int            # tile rows
    tw: int            # tile columns
    n_cg: int          # channel groups: steps per tile
    n_kb: int          # output-channel blocks
    nxb: int           # x beats per image row and channel group (n padded columns each)

    @property
    def padded(self) -> tuple[int, int]:
        """Padded image the tiles cover (``golden.tile_input``): ``th*m + 2`` x ``tw*m + 2``."""
        return self.th * self.m + 2, self.tw * self.m + 2

    @property
    def row_beats(self) -> int:
        """x beats of one image row (all channel groups)."""
        return self.n_cg * self.nxb

    @property
    def x_beats(self) -> int:
        return self.H * self.row_beats

    @property
    def w_beats(self) -> int:
        """The layer's weights are streamed once per tile row."""
        return self.th * self.n_kb * self.n_cg

    @property
    def steps(self) -> int:
        return self.th * self.n_kb * self.tw * self.n_cg

    @property
    def n_out(self) -> int:
        return self.th * self.n_kb * self.tw * self.unroll

    def rows_needed(self, ty: int) -> int:
        """Padded rows loaded before tile row ``ty`` may be read (``TileBuffer``'s ``band_ok``):
        its n rows, or all rows of the image (``ys`` runs ``pad .. H + pad - 1``)."""
        return min(ty * self.m + self.n, self.H + self.pad)

    def row_gate(self, ys: int) -> int:
        """The tile row whose first step frees the slot for padded row ``ys``: n row banks of two
        slots hold 2n rows from the tile row being read, ``ys < y0 + 2n`` (``TileBuffer``'s
        ``x.ready``)."""
        return max(0, _ceil(ys - 2 * self.n + 1, self.m))


def tile_grid(H: int, W: int, tile: int, padding: int = 1) -> tuple[int, int, int, int]:
    """``(Ho, Wo, th, tw)`` of a 3x3 stride-1 convolution cut into m x m output tiles: what
    needs no accelerator config (``golden.tile_input``, ``train.winograd_conv``)."""
    Ho, Wo = H + 2 * padding - 2, W + 2 * padding - 2
    if Ho < 1 or Wo < 1:
        raise ValueError(f"image {H}x{W} with padding {padding} gives no 3x3 output")
    return Ho, Wo, _ceil(Ho, tile), _ceil(Wo, tile)


def winograd_geometry(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int,
                      padding: int = 1) -> WinogradGeometry:
    """Tile geometry of a layer (``wino_gen.flow.host.WinogradLayer.geometry``,
    ``perf.winograd_layer``). Checks only that a 3x3 output exists; whether the layer fits a
    build is the caller's question (:func:`line_buffer`, ``cfg.max_width``/``max_channels``)."""
    m, n = cfg.tile, cfg.n
    Ho, Wo, th, tw = tile_grid(H, W, m, padding)
    return WinogradGeometry(C=C, K=K, H=H, W=W, pad=padding, m=m, n=n, unroll=cfg.unroll,
                            unroll_in=cfg.unroll_in, Ho=Ho, Wo=Wo, th=th, tw=tw,
                            n_cg=_ceil(C, cfg.unroll_in), n_kb=_ceil(K, cfg.unroll),
                            nxb=_ceil(tw * m + 2, n))


class WinogradStep(NamedTuple):
    """One step command of ``LayerController`` (``rtl.tilebuf.cmd_layout``). The weight word is
    ``cg``; the bank alternates per (tile row, block); ``first``/``last`` open and close a
    tile's channel sum; ``eob`` is the bank's last use."""

    ty: int
    kb: int
    tx: int
    cg: int
    y0: int
    y0mod: int
    y0div: int
    x0: int
    x0mod: int
    x0div: int
    bank: int
    first: bool
    last: bool
    eob: bool


def winograd_steps(g: WinogradGeometry) -> Iterator[WinogradStep]:
    """The step commands in ``LayerController``'s order: ty -> kb -> tx -> cg."""
    for ty in range(g.th):
        y0 = ty * g.m
        for kb in range(g.n_kb):
            bank = (ty * g.n_kb + kb) & 1
            for tx in range(g.tw):
                x0 = tx * g.m
                for cg in range(g.n_cg):
                    last = cg == g.n_cg - 1
                    yield WinogradStep(ty, kb, tx, cg, y0, y0 % g.n, y0 // g.n, x0, x0 % g.n, x0 // g.n,
                                       bank, cg == 0, last, last and tx == g.tw - 1)


class XBeat(NamedTuple):
    """n padded columns ``xb*n .. xb*n + n - 1`` of image row ``y`` (padded column ``xs`` holds
    image column ``xs - pad``), ``unroll_in`` channels of group ``cg`` each."""

    y: int
    cg: int
    xb: int


def winograd_x_order(g: WinogradGeometry) -> Iterator[XBeat]:
    """The ``x`` stream (``wino_gen.flow.host.WinogradLayer.x_beats``): image row -> channel group ->
    column word; only image rows are sent, padding rows never."""
    for y in range(g.H):
        for cg in range(g.n_cg):
            for xb in range(g.nxb):
                yield XBeat(y, cg, xb)


class WBeat(NamedTuple):
    """Weights of block ``kb`` for channel group ``cg`` (``unroll`` x ``unroll_in`` x S); the
    block's biases ride on every word and are taken from the first (``cg == 0``)."""

    ty: int
    kb: int
    cg: int


def winograd_w_order(g: WinogradGeometry) -> Iterator[WBeat]:
    """The ``w`` stream (``wino_gen.flow.host.WinogradLayer.w_beats``): every tile row re-streams the
    layer's blocks, in the order the steps use them."""
    for ty in range(g.th):
        for kb in range(g.n_kb):
            for cg in range(g.n_cg):
                yield WBeat(ty, kb, cg)


class OutBeat(NamedTuple):
    """The m x m outputs of tile (ty, tx) for channel ``kb * unroll + k`` (channels >= K are
    padding the host drops; partial tiles at the bottom/right are full tiles)."""

    ty: int
    kb: int
    tx: int
    k: int


def winograd_output_order(g: WinogradGeometry) -> Iterator[OutBeat]:
    """The ``o`` stream (``wino_gen.flow.host.WinogradLayer.collect``, ``wino_gen.flow.host.selftest_data``):
    a tile's channels leave one per beat after its last step."""
    for ty in range(g.th):
        for kb in range(g.n_kb):
            for tx in range(g.tw):
                for k in range(g.unroll):
                    yield OutBeat(ty, kb, tx, k)


# -- spatial weights: the weight-transform unit (rtl.wtransform) ------------------------------

def weight_transform_latency(cfg: AcceleratorConfig) -> int:
    """Register stages of ``rtl.wtransform.WeightTransform``: ``G' W``, ``· G'ᵀ``, the U
    requant (``rtl.arith.rq_pipeline``)."""
    return 2 + rq_latency(cfg.requant == "fixed")


def weight_path_latency(cfg: AcceleratorConfig) -> int:
    """Cycles from a weight word's last kernel beat taken on ``w`` to the word offered to the PE
    array's weight buffer: the transform, then the packer's word register. The compute core's
    path too (``rtl.core.Core`` with spatial weights: its word of kernels is taken with its
    last beat, ``rtl.wtransform.KernelSplitter`` has no register)."""
    return weight_transform_latency(cfg) + 1


def word_kernels(cfg: AcceleratorConfig) -> list[tuple[int, int]]:
    """The kernels ``(k, c)`` of one weight word in the order the packer takes them (k-major:
    output channel ``k`` of the block, input channel ``c`` of the group)."""
    return [(k, c) for k in range(cfg.unroll) for c in range(cfg.unroll_in)]


def beats_per_word(cfg: AcceleratorConfig) -> int:
    """``w`` beats of a spatial-weight engine per weight word: ``weight_lanes`` kernels each."""
    return cfg.unroll * cfg.unroll_in // cfg.weight_lanes


def steady_lanes(cfg: AcceleratorConfig, tw: int) -> int:
    """Kernels per cycle for no weight stall on a layer with ``tw`` tile columns: a bank of
    ``n_cg`` words must load while the other serves ``tw * n_cg`` steps, so one word per
    ``tw`` cycles is enough (the serializer may make a tile longer; this ignores that slack)."""
    return _ceil(cfg.unroll * cfg.unroll_in, max(1, tw))


# -- direct engine ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DirectGeometry:
    """One convolution on the direct engine: each step reduces a chunk of L = unroll_in * S
    patch elements (im2col order ``(c, ky, kx)``, zero-filled to whole chunks) for ``unroll``
    output channels."""

    C: int
    K: int
    H: int
    W: int
    kh: int
    kw: int
    stride: int
    pad: int
    unroll: int
    lanes: int         # L
    Ho: int
    Wo: int
    n_step: int        # chunks per output pixel
    n_kb: int          # output-channel blocks

    @property
    def patch(self) -> int:
        """Elements of one patch: E = C * kh * kw."""
        return self.C * self.kh * self.kw

    @property
    def n_pix(self) -> int:
        return self.Ho * self.Wo

    @property
    def steps(self) -> int:
        return self.n_kb * self.n_pix * self.n_step

    @property
    def x_beats(self) -> int:
        """One beat per step: the host re-sends the im2col chunks for every block."""
        return self.steps

    @property
    def w_beats(self) -> int:
        return self.n_kb * self.n_step

    @property
    def n_out(self) -> int:
        return self.n_kb * self.n_pix


def direct_geometry(cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, *,
                    kernel: int | tuple[int, int], stride: int, padding: int) -> DirectGeometry:
    """Geometry of a direct convolution (``wino_gen.flow.host.DirectLayer``, ``perf.direct_layer``);
    ``kernel`` is a side or ``(kh, kw)``. Stride and padding have no default: the host's (0)
    and perf's (1) differ."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    L = pe_geometry(cfg).lanes
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"image {H}x{W} is smaller than the {kh}x{kw} kernel")
    return DirectGeometry(C=C, K=K, H=H, W=W, kh=kh, kw=kw, stride=stride, pad=padding,
                          unroll=cfg.unroll, lanes=L, Ho=Ho, Wo=Wo, n_step=_ceil(C * kh * kw, L),
                          n_kb=_ceil(K, cfg.unroll))


class DirectStep(NamedTuple):
    """One step of ``DirectAccel``'s controller: weight word ``chunk``, bank alternating per
    block, ``first``/``last`` around a pixel's sum, ``eob`` the bank's last use."""

    kb: int
    pix: int
    chunk: int
    bank: int
    first: bool
    last: bool
    eob: bool


def direct_steps(g: DirectGeometry) -> Iterator[DirectStep]:
    """The direct engine's steps, kb -> pix -> chunk; the ``x`` stream has one beat per step in
    this order (``wino_gen.flow.host.DirectLayer.x_beats``)."""
    for kb in range(g.n_kb):
        for pix in range(g.n_pix):
            for chunk in range(g.n_step):
                last = chunk == g.n_step - 1
                yield DirectStep(kb, pix, chunk, kb & 1, chunk == 0, last, last and pix == g.n_pix - 1)


def direct_w_order(g: DirectGeometry) -> Iterator[tuple[int, int]]:
    """``(kb, chunk)`` of each ``w`` beat (``wino_gen.flow.host.DirectLayer.w_beats``): once per layer."""
    for kb in range(g.n_kb):
        for chunk in range(g.n_step):
            yield kb, chunk


def direct_output_order(g: DirectGeometry) -> Iterator[tuple[int, int]]:
    """``(kb, pix)`` of each ``o`` beat, ``unroll`` channels each (``wino_gen.flow.host.DirectLayer.collect``)."""
    for kb in range(g.n_kb):
        for pix in range(g.n_pix):
            yield kb, pix


# -- element-wise and pooling units (rtl.eltwise) ---------------------------------------------

#: Register stages of ``rtl.eltwise.EltwiseAdd``: the two products, their sum, ``rq`` (pow2).
ADD_LATENCY = 2 + rq_latency(False)


def add_cycles(beats: int) -> int:
    """Cycles of an ``add`` of ``beats`` beats with no stalls, from the first beat offered to
    the cycle after the last output beat is taken: one beat per cycle plus the pipeline."""
    return beats + ADD_LATENCY


def pool_latency(max_kernel: int) -> int:
    """Register stages of ``rtl.eltwise.Pool`` from a position taken to its output register: the
    window register, the row tree, the line buffer read, the column tree, ``rq`` (fixed)."""
    return 1 + tree_levels(max_kernel) + 1 + tree_levels(max_kernel) + rq_latency(True)


@dataclass(frozen=True)
class PoolGeometry:
    """One pooling of an ``H x W`` image: ``k x k`` windows, stride ``s``, ``padding`` on all
    sides. The unit walks ``rows x cols`` positions per channel group: the image, plus the
    right columns / bottom rows of padding that the last window reaches (virtual positions,
    no input beat); top/left padding costs nothing."""

    H: int
    W: int
    kernel: int
    stride: int
    padding: int
    oh: int      # output rows: floor((H + 2 padding - kernel) / stride) + 1
    ow: int
    rows: int    # H, or the last window's bottom row + 1 when it lies in the padding
    cols: int


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def pool_geometry(H: int, W: int, kernel: int, stride: int, padding: int = 0) -> PoolGeometry:
    """The pooling geometry of ``docs/format.md`` (output ``floor((H + 2p - k) / s) + 1``);
    ValueError naming the field for shapes the format refuses."""
    if kernel < 1 or stride < 1:
        raise ValueError(f"kernel ({kernel}) and stride ({stride}) must be >= 1")
    lo, hi = pool_padding_range(kernel)
    if not lo <= padding <= hi:
        raise ValueError(f"padding ({padding}) must be in {lo}..{hi} for kernel {kernel}")
    oh, ow = _out_size(H, kernel, stride, padding), _out_size(W, kernel, stride, padding)
    if H < 1 or W < 1 or oh < 1 or ow < 1:
        raise ValueError(f"image {H}x{W} is smaller than kernel {kernel} with padding {padding}")

    def last_end(o):   # the last window's last row/column, in image coordinates
        return (o - 1) * stride - padding + kernel - 1

    return PoolGeometry(H, W, kernel, stride, padding, oh, ow, max(H, last_end(oh) + 1),
                        max(W, last_end(ow) + 1))


def pool_cycles(g: PoolGeometry, groups: int, max_kernel: int) -> int:
    """Cycles of one ``rtl.eltwise.Pool`` command with no stalls, from the command offered to
    the next command taken: 1 to take it, one position per cycle (``groups x rows x cols``),
    the pipeline drained (:func:`pool_latency`). Where the last position holds an output
    (every pooling whose windows reach the image's last row and column), its last output
    beat is taken in the cycle before."""
    return 1 + groups * g.rows * g.cols + pool_latency(max_kernel)


# -- window generator (rtl.window) ------------------------------------------------------------

#: Groups the window generator has issued and its gearbox not yet taken: the read pipeline's
#: latency (issue, RAM data, group register) plus the FIFO's write-to-read cycle.
FIFO_DEPTH = 4

#: Cycles from the last input beat of a window row's rows to the gearbox taking the row's
#: first group: the band seen (and the read issued), RAM data, group register, FIFO.
READ_LATENCY = 4


@dataclass(frozen=True)
class WindowBuffer:
    """What a window generator is built for: ``P`` channel sets of ``R`` row banks of two slots
    (2R rows, so that a window of k <= R rows and the s rows of the next one fit) by ``Q``
    column banks (Q >= n: a beat's n columns hit n banks; Q >= max_kernel: a window's columns
    hit k banks). Channel group ``cg`` lives in set ``cg mod P``, so one read of every bank
    yields the k x k windows of P adjacent groups: ``P * unroll_in * k²`` consecutive patch
    elements, at least a chunk of L for every kernel of 3 x 3 and up. A bank word is
    ``unroll_in`` activations at ``{xd, slot, cg // P}``."""

    n: int
    unroll_in: int
    act_bits: int
    lanes: int         # L: patch elements of a chunk
    max_width: int
    max_channels: int
    max_kernel: int
    sets: int          # P: channel groups a read can take (a power of two)
    rows: int          # R
    cols: int          # Q
    cg_max: int
    cg_field: int      # address bits of cg // P
    xd_max: int        # words per row slot and channel group: the widest padded row / Q
    depth: int         # words per bank
    group_max: int     # the longest read: max over kernels of window_par * unroll_in * k²
    coord_bits: int

    @property
    def banks(self) -> int:
        return self.sets * self.rows * self.cols

    @property
    def memory(self) -> Memory:
        """The line buffer's RAMs (``wino_gen.perf`` counts block RAMs from such a list): its
        ``P * R * Q`` banks."""
        return Memory("window buffer", self.banks, self.depth, self.unroll_in * self.act_bits)

    @property
    def gear(self) -> int:
        """Gearbox elements: a chunk short of one element, plus a read."""
        return self.lanes - 1 + self.group_max


def window_par(unroll_in: int, lanes: int, sets: int, max_kernel: int, kernel: int) -> int:
    """Channel groups one read takes for a ``kernel``: the fewest (a power of two, at most
    ``sets``) whose patch elements fill a chunk of ``lanes``, so that the gearbox can emit a
    chunk a cycle; halved while the read is longer than both a ``max_kernel`` window and a
    3 x 3 read of all sets (those size the gearbox: a 4 x 4 or 5 x 5 kernel then reads less
    than a chunk a cycle instead of widening it)."""
    cap = unroll_in * max(max_kernel ** 2, sets * min(max_kernel, 3) ** 2)
    p = min(sets, 1 << ceil_log2(_ceil(lanes, unroll_in * kernel * kernel)))
    while p > 1 and p * unroll_in * kernel * kernel > cap:
        p //= 2
    return p


def window_buffer(cfg: AcceleratorConfig, max_width: int, max_channels: int, max_kernel: int,
                  sets: int | None = None) -> WindowBuffer:
    """The generator's buffers for a direct config; ValueError names a bad parameter. ``sets``
    (P, a power of two) trades block RAM for speed; by default enough that a 3 x 3 read (or
    the ``max_kernel`` one, if smaller) fills a chunk, at most n groups (rounded up to a power
    of two). ``sets=1`` is one window of one group a cycle (``P * R * Q`` banks: each is at
    least one block RAM however shallow)."""
    if cfg.algo != "direct":
        raise ValueError("cfg: the window generator feeds the direct engine (algo='direct')")
    lo, hi = WINDOW_KERNEL_RANGE
    if not lo <= max_kernel <= hi:
        raise ValueError(f"max_kernel: {max_kernel} is out of range {lo}..{hi}")
    if not max_kernel <= max_width <= cfg.max_width:
        raise ValueError(f"max_width: {max_width} must be in {max_kernel}..{cfg.max_width} (cfg.max_width)")
    if max_channels < 1 or max_channels % cfg.unroll_in:
        raise ValueError(f"max_channels: {max_channels} must be a positive multiple of unroll_in ({cfg.unroll_in})")
    n, ui = cfg.n, cfg.unroll_in
    L = pe_geometry(cfg).lanes
    cg_max = max_channels // ui
    if sets is None:   # no more than 1x1 s1 can use (its input brings n groups a cycle) or there are
        sets = 1 << ceil_log2(min(_ceil(n * n, min(max_kernel, 3) ** 2), n, cg_max))
    if not isinstance(sets, int) or sets < 1 or sets & (sets - 1):
        raise ValueError(f"sets: {sets!r} must be a power of two")
    P = sets
    R, Q = max(max_kernel, max(WINDOW_STRIDES)), max(max_kernel, n)
    cg_field = ceil_log2(_ceil(cg_max, P))
    xd_max = _ceil(max_width + 2 * (max_kernel - 1), Q) + 1
    group_max = max(window_par(ui, L, P, max_kernel, k) * ui * k * k for k in range(1, max_kernel + 1))
    return WindowBuffer(n=n, unroll_in=ui, act_bits=cfg.act_bits, lanes=L, max_width=max_width,
                        max_channels=max_channels, max_kernel=max_kernel, sets=P, rows=R, cols=Q, cg_max=cg_max,
                        cg_field=cg_field, xd_max=xd_max, depth=xd_max * 2 * (1 << cg_field),
                        group_max=group_max, coord_bits=ceil_log2(max_width + 2 * max_kernel + 2 * R + 2))


@dataclass(frozen=True)
class WindowGeometry:
    """One direct layer through the generator: the engine's geometry plus the generator's."""

    d: DirectGeometry
    n_cg: int          # channel groups of a pixel
    c_last: int        # channels of the last group
    nxb: int           # input beats per image row and channel group
    par: int           # channel groups per read (window_par)
    group: int         # elements per read: par * unroll_in * k² (zero past the channels)

    @property
    def reads(self) -> int:
        """Reads (gearbox appends) per output pixel."""
        return _ceil(self.n_cg, self.par)

    @property
    def row_beats(self) -> int:
        return self.n_cg * self.nxb

    @property
    def x_beats(self) -> int:
        """Input beats: the image once per output-channel block."""
        return self.d.n_kb * self.d.H * self.row_beats

    @property
    def period(self) -> int:
        """Cycles per output pixel in steady state: the gearbox emits ``n_step`` chunks, and
        where reads are shorter than a chunk it also waits for the pixel's reads and flushes
        the last chunk."""
        r = self.reads
        return self.d.n_step + max(0, r - 1 - (r - 1) * self.group // self.d.lanes)

    @property
    def last_take(self) -> int:
        """Cycle, from a pixel's first read, in which the gearbox takes its last read."""
        r = self.reads
        return max(r - 1, (r - 1) * self.group // self.d.lanes)


def window_geometry(buf: WindowBuffer, cfg: AcceleratorConfig, C: int, K: int, H: int, W: int, *,
                    kernel: int, stride: int, padding: int, min_steps: int = 1) -> WindowGeometry:
    """The layer's geometry, refused (ValueError) where it does not fit the generator; a pixel
    takes at least ``min_steps`` chunks (zero chunks after its patch's: the compute core's
    pace for its output writer, :func:`writer_beat_cycles`)."""
    if not 1 <= kernel <= buf.max_kernel:
        raise ValueError(f"kernel {kernel}: the generator takes 1..{buf.max_kernel}")
    if stride not in WINDOW_STRIDES:
        raise ValueError(f"stride {stride}: the generator takes {WINDOW_STRIDES}")
    if not 0 <= padding < kernel:
        raise ValueError(f"padding {padding}: the generator takes 0..{kernel - 1}")
    if max(H, W) > buf.max_width:
        raise ValueError(f"image {H}x{W} exceeds max_width={buf.max_width}")
    if C > buf.max_channels:
        raise ValueError(f"C={C} exceeds max_channels={buf.max_channels}")
    d = direct_geometry(cfg, C, K, H, W, kernel=kernel, stride=stride, padding=padding)
    if d.n_step < min_steps:
        d = replace(d, n_step=min_steps)
    if d.n_step > pe_geometry(cfg).depth:
        raise ValueError(f"a {C}x{kernel}x{kernel} patch needs {d.n_step} chunks, the engine holds "
                         f"{pe_geometry(cfg).depth}")
    ui = buf.unroll_in
    n_cg = _ceil(C, ui)
    par = window_par(ui, buf.lanes, buf.sets, buf.max_kernel, kernel)
    return WindowGeometry(d=d, n_cg=n_cg, c_last=C - (n_cg - 1) * ui, nxb=_ceil(W, buf.n), par=par,
                          group=par * ui * kernel * kernel)


def window_x_order(g: WindowGeometry) -> Iterator[tuple[int, int, int, int]]:
    """``(kb, y, cg, xb)`` of each input beat: pass -> image row -> channel group -> column word."""
    for kb in range(g.d.n_kb):
        for y in range(g.d.H):
            for cg in range(g.n_cg):
                for xb in range(g.nxb):
                    yield kb, y, cg, xb


def window_cycles(g: WindowGeometry, buf: WindowBuffer) -> int:
    """Cycles from ``start`` (cycle 0) up to and including the one in which the last chunk is
    taken, with an input that never stalls and an output that is always ready.

    Fill: a window row's first read is taken ``READ_LATENCY`` cycles after the last beat
    of its rows (or once the previous pixel is out); steady state: one pixel per
    :attr:`WindowGeometry.period`. An image row of ``row_beats`` beats starts when the
    previous one is in and its slot is free: the gearbox has started the window row of its
    pass that frees it, or, one pass ahead, the window row of the previous pass above which
    the row's ring position lies (or that pass is done). A pass's rows start the cycle after
    the previous pass's are in and the gearbox has finished the pass before that. The last
    chunk also waits for the last input beat (rows that no window needs are still taken)."""
    t, pix_end, prev, done = 0, 0, None, []
    for kb in range(g.d.n_kb):
        first = max(t, done[kb - 2] if kb >= 2 else 0) + 1
        t, pix_end, first_take = _pass_timing(g, buf.rows, first, pix_end, prev)
        done.append(pix_end - g.period + g.last_take + 1)   # the gearbox shows the pass done
        prev = first_take, done[-1]
    return max(pix_end, t) + 1


def _pass_timing(g: WindowGeometry, R: int, t: int, pix_end: int,
                 prev: tuple[list[int], int] | None) -> tuple[int, int, list[int]]:
    """One pass from its first beat in cycle ``t`` (``prev``: the previous pass's window rows'
    first takes and the cycle its end shows): the cycle after its last beat, the cycle in
    which its last chunk leaves and its window rows' first takes."""
    d = g.d
    k, s, p = d.kh, d.stride, d.pad
    row_end: list[int] = []      # per image row: the cycle after its last beat
    first_take: list[int] = []   # per window row: the cycle its first read is taken

    def free_ahead(ys):
        """The cycle from which row ``ys``'s slot is free of the previous pass's rows."""
        thr = ys + d.H - 2 * R
        if prev is None or thr < 0:
            return 0
        takes, end = prev
        return next((c + 1 for oy, c in enumerate(takes) if oy * s > thr), end)

    def load_until(r):
        nonlocal t
        while len(row_end) <= r:
            ys = len(row_end) + p
            if ys >= 2 * R:       # the slot frees once window row oy (top > ys - 2R) has begun
                t = max(t, first_take[(ys - 2 * R) // s + 1] + 1)
            else:
                t = max(t, free_ahead(ys))
            t += g.row_beats
            row_end.append(t)

    for oy in range(d.Ho):
        last = min(oy * s + k, d.H + p) - 1 - p
        load_until(last)
        take = max(row_end[last] + READ_LATENCY - 1, pix_end)
        first_take.append(take)
        pix_end = take + d.Wo * g.period
    load_until(d.H - 1)
    return t, pix_end, first_take


# -- the compute core (rtl.core) --------------------------------------------------------------

def direct_view(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """The core's direct mode as a direct config: the same multipliers, widths and buffer
    limits with ``algo='direct'`` (what the window generator and the direct tail are built
    from)."""
    import dataclasses
    return cfg if cfg.algo == "direct" else dataclasses.replace(cfg, algo="direct")


@dataclass(frozen=True)
class DualPE:
    """The core's PE array with both reductions on one set of multipliers: Winograd's
    geometry (per-tap trees over ``unroll_in``, one accumulator per tap, a weight bank of
    ``max_channels / unroll_in`` words), and behind the accumulators a tree over the S taps
    that gives direct mode its patch sum (a sum over the taps of per-tap sums over chunks)."""

    in_bits: int       # step values: V (transform_bits) or activations (act_bits)
    product: int       # the wider of the two modes' products
    accumulator: int   # per tap: max_channels products (Winograd) or a direct patch's share
    tap_levels: int    # register levels of the tree over the S taps
    direct_sum: int    # a direct patch sum: up to depth * L products of the direct engine's bank


def dual_pe(cfg: AcceleratorConfig) -> DualPE:
    """The dual array of a Winograd config. A direct pixel takes at most the direct engine's
    ``depth`` chunks (``pe_geometry(direct_view(cfg))``), each adding ``unroll_in`` products to
    a tap, so a tap's share is bounded as the Winograd channel sum is, by the larger count."""
    from .config import signed_bits
    if cfg.algo != "winograd":
        raise ValueError("cfg: a dual PE array is built from a Winograd config (algo='winograd')")
    dcfg = direct_view(cfg)
    wino, direct = pe_geometry(cfg), pe_geometry(dcfg)
    assert direct.depth <= wino.depth      # S >= 16 > 9: the Winograd bank holds any patch
    lo_a, hi_a = int_range(cfg.act_bits)
    lo_t, hi_t = int_range(cfg.transform_bits)
    lo_w, hi_w = int_range(cfg.weight_bits)
    plo = min(lo_w * hi_t, hi_w * lo_t, lo_w * hi_a, hi_w * lo_a)
    phi = max(lo_w * lo_t, lo_w * lo_a)
    per_tap = max(cfg.max_channels, cfg.unroll_in * direct.depth)
    dlo, dhi = min(lo_w * hi_a, hi_w * lo_a), lo_w * lo_a
    patch = direct.depth * direct.lanes
    return DualPE(in_bits=max(cfg.transform_bits, cfg.act_bits), product=signed_bits(plo, phi),
                  accumulator=signed_bits(plo * per_tap, phi * per_tap), tap_levels=tree_levels(wino.taps),
                  direct_sum=signed_bits(dlo * patch, dhi * patch))


def writer_beat_cycles(cfg: AcceleratorConfig, mode: str) -> int:
    """Cycles the system's output writer (``rtl.feed.OutputWriter`` with one write window: the
    activation scratchpad's one block-RAM write port) spends on a core output beat of ``mode``
    (``winograd``, ``direct`` or ``eltwise``): a Winograd beat's m tile rows, a direct beat's
    ``unroll`` channels, a row segment's ``unroll_in`` channels, one write each. The core paces
    its beats to it (a Winograd serializer gap, a direct pixel's least chunks), so that the
    writer never holds a beat back and a command's cycles stay the model's."""
    if mode == "winograd":
        return cfg.tile
    if mode == "direct":
        return cfg.unroll
    if mode == "eltwise":
        return cfg.unroll_in
    raise ValueError(f"mode {mode!r}: must be 'winograd', 'direct' or 'eltwise'")


@dataclass(frozen=True)
class CoreLatencies:
    """Register stages of ``rtl.core.Core`` per mode. Winograd mode is the Winograd engine's
    datapath (``Latencies.winograd``); direct mode is a step into the PE array to its output
    beat: the array, the tap tree (dual build only), the bias add and y requant."""

    winograd: int
    direct: int
    direct_pe: int      # the PE array's share of ``direct`` (array + tap tree)


def core_latencies(cfg: AcceleratorConfig, *, direct_only: bool = False) -> CoreLatencies:
    """The core's latencies. The direct-only build has the direct engine's array (one tree over
    the chunk, ``ceil(log2(unroll_in * S))`` levels); the dual build's per-tap trees and tap
    tree have ``ceil(log2(unroll_in)) + ceil(log2(S))``: equal whenever ``unroll_in`` or S is a
    power of two."""
    dlat = latencies(direct_view(cfg))
    if direct_only:
        return CoreLatencies(winograd=0, direct=dlat.direct, direct_pe=dlat.pe)
    pe = latencies(cfg).pe + dual_pe(cfg).tap_levels
    return CoreLatencies(winograd=latencies(cfg).winograd, direct=pe + dlat.direct_output, direct_pe=pe)


def core_window(cfg: AcceleratorConfig, max_kernel: int, sets: int | None = None) -> WindowBuffer:
    """The core's window generator: sized by the config's ``max_width`` and ``max_channels``
    and the build's ``max_kernel``, banked into ``sets`` channel sets (None: the
    :func:`window_buffer` default); ValueError naming a bad one."""
    return window_buffer(direct_view(cfg), cfg.max_width, cfg.max_channels, max_kernel, sets)


def core_window_geometry(cfg: AcceleratorConfig, buf: WindowBuffer, C: int, K: int, H: int, W: int, *,
                         kernel: int, stride: int, padding: int) -> WindowGeometry:
    """A direct command through the core's generator ``buf`` (:func:`core_window`): its direct
    view's geometry, a pixel at least :func:`writer_beat_cycles` chunks."""
    return window_geometry(buf, direct_view(cfg), C, K, H, W, kernel=kernel, stride=stride, padding=padding,
                           min_steps=writer_beat_cycles(cfg, "direct"))


def core_outputs_in_flight(cfg: AcceleratorConfig, *, direct_only: bool = False) -> int:
    """The most output beats the core owes at once (its ``busy`` counter's range): every
    pipeline stage between a step command and the output holds at most one step, the
    serializer and the skid buffer one tile more; a Winograd tile is ``unroll`` beats, a
    direct pixel one."""
    lat = core_latencies(cfg, direct_only=direct_only)
    return max(cfg.unroll * (lat.winograd + 3), lat.direct + 1)


# -- scratchpad feeders (rtl.feed) ------------------------------------------------------------

#: Cycles from a feeder's read of a scratchpad window to its data: the window's read register
#: (``rtl.mem.scratchpad``).
FEED_READ_LATENCY = 1

#: Registers of ``rtl.feed.WeightReader`` behind the read: the word being assembled, then ``w``.
WEIGHT_WORD_STAGES = 2


@dataclass(frozen=True)
class FeedRates:
    """Cycles per beat of the scratchpad feeders (``rtl.feed``) in steady state, no stalls."""

    x: int   # ActivationReader: unroll_in windows of >= n bytes give one beat a cycle
    w: int   # WeightReader: ceil(unroll / ports) row groups x ceil(L / B) reads per word
    o: int   # OutputWriter of cfg.algo's beats: ceil(m / ports) tile rows, or ceil(unroll / ports) channels


def feed_rates(cfg: AcceleratorConfig, *, weight_bytes: int, weight_ports: int, output_ports: int = 1) -> FeedRates:
    """The feeders' rates for a weight reader of ``weight_ports`` windows of ``weight_bytes``
    and a writer of ``output_ports`` windows."""
    if min(weight_bytes, weight_ports, output_ports) < 1:
        raise ValueError(f"weight_bytes {weight_bytes}, weight_ports {weight_ports}, output_ports "
                         f"{output_ports}: must be positive")
    rows = _ceil(cfg.unroll, weight_ports)
    parts = writer_beat_cycles(cfg, "winograd" if cfg.algo == "winograd" else "direct")   # a window's writes
    return FeedRates(x=1, w=rows * _ceil(pe_geometry(cfg).lanes, weight_bytes), o=_ceil(parts, output_ports))


def activation_read_cycles(beats: int) -> int:
    """The cycle (``start`` in cycle 0) in which ``ActivationReader`` hands over its last of
    ``beats`` beats, its output always ready: the first read the cycle after ``start``."""
    return 1 + FEED_READ_LATENCY + beats - 1


def weight_read_cycles(words: int, rate: int) -> int:
    """The same for ``WeightReader``'s last of ``words`` words at ``rate`` cycles a word."""
    return 1 + FEED_READ_LATENCY + words * rate - 1 + WEIGHT_WORD_STAGES


def output_write_cycles(beats: int, rate: int) -> int:
    """The cycle (``start`` in cycle 0) of ``OutputWriter``'s last write, its input offering
    the next beat from the cycle after ``start`` on: a beat's ``rate`` writes follow the cycle
    it is taken in."""
    return 1 + beats * rate


def winograd_band(H: int, pad: int, r0: int, r1: int) -> tuple[int, int, int]:
    """Output rows ``[r0, r1)`` of a 3x3 stride-1 layer on an ``H``-row image, computed by an
    engine that pads every side of what it is given by ``pad``: the image rows ``[a, b)`` to
    give it (``docs/image.md``'s band, clipped to the image) and how many of its output rows
    to drop on top (``skip``, where the band starts inside the image: those rows see the
    engine's padding instead of the image rows above). Its rows ``skip .. skip + r1 - r0``
    are the wanted ones."""
    Ho = H + 2 * pad - 2
    if not 0 <= r0 < r1 <= Ho:
        raise ValueError(f"rows {r0}..{r1}: must be within the layer's {Ho} output rows")
    a, b = max(0, r0 - pad), min(H, r1 - pad + 2)
    return a, b, r0 - a


# -- the core's element-wise modes (rtl.core.EltwiseModes) ------------------------------------

@dataclass(frozen=True)
class SegmentGeometry:
    """A ``[C, H, W]`` tensor as row segments: ``n`` columns of one row, ``unroll_in``
    channels each (the core's ``x`` beat), ``groups`` channel groups, ``nxb`` segments a row."""

    C: int
    H: int
    W: int
    n: int
    unroll_in: int
    groups: int
    nxb: int

    @property
    def beats(self) -> int:
        return self.groups * self.H * self.nxb


def segment_geometry(cfg: AcceleratorConfig, C: int, H: int, W: int) -> SegmentGeometry:
    """The segments of a ``[C, H, W]`` tensor on ``cfg``'s core."""
    if min(C, H, W) < 1:
        raise ValueError(f"tensor {C}x{H}x{W}: every side must be >= 1")
    return SegmentGeometry(C, H, W, cfg.n, cfg.unroll_in, _ceil(C, cfg.unroll_in), _ceil(W, cfg.n))


def segment_order(g: SegmentGeometry) -> Iterator[tuple[int, int, int]]:
    """``(cg, y, xb)`` of each segment: channel group -> row -> segment (a pool's line buffer
    then holds k rows of one group, ``rtl.eltwise``'s stream order)."""
    for cg in range(g.groups):
        for y in range(g.H):
            for xb in range(g.nxb):
                yield cg, y, xb


#: Cycles of a core element-wise command beyond its unit's own: ``start`` (the operands, or
#: the pooling's command, offered the cycle after), and the segment packer's register.
#: Largest pooling window a core is built for by default: ResNet's stem maxpool (3x3 s2).
DEFAULT_MAX_POOL = 3
ELTWISE_START = 1
SEGMENT_PACK_LATENCY = 1


def core_add_cycles(g: SegmentGeometry, beat_cycles: int = 1) -> int:
    """A core ``add`` with no stalls, ``start`` to its last output beat taken (inclusive): the
    operands' first segments offered the cycle after ``start``, then :func:`add_cycles`, with
    its output taken a beat every ``beat_cycles`` (the system's writer: the stall-as-a-whole
    add and its readers, which always have the next beat, move a beat per take)."""
    return ELTWISE_START + add_cycles(g.beats) + (g.beats - 1) * (beat_cycles - 1)


def pool_ends_on_output(p: PoolGeometry) -> bool:
    """The pool's last walked position holds an output: its windows reach the last row and the
    last column walked (else it walks positions past its last output)."""
    return ((p.oh - 1) * p.stride - p.padding + p.kernel == p.rows
            and (p.ow - 1) * p.stride - p.padding + p.kernel == p.cols)


def core_pool_cycles(p: PoolGeometry, groups: int, max_pool: int) -> int:
    """A core pooling with no stalls, ``start`` to the next command's ``start``: the pool's
    command taken the cycle after ``start``, then the pool's :func:`pool_cycles` until it is
    free (the splitter keeps up: a pixel a cycle once its first segment is in). Where the
    last position holds an output (:func:`pool_ends_on_output`), that beat leaves the pool in
    its last cycle and the packer's register one later; otherwise it left earlier."""
    return ELTWISE_START + pool_cycles(p, groups, max_pool) + (SEGMENT_PACK_LATENCY if pool_ends_on_output(p) else 0)


def eltwise_multipliers(cfg: AcceleratorConfig) -> int:
    """Multipliers of the core's element-wise unit beside the PE array's: the add's two per lane
    (``n * unroll_in`` lanes: a row segment a cycle) and the avgpool requant's one per pool lane
    (``unroll_in``)."""
    return 2 * cfg.n * cfg.unroll_in + cfg.unroll_in


# -- the system (rtl.system): the memory port and the sequencer ----------------------------------
# Their build, defined once: ``rtl.system.System`` and its parts default to these,
# ``sim.system`` builds and serves it with them, and ``wino_gen.plan.SystemBuild`` (the
# program's timing model) describes that build.

#: the longest burst on the memory port, in port words: the port's ``max_burst``, the DMA
#: engines' bursts and the program fetch's
MAX_BURST = 8
#: instructions the sequencer prefetches (``rtl.ctrl.sequencer``)
FETCH_DEPTH = 2
#: instructions each sequencer queue (load, compute, store) holds
QUEUE_DEPTH = 4
#: commands the memory behind the port holds (the simulation's memory models)
MEMORY_DEPTH = 4
