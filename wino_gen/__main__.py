"""The wino command line.

    python -m wino_gen [generator flags] > top.v     Verilog of the compute core (wino_gen.flow.generate;
                                                     --direct-only, --engine: the standalone engine)
    python -m wino_gen check MODEL_DIR               replay a model dir through the golden model
    python -m wino_gen report [generator flags]      multipliers, widths, cycles, resources, fit
    python -m wino_gen build --board B ... --out DIR bitstream + report via YoWASP
    python -m wino_gen compile MODEL_DIR --config C --board B -o image.bin [--run]
                                                     model dir -> memory image (docs/image.md),
                                                     --run interprets it with the golden model
    python -m wino_gen run --board B --port PORT MODEL_DIR (--images X.npy | --data fashion-mnist)
                                                     load it into a board over the serial link, run
                                                     every input, print predictions, accuracy, cycles
                                                     (--port golden: the golden model, not the RTL)

Generator flags include ``--model MODEL_DIR``: the config that runs that model dir.
Bad input ends with one line on stderr and exit status 2, never a traceback; Ctrl-C with
``interrupted`` and exit status 130, leaving no partial output.
"""

from __future__ import annotations

import sys

from . import check
from .compile import cli as compile_cli
from .errors import UsageError, run_cli
from .flow import build, generate, report
from .run import cli as runtime_cli
from .safeio import printable

USAGE = __doc__

# subcommand -> its ``main(argv) -> int``
SUBCOMMANDS = {"check": check.main, "report": report.main, "build": build.main, "compile": compile_cli.main,
               "run": runtime_cli.main}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        print(USAGE.strip())
        print("\nRun `python -m wino_gen SUBCOMMAND --help` or `python -m wino_gen --help-generate`.")
        return 0
    if argv and argv[0] in SUBCOMMANDS:
        return run_cli(SUBCOMMANDS[argv[0]], argv[1:])
    if argv and not argv[0].startswith("-"):
        return run_cli(_unknown_subcommand, argv)
    if argv[:1] == ["--help-generate"]:
        argv = ["--help"]
    return run_cli(generate.main, argv)


def _unknown_subcommand(argv: list[str]) -> int:
    """The generator takes no positional argument, so a leading word is a mistyped subcommand
    (``chek``), not a stray generator flag."""
    raise UsageError(f"unknown subcommand '{printable(argv[0])}'; subcommands: {', '.join(SUBCOMMANDS)}")


if __name__ == "__main__":
    sys.exit(main())
