"""Accuracy table of full-int8 Winograd on Fashion-MNIST / ResNet-20: FP32, PTQ-direct,
PTQ-Winograd and QAT (layer and tap scales) for m = 2, 4, 6, each with the fake-quant accuracy
and the accuracy of the exported integer network run by wino_gen.golden; plus the ablation that
quantizes one Winograd step at a time (layer scales). Layer-scale entries run with both integer
forms: ``layer`` (``balance=smooth``, the training default) and ``layer-unbalanced``
(``balance=none``, the smallest integer matrices).

    python benchmarks/accuracy.py --init runs/fp32/model.pt

Writes benchmarks/results/accuracy.json (incrementally: rerunning skips finished entries unless
--fresh) and benchmarks/results/accuracy_vs_tile.png, and prints the README table. Sized for a
2-core machine: test/int/QAT subsets are flags, and every entry records its sample counts and
seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train import data, models  # noqa: E402
from train.cli import load_init  # noqa: E402
from train.convert import convert  # noqa: E402
from train.export import export, quantize_input  # noqa: E402
from wino_gen import format as wformat  # noqa: E402
from wino_gen.network import run_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GRANS = ("layer-unbalanced", "layer", "tap")
GRAN_LABEL = {"layer-unbalanced": "layer, forms none", "layer": "layer, forms smooth", "tap": "tap"}


@torch.no_grad()
def predict(model, x, bs=250):
    model.eval()
    return torch.cat([model(x[i:i + bs]).argmax(1) for i in range(0, len(x), bs)])


def int_predict(mdir, x, bs=100):
    m = wformat.load_model(mdir)
    scale = float(m.manifest["input"]["scale"])
    last = m.layers[-1].name
    out = [run_model(m, quantize_input(x[i:i + bs], scale))[last].reshape(min(bs, len(x) - i), -1).argmax(1)
           for i in range(0, len(x), bs)]
    return torch.from_numpy(np.concatenate(out))


def quant_entry(net, X, Y, n_int, calib_x):
    """Fake-quant accuracy on X, integer accuracy (golden) on X[:n_int] and their agreement."""
    t = time.time()
    pf = predict(net, X)
    e = {"acc": float((pf == Y).float().mean()), "test_samples": len(Y), "eval_s": round(time.time() - t, 1)}
    if n_int:
        t = time.time()
        with tempfile.TemporaryDirectory() as d:
            r = export(net, Path(d) / "model", calib_x[:2])
            pi = int_predict(Path(d) / "model", X[:n_int])
        e.update(int_acc=float((pi == Y[:n_int]).float().mean()),
                 fake_acc_same_samples=float((pf[:n_int] == Y[:n_int]).float().mean()),
                 int_samples=n_int, int_vs_fake_pred_diffs=int((pi != pf[:n_int]).sum()),
                 export_fake_vs_golden_mismatches=r["fake_vs_golden_mismatches"],
                 int_eval_s=round(time.time() - t, 1))
    return e


def qat(net, Xtr, Ytr, epochs, bs, lr, scale_lr, seed=0):
    torch.manual_seed(seed)
    for _, m in net.named_qlayers():
        if hasattr(m, "s_x"):
            m.s_x.log2.requires_grad_(False)
    opt = torch.optim.Adam([{"params": net.weight_parameters(), "lr": lr},
                            {"params": [p for p in net.scale_parameters() if p.requires_grad], "lr": scale_lr}])
    steps = epochs * (len(Xtr) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    net.train()
    net.mode = "quant"
    t = time.time()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(Xtr))
        for k in range(len(Xtr) // bs):
            idx = perm[k * bs:(k + 1) * bs]
            loss = F.cross_entropy(net(data.augment_small(Xtr[idx])), Ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    return {"qat_steps": steps, "qat_samples": len(Xtr), "qat_epochs": epochs, "batch_size": bs,
            "qat_s": round(time.time() - t, 1), "loss_first": losses[0] if losses else None,
            "loss_last": float(np.mean(losses[-5:])) if losses else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="FP32 ResNet-20 checkpoint (python -m train --mode fp32)")
    ap.add_argument("--tiles", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--limit-test", type=int, default=1000)
    ap.add_argument("--limit-int", type=int, default=500)
    ap.add_argument("--ablation-test", type=int, default=500)
    ap.add_argument("--qat-samples", type=int, default=2048)
    ap.add_argument("--qat-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--scale-lr", type=float, default=1e-2)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--calib", default="omse")
    ap.add_argument("--max-tap-shift", type=int, default=12)
    ap.add_argument("--requant", default="pow2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="entry keys to (re)run")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--merge", nargs="*", default=None,
                    help="only merge these result files into --out, then plot and print the table")
    ap.add_argument("--out", default=str(RESULTS / "accuracy.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = Path(a.out)
    res = {} if a.fresh or not out.exists() else json.loads(out.read_text())
    if a.merge is not None:
        res.setdefault("entries", {})
        for f in a.merge:
            part = json.loads(Path(f).read_text())
            res["entries"].update(part["entries"])
            res.setdefault("setup", part["setup"])
            res.setdefault("parts", []).append(part["setup"]["command"])
        out.write_text(json.dumps(res, indent=2) + "\n")
        plot(res, RESULTS / "accuracy_vs_tile.png")
        print(table(res))
        return
    res.setdefault("entries", {})
    res["setup"] = {k: v for k, v in vars(a).items() if k not in ("only", "fresh", "out")}
    res["setup"]["command"] = "python " + " ".join(sys.argv)
    res["setup"]["machine"] = "2 shared CPU cores (torch CPU), no GPU"
    te, _, _, _ = data.load("fashion-mnist", False, a.limit_test)
    tr, _, _, _ = data.load("fashion-mnist", True, None)
    X, Y = te.tensors
    g = torch.Generator().manual_seed(1)
    sel = torch.randperm(len(tr), generator=g)[:a.qat_samples]
    Xtr, Ytr = tr.tensors[0][sel], tr.tensors[1][sel]
    calib_x = [tr.tensors[0][i * 128:(i + 1) * 128] for i in range(a.calib_batches)]
    fp32 = models.resnet20(10, 1)
    load_init(a.init, fp32)
    fp32.eval()
    E = res["entries"]

    def want(key):
        return key in a.only if a.only is not None else key not in E

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")

    def run(key, fn):
        if not want(key):
            return
        t = time.time()
        E[key] = fn()
        E[key]["total_s"] = round(time.time() - t, 1)
        print(key, json.dumps(E[key]), flush=True)
        save()

    run("fp32", lambda: {"acc": float((predict(fp32, X) == Y).float().mean()), "test_samples": len(Y)})

    def ptq(tile, gran, algo):
        balance = "none" if gran == "layer-unbalanced" else "smooth"
        net = convert(fp32, input_shape=(1, 28, 28), tile=tile, granularity=gran.split("-")[0], requant=a.requant,
                      algo=algo, max_tap_shift=a.max_tap_shift, balance=balance)
        t = time.time()
        net.calibrate(calib_x, a.calib)
        e = {"calib_s": round(time.time() - t, 1), "calib_samples": 128 * len(calib_x)}
        return net, e

    def ptq_entry(tile, gran, algo):
        net, e = ptq(tile, gran, algo)
        e.update(quant_entry(net, X, Y, a.limit_int, calib_x[0]))
        return e

    run("ptq-direct", lambda: ptq_entry(4, "layer", "direct"))
    for tile in a.tiles:
        for gran in GRANS:
            run(f"ptq-winograd/F{tile}/{gran}", lambda tile=tile, gran=gran: ptq_entry(tile, gran, "winograd"))
    for tile in a.tiles:
        for gran in GRANS:
            def q(tile=tile, gran=gran):
                net, e = ptq(tile, gran, "winograd")
                e.update(qat(net, Xtr, Ytr, a.qat_epochs, a.batch_size, a.lr, a.scale_lr))
                e.update(quant_entry(net, X, Y, a.limit_int, calib_x[0]))
                return e
            run(f"qat/F{tile}/{gran}", q)
    # ablation: quantize one Winograd step at a time (everything else FP32)
    Xa, Ya = X[:a.ablation_test], Y[:a.ablation_test]
    for tile, gran in ((t, g) for t in a.tiles for g in ("layer", "layer-unbalanced", "tap")):
        def abl(tile=tile, gran=gran):
            net, e = ptq(tile, gran, "winograd")
            net.mode = "real"
            for steps in (["x"], ["V"], ["U"], ["M"], ["y"], ["x", "V", "U", "M", "y"]):
                net.set_steps({"winograd_conv3x3": set(steps)})
                e["+".join(steps)] = float((predict(net, Xa) == Ya).float().mean())
            e["test_samples"] = len(Ya)
            return e
        run(f"ablation/F{tile}/{gran}", abl)
    save()
    if a.only is None:
        plot(res, RESULTS / "accuracy_vs_tile.png")
    print(table(res))


def table(res) -> str:
    E = res["entries"]
    su = res.get("setup", {})
    rows = [f"Top-1 % on the first {su.get('limit_test')} Fashion-MNIST test images (fake quant); in brackets "
            f"the exported integer network run by wino_gen.golden on the first {su.get('limit_int')}, "
            "'=' when its predictions equal the fake-quant ones on those images.", "",
            "| mode | scales | F2 | F4 | F6 |", "|---|---|---|---|---|"]

    def cell(e):
        if not e:
            return "–"
        s = f"{100 * e['acc']:.1f}"
        if "int_acc" in e:
            same = "=" if e["int_vs_fake_pred_diffs"] == 0 else f"≠ {100 * e['fake_acc_same_samples']:.1f}"
            s += f" ({100 * e['int_acc']:.1f} {same})"
        return s

    fp = E.get("fp32", {})
    di = E.get("ptq-direct", {})
    rows.append(f"| FP32 | – | {cell(fp)} | {cell(fp)} | {cell(fp)} |")
    rows.append(f"| PTQ int8 direct conv | layer | {cell(di)} | {cell(di)} | {cell(di)} |")
    for mode, label in (("ptq-winograd", "PTQ full-int8 Winograd"), ("qat", "QAT full-int8 Winograd")):
        for gran in GRANS:
            cells = [cell(E.get(f"{mode}/F{t}/{gran}")) for t in (2, 4, 6)]
            rows.append(f"| {label} | {GRAN_LABEL[gran]} | " + " | ".join(cells) + " |")
    abl = ["", "Ablation (one Winograd step quantized, the rest FP32):", "",
           "| tile | scales, forms | x | V | U | M | y | all |", "|---|---|---|---|---|---|---|---|"]
    for gran in ("layer-unbalanced", "layer", "tap"):
        for t in (2, 4, 6):
            e = E.get(f"ablation/F{t}/{gran}")
            if e:
                abl.append(f"| F{t} | {GRAN_LABEL[gran]} | " + " | ".join(
                    f"{100 * e[k]:.1f}" for k in ("x", "V", "U", "M", "y", "x+V+U+M+y")) + " |")
    return "\n".join(rows + abl)


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    E = res["entries"]
    fig, ax = plt.subplots(figsize=(6, 4))
    tiles = [2, 4, 6]
    for key, style in (("ptq-winograd/{}/layer-unbalanced", "x:"), ("ptq-winograd/{}/layer", "o--"),
                       ("ptq-winograd/{}/tap", "s--"), ("qat/{}/layer-unbalanced", "x-"), ("qat/{}/layer", "o-"),
                       ("qat/{}/tap", "s-")):
        ys = [100 * E[key.format(f"F{t}")]["acc"] if key.format(f"F{t}") in E else np.nan for t in tiles]
        ax.plot(tiles, ys, style, label=key.replace("/{}", ""))
    if "fp32" in E:
        ax.axhline(100 * E["fp32"]["acc"], color="k", lw=1, label="fp32")
    if "ptq-direct" in E:
        ax.axhline(100 * E["ptq-direct"]["acc"], color="gray", ls=":", label="ptq int8 direct")
    ax.set_xticks(tiles)
    ax.set_xlabel("Winograd tile m (F(m x m, 3 x 3))")
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title("ResNet-20 / Fashion-MNIST, full-int8 Winograd")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
