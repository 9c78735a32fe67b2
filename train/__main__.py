"""``python -m train ...`` (also under ``torchrun``): see :mod:`train.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
