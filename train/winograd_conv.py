"""``WinogradConv2d``: a drop-in for a 3x3 stride-1 ``nn.Conv2d`` that computes F(m x m, 3 x 3)
with the integer hardware matrices of ``wino_gen.winograd.integer_forms`` and fake-quantizes
every step of the integer data path: x, ``V = rq(Bᵀ d B)``, U, ``M = rq(Σ_c U ⊙ V)``,
``y = rq(Aᵀ M A + bias)`` (docs/format.md, "Arithmetic").

Two forward paths:

* :meth:`WinogradConv2d.forward_real` — real-valued Winograd; ``steps`` picks which steps are
  fake-quantized (``x``, ``V``, ``U``, ``M``, ``y``; empty = FP32 Winograd, equal to
  ``nn.Conv2d`` to ~1e-6). Used for calibration (observers see the real intermediates) and the
  one-step-at-a-time ablation.
* :meth:`WinogradConv2d.forward_int` — the integer data path on integer-valued tensors with the
  hardware's exact requant ratios; in float64 (evaluation) it is bit-exact with
  ``wino_gen.golden.winograd_conv3x3`` on the integers :meth:`integer_params` returns.

Two weight forms (``weights``): ``winograd`` quantizes ``U = G g Gᵀ / s_U`` directly (the
accelerator reads pre-transformed U); ``spatial`` quantizes the 3x3 kernel first,
``W = round_sat(g / s_W)``, and takes ``U = rq(G' W G'ᵀ)`` by the weight-transform unit's
requant (``golden.transform_weights`` with the ratio ``golden.weight_ratio``), so the model dir
can store the int8 kernels, 1.8x (F2) to 7.1x (F6) fewer bytes than U.

Tensor layout inside: Winograd-domain tensors are ``[S, C or K, N*L]`` (``S = n*n`` taps,
``L`` tiles per image), so the channel sum is one batched matmul over the taps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wino_gen import golden, limits, schedule, winograd

from .quant import Observer, Scale, exact_ratio, fq, fq_real, round_ste, ste_grads

STEPS = ("x", "V", "U", "M", "y")
WEIGHTS = ("winograd", "spatial")
INT32 = limits.int_range(32)


class _Tiles(torch.autograd.Function):
    """Overlapping n x n tiles with stride m, taps first: ``[S, C*N*th*tw]``, gathered with one
    strided copy per tile row and column (a 6-d permute copy is several times slower on CPU).
    The backward adds the tile gradients back with one ``F.fold`` (autograd's unfold backward
    is slow on CPU)."""

    @staticmethod
    def forward(ctx, xp, n, m):
        N, C, Hp, Wp = xp.shape
        th, tw = (Hp - n) // m + 1, (Wp - n) // m + 1
        ctx.geom = (N, C, Hp, Wp, th, tw, n, m)
        rows = xp.new_empty((n, C, N, th, Wp))                        # tile rows, then columns
        for i in range(n):
            rows[i].copy_(xp.transpose(0, 1)[:, :, i:i + (th - 1) * m + 1:m])
        d = xp.new_empty((n, n, C, N, th, tw))
        for j in range(n):
            d[:, j].copy_(rows[..., j:j + (tw - 1) * m + 1:m])
        return d.view(n * n, C * N * th * tw)

    @staticmethod
    def backward(ctx, g):
        return _untile(g, ctx.geom), None, None


class _OutputTiles(torch.autograd.Function):
    """The inverse layout of the output transform: ``[m*m, K*N*th*tw]`` m x m tiles to
    ``[N, K, th*m, tw*m]`` with one strided copy per tile position; the backward gathers back."""

    @staticmethod
    def forward(ctx, Y, m, K, N, th, tw):
        ctx.geom = (m, K, N, th, tw)
        Yv = Y.view(m, m, K, N, th, tw)
        out = Y.new_empty((K, N, th * m, tw * m))
        for i in range(m):
            for j in range(m):
                out[:, :, i::m, j::m].copy_(Yv[i, j])
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, g):
        m, K, N, th, tw = ctx.geom
        gY = g.reshape(N, K, th, m, tw, m).permute(3, 5, 1, 0, 2, 4).reshape(m * m, K * N * th * tw)
        return gY, None, None, None, None, None


def _untile(g: torch.Tensor, geom) -> torch.Tensor:
    """The adjoint of the tiling: tile gradients ``[S, C*N*th*tw]`` summed back into the padded
    input with one ``F.fold``."""
    N, C, Hp, Wp, th, tw, n, m = geom
    cols = g.reshape(n * n, C, N, th * tw).permute(2, 1, 0, 3).reshape(N, C * n * n, th * tw)
    return F.fold(cols, (Hp, Wp), n, stride=m)


class _WinogradCore(torch.autograd.Function):
    """``P = U @ round_sat(V * r_V)`` with ``V`` the input transform of ``x``: the layer's input
    quantizer and channel sum in one autograd node. It keeps only ``x`` (in a network usually
    kept by the layer before it already), ``U`` and ``r_V``, and recomputes ``V`` in the
    backward: the largest tensors of the layer, ``(n/m)²`` times its input, are never kept
    (the price: one more tile gather and transform per step)."""

    @staticmethod
    def _scaled(layer, x, r):
        """``t = V * r_V``, the quantizer's input: computed in the forward, recomputed (the same
        ops on the same values) in the backward."""
        return layer.input_transform(x).mul_(r)

    @staticmethod
    def forward(ctx, x, r_V, U, layer, bits):
        t = _WinogradCore._scaled(layer, x, layer._tapshape(r_V))
        ctx.layer, ctx.bits = layer, bits
        ctx.save_for_backward(x, r_V, U)
        return torch.bmm(U, golden.round_sat(t, bits, inplace=True))

    @staticmethod
    def backward(ctx, g):
        x, r_V, U = ctx.saved_tensors
        layer, bits = ctx.layer, ctx.bits
        r = layer._tapshape(r_V)
        t = _WinogradCore._scaled(layer, x, r)
        gU = torch.bmm(g, golden.round_sat(t.clone(), bits, inplace=True).transpose(1, 2)) \
            if ctx.needs_input_grad[2] else None
        gV, gr = ste_grads(torch.bmm(U.transpose(1, 2), g), t, r, bits,
                           ctx.needs_input_grad[0], ctx.needs_input_grad[1], overwrite=True)
        del t
        gx = layer.input_transform_adjoint(gV, x.shape) if gV is not None else None
        return gx, (gr.reshape(r_V.shape) if gr is not None else None), gU, None, None


def _kron_apply(mat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(mat ⊗ mat) @ t`` for ``t = [k*k, X]``: the 2-d transform of every tile. From 6 x 6
    tiles on as two thin GEMMs (a third of the multiplies of the Kronecker GEMM at n = 6)."""
    o, k = mat.shape
    X = t.shape[-1]
    if k <= 4:
        return torch.kron(mat, mat) @ t
    t1 = (mat @ t.reshape(k, k * X)).view(o, k, X)
    return torch.matmul(mat, t1).view(o * o, X)


