"""pytorch-grad-cam, wrapped: the methods, checkpoints to explain, one batched CAM call, and the 1x1-layer warning.

Everything CAM-related comes from the grad-cam package (methods, targets, overlays); this module adds
what the notebooks need around it:

- one `with` block per (model, layer, method), so the library's hooks are removed after use;
- batches of many images, with one target per image (the library pairs targets with images by
  `zip`, so a single target would silently cover only the first image);
- a `BlankCamWarning` whenever a CAM is asked of a layer whose map is 1x1: after the library's
  min-max scaling such a CAM is all zeros, a uniform overlay that says nothing about *where*;
- images brought back to [0, 1] for the overlay (`show_cam_on_image` refuses anything else).
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from pytorch_grad_cam import (EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, RandomCAM, ScoreCAM,
                              XGradCAM)
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..data import CLASSES
from ..models import stage_shapes
from ..recipes import eval_batch, get_recipe

METHODS = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus, "XGradCAM": XGradCAM,
           "EigenCAM": EigenCAM, "LayerCAM": LayerCAM, "ScoreCAM": ScoreCAM}
CAM_METHODS = METHODS
REFERENCE_METHODS = {"RandomCAM": RandomCAM}  # a chance-level map: what the metric gives for no information
CAM_LAYERS = ("layer1", "layer2", "layer3", "layer4")
SCORECAM_BATCH = 128  # ScoreCAM scores every channel of the layer as a masked image; this many per forward


class BlankCamWarning(UserWarning):
    """A CAM was asked of a layer whose feature map is 1x1: the map is blank by construction."""


# Shown every time, not once per call site: each request for a blank map deserves the warning.
warnings.filterwarnings("always", category=BlankCamWarning)


@dataclass
class Checkpoint:
    """A model to explain, with the label used in figures and the recipe that decides its input transform."""
    label: str
    model: nn.Module
    recipe: str = "none"


@dataclass
class CamResult:
    """CAMs for a batch: maps (N, 32, 32) in [0, 1], the class each explains, and the model's predictions."""
    cams: np.ndarray
    targets: np.ndarray   # class index each CAM explains
    probs: np.ndarray     # softmax (N, classes) of the model on the images
    layer: str
    method: str
    map_size: tuple       # (H, W) of the layer's feature map

    @property
    def preds(self) -> np.ndarray:
        """Return the predicted class of every image."""
        return self.probs.argmax(1)

    @property
    def blank(self) -> bool:
        """Return whether the layer's map is 1x1 (so every CAM here is uniform)."""
        return tuple(self.map_size) == (1, 1)


def as_checkpoint(obj, label: str = "model") -> Checkpoint:
    """Return a Checkpoint for a Checkpoint, a bare model, or a (model, recipe) pair."""
    if isinstance(obj, Checkpoint):
        return obj
    if isinstance(obj, tuple):
        return Checkpoint(label, obj[0], obj[1])
    return Checkpoint(label, obj)


def epoch_accuracy(run, epoch: int | None = None) -> float:
    """Return the run's test accuracy (percent) after `epoch` (None: the last), from its history."""
    hist = run.history.set_index("epoch")
    return float(hist["test_acc"].loc[int(run.config["epochs"]) if epoch is None else epoch])


def checkpoint_from_run(run, epoch: int | None = None, label: str | None = None) -> Checkpoint:
    """Return the run's weights at `epoch` (None: final) as a Checkpoint on the CPU, labelled with its accuracy."""
    epoch = int(run.config["epochs"]) if epoch is None else epoch
    label = label or f"{run.config['recipe']} · {run.config['stem']} stem · epoch {epoch}"
    return Checkpoint(f"{label} · {epoch_accuracy(run, epoch):.1f}%", run.load_model(epoch), run.config["recipe"])


# ---- checking a request: the layer (and its map size), the method, the targets ---------------------

_MAP_SIZES = weakref.WeakKeyDictionary()  # model -> sizes: measured once per model, not on every CAM


def layer_map_sizes(model: nn.Module) -> dict:
    """Return {layer: (H, W)} of each CAM layer's feature map for a 32x32 image."""
    if model not in _MAP_SIZES:
        shapes = dict(stage_shapes(model))
        _MAP_SIZES[model] = {layer: tuple(shapes[layer][1:]) for layer in CAM_LAYERS}
    return dict(_MAP_SIZES[model])


def check_layer(model: nn.Module, layer: str) -> tuple:
    """Return the layer's map size (H, W); raise on an unknown layer, warn when the map is 1x1."""
    if layer not in CAM_LAYERS:
        raise ValueError(f"parameter 'layer' = {layer!r} is invalid; valid: {' | '.join(CAM_LAYERS)}")
    size = layer_map_sizes(model)[layer]
    if size == (1, 1):
        warnings.warn(f"{layer} of this model is a 1x1 map at 32x32 input: a CAM there has a single value, "
                      "which the library's min-max scaling turns into all zeros — a uniform overlay that "
                      "shows no location. Use an earlier layer, or the CIFAR-stem model (stem='cifar').",
                      BlankCamWarning, stacklevel=3)
    return size


