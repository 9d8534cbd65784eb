"""CIFAR-10 as resident uint8 tensors, from the official files, an image folder, or a synthetic set."""
from __future__ import annotations

import hashlib
import math

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .project import portable_path, project_root

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = {"train": 5000, "test": 1000}  # CIFAR-10's split sizes per class
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


class DataError(RuntimeError):
    """The data could not be found, or is incomplete or corrupt."""


@dataclass
class Cifar10:
    train_x: torch.Tensor  # uint8 (N, 3, 32, 32)
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str            # "official" | "folder" | "synthetic"
    identity: dict = field(default_factory=dict)
    classes: tuple = CLASSES

    def __repr__(self):
        return (f"Cifar10(source={self.source!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)})")


def cache_dir() -> Path:
    """Return the folder for decoded-data caches and downloads ($CIFAR10_CACHE or .cache/)."""
    return Path(os.environ.get("CIFAR10_CACHE") or project_root() / ".cache")


def resolve_source(data_dir: str | None) -> tuple[str, Path | None]:
    """Return (kind, path) for a data_dir parameter: synthetic, an ImageFolder root, or official."""
    if data_dir == "synthetic":
        return "synthetic", None
    data_dir = data_dir or os.environ.get("CIFAR10_DIR") or None
    if data_dir:
        p = Path(data_dir).expanduser()
        if not p.is_dir():
            raise DataError(f"parameter 'data_dir' = {str(data_dir)!r}: no such folder. {HOW_TO_PROVIDE}")
        return "folder", p.resolve()
    return "official", cache_dir() / "cifar10-official"


HOW_TO_PROVIDE = (
    "Provide CIFAR-10 in one of three ways: (1) let torchvision download the official files "
    "(needs the network); (2) point data_dir= or the CIFAR10_DIR environment variable at a folder "
    "laid out as train/<class>/*.jpg|png and test/<class>/*.jpg|png; (3) data_dir='synthetic' "
    "(profile 'smoke') for a generated stand-in set.")


# ---- folder (ImageFolder layout) ------------------------------------------------------------

def _list_folder(root: Path, per_class: dict | None) -> dict:
    """Return {split: [(class_index, path), ...]} after checking classes and counts."""
    per_class = PER_CLASS if per_class is None else per_class
    out = {}
    for split in ("train", "test"):
        d = root / split
        if not d.is_dir():
            raise DataError(f"data folder {root} has no '{split}/' folder. {HOW_TO_PROVIDE}")
        found = sorted(e.name for e in os.scandir(d) if e.is_dir())
        missing, extra = sorted(set(CLASSES) - set(found)), sorted(set(found) - set(CLASSES))
        if missing or extra:
            raise DataError(f"{d}: class folders must be exactly {', '.join(CLASSES)}; "
                            f"missing {missing or 'none'}, unexpected {extra or 'none'}")
        files = []
        for k, name in enumerate(CLASSES):
            names = sorted(e.name for e in os.scandir(d / name)
                           if e.is_file() and e.name.lower().endswith(IMAGE_EXTS))
            if len(names) != per_class[split]:
                raise DataError(f"{d / name}: {len(names)} images, expected {per_class[split]} "
                                f"(CIFAR-10 has {PER_CLASS[split]} per class in {split}/); "
                                "the data is incomplete")
            files += [(k, d / name / n) for n in names]
        out[split] = files
    return out


