"""Class activation maps with pytorch-grad-cam: thin wrappers, honest about what a layer can show.

Everything CAM-related comes from the grad-cam package (methods, targets, metrics, overlays); this
module only adds what the notebooks need around it:

- one `with` block per (model, layer, method), so the library's hooks are removed after use;
- batches of many images, with one target per image (the library pairs targets with images by
  `zip`, so a single target would silently cover only the first image);
- a `BlankCamWarning` whenever a CAM is asked of a layer whose map is 1x1: after the library's
  min-max scaling such a CAM is all zeros, a uniform overlay that says nothing about *where*;
- images brought back to [0, 1] for the overlay (`show_cam_on_image` refuses anything else);
- figures (overlay grids, a gallery, the faithfulness plot) and an ipywidgets explorer with a
  static stand-in for exported HTML.

`python -m helpers.cam` prints a small GradCAM timing benchmark.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import time
import textwrap
import warnings
import weakref
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn
from pytorch_grad_cam import (EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, RandomCAM, ScoreCAM,
                              XGradCAM)
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

from .config import Config, ConfigError, make_config
from .data import CLASSES
from .models import stage_shapes
from .recipes import eval_batch, get_recipe

METHODS = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus, "XGradCAM": XGradCAM,
           "EigenCAM": EigenCAM, "LayerCAM": LayerCAM, "ScoreCAM": ScoreCAM}
CAM_METHODS = METHODS
REFERENCE_METHODS = {"RandomCAM": RandomCAM}  # a chance-level map: what the metric gives for no information
CAM_LAYERS = ("layer1", "layer2", "layer3", "layer4")
ROAD_PERCENTILES = (20, 40, 60, 80)  # the library's default is 10..90 in nine steps; four keep a CPU run short
SCORECAM_BATCH = 128  # ScoreCAM scores every channel of the layer as a masked image; this many per forward


# Per profile: the CIFAR-stem model's training (None: the base config's) and the CAM subset sizes.
# Short runs use batches of 32 (lr 0.05): the same images give four times the SGD steps of batches of 128.
CAM_DEFAULTS = {
    "smoke": dict(cifar_epochs=1, cifar_train_size=200, cifar_test_size=100, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=3, scorecam_images=1, percentiles=(50,)),
    "quick": dict(cifar_epochs=2, cifar_train_size=2000, cifar_test_size=1000, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=12, scorecam_images=2, percentiles=(25, 50, 75)),
    "full": dict(cifar_epochs=None, cifar_train_size=None, cifar_test_size=None, metric_images=200,
                 scorecam_images=20, percentiles=ROAD_PERCENTILES),
}


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


@dataclass(frozen=True)
class CamSettings:
    """The notebook's CAM choices, validated: the single image, the explained class, the method, subset sizes."""
    image_index: int      # -1: the first cat of the test set
    target: str           # "predicted" or a class name
    method: str           # method of the layer, epoch and model figures
    metric_images: int    # test images per faithfulness score
    scorecam_images: int  # of those, how many ScoreCAM scores
    percentiles: tuple    # ROAD removal percentiles (the profile's)


