"""Real CIFAR-10 (the JPEG folder): runs only where CIFAR10_DIR or ../shared/data/cifar10-jpeg exists."""
import os
from pathlib import Path

import pytest
import torch

import helpers as h

ROOT = Path(__file__).resolve().parents[1]
FOLDER = os.environ.get("CIFAR10_DIR") or str(ROOT.parent / "shared" / "data" / "cifar10-jpeg")
pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not Path(FOLDER, "train").is_dir(), reason=f"no CIFAR-10 folder at {FOLDER}")]


def test_real_folder_is_complete_class_balanced_and_fits_the_reports_constants():
    d = h.load_cifar10(FOLDER)
    assert d.train_x.shape == (50_000, 3, 32, 32) and d.test_x.shape == (10_000, 3, 32, 32)
    assert torch.equal(d.train_y.bincount(), torch.full((10,), 5000))
    mean, std = h.channel_stats(d.train_x)
    assert all(abs(m - r) < 0.01 for m, r in zip(mean, h.CIFAR10_MEAN))  # the report's constants fit


# Learning on real images (2 epochs on 10,000 images beat 25% on 2,000 test images) is checked by
# tests/test_notebooks_real.py on the run notebook 01 trains: the same run, so it is trained once, not twice.
