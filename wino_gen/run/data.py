"""The inputs ``wino_gen run`` feeds a board: int8 network inputs from an ``.npy`` file (with
labels from another), or the Fashion-MNIST test set from Debian's ``dataset-fashion-mnist``
(IDX files, read directly, nothing downloaded), normalized as training normalizes it and
quantized with the model's input scale, as ``train``'s integer evaluation quantizes it.

Pure numpy: the IDX reader and the normalization constants are :mod:`wino_gen.datasets`',
shared with ``train``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import golden
from ..datasets import FASHION_DIR, FASHION_MEAN, FASHION_STD, find_idx, read_idx
from ..errors import UsageError
from ..format import Model
from ..limits import int_range

#: the data sets ``--data`` names
DATASETS = ("fashion-mnist",)


def fashion_mnist(root: str | Path | None = None, train: bool = False, limit: int | None = None):
    """Raw Fashion-MNIST: uint8 images ``[N, 28, 28]`` and their labels (the test split unless
    ``train``), the first ``limit`` of them."""
    root = Path(root) if root else FASHION_DIR
    split = "train" if train else "t10k"
    images = read_idx(find_idx(root, f"{split}-images-idx3-ubyte"))
    labels = read_idx(find_idx(root, f"{split}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(f"{root}: {split} images {list(images.shape)} and labels {list(labels.shape)} do not pair up")
    return images[:limit], labels[:limit].astype(np.int64)


def normalize_fashion(images: np.ndarray) -> np.ndarray:
    """Training's normalization in training's float32: ``(x / 255 - mean) / std``."""
    x = images.astype(np.float32) / np.float32(255.0)
    return (x - np.float32(FASHION_MEAN)) / np.float32(FASHION_STD)


# -- network inputs -----------------------------------------------------------------------------

def quantize_input(x: np.ndarray, model: Model) -> np.ndarray:
    """Float inputs as the model's int8 network input: ``round_sat(x / scale)`` with the
    manifest's input scale (``train.export.quantize_input``)."""
    scale = model.manifest["input"].get("scale")
    if scale is None:
        raise UsageError(f"{model.path}: manifest.json input.scale: missing; float data cannot be quantized for "
                         "this model (pass --images with int8 inputs)")
    return golden.fake_rq(np.asarray(x, np.float64), 1.0 / float(scale), model.act_bits).astype(np.int64)


def fashion_inputs(model: Model, root=None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST test images as ``model``'s int8 inputs ``[N, 1, 28, 28]``, and labels."""
    shape = tuple(model.manifest["input"]["shape"])
    if shape != (1, 28, 28):
        raise UsageError(f"--data fashion-mnist: images are 1x28x28, the model {model.name!r} takes "
                         f"{'x'.join(map(str, shape))}")
    images, labels = fashion_mnist(root, limit=limit)
    return quantize_input(normalize_fashion(images)[:, None], model), labels


def _load_npy(path: str | Path, flag: str) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"{flag} {path}: not a readable .npy array ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(a, np.ndarray):
        raise UsageError(f"{flag} {path}: holds several arrays (an .npz); give one .npy array")
    if a.dtype.kind not in "iu":
        raise UsageError(f"{flag} {path}: dtype {a.dtype}, expected integers")
    return a


def npy_inputs(path, model: Model) -> np.ndarray:
    """Int8 network inputs ``[N, C, H, W]`` from an ``.npy`` file, checked against the model's
    input shape and the activation range."""
    x = _load_npy(path, "--images")
    shape = tuple(model.manifest["input"]["shape"])
    if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise UsageError(f"--images {path}: shape {list(x.shape)}, expected [N, {', '.join(map(str, shape))}] "
                         f"with N >= 1 (the model's input)")
    lo, hi = int_range(model.act_bits)
    if x.min() < lo or x.max() > hi:
        raise UsageError(f"--images {path}: values {x.min()}..{x.max()} outside the {model.act_bits}-bit input "
                         f"range {lo}..{hi}")
    return x.astype(np.int64)


def npy_labels(path, n: int) -> np.ndarray:
    """``n`` class labels from an ``.npy`` file."""
    y = _load_npy(path, "--labels")
    if y.shape != (n,):
        raise UsageError(f"--labels {path}: shape {list(y.shape)}, expected [{n}] (one label per image)")
    return y.astype(np.int64)
