"""The training harness: one CLI for the four modes.

    python -m train --model resnet20 --data fashion-mnist --mode fp32 --epochs 4 --out runs/fp32
    python -m train --model resnet20 --data fashion-mnist --mode ptq-winograd --tile 4 \\
        --init runs/fp32/model.pt --out runs/ptq4 --export runs/ptq4/model --eval-int
    python -m train ... --mode qat --tile 4 --granularity tap --epochs 1 --init runs/fp32/model.pt ...
    torchrun --nproc_per_node 2 -m train ...          (DDP; gloo on CPU, nccl on GPUs)

Modes: ``fp32`` trains the plain model; ``ptq-direct`` converts with int8 direct convolutions
everywhere and only calibrates; ``ptq-winograd`` converts to full-int8 Winograd and only
calibrates; ``qat`` converts, calibrates and fine-tunes (weights and scales) from ``--init``.
Bad input ends with one line on stderr and exit status 2, before any training; Ctrl-C with
``interrupted`` and exit 130. Outputs are replaced only when they are of their kind (a run
folder, a model dir), files are written whole or not at all, and ``--resume`` continues an
interrupted run exactly as if it had not stopped.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from wino_gen import errors, progress, safeio
from wino_gen import format as wformat
from wino_gen.errors import ArgumentParser, UsageError
from wino_gen.winograd import BALANCES

from . import data as data_mod
from . import models
from .convert import QuantNet, convert
from .winograd_conv import WEIGHTS

MODES = ("fp32", "ptq-direct", "ptq-winograd", "qat")


def default_lr(mode: str) -> float:
    """The learning rate when ``--lr`` is not given: SGD for fp32, Adam for the quantized modes."""
    return 0.1 if mode == "fp32" else 1e-4


def parse(argv):
    pos, pos_open = errors.number(int, lo=1), errors.number(float, lo=0, lo_open=True)
    ap = ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20", help=f"one of {', '.join(models.MODELS)}")
    ap.add_argument("--data", default="fashion-mnist", help=f"one of {', '.join(data_mod.DATASETS)}")
    ap.add_argument("--data-dir", default=None, help="IDX folder (fashion-mnist; default: the Debian package's) "
                    "or ImageFolder root")
    ap.add_argument("--image-size", type=pos, default=224, help="imagefolder crop size")
    ap.add_argument("--mode", default="fp32", help=f"one of {', '.join(MODES)}")
    ap.add_argument("--tile", type=errors.number(int), default=4, help="Winograd output tile m: 2, 4, 6")
    ap.add_argument("--granularity", default="layer", help="layer | tap")
    ap.add_argument("--balance", default="smooth",
                    help="integer Winograd forms: smooth (rows balanced for one scale per layer) | none")
    ap.add_argument("--requant", default="pow2", help="pow2 | fixed")
    ap.add_argument("--weights", default="winograd",
                    help="Winograd weights (ptq-winograd, qat): winograd (int8 U quantized directly) | spatial "
                         "(int8 3x3 kernels, U = golden's transform of them) (default: %(default)s)")
    ap.add_argument("--max-tap-shift", type=errors.number(int, lo=0, hi=16), default=12,
                    help="tap mode: largest m_align, 0..16 (F6 with --balance none needs ~12, smooth forms <= 4)")
    ap.add_argument("--epochs", type=errors.number(int, lo=0), default=1,
                    help="training epochs (fp32, qat; the ptq modes only calibrate)")
    ap.add_argument("--batch-size", type=pos, default=128, help="training batch size (per process under torchrun)")
    ap.add_argument("--lr", type=pos_open, default=None,
                    help=f"learning rate (default: {default_lr('fp32')} for fp32, SGD; "
                         f"{default_lr('qat')} for qat, Adam)")
    ap.add_argument("--scale-lr", type=pos_open, default=1e-3, help="Adam lr of the log2 scales (qat)")
    ap.add_argument("--init", default=None, help="FP32 checkpoint to start ptq/qat from, or a ptq-winograd/qat "
                    "model.pt of the same model, tile and scales to fine-tune further (qat)")
    ap.add_argument("--calib-batches", type=pos, default=4, help="training batches that calibrate the scales")
    ap.add_argument("--calib", default="omse", help="scale calibration: omse (output-weighted MSE) | mse | max")
    ap.add_argument("--limit-train", type=pos, default=None, help="use the first N training samples (default: all)")
    ap.add_argument("--limit-test", type=pos, default=None, help="use the first N test samples (default: all)")
    ap.add_argument("--out", required=True, help="run folder (checkpoint.pt, model.pt, metrics.json)")
    ap.add_argument("--distill", type=errors.number(float, lo=0, hi=1), default=0.0,
                    help="qat: weight in 0..1 of a distillation loss from the FP32 --init network (default: 0, off)")
    ap.add_argument("--resume", action="store_true",
                    help="continue OUT/checkpoint.pt, an interrupted run with the same flags")
    ap.add_argument("--export", default=None, help="write the integer model dir here (replaces only a model dir)")
    ap.add_argument("--export-samples", type=pos, default=4, help="test images whose activations the export keeps")
    ap.add_argument("--eval-int", action="store_true", help="test accuracy of the exported integer network")
    ap.add_argument("--threads", type=pos, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--workers", type=errors.number(int, lo=0), default=0,
                    help="data loader worker processes (default: 0, load in the main process)")
    ap.add_argument("--seed", type=errors.number(int, lo=0, hi=2**32 - 1), default=0,
                    help="seed of every random stream (weights, shuffle, augmentation; default: 0)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (there are none off a terminal)")
    a = ap.parse_args(argv)
    if a.model not in models.MODELS:
        raise UsageError(f"--model: unknown model {a.model!r}; allowed: {', '.join(models.MODELS)}")
    if a.data not in data_mod.DATASETS:
        raise UsageError(f"--data: unknown data set {a.data!r}; allowed: {', '.join(data_mod.DATASETS)}")
    if a.mode not in MODES:
        raise UsageError(f"--mode: {a.mode!r}; allowed: {', '.join(MODES)}")
    if a.distill and a.mode != "qat":
        raise UsageError(f"--distill: {a.distill}; a weight in 0..1, for --mode qat only")
    if a.distill and not a.init:
        raise UsageError("--distill needs --init FP32_CHECKPOINT (the teacher), also with --resume")
    if a.tile not in (2, 4, 6):
        raise UsageError(f"--tile: {a.tile} is not supported; allowed: 2, 4, 6")
    if a.granularity not in ("layer", "tap"):
        raise UsageError(f"--granularity: {a.granularity!r}; allowed: layer, tap")
    if a.balance not in BALANCES:
        raise UsageError(f"--balance: {a.balance!r}; allowed: {', '.join(BALANCES)}")
    if a.requant not in ("pow2", "fixed"):
        raise UsageError(f"--requant: {a.requant!r}; allowed: pow2, fixed")
    if a.weights not in WEIGHTS:
        raise UsageError(f"--weights: {a.weights!r}; allowed: {', '.join(WEIGHTS)}")
    if a.weights != "winograd" and a.mode not in ("ptq-winograd", "qat"):
        raise UsageError(f"--weights {a.weights}: for --mode ptq-winograd or qat only (not {a.mode})")
    if a.calib not in ("omse", "mse", "max"):
        raise UsageError(f"--calib: {a.calib!r}; allowed: omse, mse, max")
    if a.mode != "fp32" and not a.init and not a.resume:
        raise UsageError(f"--mode {a.mode} needs --init FP32_CHECKPOINT (train one with --mode fp32)")
    if a.init and not Path(a.init).is_file():
        raise UsageError(f"--init: {a.init} does not exist")
    if (a.export or a.eval_int) and a.mode == "fp32":
        raise UsageError("--export/--eval-int need a quantized mode (ptq-direct, ptq-winograd, qat)")
    return a


# -- output folders -----------------------------------------------------------------------

RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.json")


def is_run_dir(path: Path) -> bool:
    """A folder a run wrote: it holds one of the files a run writes."""
    return any((path / f).is_file() for f in RUN_FILES)


def check_outputs(a) -> tuple[Path, Path | None]:
    """Refuse, before any work, outputs that would replace what is not a run's: ``--out`` must
    be absent, empty or a run folder; the model dir (``--export``, or OUT/model for
    ``--eval-int``) absent, empty or a model dir, and neither the run folder, nor above it,
    nor one of its files. Returns (run folder, model dir or None)."""
    out = safeio.check_replaceable_dir(a.out, "--out", is_run_dir, "run folder (checkpoint.pt, metrics.json)")
    if not (a.export or a.eval_int):
        return out, None
    mdir = Path(a.export) if a.export else out / "model"
    o, m = out.resolve(), mdir.resolve()
    if m == o or m in o.parents:
        raise UsageError(f"--export {mdir}: is or contains the run folder --out {out}; "
                         "export beside it or inside it (e.g. OUT/model)")
    if m.parent == o and m.name in RUN_FILES:
        raise UsageError(f"--export {mdir}: is the run's own {m.name}")
    safeio.check_replaceable_dir(mdir, "--export", wformat.is_model_dir, "model dir")
    return out, mdir


def make_dirs(path: Path, flag: str) -> list[Path]:
    """Create ``path`` (and missing parents) and probe that it takes files; returns the folders
    created, deepest first, so that a failed run can take them away again."""
    made = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        remove_empty(made)
        raise UsageError(f"{flag} {path}: not writable ({e.strerror or e})") from None
    return made


def remove_empty(dirs: list[Path]) -> None:
    """Remove the folders a run created, deepest first, while they are empty (a checkpoint
    written before a failure stays, so the run can be resumed)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def save(obj, path: Path) -> None:
    """``torch.save`` that never leaves a half-written file (a kill mid-save keeps the old one)."""
    with safeio.atomic_file(path, "--out") as tmp:
        torch.save(obj, tmp)


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

