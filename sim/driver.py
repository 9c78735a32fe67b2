"""Run one layer on a simulation backend: the host-side streams of :mod:`wino_gen.flow.host` into
an accelerator top of :mod:`rtl.top`, the output image and cycle count out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth.lib import wiring

from rtl.top import build_top
from wino_gen.flow.host import DirectLayer, DoesNotFit, WinogradLayer

from .backend import PysimBackend

__all__ = ["DirectLayer", "DoesNotFit", "LayerRun", "WinogradLayer", "run_layer"]


@dataclass
class LayerRun:
    y: np.ndarray       # [N, K, Ho, Wo]
    cycles: int         # all samples together
    steps: int          # PE-array steps (useful cycles)


def run_layer(spec, x, backend=None, *, top: Callable[[], wiring.Component] | None = None) -> LayerRun:
    """Run ``spec`` (a :class:`WinogradLayer` / :class:`DirectLayer`) on every sample of
    ``x[N, C, H, W]``; one accelerator run per sample, each on a fresh top from ``top``
    (default: :func:`rtl.top.build_top` of the spec's config)."""
    backend = backend or PysimBackend()
    top = top or (lambda: build_top(spec.cfg))
    x = np.asarray(x, dtype=np.int64)
    N, C, H, W = x.shape
    if C != spec.C:
        raise DoesNotFit(f"input has {C} channels, weights {spec.C}")
    g = spec.geometry(H, W)
    ys, cycles = [], 0
    wb = spec.w_beats(H, W)
    for i in range(N):
        beats, c = backend.run(top(), spec.word(H, W), {"x": spec.x_beats(x[i]), "w": wb}, g.n_out)
        ys.append(spec.collect(beats, H, W))
        cycles += c
    return LayerRun(np.stack(ys), cycles, g.steps * N)