def cam_settings(cfg: Config, image_index: int = -1, target: str = "predicted", method: str = "GradCAM",
                 metric_images: int | None = None, scorecam_images: int | None = None,
                 classes=CLASSES) -> CamSettings:
    """Return the validated CAM settings, the profile's defaults filling every None; raise ConfigError on a bad one."""
    d = CAM_DEFAULTS[cfg.profile]
    metric_images = d["metric_images"] if metric_images is None else metric_images
    scorecam_images = d["scorecam_images"] if scorecam_images is None else scorecam_images
    n_test = cfg.test_size or 10_000
    if not isinstance(image_index, int) or not -1 <= image_index < n_test:
        raise ConfigError(f"parameter 'image_index' = {image_index!r} is invalid; valid: -1 (first cat) or 0..{n_test - 1}")
    if target != "predicted" and target not in classes:
        raise ConfigError(f"parameter 'target' = {target!r} is invalid; valid: predicted | {' | '.join(classes)}")
    if method not in METHODS:
        raise ConfigError(f"parameter 'cam_method' = {method!r} is invalid; valid: {' | '.join(METHODS)}")
    if not isinstance(metric_images, int) or not 2 <= metric_images <= n_test:
        raise ConfigError(f"parameter 'metric_images' = {metric_images!r} is invalid; valid: 2..{n_test}")
    if not isinstance(scorecam_images, int) or not 0 <= scorecam_images <= metric_images:
        raise ConfigError(f"parameter 'scorecam_images' = {scorecam_images!r} is invalid; "
                          f"valid: 0..metric_images ({metric_images})")
    return CamSettings(image_index, target, method, metric_images, scorecam_images, tuple(d["percentiles"]))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads (0: leave the default); return the number in use.

    On a CPU shared with other busy processes, one thread avoids threads waiting on each other
    (measured here: a training step of the CIFAR stem ran 2-2.5x faster with 1 thread than with 2).
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ConfigError(f"parameter 'threads' = {threads!r} is invalid; valid: 0 (torch's default) or a positive integer")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cifar_stem_config(cfg: Config, epochs: int | None = None, train_size: int | None = None) -> Config:
    """Return the CIFAR-stem model's config: the base config's data, seed and device, stem='cifar'.

    `full` keeps the base protocol; `smoke` and `quick` train briefly on a subset with a one-cycle
    schedule and small batches (the stem costs about 16x the compute per image of the ImageNet stem).
    """
    for name, value, least in (("cifar_epochs", epochs, 1), ("cifar_train_size", train_size, 10)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise ConfigError(f"parameter {name!r} = {value!r} is invalid; valid: None or an integer >= {least}")
    d = CAM_DEFAULTS[cfg.profile]
    if cfg.profile == "full":
        return make_config(profile="full", **{**cfg.identity(), "stem": "cifar", "device": cfg.device,
                                              "epochs": epochs or cfg.epochs,
                                              "step_size": None if epochs else cfg.step_size,
                                              "snapshot_epochs": None if epochs else cfg.snapshot_epochs,
                                              "train_size": train_size or cfg.train_size})
    return make_config(profile=cfg.profile, stem="cifar", schedule="onecycle", seed=cfg.seed, data_dir=cfg.data_dir,
                       device=cfg.device, epochs=epochs or d["cifar_epochs"], batch_size=d["cifar_batch_size"],
                       lr=d["cifar_lr"], train_size=train_size or d["cifar_train_size"],
                       test_size=d["cifar_test_size"])


# ---- layers and what their maps can show ------------------------------------------------------

_MAP_SIZES = weakref.WeakKeyDictionary()  # model -> sizes: measured once per model, not on every CAM


def layer_map_sizes(model: nn.Module) -> dict:
    """Return {layer: (H, W)} of each CAM layer's feature map for a 32x32 image."""
    if model not in _MAP_SIZES:
        shapes = dict(stage_shapes(model))
        _MAP_SIZES[model] = {layer: tuple(shapes[layer][1:]) for layer in CAM_LAYERS}
    return dict(_MAP_SIZES[model])


def cam_layer_table(models: dict) -> pd.DataFrame:
    """Return one row per CAM layer: each model's feature map (C×H×W) and how many positions a CAM has there."""
    rows = {layer: {"layer": layer} for layer in CAM_LAYERS}
    for name, model in models.items():
        shapes = dict(stage_shapes(as_checkpoint(model).model))
        for layer in CAM_LAYERS:
            c, hh, ww = shapes[layer]
            rows[layer][f"{name}: map"] = f"{c}×{hh}×{ww}"
            rows[layer][f"{name}: CAM"] = ("1 value: blank" if hh * ww == 1 else f"{hh}×{ww} = {hh * ww} positions")
    return pd.DataFrame(rows.values())


def cam_layer_note(models: dict) -> str:
    """Return Markdown saying, per model, which CAM layers have a spatial map and which are 1x1 (blank)."""
    lines = []
    for name, model in models.items():
        sizes = layer_map_sizes(as_checkpoint(model).model)
        spatial = [f"{l} {hh}×{ww}" for l, (hh, ww) in sizes.items() if hh * ww > 1]
        blank = [l for l, (hh, ww) in sizes.items() if hh * ww == 1]
        text = f"- **{name}**: spatial maps at {', '.join(spatial) or 'no layer'}"
        text += (f"; **{', '.join(blank)}: 1×1** — one value per channel, so any CAM there is blank."
                 if blank else "; no layer is 1×1, so every layer's CAM can point somewhere.")
        lines.append(text)
    return "\n".join(lines)


def blank_note(res: CamResult, label: str) -> str:
    """Return Markdown reporting the measured range of a CAM batch, and whether it is blank as predicted."""
    lo, hi = float(res.cams.min()), float(res.cams.max())
    size = f"{res.map_size[0]}×{res.map_size[1]}"
    if res.blank and hi == 0:
        return (f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}] over "
                f"all {res.cams.shape[0]} image(s) × 32×32 pixels — **all zeros**, as predicted. Its overlay is the "
                "same colour everywhere; differences between such overlays are differences in the photograph only.")
    if res.blank:
        return (f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}]. "
                "**This contradicts the expectation** that a 1×1 map scales to all zeros.")
    return f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}]."


