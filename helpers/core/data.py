"""CIFAR-10 as resident uint8 tensors, from the official files, an image folder, or a synthetic set."""

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .project import portable_path, project_root

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = {"train": 5000, "test": 1000}  # CIFAR-10's split sizes per class


class DataError(RuntimeError):
    """The data could not be found, or is incomplete or corrupt."""


@dataclass(repr=False)
class Cifar10:
    """CIFAR-10 or its stand-in: uint8 images (N, 3, 32, 32), int64 labels, and where they came from."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # "official" | "folder" | "synthetic"
    classes: tuple = CLASSES

    def __repr__(self):
        """Shapes and source, not the pixels."""
        return f"Cifar10(source={self.source!r}, train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)})"


def cache_dir() -> Path:
    """Return the folder for decoded-data caches and downloads ($CIFAR10_CACHE or .cache/)."""
    return Path(os.environ.get("CIFAR10_CACHE") or project_root() / ".cache")


def resolve_source(data_dir: str | None) -> tuple[str, Path | None]:
    """Return (kind, path) for a data_dir parameter: synthetic, an ImageFolder root, or official."""
    if data_dir == "synthetic":
        return "synthetic", None
    if data_dir := data_dir or os.environ.get("CIFAR10_DIR"):
        p = Path(data_dir).expanduser()
        if not p.is_dir():
            raise DataError(f"parameter 'data_dir' = {str(data_dir)!r}: no such folder. {HOW_TO_PROVIDE}")
        return "folder", p.resolve()
    return "official", cache_dir() / "cifar10-official"


HOW_TO_PROVIDE = (
    "Provide CIFAR-10 in one of three ways: (1) let torchvision download the official files (needs the network); "
    "(2) point data_dir= or the CIFAR10_DIR environment variable at a folder laid out as train/<class>/*.jpg|png "
    "and test/<class>/*.jpg|png; (3) data_dir='synthetic' (profile 'smoke') for a generated stand-in set.")


def _list_folder(root: Path, per_class: dict | None) -> dict:
    """Return {split: [(class_index, path), ...]} after checking the class folders and their image counts."""
    per_class, out = per_class or PER_CLASS, {}
    for split in ("train", "test"):
        d = root / split
        if not d.is_dir():
            raise DataError(f"data folder {root} has no '{split}/' folder. {HOW_TO_PROVIDE}")
        found = {e.name for e in os.scandir(d) if e.is_dir()}
        if found != set(CLASSES):
            missing, extra = sorted(set(CLASSES) - found) or "none", sorted(found - set(CLASSES)) or "none"
            raise DataError(f"{d}: class folders must be exactly {', '.join(CLASSES)}; "
                            f"missing {missing}, unexpected {extra}")
        out[split] = []
        for k, name in enumerate(CLASSES):
            names = sorted(e.name for e in os.scandir(d / name)
                           if e.is_file() and e.name.lower().endswith((".jpg", ".jpeg", ".png")))
            if len(names) != per_class[split]:
                raise DataError(f"{d / name}: {len(names)} images, expected {per_class[split]} "
                                f"(CIFAR-10 has {PER_CLASS[split]} per class in {split}/); the data is incomplete")
            out[split] += [(k, d / name / n) for n in names]
    return out


def folder_fingerprint(root: Path, per_class: dict | None = None) -> str:
    """Return a hash of the folder's file names and sizes (cheap: no image is read)."""
    listing = _list_folder(root, per_class).items()
    text = "".join(f"{split}/{k}/{p.name}:{p.stat().st_size}\n" for split, files in listing for k, p in files)
    return hashlib.sha256(text.encode()).hexdigest()


def _decode(path: Path) -> np.ndarray:
    """Return one 32x32 image file as a 32 x 32 x 3 uint8 array; raise DataError naming the file otherwise."""
    try:
        rgb = np.asarray(Image.open(path).convert("RGB"))  # loading closes the file
    except Exception as e:  # PIL raises several types for unreadable files
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
    if rgb.shape[:2] != (32, 32):
        raise DataError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, expected 32x32")
    return rgb


def load_folder(root, per_class: dict | None = None, use_cache: bool = True) -> dict:
    """Return {train_x, train_y, test_x, test_y} decoded from an ImageFolder tree, cached by its fingerprint."""
    cache = cache_dir() / f"cifar10-folder-{folder_fingerprint(Path(root), per_class)[:20]}.pt"
    if use_cache and cache.exists():
        try:
            return torch.load(cache, weights_only=True)
        except Exception as e:
            warnings.warn(f"decoded-data cache {cache} is unreadable ({e}); decoding again")
    arrays = {k: v for split, files in _list_folder(Path(root), per_class).items()
              for k, v in _arrays(split, np.stack([_decode(p) for _, p in files]), [c for c, _ in files]).items()}
    if use_cache:  # to a temporary file, then renamed: readers never see half a file
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        torch.save(arrays, tmp)
        os.replace(tmp, cache)
    return arrays