def check_method(method: str):
    """Return the library's CAM class for a method name; raise naming the valid ones."""
    known = {**METHODS, **REFERENCE_METHODS}
    if method not in known:
        raise ValueError(f"parameter 'method' = {method!r} is invalid; valid: {' | '.join(known)}")
    return known[method]


def resolve_targets(target, n: int, classes=CLASSES):
    """Return None (explain the predicted class) or one class index per image.

    `target`: None or "predicted"; a class index or name (the same for every image); or a sequence
    of indices/names, one per image.
    """
    def index(t):
        if isinstance(t, str):
            if t not in classes:
                raise ValueError(f"parameter 'target' = {t!r} is invalid; valid: predicted | {' | '.join(classes)}")
            return classes.index(t)
        t = int(t)
        if not 0 <= t < len(classes):
            raise ValueError(f"parameter 'target' = {t!r} is invalid; valid: a class index 0..{len(classes) - 1}, "
                             "a class name, or 'predicted'")
        return t

    if target is None or (isinstance(target, str) and target == "predicted"):
        return None
    if isinstance(target, (str, int, np.integer)):
        return np.full(n, index(target), dtype=np.int64)
    out = np.array([index(t) for t in target], dtype=np.int64)
    if len(out) != n:
        raise ValueError(f"parameter 'target' has {len(out)} classes for {n} images; valid: one per image, "
                         "one class for all, or 'predicted'")
    return out


# ---- images in and out --------------------------------------------------------------------------

def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's weights (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def model_input(images: torch.Tensor, recipe: str = "none") -> torch.Tensor:
    """Return uint8 images (N, 3, 32, 32) as the model sees them at test time."""
    return eval_batch(get_recipe(recipe), torch.as_tensor(images))


def to_rgb01(images) -> np.ndarray:
    """Return images as (N, H, W, 3) float32 in [0, 1], the only range `show_cam_on_image` accepts.

    Pass the uint8 images, never the model's input: a normalized tensor has values outside [0, 1].
    """
    t = torch.as_tensor(images).detach().cpu()
    if t.ndim == 3:
        t = t[None]
    if t.dtype == torch.uint8:
        t = t.float() / 255
    elif t.min() < 0 or t.max() > 1:
        raise ValueError(f"parameter 'images' has values in [{t.min():.2f}, {t.max():.2f}]; valid: uint8 images, "
                         "or floats in [0, 1] (pass the images before normalization)")
    return t.float().permute(0, 2, 3, 1).contiguous().numpy()


def overlay(image01: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Return the library's heat-map overlay (H, W, 3 uint8) of one CAM on one [0, 1] RGB image."""
    return show_cam_on_image(np.clip(image01, 0, 1).astype(np.float32), cam, use_rgb=True,
                             image_weight=image_weight)


# ---- computing CAMs -----------------------------------------------------------------------------

@contextlib.contextmanager
def _gradients_only_from(model: nn.Module, layer: nn.Module, needed: bool):
    """Within the block, only `layer`'s parameters require grad (none if not `needed`); restored after.

    The CAM needs the gradient at the layer's output, which is the same whoever else requires grad;
    this spares the backward pass every weight gradient and every stage before the layer.
    """
    keep = {id(p) for p in layer.parameters()} if needed else set()
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def compute_cams(model: nn.Module, images: torch.Tensor, layer: str = "layer4", method: str = "GradCAM",
                 target=None, recipe: str = "none", batch_size: int = 128, classes=CLASSES) -> CamResult:
    """Return CAMs of `layer` for uint8 images (N, 3, 32, 32), in batches, one target per image.

    `target`: None/"predicted" explains each image's predicted class; a class (index or name), or a
    sequence of one class per image, explains those. Warns (BlankCamWarning) for a 1x1 layer.
    """
    cam_class = check_method(method)
    map_size = check_layer(model, layer)
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images[None]
    targets = resolve_targets(target, len(images), classes)
    module = getattr(model, layer)
    device = model_device(model)
    was_training = model.training
    maps, outputs = [], []
    # No torch.no_grad here: the CAM needs gradients, so they are switched on even if a caller turned them off.
    quiet = contextlib.redirect_stderr(io.StringIO()) if method == "ScoreCAM" else contextlib.nullcontext()
    with torch.enable_grad(), quiet:  # ScoreCAM prints a tqdm bar per image
        with cam_class(model=model, target_layers=[module]) as cam, \
                _gradients_only_from(model, module, needed=cam.uses_gradients):
            if method == "ScoreCAM":
                cam.batch_size = SCORECAM_BATCH
            for i in range(0, len(images), batch_size):
                xb = model_input(images[i:i + batch_size], recipe).to(device)
                tb = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[i:i + batch_size]]
                maps.append(cam(input_tensor=xb, targets=tb))
                outputs.append(cam.outputs.detach().float().cpu())
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if len(maps) != math.ceil(len(images) / batch_size):
        # The library's __exit__ swallows an IndexError raised inside the block; never return a partial result.
        raise RuntimeError(f"{method} on {layer} stopped early (the library suppressed an IndexError)")
    probs = torch.softmax(torch.cat(outputs), 1).numpy()
    explained = probs.argmax(1) if targets is None else targets
    return CamResult(np.concatenate(maps).astype(np.float32), explained, probs, layer, method, map_size)
