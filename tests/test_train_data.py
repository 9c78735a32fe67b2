"""Image folders (the ImageNet path): class discovery, crop size and normalization, without
torchvision; a missing folder is a one-line usage error."""

import numpy as np
import pytest

from train import data
from wino_gen.errors import UsageError

Image = pytest.importorskip("PIL.Image")


def test_image_folder_reads_classes_and_crops(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(d / f"{i}.png")
    ds, classes, ch, hw = data.load("imagefolder", False, None, tmp_path, 32)
    assert (classes, ch, hw, len(ds)) == (2, 3, (32, 32), 4)
    x, y = ds[3]
    assert tuple(x.shape) == (3, 32, 32) and y == 1
    assert float(x.abs().max()) < 5      # normalized, not raw bytes


def test_missing_image_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="expected .*ImageFolder layout"):
        data.load("imagefolder", True, None, tmp_path / "nope", 32)
