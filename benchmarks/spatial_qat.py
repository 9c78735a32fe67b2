"""Spatial-weight QAT against U-weight QAT at equal budget, on the full Fashion-MNIST test set
(issue 15's accuracy rows): one FP32 ResNet-20, then for each tile and granularity a QAT
fine-tune with U weights (pow2 requant, as the main accuracy table) and one with spatial int8
weights transformed by golden's exact U requant (`--requant fixed`: pow2 collapses at F4/F6,
see README). Runs that finished are kept (rerun to continue); the JSON gathers every run's
result and command.

    python benchmarks/spatial_qat.py --out runs/s15 [--tiles 4 6 2] [--granularities tap layer]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy_spatial_cpu.json"
BASE = ["--model", "resnet20", "--data", "fashion-mnist", "--no-progress"]


def train(args: list[str], out: Path, log: Path) -> None:
    if (out / "model.pt").exists():
        return
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "train", *BASE, *args, "--out", str(out)], check=True, stdout=f,
                       stderr=subprocess.STDOUT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs")
    p.add_argument("--tiles", type=int, nargs="+", default=[4, 6, 2])
    p.add_argument("--granularities", nargs="+", default=["tap", "layer"])
    p.add_argument("--fp32-epochs", type=int, default=3)
    p.add_argument("--limit-train", type=int, default=20000, help="QAT training images (default 20000)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    common = ["--threads", str(a.threads)]
    fp32 = ["--mode", "fp32", "--epochs", str(a.fp32_epochs), *common]
    train(fp32, a.out / "fp32", a.out / "fp32.log")
    record = {"harness": "ResNet-20 Fashion-MNIST, full 10,000-image test set, CPU",
              "fp32": {"test_acc": json.loads((a.out / "fp32" / "metrics.json").read_text())["test_acc"],
                       "command": " ".join(["python -m train", *BASE, *fp32, "--out", str(a.out / "fp32")])},
              "runs": json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else {}}
    for g in a.granularities:
        for t in a.tiles:
            for w, rq in (("winograd", "pow2"), ("spatial", "fixed")):
                name = f"qat_F{t}_{g}_{w}"
                args = ["--mode", "qat", "--tile", str(t), "--granularity", g, "--weights", w, "--requant", rq,
                        "--epochs", "1", "--lr", "5e-5", "--limit-train", str(a.limit_train),
                        "--init", str(a.out / "fp32" / "model.pt"), *common]
                train(args, a.out / name, a.out / f"{name}.log")
                m = json.loads((a.out / name / "metrics.json").read_text())
                record["runs"][name] = {k: m[k] for k in ("tile", "granularity", "weights", "requant", "train_samples",
                                                          "test_samples", "test_acc", "train_seconds_total")}
                record["runs"][name]["command"] = " ".join(["python -m train", *BASE, *args, "--out",
                                                            str(a.out / name)])
                RESULTS.write_text(json.dumps(record, indent=1) + "\n")
                print(name, m["test_acc"], flush=True)


if __name__ == "__main__":
    main()
