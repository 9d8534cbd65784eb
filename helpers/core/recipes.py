"""Augmentation recipes: the report's torchvision pipelines, and `augment_batch`, which training uses: it draws one
parameter per image for a whole batch on the training device (torchvision draws one per call, one crop per batch)."""
from __future__ import annotations

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
        normalize = [T.Normalize(CIFAR10_MEAN, CIFAR10_STD)] * self.normalize
        return T.Compose([t for used, t in random if used] + [T.ToTensor()] + normalize)


RECIPES = {
    "none": Recipe("none", about="ToTensor only (the report's baseline)"),
    "flip_rotate": Recipe("flip_rotate", flip=True, rotate_degrees=30,
                          about="RandomHorizontalFlip + RandomRotation(30)"),
    "crop": Recipe("crop", crop_padding=4, about="RandomCrop(32, padding=4)"),
    "crop_flip": Recipe("crop_flip", crop_padding=4, flip=True,
                        about="RandomCrop(32, padding=4) + RandomHorizontalFlip (standard CIFAR recipe)"),
    "normalize": Recipe("normalize", normalize=True, about=f"Normalize(mean {CIFAR10_MEAN}, std {CIFAR10_STD})"),
    "fast": Recipe("fast", crop_padding=4, flip=True,
                   about="crop + flip with OneCycle LR, Nesterov, label smoothing 0.1: the report's best in 15 epochs"),
}


def get_recipe(name: str) -> Recipe:
    """Return the named recipe, or raise naming the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"parameter 'recipe' = {name!r} is invalid; valid: {' | '.join(RECIPES)}")
    return RECIPES[name]


def draw_params(recipe: Recipe, n: int, generator: torch.Generator, device="cpu") -> dict:
    """Return one random parameter per image: crop offsets (dy, dx), flip flags, rotation angles in degrees."""
    kw, p = dict(generator=generator, device=generator.device), {}
    if recipe.crop_padding:
        p["dy"], p["dx"] = (torch.randint(0, 2 * recipe.crop_padding + 1, (n,), **kw) for _ in "yx")
    if recipe.flip:
        p["flip"] = torch.rand(n, **kw) < 0.5
    if recipe.rotate_degrees:
        p["angle"] = (torch.rand(n, **kw) * 2 - 1) * float(recipe.rotate_degrees)
    return {k: v.to(device) for k, v in p.items()}


def rotate_batch(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Return the float batch rotated by per-image angles (degrees, anticlockwise), nearest, fill 0, as torchvision."""
    (n, _, h, w), dt = x.shape, x.dtype
    # torchvision's tensor `rotate` builds this grid, but computes the matrix in float64 (Python math), then casts:
    # so do we, so that nearest-neighbour sampling picks the same pixels.
    a = torch.deg2rad(angle.double())
    cos, sin = torch.cos(a).to(dt), torch.sin(a).to(dt)
    theta = torch.stack([cos, -sin, torch.zeros_like(cos), sin, cos, torch.zeros_like(cos)], 1).view(n, 2, 3)
    gy, gx = torch.meshgrid(*(torch.linspace(-s * 0.5 + 0.5, s * 0.5 - 0.5, steps=s, device=x.device, dtype=dt)
                              for s in (h, w)), indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).view(1, h * w, 3)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=dt, device=x.device)
    grid = base.expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augment_batch(recipe: Recipe, x: torch.Tensor, generator: torch.Generator | None = None,
                  params: dict | None = None) -> torch.Tensor:
    """Return a uint8 (or [0, 1] float) batch in the recipe's training form, one draw per image (or `params`')."""
    x = eval_batch(recipe, x, normalize=False)
    if params is None:
        params = draw_params(recipe, x.shape[0], generator or torch.default_generator, x.device)
    if recipe.crop_padding:  # every 32x32 window of the padded image, then each image's own
        windows = F.pad(x, (recipe.crop_padding,) * 4).unfold(2, x.shape[2], 1).unfold(3, x.shape[3], 1)
        x = windows[torch.arange(len(x), device=x.device), :, params["dy"], params["dx"]]
    if recipe.flip:
        x = torch.where(params["flip"][:, None, None, None], x.flip(3), x)
    if recipe.rotate_degrees:
        x = rotate_batch(x, params["angle"])
    return eval_batch(recipe, x)


def eval_batch(recipe: Recipe, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Return a uint8 batch as the model sees it at test time (with the recipe's Normalize unless normalize=False)."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return T.functional.normalize(x, CIFAR10_MEAN, CIFAR10_STD) if recipe.normalize and normalize else x
