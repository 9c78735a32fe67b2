"""``python -m train`` on bad input (issue 10): nothing is replaced that is not a run folder or a
model dir, every number is checked before any work, files are written whole, ``--resume`` takes
only the same run and repeats it bit for bit, a broken data file or checkpoint is one line, a
failed or interrupted run leaves no empty folder, long steps show progress on a terminal."""

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train import cli
from train import data as data_mod
from wino_gen.errors import UsageError, run_cli

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                                   reason="dataset-fashion-mnist not installed")
TINY = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--threads", "1", "--no-progress"]


def train(argv, capsys=None):
    """``python -m train ARGV`` in process: (exit code, stderr lines)."""
    if capsys is not None:
        capsys.readouterr()
    rc = run_cli(cli.main, TINY + argv)
    err = capsys.readouterr().err.strip().splitlines() if capsys is not None else []
    return rc, err


def one_line(capsys, argv, needle):
    rc, err = train(argv, capsys)
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    return err[0]


def tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- data loss -------------------------------------------------------------------------------

@pytest.fixture
def fp32_init(tmp_path_factory):
    """A model.pt to start ptq/qat from; the data-loss checks all refuse before reading it."""
    p = tmp_path_factory.mktemp("init") / "model.pt"
    torch.save({"mode": "fp32", "model": {}}, p)
    return p


def test_export_over_other_files_is_refused_before_training(tmp_path, capsys, fp32_init):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"mine")
    q = ["--mode", "ptq-winograd", "--init", str(fp32_init)]
    one_line(capsys, q + ["--out", str(tmp_path / "r"), "--export", str(other)], "is not a model dir")
    assert tree(other) == {"a.jpg": b"mine"} and not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("x")
    one_line(capsys, q + ["--out", str(tmp_path / "r"), "--export", str(tmp_path / "file")], "not a folder")


@pytest.mark.parametrize("out, export", [("run", "run"), ("runs/x", "runs"), ("run", "run/checkpoint.pt")])
def test_export_onto_the_run_folder_is_refused(tmp_path, capsys, fp32_init, out, export):
    (tmp_path / "runs" / "sibling").mkdir(parents=True)
    (tmp_path / "runs" / "sibling" / "metrics.json").write_text("{}")
    for run in (tmp_path / "run", tmp_path / "runs" / "x"):
        run.mkdir(exist_ok=True)
        (run / "checkpoint.pt").write_bytes(b"ck")
        (run / "model.pt").write_bytes(b"m")
    before = tree(tmp_path)
    one_line(capsys, ["--mode", "ptq-winograd", "--init", str(fp32_init), "--out", str(tmp_path / out),
                      "--export", str(tmp_path / export)], "--export")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_out_that_is_not_a_run_folder_is_refused(tmp_path, capsys, resume):
    (tmp_path / "notes.txt").write_text("keep")
    one_line(capsys, ["--out", str(tmp_path)] + resume, "is not a run folder")
    assert tree(tmp_path) == {"notes.txt": b"keep"}


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    cli.save({"epoch": 1}, path)

    def dies_midway(obj, f):
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        cli.save({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1} and [p.name for p in tmp_path.iterdir()] == [path.name]


# -- numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("--lr", "0"), ("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--scale-lr", "-1"), ("--scale-lr", "0"),
    ("--export-samples", "0"), ("--epochs", "1.5"), ("--epochs", "-1"), ("--batch-size", "0"), ("--seed", "-1"),
    ("--max-tap-shift", "17"), ("--distill", "nan"), ("--distill", "-0.1"), ("--calib-batches", "0"),
    ("--limit-train", "0"), ("--limit-test", "-3"), ("--threads", "0"), ("--workers", "-1"),
    ("--image-size", "0"), ("--tile", "four"),
])
def test_bad_numbers_are_refused_before_any_work(tmp_path, capsys, flag, value):
    one_line(capsys, ["--out", str(tmp_path / "r"), flag, value], flag)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("mode, lr, want", [("fp32", None, 0.1), ("qat", None, 1e-4), ("fp32", 0.05, 0.05)])
