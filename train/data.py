"""Data sets: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (IDX files, read directly)
and ``ImageFolder``-style folders (``root/train/<class>/*.jpg``, ``root/val/<class>/...``) for
ImageNet / CIFAR-like sets on a user's machine. Nothing is ever downloaded."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from wino_gen.datasets import FASHION_DIR, FASHION_MEAN, FASHION_STD
from wino_gen.datasets import find_idx as _find
from wino_gen.datasets import read_idx as _read_idx
from wino_gen.errors import UsageError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def fashion_mnist(root: str | os.PathLike | None = None, train: bool = True, limit: int | None = None):
    """``TensorDataset`` of normalized float images ``[N, 1, 28, 28]`` and int64 labels."""
    root = Path(root) if root else FASHION_DIR
    split = "train" if train else "t10k"
    images = _read_idx(_find(root, f"{split}-images-idx3-ubyte"))
    labels = _read_idx(_find(root, f"{split}-labels-idx1-ubyte"))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - FASHION_MEAN) / FASHION_STD
    return TensorDataset(x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


class ImageFolder(Dataset):
    """Minimal ``torchvision.datasets.ImageFolder`` (PIL), used when torchvision is absent:
    ``root/<class>/<image>``; classes sorted by name. Resize/crop to ``size`` and normalize."""

    EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")

    def __init__(self, root, size: int = 224, train: bool = True):
        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"image folder {root} does not exist")
        self.classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not self.classes:
            raise UsageError(f"image folder {root}: no class subfolders")
        self.samples = [(p, i) for i, c in enumerate(self.classes) for p in sorted((root / c).rglob("*"))
                        if p.suffix.lower() in self.EXTS]
        if not self.samples:
            raise UsageError(f"image folder {root}: no images")
        if importlib.util.find_spec("PIL") is None:
            raise UsageError("image folders need Pillow or torchvision: pip install -e '.[images]'")
        self.size, self.train = size, train

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            short = round(self.size * 256 / 224) if self.size >= 64 else self.size
            w, h = im.size
            s = short / min(w, h)
            im = im.resize((max(short, round(w * s)), max(short, round(h * s))), Image.BILINEAR)
            w, h = im.size
            if self.train:
                left, top = np.random.randint(0, w - self.size + 1), np.random.randint(0, h - self.size + 1)
            else:
                left, top = (w - self.size) // 2, (h - self.size) // 2
            im = im.crop((left, top, left + self.size, top + self.size))
            if self.train and np.random.rand() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            a = np.asarray(im, dtype=np.float32) / 255.0
        x = (torch.from_numpy(a).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) \
            / torch.tensor(IMAGENET_STD)[:, None, None]
        return x, label


def image_folder(root, train: bool, size: int, limit: int | None = None):
    sub = Path(root) / ("train" if train else "val")
    if not sub.is_dir():
        raise UsageError(f"--data-dir {root}: expected {sub} (ImageFolder layout root/train, root/val)")
    try:  # the real one when a user has torchvision
        from torchvision import datasets, transforms  # noqa: F401
        tf = transforms.Compose(
            ([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()] if train else
             [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)])
            + [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        ds = datasets.ImageFolder(str(sub), tf)
    except Exception:  # torchvision missing or broken beside this torch
        ds = ImageFolder(sub, size, train)
    if limit is not None and limit < len(ds):
        ds = torch.utils.data.Subset(ds, range(limit))
    return ds


def augment_small(x: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """Random crop with zero padding + horizontal flip on a batch of small images (tensors)."""
    N, C, H, W = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    i = torch.randint(0, 2 * pad + 1, (N,))
    j = torch.randint(0, 2 * pad + 1, (N,))
    rows = (i[:, None] + torch.arange(H)[None])[:, None, :, None].expand(N, C, H, W + 2 * pad)
    out = torch.gather(xp, 2, rows)
    cols = (j[:, None] + torch.arange(W)[None])[:, None, None, :].expand(N, C, H, W)
    out = torch.gather(out, 3, cols)
    flip = torch.rand(N) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


DATASETS = ("fashion-mnist", "imagefolder")


def load(name: str, train: bool, limit: int | None = None, data_dir=None, size: int = 224):
    """(dataset, num_classes, in_channels, image_hw)."""
    if name == "fashion-mnist":
        return fashion_mnist(data_dir, train, limit), 10, 1, (28, 28)
    if name == "imagefolder":
        if not data_dir:
            raise UsageError("--data imagefolder needs --data-dir ROOT (with ROOT/train and ROOT/val)")
        ds = image_folder(data_dir, train, size, limit)
        base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
        return ds, len(base.classes), 3, (size, size)
    raise UsageError(f"--data: unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
