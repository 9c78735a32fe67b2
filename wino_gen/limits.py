"""The numeric limits of the wino-int8 format, the golden model, the host encoder, the RTL and
training, in one table (pure Python: the core, rtl and train all import it).

Each value equals what the code uses today; the comment beside it names every place that holds
a copy (``file: function or name``; those files are being edited, so no line numbers), so that
the copies can be replaced by this module. Where copies disagree, the disagreement is stated
next to the value: the format is the contract users write against, the hardware may accept
more, never less.
"""

from __future__ import annotations


def int_range(bits: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-wide two's-complement integer.

    Copies: wino_gen/config.py ``int_range`` (the one others import today), re-rolled in
    rtl/selftest.py ``make_layer`` and ``StandInEngine.elaborate``, rtl/host.py ``pack``,
    config.py ``AcceleratorConfig.widths`` (``o_lo, o_hi``), train/winograd_conv.py ``INT32``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


# -- accelerator configuration ----------------------------------------------------------------

#: Inclusive ranges of ``AcceleratorConfig``'s integer fields: wino_gen/config.py ``_RANGES``.
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

#: ``act_bits``/``weight_bits``/``transform_bits`` a model dir may declare:
#: wino_gen/format.py ``_validate_manifest`` (literal ``4 <= m[key] <= 8``).
STORED_BITS = (4, 8)

# -- requantization ---------------------------------------------------------------------------

#: Shift of a requant in a model dir and from ``golden.quantize_ratio``: wino_gen/format.py
#: ``SHIFT_RANGE``; wino_gen/golden.py ``quantize_ratio`` (two literal ``np.clip(shift, -16, 62)``).
SHIFT_RANGE = (-16, 62)

#: Width of the hardware's signed shift field: rtl/arith.py ``SHIFT_BITS`` (used by
#: rtl/requant.py ``requant_params_layout`` and ``rq_pipeline``).
SHIFT_BITS = 8

#: Shifts a built accelerator accepts, ``int_range(SHIFT_BITS)``: rtl/host.py ``_params`` writes
#: them as the literals -128..127. A superset of :data:`SHIFT_RANGE`, as it must be.
HW_SHIFT_RANGE = int_range(SHIFT_BITS)

#: Width of a ``fixed`` requant multiplier in a model dir: wino_gen/format.py ``MULT_MAX`` =
#: ``(1 << 24) - 1``; equal to the largest ``mult_bits`` (:data:`CONFIG_RANGES`).
FIXED_MULT_BITS = 24


def mult_range(requant: str) -> tuple[int, int]:
    """A requant multiplier's range in a model dir: ``pow2`` has mult = 1, ``fixed`` an
    unsigned :data:`FIXED_MULT_BITS`-bit mult. Copy: wino_gen/format.py ``_weight_wants``."""
    return (1, 1) if requant == "pow2" else (0, (1 << FIXED_MULT_BITS) - 1)


def hw_mult_range(requant: str, mult_bits: int) -> tuple[int, int]:
    """The multipliers a built accelerator takes: ``pow2`` only 1 (rtl/host.py ``_params``),
    ``fixed`` an unsigned ``mult_bits`` field (rtl/requant.py ``requant_params_layout``;
    rtl/host.py ``pack`` refuses wider values)."""
    return (1, 1) if requant == "pow2" else (0, (1 << mult_bits) - 1)


#: Largest per-tap alignment shift ``m_align`` in a model dir: wino_gen/format.py ``MAX_ALIGN``;
#: equal to the largest ``max_tap_shift`` (:data:`CONFIG_RANGES`). A built accelerator takes
#: ``0..cfg.tap_shift`` (rtl/host.py ``WinogradLayer.__init__``).
MAX_ALIGN = 16

#: Residual ``add``: ``a_mult``/``b_mult`` unsigned 16 bits, ``shift`` 0..31: wino_gen/format.py
#: ``_layer_wants`` (literals); train/layers.py ``QAdd.forward_int``'s clamps (literals 31, 65535).
ADD_MULT_RANGE = (0, (1 << 16) - 1)
ADD_SHIFT_RANGE = (0, 31)

#: ``avgpool``'s ``mult``/``shift``: wino_gen/format.py ``_layer_wants`` (literals).
AVGPOOL_MULT_RANGE = (0, (1 << 16) - 1)
AVGPOOL_SHIFT_RANGE = (0, 31)

# -- shapes -----------------------------------------------------------------------------------

#: Largest direct_conv kernel side and stride: wino_gen/format.py ``MAX_KERNEL``.
MAX_KERNEL = 16


def direct_padding_range(kernel: int) -> tuple[int, int]:
    """direct_conv padding: 0..kernel-1 (wino_gen/format.py ``_weight_wants``, with ``kernel``
    the smaller side). The direct engine takes any: the host pads while building im2col."""
    return 0, kernel - 1


def pool_padding_range(kernel: int) -> tuple[int, int]:
    """maxpool/avgpool padding: 0..kernel // 2 (wino_gen/format.py ``_pool_shape``)."""
    return 0, kernel // 2


# Winograd padding: three limits today. The one that should hold is WINOGRAD_PADDING (0..1):
# the format, training and export accept nothing else, and a 3x3 stride-1 layer with padding 2
# grows its image. The host accepts 0..2 (the tile buffer is tested at 2), and the line buffer
# is sized for MAX_PAD = 3 in a 2-bit field. Sizing it for 1 would shrink xb_max and the
# coordinate fields (widths and block RAM depth change): a change of its own, not part of a
# refactoring that keeps widths identical.

#: Padding of a ``winograd_conv3x3`` layer in a model dir and in training: wino_gen/format.py
#: ``_weight_wants`` (literal ``p not in (0, 1)``); train/winograd_conv.py
#: ``eligible`` (literal ``in (0, 1)``, and the message of ``WinogradConv2d.from_conv``).
WINOGRAD_PADDING = (0, 1)

#: Padding the host encoder accepts for the Winograd engine: rtl/host.py
#: ``WinogradLayer.__init__`` (``0 <= padding <= min(MAX_PAD, 2)``).
HOST_PADDING = (0, 2)

#: Padding the line buffer is sized for (``2 * MAX_PAD`` columns of margin in ``xb_max`` and
#: the coordinate width): rtl/tilebuf.py ``MAX_PAD`` and ``geometry``; wino_gen/perf.py
#: ``memories`` writes the margin as the literal 6.
MAX_PAD = 3

#: Width of the config port's ``pad`` field: rtl/tilebuf.py ``shape_layout`` (``unsigned(2)``).
PAD_FIELD_BITS = 2

# -- exactness of the golden model ------------------------------------------------------------

#: Channel sums run as float64 products, exact below 2**53: wino_gen/golden.py ``_EXACT``.
FLOAT_EXACT = 1 << 53
