"""Export a :class:`~train.convert.QuantNet` to the wino-int8 model dir (``docs/format.md``) and
evaluate the exported integer network with ``wino_gen.golden``.

The exported parameters are the ones the fake-quant network used in its last evaluation pass
(``layer.last``), so the two cannot drift apart. The reference activations ``x``/``y`` in every
npz are produced by replaying the written model dir through ``wino_gen.network.run_model``
(the golden integer model) from the quantized input; the export also checks that they equal the
fake-quant network's integer activations and reports any difference.
"""

from __future__ import annotations

import numpy as np
import torch

from wino_gen import format as wformat
from wino_gen import golden, progress
from wino_gen.network import run_model

from .convert import QuantNet

_SPEC_KEYS = ("name", "op", "inputs", "in_shape", "out_shape", "stride", "padding", "relu", "kernel")


@torch.no_grad()
def integer_pass(net: QuantNet, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Run the fake-quant network (float64, eval) and return every integer activation."""
    was, mode = net.training, net.mode
    net.eval()
    net.mode = "quant"
    net.exact_eval = True
    net.record = {}
    try:
        net(x)
        rec = {k: v.cpu().numpy().astype(np.int64) for k, v in net.record.items()}
    finally:
        net.record = None
        net.mode = mode
        net.train(was)
    return rec


def manifest_and_arrays(net: QuantNet, rec: dict[str, np.ndarray]):
    layers, arrays = [], {}
    for spec in net.specs:
        lay = net.layer(spec["name"])
        last = lay.last
        entry = {k: spec[k] for k in _SPEC_KEYS if k in spec}
        entry["scale_out"] = float(last["scale_out"])
        layers.append(entry)
        arr = {k: np.asarray(last[k]) for k in _param_keys(spec["op"], last)}
        arr["x"] = rec[spec["inputs"][0]].astype(np.int8)
        if spec["op"] == "add":
            arr["x2"] = rec[spec["inputs"][1]].astype(np.int8)
        arr["y"] = rec[spec["name"]].astype(np.int8)
        arrays[spec["name"]] = arr
    spatial = any("u_mult" in net.layer(s["name"]).last for s in net.specs if s["op"] == "winograd_conv3x3")
    manifest = {
        "format": wformat.FORMAT_SPATIAL if spatial else wformat.FORMAT, "model": net.model_name, "tile": net.tile,
        "granularity": net.granularity, "balance": net.balance, "requant": net.requant,
        "act_bits": net.act_bits,
        "input": {"shape": list(net.input_shape), "scale": float(net.s_in().detach())},
        "layers": layers,
    }
    return manifest, arrays


def _param_keys(op: str, last: dict) -> tuple[str, ...]:
    """The npz parameters of a layer: a Winograd layer with spatial weights stores ``W`` and
    its ``u_mult``/``u_shift`` instead of ``U`` (the reader transforms them, bit for bit)."""
    keys = wformat.PARAM_KEYS[op]
    if op == "winograd_conv3x3" and "u_mult" in last:
        return tuple(k for k in keys if k != "U") + wformat.SPATIAL_KEYS
    return keys


def export(net: QuantNet, path, x: torch.Tensor) -> dict:
    """Write the model dir for ``net`` with reference activations for the samples ``x``
    (real-valued network inputs). Returns ``{"fake_vs_golden_mismatches": n}``."""
    rec = integer_pass(net, x)
    manifest, arrays = manifest_and_arrays(net, rec)
    wformat.write_model(path, manifest, arrays, "--export")
    model = wformat.load_model(path)
    acts = run_model(model, rec["input"])
    bad = sum(int(np.count_nonzero(acts[s["name"]] != rec[s["name"]])) for s in net.specs)
    if bad:  # keep the golden model's activations as the reference, and say so
        for s in net.specs:
            a = arrays[s["name"]]
            a["x"] = acts[s["inputs"][0]].astype(np.int8)
            if s["op"] == "add":
                a["x2"] = acts[s["inputs"][1]].astype(np.int8)
            a["y"] = acts[s["name"]].astype(np.int8)
        wformat.write_model(path, manifest, arrays, "--export")
    return {"fake_vs_golden_mismatches": bad}


def quantize_input(x: torch.Tensor, scale: float, bits: int = 8) -> np.ndarray:
    return golden.fake_rq(x.double().numpy(), 1.0 / scale, bits).astype(np.int64)


def evaluate_int(net: QuantNet, path, loader, show: bool = False, compare: bool = False) -> dict:
    """Top-1 accuracy of the exported model dir run by ``wino_gen.golden`` on ``loader`` (a
    progress bar when ``show``: it takes minutes); with ``compare`` also the fake-quant
    network's accuracy and the count of differing logits."""
    model = wformat.load_model(path)
    scale = float(model.manifest["input"]["scale"]) if hasattr(model, "manifest") else \
        float(net.s_in().detach())
    last = model.layers[-1].name
    correct = total = fq_correct = diff = 0
    for x, y in progress.bar(loader, "eval-int", show, len(loader)):
        xi = quantize_input(x, scale, net.act_bits)
        out = run_model(model, xi)[last]
        correct += int((out.reshape(len(y), -1).argmax(1) == y.numpy()).sum())
        total += len(y)
        if compare:
            rec = integer_pass(net, x)
            fq_correct += int((rec[last].reshape(len(y), -1).argmax(1) == y.numpy()).sum())
            diff += int(np.count_nonzero(rec[last] != out))
    r = {"int_test_acc": correct / max(total, 1), "int_test_samples": total}
    if compare:
        r.update(fake_test_acc=fq_correct / max(total, 1), fake_vs_int_logit_diffs=diff)
    return r
