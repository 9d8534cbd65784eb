"""pytorch-grad-cam, wrapped: one `with` block per CAM (hooks released), one target per image, the 1x1 warning."""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, RandomCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from helpers.core.data import CLASSES
from helpers.core.models import stage_shapes
from helpers.core.recipes import eval_batch, get_recipe

METHODS = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus, "XGradCAM": XGradCAM,
           "EigenCAM": EigenCAM, "LayerCAM": LayerCAM, "ScoreCAM": ScoreCAM}
CAM_METHODS = METHODS
REFERENCE_METHODS = {"RandomCAM": RandomCAM}  # a chance-level map: what the metric gives for no information
CAM_LAYERS = ("layer1", "layer2", "layer3", "layer4")


class BlankCamWarning(UserWarning):
    """A CAM was asked of a layer whose feature map is 1x1: the map is blank by construction."""


warnings.filterwarnings("always", category=BlankCamWarning)  # every request for a blank map is warned


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
    def blank(self) -> bool:
        """Return whether the layer's map is 1x1 (so every CAM here is uniform)."""
        return tuple(self.map_size) == (1, 1)

    @property
    def size_text(self) -> str:
        """Return the map size as 'H×W'."""
        return "×".join(map(str, self.map_size))


def as_checkpoint(obj, label: str = "model") -> Checkpoint:
    """Return a Checkpoint for a Checkpoint or a bare model."""
    return obj if isinstance(obj, Checkpoint) else Checkpoint(label, obj)


def checkpoint_from_run(run, epoch: int | None = None, label: str | None = None) -> Checkpoint:
    """Return the run's weights at `epoch` (None: final) as a Checkpoint on the CPU, labelled with its accuracy."""
    epoch = int(run.config["epochs"]) if epoch is None else epoch
    label = label or f"{run.config['recipe']} · {run.config['stem']} stem · epoch {epoch}"
    acc = float(run.history.set_index("epoch")["test_acc"].loc[epoch])
    return Checkpoint(f"{label} · {acc:.1f}%", run.load_model(epoch), run.config["recipe"])


def model_input(images: torch.Tensor, recipe: str, model: nn.Module) -> torch.Tensor:
    """Return uint8 images (N, 3, 32, 32) as the model sees them at test time, on its device."""
    return eval_batch(get_recipe(recipe), torch.as_tensor(images)).to(next(model.parameters(), torch.empty(0)).device)


def layer_map_sizes(model: nn.Module) -> dict:
    """Return {layer: (H, W)} of each CAM layer's feature map for a 32x32 image."""
    return {layer: tuple(shape[1:]) for layer, shape in stage_shapes(model) if layer in CAM_LAYERS}


def check_method(method: str):
    """Return the library's CAM class for a method name; raise naming the valid ones."""
    known = {**METHODS, **REFERENCE_METHODS}
    if method not in known:
        raise ValueError(f"parameter 'method' = {method!r} is invalid; valid: {' | '.join(known)}")
    return known[method]


def resolve_targets(target, n: int):
    """Return None for None/"predicted", else one class index per image from a class (name or index) or one each."""
    if target is None or (isinstance(target, str) and target == "predicted"):
        return None
    one = isinstance(target, (str, int, np.integer))
    if not one and len(target) != n:
        raise ValueError(f"parameter 'target' has {len(target)} classes for {n} images; valid: one per image, "
                         "one class for all, or 'predicted'")
    for t in (target,) if one else target:
        if not (t in CLASSES if isinstance(t, str) else 0 <= int(t) < len(CLASSES)):
            raise ValueError(f"parameter 'target' = {t!r} is invalid; valid: predicted | {' | '.join(CLASSES)} "
                             f"| a class index 0..{len(CLASSES) - 1}")
    return np.array([CLASSES.index(t) if isinstance(t, str) else int(t) for t in ([target] * n if one else target)],
                    dtype=np.int64)


def to_rgb01(images) -> np.ndarray:
    """Return uint8 images (or floats in [0, 1]) as (N, H, W, 3) float32 in [0, 1], as `show_cam_on_image` needs."""
    t = torch.as_tensor(images).detach().cpu()
    if t.dtype == torch.uint8:
        t = t.float() / 255
    elif t.min() < 0 or t.max() > 1:
        raise ValueError(f"parameter 'images' has values in [{t.min():.2f}, {t.max():.2f}]; valid: uint8 images, "
                         "or floats in [0, 1] (pass the images before normalization)")
    return t.float().permute(0, 2, 3, 1).contiguous().numpy()


def compute_cams(model: nn.Module, images: torch.Tensor, layer: str = "layer4", method: str = "GradCAM",
                 target=None, recipe: str = "none", batch_size: int = 128) -> CamResult:
    """Return CAMs of `layer` for uint8 images (N, 3, 32, 32) in batches, explaining `target` (see resolve_targets)."""
    cam_class = check_method(method)
    if layer not in CAM_LAYERS:
        raise ValueError(f"parameter 'layer' = {layer!r} is invalid; valid: {' | '.join(CAM_LAYERS)}")
    map_size = layer_map_sizes(model)[layer]
    if map_size == (1, 1):
        warnings.warn(f"{layer} of this model is a 1x1 map at 32x32 input: a CAM there has a single value, "
                      "which the library's min-max scaling turns into all zeros — a uniform overlay that "
                      "shows no location. Use an earlier layer, or the CIFAR-stem model (stem='cifar').",
                      BlankCamWarning, stacklevel=2)
    images = torch.as_tensor(images)
    targets = resolve_targets(target, len(images))
    module, was_training, maps, outputs = getattr(model, layer), model.training, [], []
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    quiet = contextlib.redirect_stderr(io.StringIO()) if method == "ScoreCAM" else contextlib.nullcontext()
    # enable_grad: the CAM needs gradients even where a caller turned them off; ScoreCAM prints a tqdm bar per image.
    try:
        with torch.enable_grad(), quiet, cam_class(model=model, target_layers=[module]) as cam:
            # Only the layer's weights require grad: the backward pass stops there, computing no weight gradient.
            model.requires_grad_(False)
            module.requires_grad_(cam.uses_gradients)
            cam.batch_size = 128  # ScoreCAM's masked images per forward pass (one per channel of the layer)
            for i in range(0, len(images), batch_size):
                tb = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[i:i + batch_size]]
                maps.append(cam(input_tensor=model_input(images[i:i + batch_size], recipe, model), targets=tb))
                outputs.append(cam.outputs.detach().float().cpu())
    finally:
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if len(maps) != math.ceil(len(images) / batch_size):
        # The library's __exit__ swallows an IndexError raised inside the block; never return a partial result.
        raise RuntimeError(f"{method} on {layer} stopped early (the library suppressed an IndexError)")
    probs = torch.softmax(torch.cat(outputs), 1).numpy()
    explained = probs.argmax(1) if targets is None else targets
    return CamResult(np.concatenate(maps).astype(np.float32), explained, probs, layer, method, map_size)
