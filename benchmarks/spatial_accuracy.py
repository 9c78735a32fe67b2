"""PTQ accuracy of spatial int8 weights (U = golden's transform of W, computed on chip) against
int8 U weights, on ResNet-20 / Fashion-MNIST, for F2/F4 with layer and tap scales and both
requant modes. Calibration only (no QAT): a small, CPU-sized first look, not the accuracy table.

    python benchmarks/spatial_accuracy.py --threads 2

Trains its own FP32 ResNet-20 (1 epoch on the first 2000 training images, SGD + OneCycle as
``python -m train --mode fp32``), calibrates each variant on 2 x 128 training images, and
scores the fake-quant network in float64 evaluation (bit-exact with the golden integer model,
which tests/test_train_spatial.py checks) on the first 500 test images. Each entry also records
how many predictions the two weight forms disagree on. Writes
benchmarks/results/spatial_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train import data, models  # noqa: E402
from train.convert import convert  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@torch.no_grad()
def predict(model, x, bs=250):
    model.eval()
    return torch.cat([model(x[i:i + bs]).argmax(1) for i in range(0, len(x), bs)])


def train_fp32(X, Y, epochs, bs, lr, seed=0):
    """The FP32 starting point, trained the way ``python -m train --mode fp32`` does."""
    torch.manual_seed(seed)
    m = models.resnet20(10, 1)
    steps = epochs * (len(X) // bs)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 1), pct_start=0.15)
    m.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for k in range(len(X) // bs):
            idx = perm[k * bs:(k + 1) * bs]
            loss = F.cross_entropy(m(data.augment_small(X[idx])), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-samples", type=int, default=2000)
    ap.add_argument("--test-samples", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--tiles", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--requants", nargs="+", default=["pow2", "fixed"])
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "spatial_accuracy.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr, _, _, _ = data.load("fashion-mnist", True, a.train_samples)
    te, _, _, _ = data.load("fashion-mnist", False, a.test_samples)
    (Xtr, Ytr), (X, Y) = tr.tensors, te.tensors
    t = time.time()
    fp32 = train_fp32(Xtr, Ytr, a.epochs, 64, 0.1)
    res = {"setup": {**vars(a), "command": "python " + " ".join(sys.argv), "model": "resnet20",
                     "balance": "smooth", "calib": "omse", "max_tap_shift": 12,
                     "machine": "2 shared CPU cores (torch CPU), no GPU",
                     "fp32_train_s": round(time.time() - t, 1)},
           "entries": {"fp32": {"acc": float((predict(fp32, X) == Y).float().mean())}}}
    print("fp32", json.dumps(res["entries"]["fp32"]), flush=True)
    calib = [Xtr[i * 128:(i + 1) * 128] for i in range(a.calib_batches)]
    for rq in a.requants:
        for tile in a.tiles:
            for gran in ("layer", "tap"):
                pred = {}
                for weights in ("winograd", "spatial"):
                    t = time.time()
                    net = convert(fp32, input_shape=(1, 28, 28), tile=tile, granularity=gran, requant=rq,
                                  weights=weights)
                    net.calibrate(calib)
                    pred[weights] = predict(net, X)
                    e = {"acc": float((pred[weights] == Y).float().mean()), "seconds": round(time.time() - t, 1)}
                    if weights == "spatial":
                        e["pred_diffs_vs_winograd"] = int((pred["spatial"] != pred["winograd"]).sum())
                        e["acc_minus_winograd_pp"] = round(100 * (e["acc"] - res["entries"][
                            f"ptq/{rq}/F{tile}/{gran}/winograd"]["acc"]), 2)
                    key = f"ptq/{rq}/F{tile}/{gran}/{weights}"
                    res["entries"][key] = e
                    print(key, json.dumps(e), flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