def blank_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, method: str = "GradCAM",
                target=None) -> pd.DataFrame:
    """Return, per model and layer, the share of images whose CAM is all zeros (1x1 map, or no positive evidence)."""
    rows = []
    for name, ck in checkpoints.items():
        ck = as_checkpoint(ck, name)
        row = {"model": name}
        for layer in layers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BlankCamWarning)  # 1x1 layers are what this table counts
                res = compute_cams(ck.model, images, layer, method, target, ck.recipe)
            zero = float((res.cams.reshape(len(res.cams), -1).max(1) == 0).mean())
            row[f"{layer} ({res.map_size[0]}×{res.map_size[1]})"] = f"{100 * zero:.0f}%"
        rows.append(row)
    return pd.DataFrame(rows)


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


# ---- faithfulness: numbers instead of "looks clearer" ------------------------------------------------

def faithfulness(model: nn.Module, images: torch.Tensor, layer: str, method: str, target=None,
                 recipe: str = "none", percentiles=ROAD_PERCENTILES, batch_size: int = 64, seed: int = 0,
                 result: CamResult | None = None) -> np.ndarray:
    """Return the ROAD score (the library's ROADCombined) of each image's CAM; higher is more faithful.

    ROAD removes the pixels a CAM ranks most (MoRF) or least (LeRF) relevant, fills them in by noisy
    linear imputation, and measures the change in the explained class's softmax probability;
    ROADCombined averages (LeRF − MoRF) / 2 over the percentiles. A blank CAM scores about 0.
    """
    res = result or compute_cams(model, images, layer, method, target, recipe, batch_size)
    metric = ROADCombined(percentiles=list(percentiles))
    scores = []
    with torch.random.fork_rng():  # the imputer adds random noise: seeded, without touching the caller's RNG
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            xb = model_input(images[i:i + batch_size], recipe).to(model_device(model))
            tb = [ClassifierOutputSoftmaxTarget(int(t)) for t in res.targets[i:i + batch_size]]
            scores.append(metric(xb, res.cams[i:i + batch_size], tb, model))
    return np.concatenate(scores).astype(np.float64)


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's and numpy's global generators within the block; restore both after."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def faithfulness_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, methods=tuple(METHODS),
                       scorecam_images: int = 4, reference: bool = True, target=None,
                       percentiles=ROAD_PERCENTILES, progress: bool = True) -> pd.DataFrame:
    """Return one row per model × layer × method: mean ROAD score over the images, its standard error, n.

    ScoreCAM runs on the first `scorecam_images` images only (it costs one forward pass per channel);
    `reference` adds RandomCAM, the score of a map with no information, for every model and layer.
    """
    rows = []
    all_methods = list(methods) + (list(REFERENCE_METHODS) if reference else [])
    for name, ck in checkpoints.items():
        ck = as_checkpoint(ck, name)
        t0 = time.perf_counter()
        for layer in layers:
            for method in all_methods:
                n = min(scorecam_images, len(images)) if method == "ScoreCAM" else len(images)
                if n == 0:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BlankCamWarning)  # the table marks blank maps itself
                    with _seeded(0):  # RandomCAM draws its weights from numpy's global generator
                        res = compute_cams(ck.model, images[:n], layer, method, target, ck.recipe)
                    s = faithfulness(ck.model, images[:n], layer, method, recipe=ck.recipe, result=res,
                                     percentiles=percentiles)
                rows.append({"model": name, "layer": layer, "map": "×".join(map(str, res.map_size)),
                             "method": method, "images": n, "road": s.mean(),
                             "sem": s.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")})
        if progress:
            print(f"faithfulness: {name}: {len(layers)} layers × {len(all_methods)} methods "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def faithfulness_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Return the ROAD means as a model/layer × method table (text: mean ± standard error)."""
    t = table.assign(cell=[f"{m:+.3f} ± {s:.3f}" if not math.isnan(s) else f"{m:+.3f}"
                           for m, s in zip(table["road"], table["sem"])])
    out = t.pivot_table(index=["model", "layer", "map"], columns="method", values="cell", aggfunc="first", sort=False)
    order = [m for m in dict.fromkeys(table["method"])]
    return out[order].reset_index()


def plot_faithfulness(table: pd.DataFrame, axes=None):
    """Plot mean ROAD (± standard error) per layer, one line per method, one panel per model; return the figure."""
    models = list(dict.fromkeys(table["model"]))
    if axes is None:
        _, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=True,
                               layout="constrained", squeeze=False)
        axes = axes[0]
    for ax, name in zip(axes, models):
        sub = table[table["model"] == name]
        layers = list(dict.fromkeys(sub["layer"]))
        for method in dict.fromkeys(sub["method"]):
            m = sub[sub["method"] == method].set_index("layer").reindex(layers)
            style = dict(color="0.5", ls="--") if method in REFERENCE_METHODS else {}
            ax.errorbar(range(len(layers)), m["road"], yerr=m["sem"].fillna(0), marker="o", ms=4,
                        capsize=2, label=method, **style)
        maps = sub.drop_duplicates("layer").set_index("layer")["map"].reindex(layers)
        ax.set_xticks(range(len(layers)), [f"{l}\n{mp}" for l, mp in zip(layers, maps)])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ROAD (LeRF − MoRF)/2, higher = more faithful")
    axes[-1].legend(fontsize=7, loc="best")
    return axes[0].figure


def faithfulness_conclusion(table: pd.DataFrame) -> str:
    """Return Markdown that reads the faithfulness table: best layer/method per model, blank maps, vs random."""
    lines = []
    real = table[~table["method"].isin(REFERENCE_METHODS)]
    for name in dict.fromkeys(table["model"]):
        sub = real[real["model"] == name]
        full = sub[sub["images"] == sub["images"].max()]  # methods scored on every image compare fairly
        best = full.loc[full["road"].idxmax()]
        rand = table[(table["model"] == name) & table["method"].isin(REFERENCE_METHODS)].set_index("layer")["road"]
        beat = [(r.layer, r.method) for r in sub.itertuples()
                if r.layer in rand and not math.isnan(r.sem) and r.road - 2 * r.sem > rand[r.layer]]
        line = (f"- **{name}**: the highest mean ROAD is {best.road:+.3f} ± {best['sem']:.3f} "
                f"({best.method} on {best.layer}, a {best['map']} map, {int(best.images)} images). "
                f"{len(beat)} of {len(sub)} layer × method pairs beat RandomCAM on the same layer by more than "
                "two standard errors.")
        few = sub[sub["images"] < sub["images"].max()]
        for method in dict.fromkeys(few["method"]):
            m = few[few["method"] == method]
            top = m.loc[m["road"].idxmax()]
            line += (f" {method}, scored on only the first {int(top.images)} image(s), reaches {top.road:+.3f} "
                     f"on {top.layer} — too few images to rank it against the others.")
        blank = sub[sub["map"] == "1×1"]
        if len(blank):
            line += (f" On {', '.join(dict.fromkeys(blank['layer']))} (1×1) every method scores between "
                     f"{blank['road'].min():+.3f} and {blank['road'].max():+.3f}: a blank map removes no pixel "
                     "before another, so it carries no evidence at all.")
        lines.append(line)
    spatial = real[(real["map"] != "1×1") & (real["images"] == real["images"].max())]
    if spatial["method"].nunique() > 1:
        by_method = spatial.groupby("method")["road"].mean()
        lines.append(f"- Averaged over models and the layers with a spatial map (methods scored on every image), "
                     "the best method is "
                     f"**{by_method.idxmax()}** ({by_method.max():+.3f}); the worst is {by_method.idxmin()} "
                     f"({by_method.min():+.3f}).")
    return "\n".join(lines)


def compare_note(table: pd.DataFrame, models: list, claim: str) -> str:
    """Return Markdown comparing models' ROAD on the layers where both have spatial maps, against a claim.

    A pair (layer, method) separates two models when their means differ by more than two combined
    standard errors; the verdict says whether the numbers support the claim, contradict it, or cannot tell.
    """
    real = table[~table["method"].isin(REFERENCE_METHODS) & (table["map"] != "1×1") & table["model"].isin(models)]
    pairs = real.pivot_table(index=["layer", "method"], columns="model", values=["road", "sem"], sort=False).dropna()
    if pairs.empty or any(m not in pairs["road"] for m in models):
        return "Not enough scores to compare these models."
    means = {m: pairs["road"][m].mean() for m in models}
    first, last = models[0], models[-1]
    diff = pairs["road"][last] - pairs["road"][first]
    se = np.sqrt(pairs["sem"][last] ** 2 + pairs["sem"][first] ** 2)
    better, worse = int((diff > 2 * se).sum()), int((diff < -2 * se).sum())
    listing = "; ".join(f"{m}: {v:+.3f}" for m, v in means.items())
    half = len(diff) / 2
    if better > worse and better >= half:
        verdict = f"**supports** the claim ({last} clearly ahead in {better} of {len(diff)} layer × method pairs, behind in {worse})"
    elif worse > better and worse >= half:
        verdict = f"**contradicts** the claim ({last} clearly behind in {worse} of {len(diff)} pairs, ahead in {better})"
    else:
        lean = "the same way as the claim" if means[last] > means[first] else "against the claim"
        verdict = (f"**cannot confirm** the claim: {better} of {len(diff)} pairs put {last} clearly ahead and {worse} "
                   f"clearly behind (a majority is needed); the means lean {lean}")
    return (f"Claim: *{claim}*. Mean ROAD over the layers with a spatial map and the methods scored — {listing}. "
            f"Pair by pair (a pair counts when the difference exceeds two combined standard errors), "
            f"the measurement {verdict}.")


# ---- figures ------------------------------------------------------------------------------------

def _title(classes, true, probs, explained, with_true: bool = True) -> str:
    """Return a panel title: true class, predicted class with its confidence, and the explained class."""
    pred = int(probs.argmax())
    text = (f"true {classes[true]}\n" if with_true else "") + f"pred {classes[pred]} {100 * probs[pred]:.0f}%"
    if explained != pred:
        text += f"\nCAM for {classes[explained]} {100 * probs[explained]:.0f}%"
    return text


def _draw(ax, image01, cam=None, title="", blank=False):
    ax.imshow(image01 if cam is None else overlay(image01, cam), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    if blank:
        ax.text(16, 16, "1×1 map:\nblank CAM", ha="center", va="center", fontsize=7, color="w",
                bbox=dict(facecolor="k", alpha=0.6, lw=0))
    elif cam is not None and not cam.any():  # a spatial map whose weighted sum is <= 0 everywhere after ReLU
        ax.text(16, 16, "all zero:\nno positive\nevidence", ha="center", va="center", fontsize=6, color="w",
                bbox=dict(facecolor="k", alpha=0.6, lw=0))


AXES = ("image", "layer", "method", "checkpoint", "target")


def cam_grid(checkpoints, images: torch.Tensor, labels, *, rows: str = "image", cols: str = "layer",
             layers=("layer2",), methods=("GradCAM",), targets=("predicted",), show_image: bool = True,
             classes=CLASSES, panel: float = 1.45, title: str | None = None):
    """Return a figure of CAM overlays: one of image/layer/method/checkpoint/target along the rows, another
    along the columns, every other choice fixed to a single value. A first column shows the plain image.

    `targets`: classes to explain ("predicted", a class name or index), each for every image.
    """
    for name, value in (("rows", rows), ("cols", cols)):
        if value not in AXES:
            raise ValueError(f"parameter {name!r} = {value!r} is invalid; valid: {' | '.join(AXES)}")
    if rows == cols:
        raise ValueError(f"parameters 'rows' and 'cols' are both {rows!r}; valid: two different axes")
    if not isinstance(checkpoints, dict):
        checkpoints = {as_checkpoint(checkpoints).label: as_checkpoint(checkpoints)}
    choices = {"image": list(range(len(images))), "layer": list(layers), "method": list(methods),
               "checkpoint": list(checkpoints), "target": list(targets)}
    for axis in AXES:
        if axis not in (rows, cols) and len(choices[axis]) != 1:
            raise ValueError(f"{axis} is neither rows nor cols, so give exactly one; got {len(choices[axis])}")
    labels = [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    rgb = to_rgb01(images)
    results = {}  # one batched call per (checkpoint, layer, method, target) over all images
    for ck_name in choices["checkpoint"]:
        ck = as_checkpoint(checkpoints[ck_name], ck_name)
        for layer in choices["layer"]:
            for method in choices["method"]:
                for target in choices["target"]:
                    results[ck_name, layer, method, target] = compute_cams(ck.model, images, layer, method,
                                                                           target, ck.recipe, classes=classes)
    nr, nc = len(choices[rows]), len(choices[cols]) + (1 if show_image and cols != "image" else 0)
    fig, axes = plt.subplots(nr, nc, figsize=(panel * nc, (panel + 0.35) * nr), squeeze=False,
                             layout="constrained")
    offset = nc - len(choices[cols])
    sizes_vary = any(len({r.map_size for k, r in results.items() if k[1] == layer}) > 1 for layer in choices["layer"])
    for r, rv in enumerate(choices[rows]):
        for c in range(nc):
            pick = {axis: choices[axis][0] for axis in AXES}
            pick[rows] = rv
            if c >= offset:
                pick[cols] = choices[cols][c - offset]
            i = pick["image"]
            res = results[pick["checkpoint"], pick["layer"], pick["method"], pick["target"]]
            ax = axes[r, c]
            if c < offset:
                _draw(ax, rgb[i], None, f"true {classes[labels[i]]}")
            else:
                text = _title(classes, labels[i], res.probs[i], int(res.targets[i]), with_true=offset == 0)
                if sizes_vary:  # the header cannot give one size for the whole column
                    text = f"{res.map_size[0]}×{res.map_size[1]} map\n{text}"
                _draw(ax, rgb[i], res.cams[i], text, res.blank)
            if c == 0:
                ax.set_ylabel(textwrap.fill(_axis_label(rows, rv, results, pick), 22), fontsize=7)
            if r == 0 and c >= offset:
                header = textwrap.fill(_axis_label(cols, pick[cols], results, pick), int(panel * 14))
                ax.set_title(f"{header}\n{ax.get_title()}", fontsize=7)
    fixed = [_axis_label(axis, choices[axis][0], results, {a: choices[a][0] for a in AXES})
             for axis in AXES if axis not in (rows, cols) and axis != "image"]
    fig.suptitle(title or " · ".join(fixed), fontsize=9)
    return fig


def _axis_label(axis, value, results, pick) -> str:
    if axis == "layer":
        sizes = {r.map_size for k, r in results.items() if k[1] == value}
        if len(sizes) > 1:  # checkpoints with different stems: each panel gives its own size
            return value
        size = sizes.pop()
        return f"{value} ({size[0]}×{size[1]})"
    if axis == "image":
        return f"image {value}"
    if axis == "target":
        return "target: predicted" if value in (None, "predicted") else f"target: {value}"
    return str(value)


def cam_gallery(checkpoint, images: torch.Tensor, labels, layer: str = "layer2", method: str = "GradCAM",
                target=None, ncols: int = 10, classes=CLASSES, panel: float = 1.3, title: str | None = None):
    """Return a figure of CAM overlays for many images in rows of `ncols`, titled true/predicted/confidence."""
    ck = as_checkpoint(checkpoint)
    res = compute_cams(ck.model, images, layer, method, target, ck.recipe, classes=classes)
    rgb, labels = to_rgb01(images), [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, (panel + 0.3) * nrows), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k >= len(images):
            ax.axis("off")
            continue
        _draw(ax, rgb[k], res.cams[k], _title(classes, labels[k], res.probs[k], int(res.targets[k])), res.blank)
    fig.suptitle(title or f"{method} on {layer} ({res.map_size[0]}×{res.map_size[1]} map) · {ck.label}", fontsize=10)
    return fig


def pick_per_class(labels, per_class: int = 2, classes=CLASSES) -> list:
    """Return the indices of the first `per_class` images of every class, class by class."""
    labels = torch.as_tensor(labels)
    return [int(i) for k in range(len(classes)) for i in torch.nonzero(labels == k).flatten()[:per_class]]


# ---- the explorer ---------------------------------------------------------------------------------

def explorer_figure(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, target="predicted",
                    layer: str = "layer4", method: str = "GradCAM", checkpoint: str | None = None,
                    classes=CLASSES):
    """Return the explorer's figure for one choice of every control: the image, the CAM alone, the overlay."""
    if not 0 <= index < len(images):
        raise ValueError(f"parameter 'index' = {index!r} is invalid; valid: 0..{len(images) - 1}")
    name = checkpoint if checkpoint is not None else next(iter(checkpoints))
    if name not in checkpoints:
        raise ValueError(f"parameter 'checkpoint' = {name!r} is invalid; valid: {' | '.join(checkpoints)}")
    ck = as_checkpoint(checkpoints[name], name)
    res = compute_cams(ck.model, images[index:index + 1], layer, method, target, ck.recipe, classes=classes)
    label = int(torch.as_tensor(labels)[index])
    rgb = to_rgb01(images[index:index + 1])[0]
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.8), layout="constrained")
    _draw(axes[0], rgb, None, f"image {index}\ntrue {classes[label]}")
    axes[1].imshow(res.cams[0], cmap="jet", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    h_, w_ = res.map_size
    axes[1].set_title(f"{method} · {layer} ({h_}×{w_} map)\nmin {res.cams[0].min():.2f} max {res.cams[0].max():.2f}",
                      fontsize=7)
    _draw(axes[2], rgb, res.cams[0], _title(classes, label, res.probs[0], int(res.targets[0])), res.blank)
    note = " — 1×1 map: this CAM is blank by construction" if res.blank else ""
    fig.suptitle(f"{name}{note}", fontsize=8)
    return fig


class CamExplorer:
    """ipywidgets controls (image, target class, layer, method, checkpoint) redrawing the explorer figure."""

    def __init__(self, checkpoints: dict, images: torch.Tensor, labels, classes=CLASSES, index: int = 0,
                 layer: str = "layer2", method: str = "GradCAM"):
        import ipywidgets as w
        self.checkpoints, self.images, self.labels, self.classes = checkpoints, images, labels, classes
        style = dict(description_width="initial")
        self.controls = {
            "index": w.IntSlider(value=index, min=0, max=len(images) - 1, description="image", style=style,
                                 continuous_update=False),
            "target": w.Dropdown(options=["predicted", *classes], value="predicted", description="target",
                                 style=style),
            "layer": w.Dropdown(options=list(CAM_LAYERS), value=layer, description="layer", style=style),
            "method": w.Dropdown(options=list(METHODS), value=method, description="method", style=style),
            "checkpoint": w.Dropdown(options=list(checkpoints), description="checkpoint", style=style,
                                     layout=w.Layout(width="420px")),
        }
        self.output = w.Output()
        self.renders = 0
        for control in self.controls.values():
            control.observe(self.redraw, names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())[:3]), w.HBox(list(self.controls.values())[3:]),
                              self.output])
        self.redraw()

    def values(self) -> dict:
        """Return the current value of every control."""
        return {k: c.value for k, c in self.controls.items()}

    def figure(self):
        """Return the figure for the current controls (the callback's work, without display)."""
        return explorer_figure(self.checkpoints, self.images, self.labels, classes=self.classes, **self.values())

    def redraw(self, change=None):
        """Redraw the figure into the output area (called on every control change)."""
        from IPython.display import display
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            display(fig)
            plt.close(fig)
        self.renders += 1