def test_lr_default_is_per_mode_and_a_given_lr_is_used(mode, lr, want):
    from train.convert import convert
    from train.models import resnet20

    model = resnet20(10, 1)
    if mode == "qat":
        model = convert(model, input_shape=(1, 8, 8), tile=2)
    opt, _ = cli.make_optimizer(argparse.Namespace(mode=mode, lr=lr, scale_lr=1e-3), model, 10)
    group = opt.param_groups[0]
    assert group.get("max_lr", group["lr"]) == pytest.approx(want)      # one-cycle peaks at --lr


# -- resume ----------------------------------------------------------------------------------

def _checkpoint(out: Path, argv) -> Path:
    """A checkpoint as a run with ``argv`` writes it, without the training."""
    a = cli.parse(argv)
    out.mkdir(parents=True, exist_ok=True)
    cli.save({"mode": a.mode, "epoch": 1, "model": {}, "optimizer": {}, "scheduler": {},
              "metrics": {"world_size": 1}, "args": vars(a), "rng": {}}, out / "checkpoint.pt")
    return out / "checkpoint.pt"


@pytest.mark.parametrize("change, needle", [
    (["--tile", "6"], "--tile 4, not 6"), (["--granularity", "layer"], "--granularity tap, not layer"),
    (["--balance", "none"], "--balance smooth, not none"), (["--requant", "fixed"], "--requant pow2, not fixed"),
    (["--batch-size", "16"], "--batch-size 32, not 16"), (["--seed", "3"], "--seed 0, not 3"),
    (["--epochs", "5"], "its schedule ends at epoch 2"), (["--model", "resnet18"], "--model resnet20"),
])
def test_resume_takes_only_the_same_run(tmp_path, capsys, fp32_init, change, needle):
    base = ["--mode", "qat", "--tile", "4", "--granularity", "tap", "--epochs", "2", "--init", str(fp32_init),
            "--out", str(tmp_path / "q")]
    _checkpoint(tmp_path / "q", TINY + base)
    one_line(capsys, base + ["--resume"] + change, needle)


@pytest.mark.parametrize("content", [b"", b"garbage\n" * 10, "truncate"])
def test_broken_checkpoint_is_one_line(tmp_path, capsys, content):
    ck = _checkpoint(tmp_path / "r", TINY + ["--out", str(tmp_path / "r")])
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    one_line(capsys, ["--out", str(tmp_path / "r"), "--resume"], "--resume")


def test_foreign_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    torch.save({"model": {}}, tmp_path / "r" / "checkpoint.pt")
    one_line(capsys, ["--out", str(tmp_path / "r"), "--resume"], "not a checkpoint of this version")


def _interrupt_in_epoch(monkeypatch, n):
    """Make the ``n``-th training epoch raise KeyboardInterrupt (as Ctrl-C would)."""
    calls, real = [], cli.train_epoch

    def train_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "train_epoch", train_epoch)


def _result(out: Path):
    m = json.loads((out / "metrics.json").read_text())
    hist = [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in m["history"]]
    return torch.load(out / "model.pt", weights_only=False)["model"], hist, m["test_acc"]


@needs_fashion
@pytest.mark.parametrize("mode", ["fp32", "qat"])
def test_resumed_run_equals_the_uninterrupted_one(tmp_path, capsys, monkeypatch, mode):
    """fp32 (SGD, one-cycle) and qat (Adam, cosine, scales) for 2 epochs, straight and
    interrupted in epoch 2 then resumed: the same weights and metrics, bit for bit."""
    argv = ["--epochs", "2"]
    if mode == "qat":
        assert train(["--epochs", "0", "--out", str(tmp_path / "fp")])[0] == 0
        argv += ["--mode", "qat", "--tile", "2", "--calib-batches", "1", "--init", str(tmp_path / "fp" / "model.pt"),
                 "--limit-train", "32", "--limit-test", "16"]
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert train(argv + ["--out", str(straight)])[0] == 0
    with monkeypatch.context() as mp:
        _interrupt_in_epoch(mp, 2)
        assert train(argv + ["--out", str(cut)], capsys)[0] == 130
    assert sorted(p.name for p in cut.iterdir()) == ["checkpoint.pt"]      # kept: it can be resumed
    assert train(argv + ["--out", str(cut), "--resume"])[0] == 0
    (w1, h1, acc1), (w2, h2, acc2) = _result(straight), _result(cut)
    assert h1 == h2 and acc1 == acc2 and [e["epoch"] for e in h2] == [1, 2]
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    one_line(capsys, argv + ["--out", str(straight), "--resume", "--epochs", "3"],
             "to train further, start a new run with --init")


