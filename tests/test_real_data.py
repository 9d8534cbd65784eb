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


def test_real_folder_is_complete_and_in_official_order():
    d = h.load_cifar10(FOLDER)
    assert d.train_x.shape == (50_000, 3, 32, 32) and d.test_x.shape == (10_000, 3, 32, 32)
    assert torch.equal(d.train_y.bincount(), torch.full((10,), 5000))
    mean, std = h.channel_stats(d.train_x)
    assert all(abs(m - r) < 0.01 for m, r in zip(mean, h.CIFAR10_MEAN))  # the report's constants fit


def test_two_epochs_on_10k_real_images_beat_25_percent(tmp_path):
    run = h.train_run(profile="full", data_dir=FOLDER, epochs=2, train_size=10_000, test_size=2_000,
                      runs_dir=tmp_path, device="cpu")
    assert run.metrics["data_source"] == "folder" and run.metrics["test_images"] == 2000
    assert run.final_acc > 25, run.history