def frontend_is_live() -> bool:
    """Return True only in a kernel whose frontend can answer input() — JupyterLab, Notebook, VS Code.

    Executors (papermill, nbconvert/nbclient, nbval) send every cell with allow_stdin=False and no
    one is there to move a slider; plain Python has no kernel at all. Both return False.
    """
    try:
        from IPython import get_ipython
        kernel = getattr(get_ipython(), "kernel", None)
        return bool(kernel is not None and kernel.get_parent("shell")["content"].get("allow_stdin", False))
    except Exception:
        return False


def show_explorer(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, layers=CAM_LAYERS,
                  method: str = "GradCAM", interactive: bool | None = None, classes=CLASSES):
    """Display the widget explorer where a live frontend can run it, and always a static grid in its place.

    `interactive` None detects the frontend (see `frontend_is_live`). Returns the CamExplorer or None.
    """
    from IPython.display import Markdown, display
    interactive = frontend_is_live() if interactive is None else interactive
    explorer = None
    if interactive:
        explorer = CamExplorer(checkpoints, images, labels, classes, index=index, method=method)
        display(explorer.widget)
    else:
        display(Markdown("*The interactive explorer runs only in a live notebook (JupyterLab); "
                         "here a static grid stands in: every checkpoint × every layer, one image.*"))
    fig = cam_grid(checkpoints, images[index:index + 1], torch.as_tensor(labels)[index:index + 1],
                   rows="checkpoint", cols="layer", layers=layers, methods=(method,), classes=classes,
                   title=f"{method}, image {index}, predicted class")
    display(fig)
    plt.close(fig)
    return explorer


