"""Fashion-MNIST's IDX files from Debian's ``dataset-fashion-mnist``, read directly (nothing is
downloaded), and the normalization training uses: pure numpy, so that ``train`` (torch) and
the ``wino_gen run`` runtime read the same bytes the same way."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from .errors import UsageError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
MAX_IDX_BYTES = 1 << 30
_APT = "sudo apt-get install dataset-fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (gzipped or not); a truncated, corrupt or oversized file is
    one line naming it."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return _parse_idx(f, path)
    except (OSError, EOFError, zlib.error) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise UsageError(f"{path}: cannot be read ({reason}); reinstall it with `{_APT}` "
                         "or pass --data-dir DIR holding intact IDX files") from None


def _parse_idx(f, path: Path) -> np.ndarray:
    """Reads the header first, so a header declaring a huge array never allocates it."""
    head = f.read(4)
    if len(head) < 4 or head[:3] != b"\0\0\x08":
        raise UsageError(f"{path}: not an unsigned-byte IDX file")
    raw = f.read(4 * head[3])
    if len(raw) < 4 * head[3]:
        raise UsageError(f"{path}: IDX header is truncated")
    dims = [int.from_bytes(raw[i:i + 4], "big") for i in range(0, len(raw), 4)]
    n = math.prod(dims)
    if n > MAX_IDX_BYTES:
        raise UsageError(f"{path}: IDX header says {dims}, more than {MAX_IDX_BYTES >> 30} GiB")
    data = f.read(n + 1)
    if len(data) != n:
        held = f"{len(data)} bytes" if len(data) < n else "more"
        raise UsageError(f"{path}: IDX header says {dims} ({n} bytes), file holds {held}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    """``root/stem.gz`` or ``root/stem``; one line saying how to install it when neither exists."""
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise UsageError(f"Fashion-MNIST not found: {root / (stem + '.gz')} is missing; install it with `{_APT}`"
                     " (or pass --data-dir DIR holding the IDX files)")
