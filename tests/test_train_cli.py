"""The training CLI: bad input (one line, exit 2), a tiny end-to-end run with export, integer
evaluation and resume, and (slow) DDP with torchrun on 2 CPU processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train import cli
from wino_gen.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
HAVE_FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()


def main(argv):
    """The CLI as ``python -m train`` runs it: bad input is exit 2 with one line."""
    return run_cli(cli.main, argv)


@pytest.mark.parametrize("args, needle", [
    (["--model", "vgg99"], "unknown model"),
    (["--tile", "3"], "--tile: 3"),
    (["--balance", "even"], "--balance: 'even'"),
    (["--distill", "1.5"], "--distill: must be <= 1"),
    (["--distill", "0.5", "--mode", "fp32"], "for --mode qat only"),
    (["--epochs", "-1"], "--epochs: must be >= 0"),
    (["--mode", "magic"], "--mode"),
    (["--out", "/proc/nope/run"], "not writable"),
    (["--data-dir", "/nonexistent"], "apt-get install dataset-fashion-mnist"),
    (["--mode", "qat"], "needs --init"),
    (["--mode", "qat", "--init", str(ROOT / "README.md")], "not a torch checkpoint"),
    (["--bogus-flag"], "unrecognized"),
])
def test_bad_input_one_line_exit_2(args, needle, tmp_path, capsys):
    argv = ["--out", str(tmp_path / "r"), "--limit-train", "8", "--limit-test", "8"] + args
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err


def test_bad_input_via_module_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "train", "--tile", "3", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


@pytest.mark.skipif(not HAVE_FASHION, reason="dataset-fashion-mnist not installed")
def test_tiny_run_fp32_then_qat_export_eval_int_resume(tmp_path, capsys):
    common = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--no-progress",
              "--threads", "1", "--calib-batches", "1"]
    fp = tmp_path / "fp32"
    assert main(["--mode", "fp32", "--epochs", "1", "--out", str(fp)] + common) == 0
    m = json.loads((fp / "metrics.json").read_text())
    assert m["mode"] == "fp32" and len(m["history"]) == 1 and 0 <= m["test_acc"] <= 1
    q = tmp_path / "qat"
    argv = ["--mode", "qat", "--tile", "4", "--granularity", "tap", "--epochs", "1", "--init",
            str(fp / "model.pt"), "--out", str(q), "--export", str(q / "model"), "--eval-int"] + common
    assert main(argv) == 0
    m = json.loads((q / "metrics.json").read_text())
    assert m["fake_vs_golden_mismatches"] == 0
    assert m["int_test_acc"] == m["test_acc"]
    from wino_gen import check
    assert check.main([str(q / "model")]) == 0
    # resume continues an interrupted run; a finished one is extended with --init, not --resume
    capsys.readouterr()
    argv = ["--mode", "qat", "--tile", "4", "--granularity", "tap", "--epochs", "2", "--resume",
            "--out", str(q)] + common
    assert main(argv) == 2
    assert "its schedule ends at epoch 1" in capsys.readouterr().err
    # --init a quantized run: fine-tune further with a new schedule, its scales, no calibration
    q2 = tmp_path / "qat2"
    argv = ["--mode", "qat", "--tile", "4", "--granularity", "tap", "--epochs", "0", "--init",
            str(q / "model.pt"), "--out", str(q2)] + common
    assert main(argv) == 0
    m2 = json.loads((q2 / "metrics.json").read_text())
    assert m2["test_acc"] == m["test_acc"] and "calib_seconds" not in m2
    capsys.readouterr()
    bad = ["--mode", "qat", "--tile", "6", "--granularity", "tap", "--init", str(q / "model.pt"), "--out", str(q2)]
    assert main(bad + common) == 2
    assert "trained with --tile 4, not 6" in capsys.readouterr().err
    assert main(["--mode", "ptq-winograd", "--init", str(q / "model.pt"), "--out", str(q2)] + common) == 2
    assert "an FP32 one is needed" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION, reason="dataset-fashion-mnist not installed")
def test_ddp_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "train", "--mode", "fp32", "--epochs", "1", "--limit-train", "128", "--limit-test", "32",
           "--batch-size", "32", "--threads", "1", "--no-progress", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and len(m["history"]) == 1


def test_distill_loss_is_the_weighted_mix():
    import torch

    from train.cli import distill_loss

    torch.manual_seed(0)
    out, t_out, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(out, y)
    assert torch.allclose(distill_loss(out, y, t_out, 0.0), ce)
    assert distill_loss(out, y, out, 1.0).abs() < 1e-6          # no loss against itself
    assert distill_loss(out, y, t_out, 1.0) > 0
