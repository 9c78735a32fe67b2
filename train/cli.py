"""The training harness: one CLI for the four modes.

    python -m train --model resnet20 --data fashion-mnist --mode fp32 --epochs 4 --out runs/fp32
    python -m train --model resnet20 --data fashion-mnist --mode ptq-winograd --tile 4 \\
        --init runs/fp32/model.pt --out runs/ptq4 --export runs/ptq4/model --eval-int
    python -m train ... --mode qat --tile 4 --granularity tap --epochs 1 --init runs/fp32/model.pt ...
    torchrun --nproc_per_node 2 -m train ...          (DDP; gloo on CPU, nccl on GPUs)

Modes: ``fp32`` trains the plain model; ``ptq-direct`` converts with int8 direct convolutions
everywhere and only calibrates; ``ptq-winograd`` converts to full-int8 Winograd and only
calibrates; ``qat`` converts, calibrates and fine-tunes (weights and scales) from ``--init``.
Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from wino_gen.errors import ArgumentParser, UsageError
from wino_gen.winograd import BALANCES

from . import data as data_mod
from . import models
from .convert import QuantNet, convert

MODES = ("fp32", "ptq-direct", "ptq-winograd", "qat")


def parse(argv):
    ap = ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20", help=f"one of {', '.join(models.MODELS)}")
    ap.add_argument("--data", default="fashion-mnist", help=f"one of {', '.join(data_mod.DATASETS)}")
    ap.add_argument("--data-dir", default=None, help="IDX folder (fashion-mnist) or ImageFolder root")
    ap.add_argument("--image-size", type=int, default=224, help="imagefolder crop size")
    ap.add_argument("--mode", default="fp32", help=f"one of {', '.join(MODES)}")
    ap.add_argument("--tile", type=int, default=4, help="Winograd output tile m: 2, 4, 6")
    ap.add_argument("--granularity", default="layer", help="layer | tap")
    ap.add_argument("--balance", default="smooth",
                    help="integer Winograd forms: smooth (rows balanced for one scale per layer) | none")
    ap.add_argument("--requant", default="pow2", help="pow2 | fixed")
    ap.add_argument("--max-tap-shift", type=int, default=12,
                    help="tap mode: largest m_align (F6 with --balance none needs ~12, smooth forms <= 4; "
                         "the format allows 0..16)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None, help="default 0.1 (fp32, SGD) / 1e-4 (qat, Adam)")
    ap.add_argument("--scale-lr", type=float, default=1e-3, help="Adam lr of the log2 scales (qat)")
    ap.add_argument("--init", default=None, help="FP32 checkpoint to start ptq/qat from, or a ptq-winograd/qat "
                    "model.pt of the same model, tile and scales to fine-tune further (qat)")
    ap.add_argument("--calib-batches", type=int, default=4)
    ap.add_argument("--calib", default="omse", help="scale calibration: omse (output-weighted MSE) | mse | max")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--out", required=True, help="run folder (checkpoints, metrics.json)")
    ap.add_argument("--distill", type=float, default=0.0,
                    help="qat: weight in 0..1 of a distillation loss from the FP32 --init network (0: off)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--export", default=None, help="write the integer model dir here")
    ap.add_argument("--export-samples", type=int, default=4)
    ap.add_argument("--eval-int", action="store_true", help="test accuracy of the exported integer network")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.model not in models.MODELS:
        raise UsageError(f"--model: unknown model {a.model!r}; allowed: {', '.join(models.MODELS)}")
    if a.data not in data_mod.DATASETS:
        raise UsageError(f"--data: unknown data set {a.data!r}; allowed: {', '.join(data_mod.DATASETS)}")
    if a.mode not in MODES:
        raise UsageError(f"--mode: {a.mode!r}; allowed: {', '.join(MODES)}")
    if not 0.0 <= a.distill <= 1.0 or (a.distill and a.mode != "qat"):
        raise UsageError(f"--distill: {a.distill}; a weight in 0..1, for --mode qat only")
    if a.tile not in (2, 4, 6):
        raise UsageError(f"--tile: {a.tile} is not supported; allowed: 2, 4, 6")
    if a.granularity not in ("layer", "tap"):
        raise UsageError(f"--granularity: {a.granularity!r}; allowed: layer, tap")
    if a.balance not in BALANCES:
        raise UsageError(f"--balance: {a.balance!r}; allowed: {', '.join(BALANCES)}")
    if a.requant not in ("pow2", "fixed"):
        raise UsageError(f"--requant: {a.requant!r}; allowed: pow2, fixed")
    if a.calib not in ("omse", "mse", "max"):
        raise UsageError(f"--calib: {a.calib!r}; allowed: omse, mse, max")
    if not 0 <= a.max_tap_shift <= 16:
        raise UsageError(f"--max-tap-shift: {a.max_tap_shift}; allowed 0..16")
    for name in ("epochs", "calib_batches", "export_samples", "workers"):
        if getattr(a, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')}: must be >= 0, got {getattr(a, name)}")
    for name in ("batch_size", "limit_train", "limit_test", "threads", "image_size"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')}: must be >= 1, got {v}")
    if a.mode in ("ptq-direct", "ptq-winograd") and a.epochs and "--epochs" in argv:
        pass  # PTQ never trains; --epochs is ignored
    if a.mode != "fp32" and not a.init and not a.resume:
        raise UsageError(f"--mode {a.mode} needs --init FP32_CHECKPOINT (train one with --mode fp32)")
    if a.init and not Path(a.init).is_file():
        raise UsageError(f"--init: {a.init} does not exist")
    if (a.export or a.eval_int) and a.mode == "fp32":
        raise UsageError("--export/--eval-int need a quantized mode (ptq-direct, ptq-winograd, qat)")
    return a


def _writable_dir(path: str, flag: str) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{flag} {path}: not writable ({e.strerror or e})") from None
    return p


# -- distributed ------------------------------------------------------------------------

def dist_setup():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def _barrier(world):
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# -- model construction -------------------------------------------------------------------

QUANT_KEYS = ("model", "tile", "granularity", "balance", "requant", "max_tap_shift")


def load_init(path: str, model: torch.nn.Module, a=None) -> dict | None:
    """Load ``--init``: an FP32 checkpoint into ``model`` (returns None), or, for ``--mode qat``
    (``a``: the parsed arguments), the state of a quantized run to continue from (returned;
    the converted network must match it)."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:       # noqa: BLE001 - any unreadable file is the same user error
        raise UsageError(f"--init {path}: not a torch checkpoint ({type(e).__name__})") from None
    state = ck.get("model", ck) if isinstance(ck, dict) else ck
    if not isinstance(state, dict):
        raise UsageError(f"--init {path}: not a state dict or checkpoint")
    mode = ck.get("mode", "fp32")
    if mode != "fp32":
        if mode not in ("ptq-winograd", "qat") or a is None or a.mode != "qat" or a.distill:
            raise UsageError(f"--init {path}: a {mode} checkpoint; an FP32 one is needed here "
                             "(a ptq-winograd/qat one continues only --mode qat, without --distill)")
        was = ck.get("args", {})
        for k in QUANT_KEYS:
            if k in was and was[k] != getattr(a, k):
                raise UsageError(f"--init {path}: trained with --{k.replace('_', '-')} {was[k]}, "
                                 f"not {getattr(a, k)}")
        return state
    load_state(model, state, f"--init {path}")
    return None


