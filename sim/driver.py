"""Run one layer on a simulation backend: the host streams of :mod:`rtl.host` in, the output
image and cycle count out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtl.host import DirectLayer, DoesNotFit, WinogradLayer

from .backend import PysimBackend

__all__ = ["DirectLayer", "DoesNotFit", "LayerRun", "WinogradLayer", "run_layer"]


@dataclass
class LayerRun:
    y: np.ndarray       # [N, K, Ho, Wo]
    cycles: int         # all samples together
    steps: int          # PE-array steps (useful cycles)


def run_layer(spec, x, backend=None) -> LayerRun:
    """Run ``spec`` (a :class:`WinogradLayer` / :class:`DirectLayer`) on every sample of
    ``x[N, C, H, W]``; one accelerator run per sample."""
    backend = backend or PysimBackend()
    x = np.asarray(x, dtype=np.int64)
    N, C, H, W = x.shape
    if C != spec.C:
        raise DoesNotFit(f"input has {C} channels, weights {spec.C}")
    ys, cycles = [], 0
    wb = spec.w_beats(H, W)
    for i in range(N):
        beats, c = backend.run(spec.top(), spec.word(H, W),
                               {"x": spec.x_beats(x[i]), "w": wb}, spec.n_out(H, W))
        ys.append(spec.collect(beats, H, W))
        cycles += c
    return LayerRun(np.stack(ys), cycles, spec.steps(H, W) * N)
