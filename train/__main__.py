"""``python -m train ...`` (also under ``torchrun``): see :mod:`train.cli`."""

import sys

from wino_gen.errors import run_cli


def main(argv=None) -> int:
    """Imports torch inside :func:`run_cli`, so a Ctrl-C during the seconds of that import is
    ``interrupted`` too, not a traceback."""
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
