"""The numeric limits of the wino-int8 format, the golden model, the host encoder, the RTL and
training, in one table (pure Python: the core, rtl and train all import it).

The comment beside each value names its users. Where the format and the hardware take
different ranges, both are here, side by side: the format is the contract users write against,
the hardware may accept more, never less.
"""

from __future__ import annotations


def int_range(bits: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-wide two's-complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


# -- accelerator configuration ----------------------------------------------------------------

#: Inclusive ranges of ``AcceleratorConfig``'s integer fields (checked by ``wino_gen.config``).
#: ``act_bits``/``weight_bits``/``transform_bits`` are 4..16 in a config, but a model dir
#: stores int8 arrays, so the format allows 4..8 (:data:`STORED_BITS`).
CONFIG_RANGES: dict[str, tuple[int, int]] = {
    "unroll": (1, 256),
    "unroll_in": (1, 64),
    "act_bits": (4, 16),
    "weight_bits": (4, 16),
    "transform_bits": (4, 16),
    "bias_bits": (8, 32),
    "mult_bits": (2, 24),
    "max_tap_shift": (0, 16),
    "max_width": (4, 4096),
    "max_channels": (1, 8192),
}

#: ``act_bits``/``weight_bits``/``transform_bits`` a model dir may declare (``wino_gen.format``).
STORED_BITS = (4, 8)

# -- requantization ---------------------------------------------------------------------------

#: Shift of a requant in a model dir (``wino_gen.format``) and from ``golden.quantize_ratio``.
SHIFT_RANGE = (-16, 62)

#: Width of the hardware's signed shift field (``rtl.requant.requant_params_layout``,
#: ``rtl.arith.rq_pipeline``).
SHIFT_BITS = 8

#: Shifts a built accelerator accepts, ``int_range(SHIFT_BITS)`` (the host encoder refuses
#: others). A superset of :data:`SHIFT_RANGE`, as it must be.
HW_SHIFT_RANGE = int_range(SHIFT_BITS)

#: Width of a ``fixed`` requant multiplier in a model dir; equal to the largest ``mult_bits``
#: (:data:`CONFIG_RANGES`).
FIXED_MULT_BITS = 24


def mult_range(requant: str) -> tuple[int, int]:
    """A requant multiplier's range in a model dir: ``pow2`` has mult = 1, ``fixed`` an
    unsigned :data:`FIXED_MULT_BITS`-bit mult."""
    return (1, 1) if requant == "pow2" else (0, (1 << FIXED_MULT_BITS) - 1)


def hw_mult_range(requant: str, mult_bits: int) -> tuple[int, int]:
    """The multipliers a built accelerator takes: ``pow2`` only 1, ``fixed`` an unsigned
    ``mult_bits`` field (``rtl.requant.requant_params_layout``; the host encoder refuses wider
    values)."""
    return (1, 1) if requant == "pow2" else (0, (1 << mult_bits) - 1)


#: Largest per-tap alignment shift ``m_align`` in a model dir; equal to the largest
#: ``max_tap_shift`` (:data:`CONFIG_RANGES`). A built accelerator takes ``0..cfg.tap_shift``.
MAX_ALIGN = 16

#: Residual ``add``: ``a_mult``/``b_mult`` unsigned 16 bits, ``shift`` 0..31 (``wino_gen.format``;
#: ``train.layers.QAdd`` clamps to them).
ADD_MULT_RANGE = (0, (1 << 16) - 1)
ADD_SHIFT_RANGE = (0, 31)

#: ``avgpool``'s ``mult``/``shift`` (``wino_gen.format``).
AVGPOOL_MULT_RANGE = (0, (1 << 16) - 1)
AVGPOOL_SHIFT_RANGE = (0, 31)

# -- shapes -----------------------------------------------------------------------------------

#: Largest direct_conv kernel side and stride (``wino_gen.format``).
MAX_KERNEL = 16


def direct_padding_range(kernel: int) -> tuple[int, int]:
    """direct_conv padding in a model dir: 0..kernel-1, ``kernel`` the smaller side. The direct
    engine takes any: the host pads while building im2col."""
    return 0, kernel - 1


def pool_padding_range(kernel: int) -> tuple[int, int]:
    """maxpool/avgpool padding in a model dir: 0..kernel // 2."""
    return 0, kernel // 2


#: Kernel sides a window generator can be built for (``schedule.window_buffer``'s
#: ``max_kernel``; the layer port's ``k`` field is sized from the build's own).
WINDOW_KERNEL_RANGE = (1, 15)

#: Strides the window generator takes (``schedule.window_geometry``); its row banks are
#: sized for the largest, and the layer port's ``stride`` field holds it
#: (``rtl.window.window_layer_layout``).
WINDOW_STRIDES = (1, 2)


# Winograd padding has three limits. The one users see is WINOGRAD_PADDING (0..1): the format,
# training and export accept nothing else, and a 3x3 stride-1 layer with padding 2 grows its
# image. The host accepts 0..2 (the tile buffer is tested at 2), and the line buffer is sized
# for MAX_PAD = 3 in a 2-bit field. Sizing it for 1 would shrink xb_max and the coordinate
# fields, which changes widths and block RAM depth: a change of its own.

#: Padding of a ``winograd_conv3x3`` layer in a model dir (``wino_gen.format``) and in training
#: (``train.winograd_conv.eligible``).
WINOGRAD_PADDING = (0, 1)

#: Padding the host encoder accepts for the Winograd engine.
HOST_PADDING = (0, 2)

#: Padding the line buffer is sized for: ``2 * MAX_PAD`` columns of margin in
#: ``schedule.line_buffer``'s ``xb_max`` and coordinate width.
MAX_PAD = 3

#: Width of the config port's ``pad`` field (``rtl.tilebuf.shape_layout``).
PAD_FIELD_BITS = 2

# -- exactness of the golden model ------------------------------------------------------------

#: ``wino_gen.golden`` runs channel sums as float64 products, exact below 2**53.
FLOAT_EXACT = 1 << 53