def load_official(root: Path, download: bool = True) -> dict:
    """Return the official CIFAR-10 arrays via torchvision, downloading them if allowed."""
    from torchvision.datasets import CIFAR10
    try:
        sets = {split: CIFAR10(str(root), train=split == "train", download=download) for split in ("train", "test")}
    except Exception as e:
        raise DataError(f"CIFAR-10 not found and not downloadable into {root} "
                        f"({type(e).__name__}: {e}). {HOW_TO_PROVIDE}") from None
    return {k: v for split, ds in sets.items() for k, v in _arrays(split, ds.data, ds.targets).items()}


def _arrays(split: str, images: np.ndarray, labels) -> dict:
    """Return {split_x: uint8 (N, 3, 32, 32), split_y: int64} from N x 32 x 32 x 3 images and their labels."""
    return {f"{split}_x": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            f"{split}_y": torch.tensor(labels, dtype=torch.int64)}


def make_synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> dict:
    """Return a learnable stand-in for CIFAR-10: class-dependent colour and stripe orientation."""
    g = torch.Generator().manual_seed(10_000 + seed)
    palette = torch.rand(10, 3, generator=g) * 0.6 + 0.2
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = torch.arange(n) % 10
        theta = y.float()[:, None, None] * (math.pi / 10)  # stripe orientation per class
        phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
        wave = torch.sin(0.6 * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)
        img = palette[y][:, :, None, None] + 0.25 * wave[:, None] + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = (img.clamp(0, 1) * 255).round().to(torch.uint8), y
    return arrays


def balanced_subset(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Return sorted indices of a seeded, class-balanced subset of size n (all when None)."""
    if n is not None and n > len(y):
        raise DataError(f"subset of {n} requested but the split has only {len(y)} images")
    if n is None or n == len(y):
        return torch.arange(len(y))
    g, k, picks = torch.Generator().manual_seed(seed), int(y.max()) + 1, []
    for c in range(k):
        idx, count = (y == c).nonzero().flatten(), n // k + (c < n % k)  # the first n % k classes get one more
        if len(idx) < count:
            raise DataError(f"class {c} has {len(idx)} images, fewer than the {count} requested")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:count]])
    return torch.cat(picks).sort().values


def data_identity(data_dir: str | None, train_size=None, test_size=None, seed: int = 0) -> dict:
    """Return what identifies the data of a run (source and subset) without decoding any image."""
    kind, path = resolve_source(data_dir)
    return ({"source": kind, "train_size": train_size, "test_size": test_size, "subset_seed": seed}
            | ({"fingerprint": folder_fingerprint(path)} if kind == "folder" else {}))


def load_cifar10(data_dir: str | None = None, train_size: int | None = None,
                 test_size: int | None = None, seed: int = 0, download: bool = True) -> Cifar10:
    """Return CIFAR-10 (or its synthetic stand-in) as uint8 tensors, class-balanced subsets if asked."""
    kind, path = resolve_source(data_dir)
    arrays = (make_synthetic(train_size or 5000, test_size or 1000, seed) if kind == "synthetic"
              else load_folder(path) if kind == "folder" else load_official(path, download=download))
    tr = balanced_subset(arrays["train_y"], train_size, seed)
    te = balanced_subset(arrays["test_y"], test_size, seed + 1)
    return Cifar10(arrays["train_x"][tr], arrays["train_y"][tr], arrays["test_x"][te], arrays["test_y"][te],
                   source=kind)


def check_data(profile: str, data_dir: str | None = None) -> str:
    """Describe the data a run will use (downloading missing official files), or raise DataError naming the 3 ways."""
    if data_dir == "synthetic" or (data_dir is None and profile == "smoke"):
        return "synthetic stand-in (smoke profile)"
    kind, path = resolve_source(data_dir)  # raises DataError for a folder that does not exist
    if kind == "folder":
        return f"image folder {portable_path(path)} (fingerprint {folder_fingerprint(path)[:12]})"
    load_official(path, download=True)  # downloads now, or raises DataError naming the three ways
    return f"official CIFAR-10 files in {portable_path(path)}"


def channel_stats(x: torch.Tensor) -> tuple[tuple, tuple]:
    """Return per-channel (mean, std) of a uint8 batch, in [0,1] units."""
    f = x.double() / 255
    return tuple(f.mean((0, 2, 3)).tolist()), tuple(f.std((0, 2, 3)).tolist())