QUANT_KEYS = ("model", "tile", "granularity", "balance", "requant", "max_tap_shift", "weights")


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
                  balance=a.balance, weights=a.weights)
    for _, m in net.named_qlayers():   # per-layer input scales serve the ablation only
        if hasattr(m, "s_x"):
            m.s_x.log2.requires_grad_(False)
    return net


# -- train / eval -------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, loader, device, show=False, desc="eval"):
    model.eval()
    correct = total = 0
    for x, y in progress.bar(loader, desc, show, len(loader)):
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


def train_epoch(model, loader, opt, sched, device, small_aug: bool, show: bool, desc: str,
                teacher=None, distill: float = 0.0):
    model.train()
    tot_loss = correct = total = 0
    for x, y in progress.bar(loader, desc, show, len(loader)):
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
        lr = default_lr(a.mode) if a.lr is None else a.lr
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 1), pct_start=0.15)
        return opt, sched
    net = model.module if hasattr(model, "module") else model
    lr = default_lr(a.mode) if a.lr is None else a.lr
    opt = torch.optim.Adam([{"params": net.weight_parameters(), "lr": lr},
                            {"params": [p for p in net.scale_parameters() if p.requires_grad], "lr": a.scale_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    return opt, sched


# -- resume -------------------------------------------------------------------------------

# The flags that define a run: a resumed run must have them all equal (--init only when given:
# the checkpoint holds its state).
RUN_KEYS = ("model", "data", "image_size", "limit_train", "limit_test", "mode", "tile", "granularity", "balance",
            "requant", "max_tap_shift", "weights", "calib", "calib_batches", "init", "distill", "epochs", "batch_size",
            "lr", "scale_lr", "seed")
CKPT_KEYS = ("mode", "epoch", "model", "optimizer", "scheduler", "metrics", "args", "rng")


def load_checkpoint(path: Path, a, world: int) -> dict:
    """``--resume``: OUT/checkpoint.pt, whole, of a run with the same defining flags; anything
    else is one line naming the file or the flag that differs."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:       # noqa: BLE001 - a truncated or foreign file is the same user error
        raise UsageError(f"--resume: {path}: not a readable checkpoint ({type(e).__name__})") from None
    missing = [k for k in CKPT_KEYS if k not in ck] if isinstance(ck, dict) else list(CKPT_KEYS)
    if missing:
        raise UsageError(f"--resume: {path}: not a checkpoint of this version of python -m train "
                         f"(no {', '.join(missing)})")
    was = ck["args"]
    for k in RUN_KEYS:
        now = getattr(a, k)
        if k in was and was[k] != now and not (k == "init" and now is None):
            hint = (f"; its schedule ends at epoch {was[k]}: to train further, start a new run with "
                    f"--init {path.parent / 'model.pt'}") if k == "epochs" else ""
            raise UsageError(f"--resume: {path} is a run with --{k.replace('_', '-')} {was[k]}, not {now}{hint}")
    if ck["metrics"].get("world_size", 1) != world:
        raise UsageError(f"--resume: {path} ran on {ck['metrics'].get('world_size')} processes, not {world}")
    return ck


def rng_state(loader_gen: torch.Generator) -> dict:
    """Every random stream training draws from, so a resumed run repeats the uninterrupted one:
    torch (augmentation, dropout), numpy and python (image folders), the loader's shuffle."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "loader": loader_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    loader_gen.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> torch.Generator:
    """Seed every random stream; returns the data loader's own generator."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def resume_into(ck: dict, model, opt, sched, path: Path) -> None:
    load_state(model, ck["model"], f"--resume {path}")
    try:
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise UsageError(f"--resume {path}: optimizer state does not fit ({type(e).__name__})") from None


# -- the run ------------------------------------------------------------------------------

def main(argv=None) -> int:
    a = parse(list(sys.argv[1:] if argv is None else argv))
    out, mdir = check_outputs(a)
    made = make_dirs(out, "--out")
    try:
        return run(a, out, mdir)
    except BaseException:          # a failed or interrupted run leaves no empty run folder behind
        remove_empty(made)
        raise


def run(a, out: Path, mdir: Path | None) -> int:
    rank, world = dist_setup()
    loader_gen = seed_all(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    show = progress.wanted(a.no_progress) and rank == 0
    ckpt_path = out / "checkpoint.pt"
    resumed = load_checkpoint(ckpt_path, a, world) if a.resume and ckpt_path.is_file() else None
    if a.resume and resumed is None and a.mode != "fp32" and not a.init:
        raise UsageError(f"--resume: no {ckpt_path}, and no --init to start from")
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
    metrics = {"model": a.model, "data": a.data, "mode": a.mode, "tile": a.tile,
               "granularity": a.granularity, "balance": a.balance, "requant": a.requant, "weights": a.weights,
               "epochs": a.epochs, "batch_size": a.batch_size, "world_size": world, "train_samples": len(train_ds),
               "test_samples": len(test_ds), "init": a.init, "history": []}
    start_epoch = 0
    if resumed is not None:
        start_epoch, metrics = resumed["epoch"], resumed["metrics"]
    elif init_state is not None:                 # a quantized run: its scales, no calibration
        load_state(model, init_state, f"--init {a.init}")
    elif a.mode != "fp32":
        calib = DataLoader(train_ds, batch_size=a.batch_size, shuffle=False)
        t0 = time.time()
        with progress.step(f"calibrating on {a.calib_batches} batches", show):
            model.calibrate([x for _, (x, _) in zip(range(a.calib_batches), calib, strict=False)], a.calib)
        metrics["calib_seconds"] = time.time() - t0
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    train_epochs = a.epochs if a.mode in ("fp32", "qat") else 0
    sampler = DistributedSampler(train_ds, world, rank, shuffle=True, seed=a.seed) if world > 1 else None
    loader = DataLoader(train_ds, batch_size=a.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=a.workers, drop_last=len(train_ds) >= a.batch_size * world,
                        generator=loader_gen)
    test_loader = DataLoader(test_ds, batch_size=256, shuffle=False, num_workers=a.workers)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    opt, sched = make_optimizer(a, train_model, train_epochs * len(loader))
    if resumed is not None:
        resume_into(resumed, model, opt, sched, ckpt_path)
        set_rng_state(resumed["rng"], loader_gen)
    t_start = time.time()
    for epoch in range(start_epoch, train_epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.time()
        loss, acc = train_epoch(train_model, loader, opt, sched, device, small, show,
                                f"{a.mode} epoch {epoch + 1}/{train_epochs}", teacher, a.distill)
        rec = {"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "train_seconds": time.time() - t0}
        if rank == 0:
            t1 = time.time()
            rec["test_acc"] = evaluate(model, test_loader, device, show, "test")
            rec["eval_seconds"] = time.time() - t1
            metrics["history"].append(rec)
            print(json.dumps(rec), flush=True)
            save({"mode": a.mode, "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "metrics": metrics, "args": vars(a),
                  "rng": rng_state(loader_gen)}, ckpt_path)
        _barrier(world)
    metrics["train_seconds_total"] = time.time() - t_start
    if rank == 0:
        finish(a, model, metrics, out, mdir, test_ds, test_loader, device, show, train_epochs,
               {"arch": a.model, "num_classes": num_classes, "in_channels": in_ch})
    _barrier(world)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def finish(a, model, metrics, out, mdir, test_ds, test_loader, device, show, train_epochs, arch) -> None:
    """Rank 0 after training: final accuracy, model.pt, the export and its integer accuracy,
    metrics.json last (a run folder with metrics.json is a finished run)."""
    t1 = time.time()
    if metrics["history"] and metrics["history"][-1]["epoch"] == train_epochs:
        metrics["test_acc"] = metrics["history"][-1]["test_acc"]   # the model has not changed since
    else:
        metrics["test_acc"] = evaluate(model, test_loader, device, show, "test")
    metrics["eval_seconds"] = time.time() - t1
    save({"mode": a.mode, "model": model.state_dict(), "args": vars(a), **arch}, out / "model.pt")
    if mdir is not None:
        from .export import evaluate_int, export

        xs = torch.stack([test_ds[i][0] for i in range(min(a.export_samples, len(test_ds)))])
        with progress.step(f"exporting {safeio.printable(str(mdir))}", show):
            metrics.update(export(model.cpu(), mdir, xs))
        metrics["export"] = str(mdir)
        if a.eval_int:
            t1 = time.time()
            r = evaluate_int(model, mdir, test_loader, show)
            r["int_eval_seconds"] = time.time() - t1
            metrics.update(r)
    safeio.atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n", "--out")
    summary = {k: metrics[k] for k in ("mode", "tile", "granularity", "test_acc", "int_test_acc") if k in metrics}
    print(json.dumps(summary), flush=True)
