"""Full-size accuracy runs through the training CLI: an FP32 ResNet-20 on all of Fashion-MNIST,
then, from it and in parallel, PTQ-direct, PTQ-Winograd and Winograd-aware QAT for m = 2, 4, 6
with layer and tap scales, each evaluated on the full 10k test set, exported and checked by
``python -m wino_gen check``. Sized for one GPU (it runs on CPU too, slowly):

    python benchmarks/qat_runs.py --out runs/full --fp32-epochs 15 --qat-epochs 4 --deadline 540

Every run is a plain ``python -m train`` command (written to ``commands.txt``); ``summary.json``
holds each run's test accuracy per epoch, seconds and the check result. A run still going at
``--deadline`` seconds is stopped and reported with the epochs it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="run folder (the sweep) ...")
    ap.add_argument("--table", nargs="+", metavar="SUMMARY", help="... or only print the README table of these "
                    "summary.json files (later files override earlier runs of the same name)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--fp32-epochs", type=int, default=15)
    ap.add_argument("--fp32-init", default=None, help="skip FP32 training and start from this checkpoint")
    ap.add_argument("--qat-epochs", type=int, default=4)
    ap.add_argument("--tiles", default="2,4,6")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    ap.add_argument("--deadline", type=float, default=540.0, help="seconds for the whole sweep")
    ap.add_argument("--no-check", action="store_true", help="leave the exported model dirs unchecked")
    ap.add_argument("--limit-train", type=int, default=None, help="quick checks only")
    ap.add_argument("--limit-test", type=int, default=None, help="quick checks only")
    return ap.parse_args(argv)


def train_cmd(a, out: Path, *extra) -> list[str]:
    cmd = [sys.executable, "-m", "train", "--model", "resnet20", "--data", "fashion-mnist", "--out", str(out),
           "--no-progress", "--threads", str(a.threads), *extra]
    for flag, v in (("--data-dir", a.data_dir), ("--limit-train", a.limit_train), ("--limit-test", a.limit_test)):
        cmd += [flag, str(v)] if v is not None else []
    return cmd


def epochs_of(log: Path) -> list[dict]:
    """The per-epoch JSON lines the CLI prints."""
    recs = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        if line.startswith("{") and '"epoch"' in line:
            recs.append(json.loads(line))
    return recs


class Pool:
    """At most ``n`` CLI runs at once, each with its own log; stops them at the deadline."""

    def __init__(self, n: int, deadline: float, commands: Path):
        self.n, self.deadline, self.commands = n, deadline, commands
        self.queue: list[tuple[str, list[str], Path]] = []
        self.running: dict[str, tuple[subprocess.Popen, float]] = {}
        self.done: dict[str, dict] = {}

    def add(self, name: str, cmd: list[str], log: Path) -> None:
        self.queue.append((name, cmd, log))
        with self.commands.open("a") as f:
            f.write(" ".join(cmd[1:]) + "\n")

    def run(self) -> None:
        logs = {}
        while self.queue or self.running:
            while self.queue and len(self.running) < self.n:
                name, cmd, log = self.queue.pop(0)
                logs[name] = log
                fh = log.open("w")
                self.running[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                                       env={**os.environ, "PYTHONUNBUFFERED": "1"}), time.time())
            for name, (p, t0) in list(self.running.items()):
                late = time.time() > self.deadline
                if p.poll() is None and not late:
                    continue
                if p.poll() is None:
                    p.kill()
                    p.wait()
                self.done[name] = {"rc": p.returncode, "seconds": round(time.time() - t0, 1), "stopped": late
                                   and p.returncode != 0, "log": str(logs[name])}
                del self.running[name]
            time.sleep(1)


def table(paths) -> str:
    runs = {}
    for p in paths:
        s = json.loads(Path(p).read_text())
        runs.update({k: dict(v, device=s.get("device", "?")) for k, v in s["runs"].items()})
    fp32 = runs.get("fp32", {}).get("test_acc")

    def cell(name):
        r = runs.get(name)
        if not r or "test_acc" not in r:
            return "–"
        txt = f"{100 * r['test_acc']:.2f}"
        if fp32 is not None and name != "fp32":
            txt += f" ({100 * (r['test_acc'] - fp32):+.2f})"
        if name.startswith("qat/"):
            txt += f" [{len(r.get('history', []))} ep]"
        return txt

    rows = ["| mode | scales, forms | F2 | F4 | F6 |", "|---|---|---|---|---|",
            f"| FP32 | – | {cell('fp32')} | {cell('fp32')} | {cell('fp32')} |",
            f"| PTQ int8 direct conv | layer | {cell('ptq-direct')} | {cell('ptq-direct')} | {cell('ptq-direct')} |"]
    for mode, label in (("ptq-winograd", "PTQ full-int8 Winograd"), ("qat", "QAT full-int8 Winograd")):
        for gran, glabel in (("layer-unbalanced", "layer, none"), ("layer", "layer, smooth"), ("tap", "tap, smooth")):
            if any(f"{mode}/F{t}/{gran}" in runs for t in (2, 4, 6)):
                rows.append(f"| {label} | {glabel} | " + " | ".join(cell(f"{mode}/F{t}/{gran}") for t in (2, 4, 6))
                            + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    a = parse(argv)
    if a.table:
        print(table(a.table))
        return 0
    if not a.out:
        print("error: --out or --table is required", file=sys.stderr)
        return 2
    t_start = time.time()
    deadline = t_start + a.deadline
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    commands = out / "commands.txt"
    commands.write_text("")
    summary: dict = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "runs": {}}
    try:
        import torch
        summary["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        summary["torch"] = torch.__version__
    except Exception as e:  # noqa: BLE001 - only informative
        summary["device"] = f"unknown ({e})"

    init = a.fp32_init
    if init is None:
        pool = Pool(1, t_start + 0.45 * a.deadline, commands)
        pool.add("fp32", train_cmd(a, out / "fp32", "--mode", "fp32", "--epochs", str(a.fp32_epochs),
                                   "--threads", "8"), out / "fp32.log")
        pool.run()
        summary["runs"]["fp32"] = rec = {**pool.done["fp32"], "history": epochs_of(out / "fp32.log")}
        if rec["history"]:
            rec["test_acc"] = rec["history"][-1]["test_acc"]
        init = out / "fp32" / ("model.pt" if (out / "fp32" / "model.pt").is_file() else "checkpoint.pt")
        if not Path(init).is_file():
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            print("fp32 run produced no checkpoint", file=sys.stderr)
            return 1
    summary["init"] = str(init)

    pool = Pool(a.parallel, deadline, commands)
    tiles = [int(t) for t in a.tiles.split(",")]
    for t in tiles:
        for gran in ("layer", "tap"):
            name = f"qat/F{t}/{gran}"
            d = out / name.replace("/", "_")
            pool.add(name, train_cmd(a, d, "--mode", "qat", "--tile", str(t), "--granularity", gran,
                                     "--epochs", str(a.qat_epochs), "--init", str(init),
                                     "--export", str(d / "model"), "--export-samples", "4"), out / f"{d.name}.log")
    ptq = [("ptq-direct", ["--mode", "ptq-direct"])]
    for t in tiles:
        for gran in ("layer", "tap"):
            ptq.append((f"ptq-winograd/F{t}/{gran}", ["--mode", "ptq-winograd", "--tile", str(t), "--granularity",
                                                      gran]))
        ptq.append((f"ptq-winograd/F{t}/layer-unbalanced", ["--mode", "ptq-winograd", "--tile", str(t),
                                                            "--granularity", "layer", "--balance", "none"]))
    for name, args in ptq:
        d = out / name.replace("/", "_")
        pool.add(name, train_cmd(a, d, *args, "--epochs", "0", "--init", str(init)), out / f"{d.name}.log")
    pool.run()

    for name, r in pool.done.items():
        d = out / name.replace("/", "_")
        rec = dict(r, history=epochs_of(Path(r["log"])))
        mfile = d / "metrics.json"
        if mfile.is_file():
            m = json.loads(mfile.read_text())
            rec.update({k: m[k] for k in ("test_acc", "test_samples", "train_samples", "balance", "calib_seconds",
                                          "train_seconds_total") if k in m})
        elif rec["history"]:
            rec["test_acc"] = rec["history"][-1]["test_acc"]
        if (d / "model" / "manifest.json").is_file() and not a.no_check:
            c = subprocess.run([sys.executable, "-m", "wino_gen", "check", str(d / "model")], cwd=ROOT,
                               capture_output=True, text=True)
            rec["check"] = {"rc": c.returncode, "last_line": (c.stdout.strip().splitlines() or [""])[-1]}
        summary["runs"][name] = rec
    summary["seconds"] = round(time.time() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, r in sorted(summary["runs"].items()):
        print(f"{name:36s} acc {r.get('test_acc', float('nan')):.4f}  {r['seconds']:7.1f} s  "
              f"epochs {len(r.get('history', []))}  {r.get('check', {}).get('last_line', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
