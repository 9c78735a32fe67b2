"""The boards the build flow knows: their amaranth-boards platform, device resources, clock and
the LEDs/UART the self-test uses.

Resource counts are the device's (Lattice data sheets, and the ``available`` numbers that
nextpnr's ``--report`` prints for the same device); the fit check uses them before a build starts,
and ``report.json`` takes the ``available`` numbers from nextpnr itself after one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError


@dataclass(frozen=True)
class Board:
    name: str
    family: str              # "ecp5" | "ice40"
    device: str
    platform: str            # "module:Class" in amaranth_boards
    clock: str               # clock resource name
    clock_mhz: float         # board oscillator the bitstream runs at
    lut: int                 # LUT4s (ECP5: TRELLIS_COMB; iCE40: ICESTORM_LC)
    ff: int
    dsp: int                 # ECP5: MULT18X18D; iCE40: SB_MAC16
    bram: int                # ECP5: DP16KD (18 kbit); iCE40: SB_RAM40_4K (4 kbit)
    bram_bits: int           # bits per block RAM
    leds: tuple[str, ...]    # (resource name, number) pairs flattened as "name:n"
    uart: bool
    # nextpnr --report utilization keys for each resource
    report_keys: dict = field(default_factory=dict)
    # yosys synth options that map multipliers to DSP blocks (and those that avoid them)
    dsp_synth_opts: str = ""
    nodsp_synth_opts: str = ""
    default_target_mhz: float = 0.0
    # config fields used when neither flags nor --config give them: buffer limits (a small
    # board cannot hold the generator's default 512-channel double-buffered weight store) and,
    # on the iCEBreaker, 16-bit biases (the bias path and the y requant's shifter are the
    # widest logic after the multipliers); the CLI and report.json name the ones applied
    defaults: dict = field(default_factory=dict)
    # memory the planner uses (wino_gen.memory holds the parts' timings): the external RAM part
    # (activations and weights; "" when the board has none), the part weights are read from,
    # and the single-port RAM on chip besides the block RAMs (the UP5K's 4 x 256 kbit SPRAM)
    external_ram: str = ""
    weight_store: str = ""
    spram_bytes: int = 0

    def available(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram": self.bram}


BOARDS = {
    "ulx3s-85f": Board(
        name="ulx3s-85f", family="ecp5", device="LFE5U-85F-6BG381C",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", clock="clk25", clock_mhz=25.0,
        lut=83640, ff=83640, dsp=156, bram=208, bram_bits=18432,
        leds=tuple(f"led:{i}" for i in range(8)), uart=True,
        report_keys={"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "bram": "DP16KD"},
        dsp_synth_opts="", nodsp_synth_opts="-nodsp", default_target_mhz=125.0,
        defaults={"max_channels": 128, "max_width": 64},
        external_ram="IS42S16160G-7", weight_store="IS42S16160G-7",
    ),
    "icebreaker": Board(
        name="icebreaker", family="ice40", device="iCE40UP5K-SG48",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", clock="clk12", clock_mhz=12.0,
        lut=5280, ff=5280, dsp=8, bram=30, bram_bits=4096,
        leds=("led_g:0", "led_r:0"), uart=True,
        report_keys={"lut": "ICESTORM_LC", "ff": "ICESTORM_LC", "dsp": "ICESTORM_DSP",
                     "bram": "ICESTORM_RAM"},
        dsp_synth_opts="-dsp", nodsp_synth_opts="", default_target_mhz=24.0,
        defaults={"max_channels": 16, "max_width": 16, "bias_bits": 16},
        weight_store="W25Q128JV", spram_bytes=4 * 32768,
    ),
}


def misfit(est: dict, board: Board) -> list[str]:
    """The resources of ``est`` (an estimate: lut/ff/dsp/bram) that exceed ``board``, named with
    the numbers, worst first; empty when it fits."""
    avail = board.available()
    over = []
    for key in ("dsp", "lut", "bram", "ff"):
        need = int(est.get(key, 0))
        if need > avail[key]:
            over.append((need / avail[key], f"{key.upper()}: needs ~{need}, the {board.device} has {avail[key]}"))
    return [s for _, s in sorted(over, reverse=True)]


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise UsageError(f"--board: unknown board {name!r}; known: {', '.join(BOARDS)}") from None
