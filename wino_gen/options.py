"""The structural options of one build: choices that change the netlist but not what it
computes (words, cycles). They are constructor arguments of the tops (``rtl.top.build_top``),
passed down to the blocks they concern, and written beside the config of an artifact
(``options.json`` in a build folder), so that the config and the options together say how it
was made. Pure Python: no amaranth.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class BuildOptions:
    """``skid``: a skid buffer behind the line buffer ends the stall chain there (the speed of
    the ECP5 builds; the iCE40 at 12 MHz saves its cells). ``ice40_mac16``: the PE array's
    products two per iCE40 SB_MAC16 (``rtl.mac16``). ``blackbox_ram``: every RAM an instance of
    ``rtl.ram.MODULE`` (the Verilog export) instead of an Amaranth memory (simulation, RTLIL,
    board builds)."""

    skid: bool = True
    ice40_mac16: bool = False
    blackbox_ram: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if type(v) is not bool:
                raise UsageError(f"build option {f.name}: expected true or false, got {v!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> BuildOptions:
        """The options a ``to_dict`` wrote; unknown keys are refused, missing ones default."""
        if not isinstance(d, dict):
            raise UsageError(f"build options: expected an object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"build options: unknown {', '.join(unknown)}")
        return cls(**d)