class QLayer(nn.Module):
    """Common state of the quantizable layers: the mode is set by the network."""

    op = ""

    def __init__(self):
        super().__init__()
        self.steps: set[str] = set()       # real-path steps to fake-quantize (ablation)
        self.observers: dict[str, Observer] | None = None
        self.last: dict | None = None      # integer parameters of the last eval forward

    def _observe(self, key: str, t: torch.Tensor, per_tap: int = 0) -> None:
        if self.observers is not None:
            self.observers.setdefault(key, Observer(per_tap)).update(t)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """The tail of every real-path forward: ReLU, observe y, fake-quantize y when asked
        (layers that use it have ``relu``, ``s_y`` and ``act_bits``)."""
        if self.relu:
            y = F.relu(y)
        self._observe("y", y)
        return fq_real(y, self.s_y(), self.act_bits) if "y" in self.steps else y


class WinogradConv2d(QLayer):
    op = "winograd_conv3x3"

    def __init__(self, in_channels: int, out_channels: int, tile: int = 4, padding: int = 1,
                 bias: bool = True, relu: bool = False, granularity: str = "layer",
                 requant: str = "pow2", act_bits: int = 8, weight_bits: int = 8,
                 transform_bits: int = 8, max_tap_shift: int = 8, balance: str = "none",
                 weights: str = "winograd"):
        super().__init__()
        if tile not in winograd.POINTS:
            raise ValueError(f"tile {tile}: allowed {sorted(winograd.POINTS)}")
        if granularity not in ("layer", "tap"):
            raise ValueError(f"granularity {granularity!r}: allowed layer, tap")
        if weights not in WEIGHTS:
            raise ValueError(f"weights {weights!r}: allowed {', '.join(WEIGHTS)}")
        self.weights = weights
        self.in_channels, self.out_channels = in_channels, out_channels
        self.tile, self.n, self.padding, self.relu = tile, tile + 2, padding, relu
        self.kernel_size, self.stride = (3, 3), (1, 1)
        self.granularity, self.requant, self.balance = granularity, requant, balance
        self.act_bits, self.weight_bits, self.transform_bits = act_bits, weight_bits, transform_bits
        self.max_tap_shift = max_tap_shift
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        forms = winograd.integer_forms(tile, balance)
        AT = forms.AT.astype(np.float64)
        BT = forms.BT.astype(np.float64)
        self.register_buffer("BT", torch.tensor(BT, dtype=torch.float32), persistent=False)
        self.register_buffer("AT", torch.tensor(AT, dtype=torch.float32), persistent=False)
        self.register_buffer("G", torch.tensor(winograd.to_float(forms.G), dtype=torch.float32),
                             persistent=False)
        tap = (self.n, self.n) if granularity == "tap" else ()
        p2 = requant == "pow2"
        self.s_x = Scale((), p2)          # own input scale (drop-in use and ablation only)
        self.s_V = Scale(tap, p2 or bool(tap))
        self.s_U = Scale(tap, p2 or bool(tap))
        self.s_M = Scale(tap, p2 or bool(tap))
        self.s_y = Scale((), p2)
        if weights == "spatial":
            Gp, d = golden.spatial_forms(tile, balance)
            self.register_buffer("Gp", torch.tensor(Gp, dtype=torch.float32), persistent=False)
            self.register_buffer("dd", torch.tensor(np.outer(d, d), dtype=torch.float64), persistent=False)
            self.s_W = Scale((), p2 or bool(tap))   # the int8 kernels' per-layer scale (see u_requant)
        self.quant = False                # drop-in use: integer path on/off

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **kw) -> WinogradConv2d:
        if not eligible(conv):
            lo, hi = limits.WINOGRAD_PADDING
            raise ValueError(f"only 3x3 stride-1 dilation-1 groups-1 convolutions with padding {lo}..{hi}")
        bias = kw.pop("bias", False) or conv.bias is not None
        m = cls(conv.in_channels, conv.out_channels, padding=conv.padding[0], bias=bias, **kw)
        with torch.no_grad():
            m.weight.copy_(conv.weight)
            if conv.bias is not None:
                m.bias.copy_(conv.bias)
        return m

    # -- Winograd building blocks --------------------------------------------------------
    def _geometry(self, H: int, W: int):
        return schedule.tile_grid(H, W, self.tile, self.padding)

    def input_transform(self, x: torch.Tensor) -> torch.Tensor:
        """``Bᵀ d B`` of every tile: ``[S, C, N*L]``."""
        N, C, H, W = x.shape
        Ho, Wo, th, tw = self._geometry(H, W)
        p, m, n = self.padding, self.tile, self.n
        xp = F.pad(x, (p, tw * m + 2 - W - p, p, th * m + 2 - H - p))
        d = _Tiles.apply(xp, n, m)                                    # [S, C*N*L]
        return _kron_apply(self.BT.to(x.dtype), d).view(n * n, C, N * th * tw)

    def input_transform_adjoint(self, gV: torch.Tensor, shape) -> torch.Tensor:
        """The gradient of :meth:`input_transform` (``[S, C, N*L]`` back to ``shape``)."""
        N, C, H, W = shape
        Ho, Wo, th, tw = self._geometry(H, W)
        p, m, n = self.padding, self.tile, self.n
        gd = _kron_apply(self.BT.to(gV.dtype).T, gV.reshape(n * n, -1))
        gxp = _untile(gd, (N, C, th * m + 2, tw * m + 2, th, tw, n, m))
        return gxp[:, :, p:p + H, p:p + W]

    def output_transform(self, M: torch.Tensor, N: int, H: int, W: int) -> torch.Tensor:
        """``Aᵀ M A`` of ``M[S, K, N*L]``, untiled: ``[N, K, Ho, Wo]``."""
        Ho, Wo, th, tw = self._geometry(H, W)
        m, K = self.tile, M.shape[1]
        Y = _OutputTiles.apply(_kron_apply(self.AT.to(M.dtype), M.reshape(M.shape[0], -1)), m, K, N, th, tw)
        return Y[:, :, :Ho, :Wo]

    def weight_transform(self, dtype=None) -> torch.Tensor:
        """``G g Gᵀ`` as ``[S, K, C]``."""
        G = self.G.to(dtype or self.weight.dtype)
        U = torch.einsum("ik,ockl,jl->ijoc", G, self.weight.to(G.dtype), G)
        return U.reshape(self.n * self.n, self.out_channels, self.in_channels)

    def _tapshape(self, s: torch.Tensor) -> torch.Tensor:
        return s.reshape(-1, 1, 1) if s.dim() else s

    def m_scales(self):
        """(s_M0, per-tap s_M = s_M0 * 2**align, align ints) — tap scales are power-of-two
        multiples of the smallest one so the output transform adds them in one scale."""
        if self.granularity == "layer":
            s = self.s_M()
            return s, s, torch.zeros((self.n, self.n), device=s.device)
        l = self.s_M.log2
        # the smallest scale, raised when the spread exceeds max_tap_shift: then the small
        # taps lose resolution instead of the large ones saturating
        l0 = round_ste(torch.maximum(l.min(), l.max() - self.max_tap_shift))
        k = round_ste(l - l0).clamp(0, self.max_tap_shift)
        return torch.exp2(l0), torch.exp2(l0 + k), k.detach()

    # -- forward paths ------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop-in use: float in, float out (integer path inside when ``quant`` is on)."""
        if not self.quant:
            return self.forward_real(x)
        s_x = self.s_x()
        dt = x.dtype if self.training else torch.float64
        y, s_y = self.forward_int(fq(x.to(dt), 1.0 / s_x.to(dt), self.act_bits), s_x)
        return (y * s_y.to(y.dtype)).to(x.dtype)

    def forward_real(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued path, computed in float64 (F6 in float32 is only good to ~1e-5)."""
        in_dtype = x.dtype
        x = x.double()
        q = self.steps
        self._observe("x", x)
        if "x" in q:
            x = fq_real(x, self.s_x(), self.act_bits)
        N, _, H, W = x.shape
        S = self.n * self.n
        tap = S        # per-tap pools in both granularities (layer scales weigh the taps)
        V = self.input_transform(x)
        self._observe("V", V, tap)
        if "V" in q:
            V = fq_real(V, self._tapshape(self.s_V()), self.transform_bits)
        if "U" in q and self.weights == "spatial":
            Ui, s_U, _ = self.quantized_weights(exact=False)
            U = Ui.double() * self._tapshape(s_U.double())
        else:
            U = self.weight_transform(torch.float64)
            if "U" in q:
                U = fq_real(U, self._tapshape(self.s_U()), self.weight_bits)
        P = torch.bmm(U.to(V.dtype), V)
        self._observe("M", P, tap)
        if "M" in q:
            P = fq_real(P, self._tapshape(self.m_scales()[1]), self.transform_bits)
        Y = self.output_transform(P, N, H, W)
        if self.bias is not None:
            Y = Y + self.bias.to(Y.dtype)[None, :, None, None]
        return self._output(Y).to(in_dtype)

    def quantized_weights(self, exact: bool):
        """``(U[S, K, C]`` as integers, its scale, the parameters the export writes for it):
        in evaluation computed by ``golden`` (float64, the same numbers the export writes), in
        training by the straight-through fake quantizer."""
        if self.weights == "spatial":
            return self.spatial_weights(exact)
        s_U = self.s_U()
        if exact:
            g = self.weight.detach().double().cpu().numpy()
            s = s_U.detach().double().cpu().numpy()
            Ui = golden.quantize_weights_winograd(g, self.tile, s, self.weight_bits, self.balance)
            U = torch.from_numpy(Ui.astype(np.float64)).to(s_U.device).reshape(self.out_channels, self.in_channels, -1)
            return U.permute(2, 0, 1).contiguous(), s_U, {}
        Ur = self.weight_transform()
        return fq(Ur, 1.0 / self._tapshape(s_U), self.weight_bits), s_U, {}

    def u_requant(self):
        """The weight-transform requant: (its exact hardware ratio ``[n, n]`` as a tensor,
        straight-through to ``s_W / (s_U d dᵀ)``; the ``golden.Requant``). The ratio is
        ``golden.weight_ratio``, rounded to a shift (the cheap unit) except with one ``fixed``
        M requant for all taps, which cannot absorb the odd factors of ``d dᵀ``: then ``u_mult``
        carries them."""
        s_W, s_U = self.s_W().double(), self.s_U().double()
        ratio = golden.weight_ratio(float(s_W.detach()), s_U.detach().cpu().numpy(), self.tile, self.balance)
        shift_only = (self.granularity, self.requant) != ("layer", "fixed")
        req = golden.quantize_ratio(ratio, "pow2" if shift_only else "fixed")
        exact = torch.as_tensor(golden.ratio_of(req), dtype=torch.float64, device=s_U.device)
        real = s_W / (s_U * self.dd)
        return real + (exact - real).detach(), req

    def spatial_weights(self, exact: bool):
        """Spatial int8 kernels ``W = round_sat(g / s_W)``, then ``U = rq(G' W G'ᵀ, u)``
        (``golden.transform_weights``) as ``U[S, K, C]``; the U scale the rest of the layer
        uses; the export's ``W``, ``u_mult``, ``u_shift``. The U scale is ``s_U`` with layer
        scales (one M requant for all taps: where ``u`` rounds its ratio, at F4/F6 in ``pow2``
        mode, that tap's U carries the gain error, as the hardware's does); with tap scales the
        one ``u`` realizes, ``s_W / (r_u d dᵀ)`` (``golden.pow2_tap_scales`` in ``pow2`` mode),
        so the M requant absorbs the odd factors of ``d dᵀ`` instead."""
        r, req = self.u_requant()
        s_W = self.s_W()
        s_U = self.s_U() if self.granularity == "layer" else s_W.double() / (r * self.dd)
        K, C, S, bits = self.out_channels, self.in_channels, self.n * self.n, self.weight_bits
        if exact:
            g = self.weight.detach().double().cpu().numpy()
            Wi = golden.fake_rq(g, 1.0 / float(s_W.detach()), bits).astype(np.int64)
            Ui = golden.transform_weights(Wi, req, self.tile, bits)
            U = torch.from_numpy(Ui.astype(np.float64)).to(s_W.device).reshape(K, C, S).permute(2, 0, 1).contiguous()
            n = self.n
            return U, s_U, {"W": Wi.astype(np.int8), "u_mult": np.asarray(req.mult, dtype=np.int32).reshape(n, n),
                            "u_shift": np.asarray(req.shift, dtype=np.int32).reshape(n, n)}
        Wq = fq(self.weight, 1.0 / s_W.to(self.weight.dtype), bits)
        G = self.Gp.to(Wq.dtype)
        T = torch.einsum("ik,ockl,jl->ijoc", G, Wq, G).reshape(S, K, C)
        return fq(T, r.to(T.dtype).reshape(-1, 1, 1), bits), s_U, {}

    def forward_int(self, x: torch.Tensor, s_x: torch.Tensor):
        """Integer data path: ``x`` integer-valued ``[N, C, H, W]`` in scale ``s_x``; returns
        (integer-valued y, s_y)."""
        exact = not self.training
        dt = x.dtype
        N, _, H, W = x.shape
        mode = self.requant
        s_V = self.s_V()
        r_V, req_V = exact_ratio(s_x.to(dt) / s_V.to(dt), mode)
        U, s_U, extra = self.quantized_weights(exact)
        P = _WinogradCore.apply(x, r_V, U.to(dt), self, self.transform_bits)
        s_M0, s_Mt, align = self.m_scales()
        r_M, req_M = exact_ratio(s_U.to(dt) * s_V.to(dt) / s_Mt.to(dt), mode)
        M = fq(P, self._tapshape(r_M), self.transform_bits)
        if self.granularity == "tap":
            M = M * torch.exp2(align).to(dt).reshape(-1, 1, 1)
        Y = self.output_transform(M, N, H, W)
        if self.bias is not None:
            b = round_ste(self.bias.to(dt) / s_M0.to(dt)).clamp(*INT32)
            Y = Y + b[None, :, None, None]
        else:
            b = torch.zeros(self.out_channels, dtype=dt, device=x.device)
        s_y = self.s_y()
        r_y, req_y = exact_ratio(s_M0.to(dt) / s_y.to(dt), mode)
        y = fq(Y, r_y, self.act_bits)
        if self.relu:
            y = F.relu(y)
        if exact:
            n = self.n
            full = lambda a: np.broadcast_to(np.asarray(a, dtype=np.int64), (n, n)).astype(np.int32)  # noqa: E731
            self.last = {
                "U": U.permute(1, 2, 0).reshape(self.out_channels, self.in_channels, n, n)
                      .cpu().numpy().astype(np.int8),
                "bias": b.detach().cpu().numpy().astype(np.int32),
                "v_mult": full(req_V.mult), "v_shift": full(req_V.shift),
                "m_mult": full(req_M.mult), "m_shift": full(req_M.shift),
                "m_align": full(align.cpu().numpy().astype(np.int64)),
                "y_mult": np.int32(req_y.mult), "y_shift": np.int32(req_y.shift),
                "scale_out": float(s_y.detach()),
                **extra,
            }
        return y, s_y

    # -- calibration ----------------------------------------------------------------------
    def tap_gain(self) -> np.ndarray:
        """Squared gain of an error at each Winograd tap to the layer output:
        ``|A[:, i]|² |A[:, j]|²`` (flattened, ``[S]``)."""
        a = (winograd.integer_forms(self.tile, self.balance).AT.astype(np.float64) ** 2).sum(0)
        return np.outer(a, a).reshape(-1)

    @torch.no_grad()
    def apply_calibration(self, method: str = "omse") -> None:
        """Scales from the observers. ``omse`` (default): per-tap scales by MSE; a layer scale
        by the MSE of each tap weighted by its gain to the output (V errors also by the
        weights' energy at the tap, U errors by the inputs' energy), so the taps the output
        transform amplifies are not rounded away. ``mse``: plain MSE; ``max``: no clipping."""
        obs = self.observers
        p2 = self.requant == "pow2"
        tap = self.granularity == "tap"
        base = "mse" if method == "omse" else method
        for key, scale in (("x", self.s_x), ("y", self.s_y)):
            if key in obs:
                scale.set(obs[key].scale(self.act_bits, base, p2))
        S = self.n * self.n
        Ur = self.weight_transform(torch.float64)                       # [S, K, C]
        wo = Observer(S, keep=1 << 16)
        wo.update(Ur)
        gain = self.tap_gain() if method == "omse" else np.ones(S)
        u_energy = (Ur ** 2).sum(2).mean(1).numpy()                       # [S]
        v_energy = obs["V"].second_moment() * self.in_channels if "V" in obs else np.ones(S)
        if "V" in obs:
            self.s_V.set(obs["V"].scale(self.transform_bits, base, p2 or tap, shared=not tap,
                                        tap_weights=gain * u_energy))
        if "M" in obs:
            self.s_M.set(obs["M"].scale(self.transform_bits, base, p2 or tap, shared=not tap,
                                        tap_weights=gain))
        self.s_U.set(wo.scale(self.weight_bits, base, p2 or tap, shared=not tap, tap_weights=gain * v_energy))
        if self.weights == "spatial":
            wg = Observer(keep=1 << 16)
            wg.update(self.weight)
            self.s_W.set(wg.scale(self.weight_bits, base, p2 or tap))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, tile={self.tile}, padding={self.padding}, "
                f"relu={self.relu}, granularity={self.granularity}, balance={self.balance}, requant={self.requant}"
                + (f", weights={self.weights}" if self.weights != "winograd" else ""))


def eligible(conv: nn.Module) -> bool:
    """Can ``WinogradConv2d`` take this convolution?"""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and conv.padding[0] == conv.padding[1]
            and limits.WINOGRAD_PADDING[0] <= conv.padding[0] <= limits.WINOGRAD_PADDING[1])
