"""The amaranth-boards platform of a :class:`~wino_gen.boards.Board`: the one place the board
data (pure, in the core) meets amaranth's build system."""

from __future__ import annotations

import copy
import importlib

from ..boards import Board


def make_platform(board: Board, target_mhz: float | None = None):
    """An instance of the amaranth-boards platform; with ``target_mhz`` the board clock is
    constrained to that frequency for timing-driven place and route (a design clocked by the
    oscillator still runs at its frequency: this only asks nextpnr to aim higher so that Fmax
    is measured). A design clocked by a PLL (``rtl.pll``) takes the platform as it is, with the
    oscillator at its own frequency, and constrains the PLL's output itself."""
    module, cls_name = board.platform.split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    if target_mhz is not None:
        from amaranth.build import Clock
        resources = []
        for r in cls.resources:
            if r.name == board.clock and r.number == 0:
                r = copy.copy(r)
                r.clock = Clock(target_mhz * 1e6)
            resources.append(r)
        cls = type(cls.__name__, (cls,), {"resources": resources})
    return cls()
