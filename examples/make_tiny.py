"""Regenerate examples/tiny (or a variant) from fixed seeds with the golden integer model.

    python examples/make_tiny.py [OUT_DIR] [--tile 4] [--granularity layer] [--requant pow2]
"""

import argparse
from pathlib import Path

from wino_gen.example import make_tiny

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("out", nargs="?", default=Path(__file__).parent / "tiny")
ap.add_argument("--tile", type=int, default=4, choices=(2, 4, 6))
ap.add_argument("--granularity", default="layer", choices=("layer", "tap"))
ap.add_argument("--requant", default="pow2", choices=("pow2", "fixed"))
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
model = make_tiny(args.out, tile=args.tile, granularity=args.granularity, requant=args.requant, seed=args.seed)
print(f"wrote {args.out}: {len(model.layers)} layers, {model.samples} samples")