def load_state(model: torch.nn.Module, state: dict, what: str) -> None:
    """``model.load_state_dict`` with a one-line error naming ``what`` did not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UsageError(f"{what}: does not fit the model ({str(e).splitlines()[0]})") from None


def build_net(a, fp32: torch.nn.Module, input_shape) -> QuantNet:
    algo = "direct" if a.mode == "ptq-direct" else "winograd"
    net = convert(fp32, input_shape=input_shape, tile=a.tile, granularity=a.granularity,
                  requant=a.requant, algo=algo, model_name=a.model, max_tap_shift=a.max_tap_shift,
                  balance=a.balance)
    for _, m in net.named_qlayers():   # per-layer input scales serve the ablation only
        if hasattr(m, "s_x"):
            m.s_x.log2.requires_grad_(False)
    return net


# -- train / eval -------------------------------------------------------------------------

def _progress(it, total, desc, quiet):
    if quiet:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


@torch.no_grad()
def evaluate(model, loader, device, quiet=True, desc="eval"):
    model.eval()
    correct = total = 0
    for x, y in _progress(loader, len(loader), desc, quiet):
        out = model(x.to(device))
        correct += int((out.argmax(1).cpu() == y).sum())
        total += len(y)
    return correct / max(total, 1)


def distill_loss(out, target, teacher_out, weight: float, T: float = 2.0):
    """``(1 - weight)`` cross-entropy + ``weight`` KL divergence to the teacher's softened
    outputs (Hinton et al. 2015; scaled by T² so its gradients match the cross-entropy's)."""
    ce = F.cross_entropy(out, target)
    kl = F.kl_div(F.log_softmax(out / T, 1), F.log_softmax(teacher_out / T, 1), reduction="batchmean",
                  log_target=True)
    return (1 - weight) * ce + weight * T * T * kl


def train_epoch(model, loader, opt, sched, device, small_aug: bool, quiet: bool, desc: str,
                teacher=None, distill: float = 0.0):
    model.train()
    tot_loss = correct = total = 0
    for x, y in _progress(loader, len(loader), desc, quiet):
        if small_aug:
            x = data_mod.augment_small(x)
        x, y = x.to(device), y.to(device)
        out = model(x)
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(x)
            loss = distill_loss(out, y, t_out, distill)
        else:
            loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        tot_loss += float(loss.detach()) * len(y)
        correct += int((out.argmax(1) == y).sum())
        total += len(y)
    return tot_loss / max(total, 1), correct / max(total, 1)


def make_optimizer(a, model, steps):
    if a.mode == "fp32":
        lr = a.lr or 0.1
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 1), pct_start=0.15)
        return opt, sched
    net = model.module if hasattr(model, "module") else model
    lr = a.lr or 1e-4
    opt = torch.optim.Adam([{"params": net.weight_parameters(), "lr": lr},
                            {"params": [p for p in net.scale_parameters() if p.requires_grad], "lr": a.scale_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    return opt, sched


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(parse(argv))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(a) -> int:
    rank, world = dist_setup()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quiet = a.no_progress or rank != 0
    out = _writable_dir(a.out, "--out")
    if a.export:
        _writable_dir(Path(a.export).parent, "--export")
    train_ds, num_classes, in_ch, hw = data_mod.load(a.data, True, a.limit_train, a.data_dir, a.image_size)
    test_ds, _, _, _ = data_mod.load(a.data, False, a.limit_test, a.data_dir, a.image_size)
    input_shape = (in_ch, *hw)
    small = a.data == "fashion-mnist"
    fp32 = models.build(a.model, num_classes, in_ch)
    init_state = load_init(a.init, fp32, a) if a.init else None
    model: torch.nn.Module = fp32
    teacher = copy.deepcopy(fp32).eval().requires_grad_(False) if a.distill else None
    if a.mode != "fp32":
        model = build_net(a, fp32, input_shape)
    ckpt_path = out / "checkpoint.pt"
    metrics = {"model": a.model, "data": a.data, "mode": a.mode, "tile": a.tile,
               "granularity": a.granularity, "balance": a.balance, "requant": a.requant, "epochs": a.epochs,
               "batch_size": a.batch_size, "world_size": world, "train_samples": len(train_ds),
               "test_samples": len(test_ds), "init": a.init, "history": []}
    start_epoch = 0
    resumed = None
    if a.resume and ckpt_path.is_file():
        resumed = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if resumed.get("mode") != a.mode:
            raise UsageError(f"--resume: {ckpt_path} is a {resumed.get('mode')} run, not {a.mode}")
    elif a.resume and a.mode != "fp32" and not a.init:
        raise UsageError(f"--resume: no {ckpt_path}, and no --init to start from")
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        start_epoch = resumed["epoch"]
        metrics = resumed["metrics"]
    elif init_state is not None:                 # a quantized run: its scales, no calibration
        load_state(model, init_state, f"--init {a.init}")
    elif a.mode != "fp32":
        calib = DataLoader(train_ds, batch_size=a.batch_size, shuffle=False)
        batches = [x for _, (x, _) in zip(range(a.calib_batches), calib, strict=False)]
        if not batches:
            raise UsageError("no calibration data")
        t0 = time.time()
        model.calibrate(batches, a.calib)
        metrics["calib_seconds"] = time.time() - t0
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    train_epochs = a.epochs if a.mode in ("fp32", "qat") else 0
    sampler = DistributedSampler(train_ds, world, rank, shuffle=True, seed=a.seed) if world > 1 else None
    loader = DataLoader(train_ds, batch_size=a.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=a.workers, drop_last=len(train_ds) >= a.batch_size * world)
    test_loader = DataLoader(test_ds, batch_size=256, shuffle=False, num_workers=a.workers)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    steps = train_epochs * len(loader)
    opt, sched = make_optimizer(a, train_model, steps)
    if resumed is not None and "optimizer" in resumed:
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
    t_start = time.time()
    for epoch in range(start_epoch, train_epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.time()
        loss, acc = train_epoch(train_model, loader, opt, sched, device, small, quiet,
                                f"{a.mode} epoch {epoch + 1}/{train_epochs}", teacher, a.distill)
        rec = {"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "train_seconds": time.time() - t0}
        if rank == 0:
            t1 = time.time()
            rec["test_acc"] = evaluate(model, test_loader, device, quiet, "test")
            rec["eval_seconds"] = time.time() - t1
            metrics["history"].append(rec)
            print(json.dumps(rec), flush=True)
            torch.save({"mode": a.mode, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "metrics": metrics, "args": vars(a)}, ckpt_path)
        _barrier(world)
    metrics["train_seconds_total"] = time.time() - t_start
    if rank == 0:
        t1 = time.time()
        if metrics["history"] and metrics["history"][-1]["epoch"] == train_epochs:
            metrics["test_acc"] = metrics["history"][-1]["test_acc"]   # the model has not changed since
        else:
            metrics["test_acc"] = evaluate(model, test_loader, device, quiet, "test")
        metrics["eval_seconds"] = time.time() - t1
        torch.save({"mode": a.mode, "model": model.state_dict(), "args": vars(a),
                    "arch": a.model, "num_classes": num_classes, "in_channels": in_ch}, out / "model.pt")
        if a.export or a.eval_int:
            from .export import evaluate_int, export

            mdir = Path(a.export) if a.export else out / "model"
            xs = torch.stack([test_ds[i][0] for i in range(min(a.export_samples, len(test_ds)))])
            metrics.update(export(model.cpu(), mdir, xs))
            metrics["export"] = str(mdir)
            if a.eval_int:
                t1 = time.time()
                r = evaluate_int(model, mdir, test_loader, quiet)
                r["int_eval_seconds"] = time.time() - t1
                metrics.update(r)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        summary = {k: metrics[k] for k in ("mode", "tile", "granularity", "test_acc", "int_test_acc")
                   if k in metrics}
        print(json.dumps(summary), flush=True)
    _barrier(world)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0
