"""Data: three sources, resident uint8 tensors, balanced subsets, a disk cache, and clear errors."""
import numpy as np
import pytest
import torch
from PIL import Image

import helpers as h
from helpers.core.data import DataError, balanced_subset, load_folder, make_synthetic


def _write_folder(root, per_class=(3, 2), ext="png", size=32):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c in h.CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i:04d}.{ext}")
    return {"train": per_class[0], "test": per_class[1]}


def test_synthetic_has_cifar_shapes_and_dtype():
    d = h.load_cifar10("synthetic", train_size=200, test_size=100)
    assert d.train_x.shape == (200, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (100, 3, 32, 32) and d.train_y.dtype == torch.int64
    assert d.classes == h.CLASSES and d.classes[0] == "airplane" and d.classes[9] == "truck"
    assert torch.equal(d.train_y.bincount(), torch.full((10,), 20))


def test_synthetic_is_class_dependent():
    a = make_synthetic(500, 10)
    means = torch.stack([a["train_x"][a["train_y"] == c].float().mean((0, 2, 3)) for c in range(10)])
    assert torch.cdist(means, means).fill_diagonal_(1e9).min() > 5  # classes differ in colour


def test_balanced_subset_is_balanced_seeded_and_distinct():
    y = torch.arange(1000) % 10
    a, b, c = balanced_subset(y, 100, 0), balanced_subset(y, 100, 0), balanced_subset(y, 100, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(y[a].bincount(), torch.full((10,), 10)) and len(set(a.tolist())) == 100


def test_folder_loads_in_official_class_order_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path / "cache"))
    per = _write_folder(tmp_path / "data", ext="png")
    a = load_folder(tmp_path / "data", per)
    assert a["train_x"].shape == (30, 3, 32, 32) and a["test_x"].shape == (20, 3, 32, 32)
    assert a["train_y"].tolist() == sorted(a["train_y"].tolist())
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    first_pixels = np.array(Image.open(tmp_path / "data/train/airplane/0000.png"))
    assert torch.equal(a["train_x"][0].permute(1, 2, 0), torch.from_numpy(first_pixels))
    # The second load comes from the cache, not the images: blank every file (same sizes, so the
    # fingerprint is unchanged) and the decoded tensors still come back.
    for p in (tmp_path / "data").rglob("*.png"):
        p.write_bytes(bytes(p.stat().st_size))
    b = load_folder(tmp_path / "data", per)
    assert torch.equal(a["train_x"], b["train_x"])


def test_no_data_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    with pytest.raises(DataError) as e:
        h.load_cifar10(str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "data_dir" in msg and "CIFAR10_DIR" in msg and "download" in msg and "synthetic" in msg


def test_official_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="not found and not downloadable.*three ways"):
        h.load_cifar10(None, download=False)


def test_missing_class_folder(tmp_path):
    per = _write_folder(tmp_path)
    import shutil
    shutil.rmtree(tmp_path / "test" / "cat")
    with pytest.raises(DataError, match=r"missing \['cat'\]"):
        load_folder(tmp_path, per)


def test_wrong_count_is_an_error_not_a_partial_set(tmp_path):
    per = _write_folder(tmp_path)
    (tmp_path / "train" / "dog" / "0001.png").unlink()
    with pytest.raises(DataError, match="dog: 2 images, expected 3.*incomplete"):
        load_folder(tmp_path, per, use_cache=False)


def test_unreadable_file_is_named(tmp_path):
    per = _write_folder(tmp_path)
    (tmp_path / "test" / "frog" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="frog/0001.png: unreadable image"):
        load_folder(tmp_path, per, use_cache=False)


def test_wrong_image_size_is_named(tmp_path):
    per = _write_folder(tmp_path)
    Image.new("RGB", (28, 28)).save(tmp_path / "train" / "ship" / "0002.png")
    with pytest.raises(DataError, match="ship/0002.png: image is 28x28, expected 32x32"):
        load_folder(tmp_path, per, use_cache=False)


def test_channel_stats_of_constant_images():
    x = torch.full((4, 3, 8, 8), 51, dtype=torch.uint8)
    mean, std = h.channel_stats(x)
    assert np.allclose(mean, 0.2) and np.allclose(std, 0)