# -- environment and partial output ----------------------------------------------------------

@needs_fashion
def test_truncated_idx_file_is_one_line_naming_it(tmp_path, capsys):
    for f in FASHION.iterdir():
        shutil.copy(f, tmp_path / f.name)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])
    err = one_line(capsys, ["--out", str(tmp_path / "r"), "--data-dir", str(tmp_path)], str(images))
    assert "cannot be read" in err and not (tmp_path / "r").exists()


def test_idx_header_is_checked_before_reading(tmp_path):
    bad = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\0\0\x08\x03" + (10**6).to_bytes(4, "big") * 3)
    with pytest.raises(UsageError, match="more than 1 GiB"):
        data_mod._read_idx(bad)
    with gzip.open(bad, "wb") as f:
        f.write(b"\0\0\x08\x01" + (10).to_bytes(4, "big") + b"\1" * 9)
    with pytest.raises(UsageError, match=r"says \[10\] \(10 bytes\), file holds 9 bytes"):
        data_mod._read_idx(bad)


@pytest.mark.parametrize("stop, rc", [(UsageError("no data"), 2), (KeyboardInterrupt(), 130)])
def test_failed_run_leaves_no_folder(tmp_path, capsys, monkeypatch, stop, rc):
    def load(*args, **kwargs):
        raise stop

    monkeypatch.setattr(data_mod, "load", load)
    assert train(["--out", str(tmp_path / "a" / "b" / "run")], capsys)[0] == rc
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()                # a folder the user made stays
    assert train(["--out", str(tmp_path / "mine")], capsys)[0] == rc
    assert (tmp_path / "mine").is_dir()


# -- progress, export over a model dir, help ---------------------------------------------------

@needs_fashion
@pytest.mark.parametrize("no_progress", [False, True])
def test_ptq_export_replaces_a_model_dir_and_shows_progress(tmp_path, capsys, monkeypatch, no_progress):
    assert train(["--epochs", "0", "--out", str(tmp_path / "fp")])[0] == 0
    mdir = tmp_path / "model"
    shutil.copytree(ROOT / "examples" / "tiny", mdir)             # an old model dir: replaced
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["--mode", "ptq-winograd", "--tile", "2", "--calib-batches", "1", "--init",
            str(tmp_path / "fp" / "model.pt"), "--out", str(tmp_path / "p"), "--export", str(mdir), "--eval-int",
            "--export-samples", "2", "--limit-test", "8"]
    capsys.readouterr()
    rc = run_cli(cli.main, [t for t in TINY if no_progress or t != "--no-progress"] + argv)
    err = capsys.readouterr().err
    assert rc == 0
    from wino_gen import format as wformat
    assert wformat.load_model(mdir).manifest["model"] == "resnet20"
    if no_progress:
        assert err == ""
    else:
        assert "calibrating" in err and "exporting" in err and "eval-int" in err


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    text = capsys.readouterr().out
    blocks = text.split("\noptions:\n")[1].split("\n  -")
    no_default = ("-h,", "-out ", "-init", "-resume", "-export ", "-eval-int", "-no-progress")
    for b in blocks:
        b = " ".join(b.split())
        assert b.count("default") == (0 if b.startswith(no_default) else 1), b


def test_entry_point_imports_torch_inside_run_cli():
    """Ctrl-C during the seconds ``import torch`` takes must be ``interrupted``, exit 130: the
    entry point reaches run_cli before it imports torch."""
    code = "import sys, train.__main__; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "False"
