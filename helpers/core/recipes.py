"""Augmentation recipes: the report's torchvision pipelines, and the batched form training uses.

torchvision's random transforms draw one parameter per call, so applied to a batch tensor every
image gets the same crop or angle. Training therefore uses `augment_batch`, which draws a
parameter per image for a whole batch at once on the training device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision import transforms as T

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the report's constants
CIFAR10_STD = (0.247, 0.243, 0.261)


@dataclass(frozen=True)
class Recipe:
    name: str
    crop_padding: int = 0     # RandomCrop(32, padding=p) when p > 0
    flip: bool = False        # RandomHorizontalFlip(0.5)
    rotate_degrees: float = 0  # RandomRotation(d): angle uniform in [-d, d], nearest, fill 0
    normalize: bool = False   # Normalize(CIFAR10_MEAN, CIFAR10_STD), train and test alike
    about: str = ""

    def train_transform(self) -> T.Compose:
        """Return the torchvision pipeline (PIL image or uint8 tensor in, float tensor out)."""
        random = [(self.crop_padding, T.RandomCrop(32, padding=self.crop_padding)),
                  (self.flip, T.RandomHorizontalFlip()), (self.rotate_degrees, T.RandomRotation(self.rotate_degrees))]
        return T.Compose([t for used, t in random if used] + self.eval_transform().transforms)

    def eval_transform(self, normalize: bool = True) -> T.Compose:
        """Return the test-time pipeline; normalize=False drops the recipe's Normalize (the report's suspected bug)."""
        return T.Compose([T.ToTensor()] + [T.Normalize(CIFAR10_MEAN, CIFAR10_STD)] * (self.normalize and normalize))


RECIPES = {
    "none": Recipe("none", about="ToTensor only (the report's baseline)"),
    "flip_rotate": Recipe("flip_rotate", flip=True, rotate_degrees=30,
                          about="RandomHorizontalFlip + RandomRotation(30)"),
    "crop": Recipe("crop", crop_padding=4, about="RandomCrop(32, padding=4)"),
    "crop_flip": Recipe("crop_flip", crop_padding=4, flip=True,
                        about="RandomCrop(32, padding=4) + RandomHorizontalFlip (standard CIFAR recipe)"),
    "normalize": Recipe("normalize", normalize=True,
                        about="Normalize(mean (0.4914, 0.4822, 0.4465), std (0.247, 0.243, 0.261))"),
    # Beyond the report: crop + flip, and make_config gives it its own schedule (see FAST_DEFAULTS).
    "fast": Recipe("fast", crop_padding=4, flip=True,
                   about="crop + flip with OneCycle LR, Nesterov, label smoothing 0.1: the report's best in 15 epochs"),
}


def get_recipe(name: str) -> Recipe:
    """Return the named recipe, or raise naming the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"parameter 'recipe' = {name!r} is invalid; valid: {' | '.join(RECIPES)}")
    return RECIPES[name]


# ---- batched, per-sample augmentation -------------------------------------------------------

def draw_params(recipe: Recipe, n: int, generator: torch.Generator, device="cpu") -> dict:
    """Return one random parameter per image: crop offsets, flip flags, rotation angles."""
    p = {}
    kw = dict(generator=generator, device=generator.device)
    if recipe.crop_padding:
        hi = 2 * recipe.crop_padding + 1
        p["dy"] = torch.randint(0, hi, (n,), **kw).to(device)
        p["dx"] = torch.randint(0, hi, (n,), **kw).to(device)
    if recipe.flip:
        p["flip"] = (torch.rand(n, **kw) < 0.5).to(device)
    if recipe.rotate_degrees:
        d = float(recipe.rotate_degrees)
        p["angle"] = ((torch.rand(n, **kw) * 2 - 1) * d).to(device)
    return p


def crop_batch(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int) -> torch.Tensor:
    """Return 32x32 crops of the zero-padded batch at per-image offsets (dy, dx)."""
    n, c, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    return xp[torch.arange(n, device=x.device)[:, None, None, None],
              torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def flip_batch(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Return the batch with the flagged images mirrored left-right."""
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def rotate_batch(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Return the batch rotated by per-image angles (degrees, counter-clockwise), nearest, fill 0.

    Builds the sampling grid exactly as torchvision's tensor `rotate` does, one matrix per image,
    so the output matches `torchvision.transforms.functional.rotate` for the same angle.
    """
    n, _, h, w = x.shape
    dt = x.dtype if x.is_floating_point() else torch.float32
    # torchvision computes the matrix in float64 (Python math), then casts: do the same so that
    # nearest-neighbour sampling picks the same pixels.
    a = torch.deg2rad(angle.double())
    cos, sin = torch.cos(a).to(dt), torch.sin(a).to(dt)
    # inverse affine matrix of rotate(angle) about the centre: [[cos, -sin, 0], [sin, cos, 0]]
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)  # (n, 2, 3)
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w, device=x.device, dtype=dt)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h, device=x.device, dtype=dt)
    base = torch.empty(1, h, w, 3, dtype=dt, device=x.device)
    base[..., 0] = xs
    base[..., 1] = ys[:, None]
    base[..., 2] = 1
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=dt, device=x.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale)
    grid = grid.view(n, h, w, 2)
    return F.grid_sample(x.to(dt), grid, mode="nearest", padding_mode="zeros", align_corners=False)


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """Return (x - mean) / std with the report's per-channel constants."""
    mean = torch.tensor(CIFAR10_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(CIFAR10_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def augment_batch(recipe: Recipe, x: torch.Tensor, generator: torch.Generator | None = None,
                  params: dict | None = None) -> torch.Tensor:
    """Return a float batch in the recipe's training form, one random draw per image.

    `x` is uint8 (N,3,32,32) or float in [0,1]; pass `params` to replay given draws.
    """
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if params is None:
        params = draw_params(recipe, x.shape[0], generator or torch.default_generator, x.device)
    if recipe.crop_padding:
        x = crop_batch(x, params["dy"], params["dx"], recipe.crop_padding)
    if recipe.flip:
        x = flip_batch(x, params["flip"])
    if recipe.rotate_degrees:
        x = rotate_batch(x, params["angle"])
    if recipe.normalize:
        x = normalize_batch(x)
    return x


def eval_batch(recipe: Recipe, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Return a uint8 batch as the model sees it at test time (with the recipe's Normalize unless normalize=False)."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return normalize_batch(x) if recipe.normalize and normalize else x
