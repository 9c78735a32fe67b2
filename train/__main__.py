"""``python -m train ...`` (also under ``torchrun``): see :mod:`train.cli`."""

import sys

from wino_gen.errors import run_cli

from .cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