# ---- benchmark --------------------------------------------------------------------------------------

def benchmark(images: int = 1000, layer: str = "layer4", stems=("imagenet", "cifar"), batch_size: int = 250,
              method: str = "GradCAM", plain: bool = True, seed: int = 0) -> pd.DataFrame:
    """Return timings of `method` over `images` random 32x32 images at one layer: this wrapper, the forward
    passes alone (the floor), and the library called plainly (every weight gradient computed).
    Weights do not change the cost, so none are loaded."""
    from .models import build_model
    torch.manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8)
    rows = []
    for stem in stems:
        model = build_model(stem).eval()
        size = layer_map_sizes(model)[layer]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BlankCamWarning)
            t = time.perf_counter()
            compute_cams(model, x, layer, method, target=0, batch_size=batch_size)
            rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "helpers.compute_cams",
                         "images": images, "seconds": time.perf_counter() - t})
            t = time.perf_counter()
            with torch.no_grad():  # not a CAM: the cost of the forward passes alone, the floor for any CAM
                for i in range(0, images, batch_size):
                    model(x[i:i + batch_size].float() / 255)
            rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "forward only (floor)",
                         "images": images, "seconds": time.perf_counter() - t})
            if plain:
                t = time.perf_counter()
                with check_method(method)(model=model, target_layers=[getattr(model, layer)]) as cam:
                    for i in range(0, images, batch_size):
                        xb = x[i:i + batch_size].float() / 255
                        cam(input_tensor=xb, targets=[ClassifierOutputTarget(0)] * len(xb))
                rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "library, plain",
                             "images": images, "seconds": time.perf_counter() - t})
    df = pd.DataFrame(rows)
    df["images_per_s"] = df["images"] / df["seconds"]
    return df


def main(argv=None) -> int:
    """Print the GradCAM benchmark (`python -m helpers.cam [--images N] [--layer L] [--stem S ...]`)."""
    import argparse
    import platform
    ap = argparse.ArgumentParser(prog="python -m helpers.cam", description=main.__doc__)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--layer", default="layer4", choices=CAM_LAYERS)
    ap.add_argument("--stem", nargs="+", default=["imagenet", "cifar"], choices=["imagenet", "cifar"])
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--method", default="GradCAM", choices=list(METHODS))
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-library comparison")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"{args.method}, {args.images} images at {args.layer}, batches of {args.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average before: {load[0]:.2f}")
    df = benchmark(args.images, args.layer, tuple(args.stem), args.batch_size, args.method, not args.no_plain)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