def folder_fingerprint(root: Path, per_class: dict | None = None) -> str:
    """Return a hash of the folder's file names and sizes (cheap: no image is read)."""
    h = hashlib.sha256()
    for split, files in _list_folder(root, per_class).items():
        for k, p in files:
            h.update(f"{split}/{k}/{p.name}:{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _decode(path: Path) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                raise DataError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected 32x32")
            return np.asarray(im)
    except DataError:
        raise
    except Exception as e:  # PIL raises several types for unreadable files
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def _decode_folder(root: Path, per_class: dict | None) -> dict:
    arrays = {}
    for split, files in _list_folder(root, per_class).items():
        x = np.stack([_decode(p) for _, p in files])
        arrays[f"{split}_x"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        arrays[f"{split}_y"] = torch.tensor([k for k, _ in files], dtype=torch.int64)
    return arrays


def _atomic_save(obj, path: Path):
    """torch.save to a temporary file, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_folder(root, per_class: dict | None = None, use_cache: bool = True) -> dict:
    """Return {train_x, train_y, test_x, test_y} decoded from an ImageFolder tree (cached)."""
    root = Path(root)
    fp = folder_fingerprint(root, per_class)
    cache = cache_dir() / f"cifar10-folder-{fp[:20]}.pt"
    if use_cache and cache.exists():
        try:
            arrays = torch.load(cache, weights_only=True)
            if arrays.get("fingerprint") == fp:
                return arrays
        except Exception as e:
            warnings.warn(f"decoded-data cache {cache} is unreadable ({e}); decoding again")
    arrays = _decode_folder(root, per_class)
    arrays["fingerprint"] = fp
    if use_cache:
        _atomic_save(arrays, cache)
    return arrays


# ---- official files (torchvision) -----------------------------------------------------------

def load_official(root: Path, download: bool = True) -> dict:
    """Return the official CIFAR-10 arrays via torchvision, downloading them if allowed."""
    from torchvision.datasets import CIFAR10
    arrays = {}
    try:
        for split, train in (("train", True), ("test", False)):
            ds = CIFAR10(str(root), train=train, download=download)
            arrays[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            arrays[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
    except Exception as e:
        raise DataError(f"CIFAR-10 not found and not downloadable into {root} "
                        f"({type(e).__name__}: {e}). {HOW_TO_PROVIDE}") from None
    return arrays


# ---- synthetic ------------------------------------------------------------------------------

def make_synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> dict:
    """Return a learnable stand-in for CIFAR-10: class-dependent colour and stripe orientation."""
    g = torch.Generator().manual_seed(10_000 + seed)
    palette = torch.rand(10, 3, generator=g) * 0.6 + 0.2
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def split(n):
        y = torch.arange(n) % 10
        theta = y.float() * (math.pi / 10)
        phase = torch.rand(n, generator=g) * 2 * math.pi
        wave = torch.sin(0.6 * (xx * torch.cos(theta)[:, None, None] + yy * torch.sin(theta)[:, None, None])
                         + phase[:, None, None])
        img = palette[y][:, :, None, None] + 0.25 * wave[:, None] + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
        return (img.clamp(0, 1) * 255).round().to(torch.uint8), y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}





# ---- one entry point ------------------------------------------------------------------------

def balanced_subset(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Return sorted indices of a seeded, class-balanced subset of size n (all when None)."""
    if n is None or n >= len(y):
        if n is not None and n > len(y):
            raise DataError(f"subset of {n} requested but the split has only {len(y)} images")
        return torch.arange(len(y))
    g = torch.Generator().manual_seed(seed)
    k = int(y.max()) + 1
    counts = [n // k + (1 if c < n % k else 0) for c in range(k)]
    picks = []
    for c in range(k):
        idx = (y == c).nonzero().flatten()
        if len(idx) < counts[c]:
            raise DataError(f"class {c} has {len(idx)} images, fewer than the {counts[c]} requested")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:counts[c]]])
    return torch.cat(picks).sort().values


def data_identity(data_dir: str | None, train_size=None, test_size=None, seed: int = 0) -> dict:
    """Return what identifies the data of a run (source and subset) without decoding any image."""
    kind, path = resolve_source(data_dir)
    ident = {"source": kind, "train_size": train_size, "test_size": test_size, "subset_seed": seed}
    if kind == "folder":
        ident["fingerprint"] = folder_fingerprint(path)
    return ident


def load_cifar10(data_dir: str | None = None, train_size: int | None = None,
                 test_size: int | None = None, seed: int = 0, download: bool = True) -> Cifar10:
    """Return CIFAR-10 (or its synthetic stand-in) as uint8 tensors, class-balanced subsets if asked."""
    kind, path = resolve_source(data_dir)
    if kind == "synthetic":
        arrays = make_synthetic(train_size or 5000, test_size or 1000, seed)
    elif kind == "folder":
        arrays = load_folder(path)
    else:
        arrays = load_official(path, download=download)
    tr = balanced_subset(arrays["train_y"], train_size, seed)
    te = balanced_subset(arrays["test_y"], test_size, seed + 1)
    return Cifar10(arrays["train_x"][tr], arrays["train_y"][tr], arrays["test_x"][te], arrays["test_y"][te],
                   source=kind, identity=data_identity(data_dir, train_size, test_size, seed))


def check_data(profile: str, data_dir: str | None = None) -> str:
    """Return a description of the data a run will train on; raise DataError, naming the three ways, if there is none.

    `make report` calls it before any notebook runs, and every notebook's first cell calls it, so both stop
    with the same message. Official files are downloaded now when they are missing.
    """
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
