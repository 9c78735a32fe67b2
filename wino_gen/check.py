"""`python -m wino_gen check MODEL_DIR`: validate a model dir, replay every layer from its stored
input through the golden model, and compare with the stored reference output."""

from __future__ import annotations

import numpy as np

from .errors import ArgumentParser
from .format import INPUT, load_model
from .network import run_layer, stored_inputs
from .safeio import printable


def main(argv: list[str]) -> int:
    ap = ArgumentParser(prog="wino_gen check", description=__doc__)
    ap.add_argument("model_dir", help="model dir (manifest.json + one .npz per layer)")
    args = ap.parse_args(argv)
    model = load_model(args.model_dir)
    produced = {}
    total = bad_total = 0
    print(f"model {printable(model.name)}: tile {model.tile}, {model.granularity} scales, {model.balance} balance, "
          f"{model.requant} requant, {model.samples} samples")
    names = {layer.name: printable(layer.name) for layer in model.layers}
    width = max(16, *map(len, names.values()))
    for layer in model.layers:
        want = layer.arrays["y"].astype(np.int64)
        got = run_layer(model, layer, stored_inputs(layer))
        bad = int(np.count_nonzero(got != want))
        notes = []
        # the stored input must be what the producing layer stored as its output
        for key, src in zip(("x", "x2"), layer.inputs, strict=False):
            if src != INPUT and not np.array_equal(layer.arrays[key], produced[src]):
                diff = int(np.count_nonzero(layer.arrays[key] != produced[src]))
                notes.append(f"{key} differs from {names[src]}.y in {diff} values")
                bad += diff
        produced[layer.name] = layer.arrays["y"]
        total += want.size
        bad_total += bad
        shape = "x".join(map(str, layer.in_shape)) + " -> " + "x".join(map(str, layer.out_shape))
        status = "ok" if not bad else "MISMATCH"
        print(f"  {names[layer.name]:<{width}} {layer.op:<17} {shape:<22} {want.size:>8} outputs "
              f"{bad:>6} mismatches  {status}" + (f" ({'; '.join(notes)})" if notes else ""))
    print(f"check: {len(model.layers)} layers, {total} outputs, {bad_total} mismatches")
    return 0 if bad_total == 0 else 1
