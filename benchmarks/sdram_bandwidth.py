"""Sustained bandwidth of the SDRAM controller (rtl.mem.sdram) on the behavioural IS42S16160G
(sim.sdram_chip) in pysim, against the planner's model (wino_gen.memory.IS42S16160G_7.transfer_cycles).
Writes benchmarks/results/sdram_bandwidth.json and prints a markdown table.

    python benchmarks/sdram_bandwidth.py

Each case is one transfer from word 0 with no stalls: cycles from the cycle after the first
command is accepted to the cycle after its last word moved. Cases: long sequential bursts
(512 words, one page each), sequential 64-byte bursts (back to back, so row hits after the
first), and 64-byte bursts at a 4 KiB stride (every burst a row miss in the same bank), reads
and writes, at 25, 50 and 100 MHz. The chip's violation list must stay empty.
"""

import json
import time
from pathlib import Path

from sim.sdram_chip import run_bursts
from wino_gen import memory as wm

OUT = Path(__file__).parent / "results" / "sdram_bandwidth.json"
PART = wm.IS42S16160G_7
POWER_UP_US = 1.0           # not part of any measurement: the transfer starts after the power-up
CLOCKS = (25.0, 50.0, 100.0)
# name -> (burst words, stride words, total words)
CASES = {
    "sequential_1KiB_bursts": (512, 512, 8192),
    "sequential_64B_bursts": (32, 32, 4096),
    "strided_64B_bursts_4KiB_stride": (32, 2048, 2048),
}


def measure(clock_mhz: float, burst: int, stride: int, words: int, write: bool) -> dict:
    bursts = [dict(addr=i * stride, length=burst, write=write,
                   words=[dict(data=(i + k) & 0xFFFF, strb=3) for k in range(burst)] if write else [])
              for i in range(words // burst)]
    run = run_bursts(bursts, clock_mhz=clock_mhz, power_up_us=POWER_UP_US)
    if run.chip.violations:
        raise SystemExit(f"chip model violations: {run.chip.violations[:3]}")
    cycles = run.end - run.start
    plan = PART.transfer_cycles(words * PART.word_bytes, burst * PART.word_bytes, clock_mhz, write)
    return {
        "clock_mhz": clock_mhz, "write": write, "burst_bytes": burst * PART.word_bytes,
        "stride_bytes": stride * PART.word_bytes, "bytes": words * PART.word_bytes, "cycles": cycles,
        "words_per_cycle": round(words / cycles, 4),
        "pct_of_peak": round(100 * words / cycles, 2),
        "planner_cycles": plan,
        "measured_over_planner": round(cycles / plan, 4),
        "refreshes": run.chip.commands["REF"] - 2,
        "activates": run.chip.commands["ACT"],
    }


def main():
    t0 = time.time()
    rows = {}
    for clock in CLOCKS:
        for name, (burst, stride, words) in CASES.items():
            for write in (False, True):
                rows[f"{name}_{'write' if write else 'read'}_{clock:g}MHz"] = measure(clock, burst, stride, words,
                                                                                       write)
    OUT.write_text(json.dumps({"part": PART.part, "peak_bytes_per_cycle": PART.peak_bytes_per_cycle,
                               "seconds": round(time.time() - t0, 1), "cases": rows}, indent=1) + "\n")
    print("| case | MHz | dir | cycles | words/cycle | % peak | planner | measured/planner |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name.rsplit('_', 2)[0]} | {r['clock_mhz']:g} | {'W' if r['write'] else 'R'} | {r['cycles']} | "
              f"{r['words_per_cycle']:.3f} | {r['pct_of_peak']:.1f} | {r['planner_cycles']} | "
              f"{r['measured_over_planner']:.3f} |")


if __name__ == "__main__":
    main()
